"""The write side of the message path, in batches.

One call of :meth:`InboundWriter.write_batch` takes every inbound message
that arrived while the previous transaction was committing and, in one
transaction: drops duplicates (channel, external id), resolves identities to
customers (creating them on first contact), opens or wakes conversations,
asks the bot for a decision on each message in arrival order, and writes the
inbound rows, the replies and their outbox rows together.  Each step is one
statement for the whole batch, which is what lets the store keep up.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.engine import Connection

from crm_store.database import Database, pause_before_retry
from crm_store.consents import ConsentChange, record as record_consents
from crm_store.models import ChannelIdentity, Conversation, Customer, CustomerTag, Message, OutboxRow
from crm_store.statements import ArrayWrite, BulkInsert, Executemany, Insert, InList, Prebuilt, Update
from crm_store.records import Attachment, Button, HandleResult, InboundMessage, OutboundMessage, pickled_by_fields
from crm_store.types import new_id, utcnow

log = logging.getLogger(__name__)

messages_t = Message.__table__
outbox_t = OutboxRow.__table__
identities_t = ChannelIdentity.__table__
customers_t = Customer.__table__
conversations_t = Conversation.__table__
tags_t = CustomerTag.__table__

# The message path's statements, built once (see crm_store.statements).
_c, _v, _i, _m = customers_t.c, conversations_t.c, identities_t.c, messages_t.c
EXISTING_INBOUND = Prebuilt(lambda in_list: select(_m.id, _m.external_id, _m.conversation_id, _m.customer_id).where(
    _m.channel == bindparam("channel"), _m.direction == "in", in_list(_m.external_id, "ids")))
PREVIOUS_REPLIES = Prebuilt(lambda in_list: select(messages_t).where(in_list(_m.in_reply_to, "ids")).order_by(_m.id))
def _senders(in_list: InList, *extra: Any) -> Any:
    """Identity, customer and unresolved conversation on that channel of each sender, in one query."""
    return (
        select(_i.external_id, _i.reachable, _c.id, _c.name, _c.first_name, _c.last_name, _c.email, _c.phone, _c.locale,
               _c.timezone, _c.lifecycle_stage, _c.attributes, _c.last_seen_at, _v.id.label("conv_id"), _v.status,
               _v.assignee_id, _v.team, _v.priority, _v.bot_state, _v.thread, *extra)
        .join(customers_t, _c.id == _i.customer_id)
        .outerjoin(conversations_t, and_(_v.customer_id == _c.id, _v.channel == bindparam("channel"), _v.status != "resolved"))
        .where(_i.channel == bindparam("channel"), in_list(_i.external_id, "senders"))
    )


SENDERS = Prebuilt(_senders)
#: PostgreSQL: with each customer's tags as an array, one round trip fewer than SENDERS then TAGS.
SENDERS_WITH_TAGS = Prebuilt(lambda in_list: _senders(
    in_list, select(func.array_agg(tags_t.c.tag)).where(tags_t.c.customer_id == _c.id).scalar_subquery().label("tags")))
TAGS = Prebuilt(lambda in_list: select(tags_t.c.customer_id, tags_t.c.tag).where(in_list(tags_t.c.customer_id, "ids")))
INSERT_MESSAGES = BulkInsert(messages_t)
INSERT_OUTBOX = BulkInsert(outbox_t)
INSERT_CONVERSATIONS = insert(conversations_t)
INSERT_CUSTOMERS = insert(customers_t)
INSERT_IDENTITIES = insert(identities_t)
INSERT_TAGS = insert(tags_t)
#: What a batch writes back of each conversation it touched (with its new updated_at and last_message_at).
CONVERSATION_STATE = ("status", "assignee_id", "team", "priority", "bot_state", "thread")
UPDATE_CONVERSATIONS = Executemany(
    update(conversations_t).where(_v.id == bindparam("b_id"))
    .values({k: bindparam(k) for k in (*CONVERSATION_STATE, "updated_at", "last_message_at")})
    .values(snoozed_until=None)
)
UPDATE_LAST_SEEN = Executemany(update(customers_t).where(_c.id == bindparam("b_id")).values(last_seen_at=bindparam("last_seen_at")))
#: PostgreSQL: the same writes as one statement (see crm_store.statements.ArrayWrite), in _plan_and_flush's order.
NEW_CONVERSATION_COLUMNS = ("id", "customer_id", "channel", "created_at", "snoozed_until", *CONVERSATION_STATE, "updated_at", "last_message_at")
WRITE_BATCH = ArrayWrite({
    "customers": Insert(customers_t),
    "identities": Insert(identities_t),
    "conversations": Insert(conversations_t, NEW_CONVERSATION_COLUMNS),
    "conversation_changes": Update(conversations_t, "id", (*CONVERSATION_STATE, "updated_at", "last_message_at"),
                                   fixed_null=("snoozed_until",), param="b_id"),
    "messages": Insert(messages_t),
    "outbox": Insert(outbox_t),
    "last_seen": Update(customers_t, "id", ("last_seen_at",), param="b_id"),
})

#: Conversation states in which a person, not the bot, answers.
HUMAN_STATES = frozenset({"pending", "open"})
#: last_seen_at is written at most this often per customer: a minute is
#: precise enough for "last seen" and saves a write on most messages.
LAST_SEEN_RESOLUTION = dt.timedelta(seconds=60)
CUSTOMER_FIELDS = frozenset({"name", "first_name", "last_name", "email", "phone", "locale", "timezone", "lifecycle_stage"})


@dataclass(slots=True)
class CustomerState:
    id: uuid.UUID
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    locale: str | None = None
    timezone: str | None = None
    lifecycle_stage: str = "lead"
    attributes: dict[str, Any] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    is_new: bool = False
    last_seen_at: dt.datetime | None = None

    def as_fields(self) -> dict[str, Any]:
        """What templates may substitute (``{first_name}``, ``{email}`` ...)."""
        data = {k: getattr(self, k) for k in ("name", "first_name", "last_name", "email", "phone", "locale")}
        data.update({k: v for k, v in self.attributes.items() if isinstance(v, str | int | float)})
        return data


@dataclass(slots=True)
class ConversationState:
    id: uuid.UUID
    customer_id: uuid.UUID
    channel: str
    status: str = "bot"
    assignee_id: uuid.UUID | None = None
    team: str | None = None
    priority: str = "medium"
    bot_state: dict[str, Any] = field(default_factory=dict)
    thread: str | None = None
    is_new: bool = False


@dataclass(slots=True)
class Turn:
    """Everything the bot may look at to decide on one message."""

    message: InboundMessage
    parse: dict[str, Any] | None
    customer: CustomerState
    conversation: ConversationState


@dataclass(slots=True)
class Reply:
    text: str | None = None
    buttons: list[Button] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Handoff:
    team: str
    priority: str = "medium"
    reason: str = "handoff"


@dataclass(slots=True)
class Decision:
    """What the bot wants done; applied in the same transaction as the message."""

    replies: list[Reply] = field(default_factory=list)
    bot_state: dict[str, Any] | None = None
    handoff: Handoff | None = None
    customer_updates: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    consents: list[tuple[str, str, bool]] = field(default_factory=list)
    add_tags: set[str] = field(default_factory=set)
    intent: str | None = None


Decider = Callable[[Turn], Decision]


@pickled_by_fields
@dataclass(slots=True)
class InboundItem:
    message: InboundMessage
    parse: dict[str, Any] | None = None


@dataclass(slots=True)
class _Work:
    """Per-batch scratch: rows to write and results to hand back."""

    now: dt.datetime
    messages: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    new_customers: list[dict[str, Any]] = field(default_factory=list)
    new_identities: list[dict[str, Any]] = field(default_factory=list)
    seen_customers: dict[uuid.UUID, CustomerState] = field(default_factory=dict)
    customer_updates: dict[uuid.UUID, dict[str, Any]] = field(default_factory=lambda: defaultdict(dict))
    new_tags: list[dict[str, Any]] = field(default_factory=list)
    consents: list[dict[str, Any]] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    conversations: dict[uuid.UUID, ConversationState] = field(default_factory=dict)
    open_conversations: dict[tuple[uuid.UUID, str], ConversationState] = field(default_factory=dict)
    contact_joins: list[tuple[uuid.UUID, str | None, str | None]] = field(default_factory=list)
    reachable_again: list[tuple[str, str]] = field(default_factory=list)
    unknown_conversations: set[uuid.UUID] = field(default_factory=set)
    #: Conversations this batch handed to people; routed in the same transaction.
    handoffs: list[uuid.UUID] = field(default_factory=list)


class InboundWriter:
    """Writes batches of inbound messages; see the module docstring."""

    def __init__(
        self,
        db: Database,
        decide: Decider,
        *,
        inline_channels: Iterable[str] = (),
        own_thread: bool = False,
    ) -> None:
        """``own_thread`` (SQLite): write each batch on the calling thread while no other writer
        holds the lock, for a process that does nothing else (bot.writer_process); in a serving
        process the event loop must not wait on the store, and the writer thread writes."""
        self.db = db
        self.decide = decide
        self.inline_channels = frozenset(inline_channels)
        self.own_thread = own_thread

    async def write_batch(self, items: Sequence[InboundItem]) -> list[HandleResult | BaseException]:
        """Write ``items``, retrying when another process got in the way.

        Two processes may create the same identity or conversation at once
        (a unique-key conflict or, on PostgreSQL, a deadlock): the retry reads
        what the other committed.  A batch that still fails because of one bad
        item is written item by item, so the others are not lost with it.
        """
        last: DBAPIError | None = None
        for attempt in range(3):
            try:
                return await self._write_once(items, optimistic=attempt == 0)
            except DBAPIError as exc:
                last = exc
                log.info("batch of %d conflicted (%s); retrying", len(items), type(exc.orig).__name__ if exc.orig else exc)
                if attempt or not self._optimistic:
                    await pause_before_retry(attempt)
        assert last is not None
        if len(items) == 1 or not isinstance(last, IntegrityError):
            return [last] * len(items)
        results: list[HandleResult | BaseException] = []
        for item in items:
            results.extend(await self.write_batch([item]))
        return results

    @property
    def _optimistic(self) -> bool:
        return not self.db.is_sqlite

    async def _write_once(self, items: Sequence[InboundItem], *, optimistic: bool) -> list[HandleResult | BaseException]:
        """One try at the batch.

        On SQLite, one transaction on the writer (statements cost no round
        trip there).  On PostgreSQL each round trip costs, so the batch reads
        in one statement and, unless it does something rare (a handoff, an
        edit, a consent ...), writes in one more that is its own transaction.
        An ``optimistic`` try does not look for duplicates first: a message
        seen before makes the write fail on the unique key, and the retry
        (at once, not optimistic) answers it as a duplicate.
        """
        work = _Work(now=utcnow())
        if self.db.is_sqlite:
            results = await self.db.run_in_transaction(self._plan_and_flush, items, work, inline=self.own_thread)
        else:
            results = await self.db.run_autocommit(self._plan_and_write, items, work, not (optimistic and self._optimistic))
        if work.contact_joins:
            await self._join_contacts(work, results)
        return results

    async def _join_contacts(self, work: _Work, results: list[HandleResult | BaseException]) -> None:
        """Rare: a platform vouched for a contact the customer record lacks; join or fill (after the commit)."""
        from crm_store.customers import join_verified_contact

        for customer_id, email, phone in work.contact_joins:
            # The batch is committed: a failure here must not send it round the batch retry
            # (its messages would come back as duplicates and the join be forgotten).
            survivor = customer_id
            for attempt in range(3):
                try:
                    survivor = await join_verified_contact(self.db, customer_id, email, phone)
                    break
                except DBAPIError as exc:
                    log.info("joining customer %s by verified contact conflicted (%s); retrying", customer_id, exc.orig or exc)
                    await pause_before_retry(attempt)
            else:
                log.warning("could not join customer %s by verified contact; it stays a customer of its own", customer_id)
            if survivor != customer_id:
                for result in results:
                    if isinstance(result, HandleResult) and result.customer_id == str(customer_id):
                        result.customer_id = str(survivor)

    def _plan_and_flush(self, conn: Connection, items: Sequence[InboundItem], work: _Work) -> list[HandleResult | BaseException]:
        """The whole batch as plain synchronous code: one hop to the writer, not one per statement."""
        results = self._plan(conn, items, work, look_for_duplicates=True)
        rows = self._rows(work)
        if rows["customers"]:
            conn.execute(INSERT_CUSTOMERS, rows["customers"])
        if rows["identities"]:
            conn.execute(INSERT_IDENTITIES, rows["identities"])
        if rows["conversations"]:
            conn.execute(INSERT_CONVERSATIONS, rows["conversations"])
        UPDATE_CONVERSATIONS(conn, rows["conversation_changes"])
        INSERT_MESSAGES(conn, rows["messages"])
        INSERT_OUTBOX(conn, rows["outbox"])
        UPDATE_LAST_SEEN(conn, rows["last_seen"])
        self._flush_rare(conn, work)
        return results

    def _plan_and_write(self, conn: Connection, items: Sequence[InboundItem], work: _Work,
                        look_for_duplicates: bool) -> list[HandleResult | BaseException]:
        """PostgreSQL, on a connection outside any transaction: read, decide, then one write
        statement, inside a transaction of its own only when rare writes come with it."""
        results = self._plan(conn, items, work, look_for_duplicates=look_for_duplicates)
        rows = self._rows(work)
        if not self._has_rare_writes(work):
            WRITE_BATCH(conn, rows)  # atomic, and durable when it returns
            return results
        conn.exec_driver_sql("BEGIN")
        try:
            WRITE_BATCH(conn, rows)
            self._flush_rare(conn, work)
            conn.exec_driver_sql("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                conn.exec_driver_sql("ROLLBACK")
            raise
        return results

    def _plan(
        self, conn: Connection, items: Sequence[InboundItem], work: _Work, *, look_for_duplicates: bool
    ) -> list[HandleResult | BaseException]:
        existing = self._existing_inbound(conn, items) if look_for_duplicates else {}
        results: list[HandleResult | BaseException | None] = [None] * len(items)
        first_of: dict[tuple[str, str], int] = {}
        fresh: list[int] = []
        for index, item in enumerate(items):
            msg = item.message
            key = (msg.channel, msg.external_id) if msg.external_id else None
            if key and key in existing:
                results[index] = existing[key]
            elif key and key in first_of:
                results[index] = first_of[key]  # type: ignore[assignment]  # resolved below
            else:
                if key:
                    first_of[key] = index
                fresh.append(index)

        edits = [i for i in fresh if items[i].message.kind == "edit" and items[i].message.edit_of]
        if edits:
            originals = self._edit_targets(conn, [items[i].message for i in edits])
            for index in edits:
                msg = items[index].message
                original = originals.get((msg.channel, msg.edit_of or ""))
                if original is not None:
                    work.edits.append({"id": original["id"], "text": msg.text, "previous": original["text"], "meta": original["meta"]})
                    results[index] = HandleResult(False, str(original["id"]), str(original["conversation_id"]), str(original["customer_id"]))
            fresh = [i for i in fresh if results[i] is None]

        customers = self._resolve_customers(conn, [items[i].message for i in fresh], work)
        conversations = self._open_conversations(conn, [(items[i].message, customers[i_pos]) for i_pos, i in enumerate(fresh)], work)
        for pos, index in enumerate(fresh):
            item = items[index]
            customer = customers[pos]
            conversation = conversations[(customer.id, item.message.channel)]
            results[index] = self._apply(item, customer, conversation, work)

        final: list[HandleResult | BaseException] = []
        for result in results:
            if isinstance(result, int):
                first = results[result]
                assert isinstance(first, HandleResult)
                final.append(HandleResult(True, first.message_id, first.conversation_id, first.customer_id, list(first.replies)))
            else:
                assert result is not None
                final.append(result)
        return final

    def _existing_inbound(self, conn: Connection, items: Sequence[InboundItem]) -> dict[tuple[str, str], HandleResult]:
        by_channel: dict[str, set[str]] = defaultdict(set)
        for item in items:
            if item.message.external_id:
                by_channel[item.message.channel].add(item.message.external_id)
        found: dict[tuple[str, str], HandleResult] = {}
        for channel, ids in by_channel.items():
            for row in conn.execute(EXISTING_INBOUND(conn), {"channel": channel, "ids": list(ids)}):
                found[(channel, row.external_id)] = HandleResult(True, str(row.id), str(row.conversation_id), str(row.customer_id))
        if found:
            self._attach_previous_replies(conn, found)
        return found

    def _attach_previous_replies(self, conn: Connection, found: dict[tuple[str, str], HandleResult]) -> None:
        """A retried request gets the replies the first one got (the REST channel returns them)."""
        by_id = {uuid.UUID(r.message_id): r for r in found.values() if r.message_id}
        for row in conn.execute(PREVIOUS_REPLIES(conn), {"ids": list(by_id)}):
            result = by_id[row.in_reply_to]
            result.replies.append(
                OutboundMessage.from_payload(
                    row.channel,
                    row.metadata.get("recipient", ""),
                    {"text": row.text, "buttons": row.buttons, "attachments": row.attachments},
                    message_id=str(row.id),
                    conversation_id=str(row.conversation_id),
                    customer_id=str(row.customer_id),
                )
            )

    def _edit_targets(self, conn: Connection, msgs: list[InboundMessage]) -> dict[tuple[str, str], dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for msg in msgs:
            row = (
                conn.execute(
                    select(messages_t.c.id, messages_t.c.text, messages_t.c.metadata.label("meta"), messages_t.c.conversation_id, messages_t.c.customer_id).where(
                        messages_t.c.channel == msg.channel, messages_t.c.direction == "in", messages_t.c.external_id == msg.edit_of
                    )
                )
            ).first()
            if row is not None:
                found[(msg.channel, msg.edit_of or "")] = dict(row._mapping)
        return found

    def _resolve_customers(self, conn: Connection, msgs: list[InboundMessage], work: _Work) -> list[CustomerState]:
        """Identity, customer and open conversation of every sender, in one query per channel."""
        by_channel: dict[str, set[str]] = defaultdict(set)
        for msg in msgs:
            by_channel[msg.channel].add(msg.sender_id)
        identity_customer: dict[tuple[str, str], uuid.UUID] = {}
        states: dict[uuid.UUID, CustomerState] = {}
        with_tags = conn.dialect.name == "postgresql"
        for channel, senders in by_channel.items():
            statement = SENDERS_WITH_TAGS(conn) if with_tags else SENDERS(conn)
            for row in conn.execute(statement, {"channel": channel, "senders": list(senders)}):
                identity_customer[(channel, row.external_id)] = row.id
                if not row.reachable:
                    # writing to us again means the block was lifted
                    work.reachable_again.append((channel, row.external_id))
                if row.id not in states:
                    states[row.id] = state = _customer_state(row)
                    if with_tags and row.tags:
                        state.tags.update(row.tags)
                if row.conv_id is not None:
                    work.open_conversations[(row.id, channel)] = ConversationState(
                        id=row.conv_id, customer_id=row.id, channel=channel, status=row.status, assignee_id=row.assignee_id,
                        team=row.team, priority=row.priority, bot_state=dict(row.bot_state or {}), thread=row.thread,
                    )
        if not with_tags:
            self._load_tags(conn, states)

        missing: dict[tuple[str, str], InboundMessage] = {}
        for msg in msgs:
            key = (msg.channel, msg.sender_id)
            if key not in identity_customer and key not in missing:
                missing[key] = msg
        if missing:
            verified = self._customers_by_verified_contact(conn, list(missing.values()))
            for key, msg in missing.items():
                existing = verified.get(key)
                if existing is None:
                    state = self._new_customer(msg, work)
                else:
                    state = existing
                    work.unknown_conversations.add(state.id)
                states[state.id] = state
                identity_customer[key] = state.id
                work.new_identities.append(
                    {
                        "id": new_id(),
                        "customer_id": state.id,
                        "channel": msg.channel,
                        "external_id": msg.sender_id,
                        "profile": _profile_dict(msg),
                        "reachable": True,
                        "created_at": work.now,
                    }
                )
        for state in states.values():
            work.seen_customers[state.id] = state
        return [states[identity_customer[(m.channel, m.sender_id)]] for m in msgs]

    def _load_tags(self, conn: Connection, states: dict[uuid.UUID, CustomerState]) -> None:
        if states:
            for row in conn.execute(TAGS(conn), {"ids": list(states)}):
                states[row.customer_id].tags.add(row.tag)

    def _load_customers(self, conn: Connection, ids: set[uuid.UUID]) -> dict[uuid.UUID, CustomerState]:
        if not ids:
            return {}
        states = {row.id: _customer_state(row) for row in conn.execute(select(customers_t).where(customers_t.c.id.in_(ids)))}
        self._load_tags(conn, states)
        return states

    def _customers_by_verified_contact(
        self, conn: Connection, msgs: list[InboundMessage]
    ) -> dict[tuple[str, str], CustomerState]:
        """New identities whose platform vouches for an e-mail or phone join that customer."""
        emails = {m.profile.email.lower() for m in msgs if m.profile.verified and m.profile.email}
        phones = {m.profile.phone for m in msgs if m.profile.verified and m.profile.phone}
        if not emails and not phones:
            return {}
        clauses = []
        if emails:
            clauses.append(customers_t.c.email.in_(emails))
        if phones:
            clauses.append(customers_t.c.phone.in_(phones))
        rows = (conn.execute(select(customers_t.c.id, customers_t.c.email, customers_t.c.phone).where(or_(*clauses)).order_by(customers_t.c.created_at))).all()
        by_email = {}
        by_phone = {}
        for row in rows:
            if row.email:
                by_email.setdefault(row.email.lower(), row.id)
            if row.phone:
                by_phone.setdefault(row.phone, row.id)
        states = self._load_customers(conn, set(by_email.values()) | set(by_phone.values()))
        matched: dict[tuple[str, str], CustomerState] = {}
        for msg in msgs:
            if not msg.profile.verified:
                continue
            cid = by_email.get((msg.profile.email or "").lower()) or by_phone.get(msg.profile.phone or "")
            if cid is not None:
                matched[(msg.channel, msg.sender_id)] = states[cid]
        return matched

    def _new_customer(self, msg: InboundMessage, work: _Work) -> CustomerState:
        profile = msg.profile
        names = [n for n in (profile.first_name, profile.last_name) if n]
        state = CustomerState(
            id=new_id(),
            name=" ".join(names) or profile.username or None,
            first_name=profile.first_name,
            last_name=profile.last_name,
            email=profile.email.lower() if profile.email and profile.verified else None,
            phone=profile.phone if profile.phone and profile.verified else None,
            locale=profile.language,
            timezone=profile.timezone,
            attributes={k: v for k, v in {"username": profile.username, "start_param": msg.metadata.get("start_param")}.items() if v},
            is_new=True,
            last_seen_at=work.now,
        )
        work.new_customers.append(
            {
                "id": state.id, "name": state.name, "first_name": state.first_name, "last_name": state.last_name,
                "email": state.email, "phone": state.phone, "locale": state.locale, "timezone": state.timezone,
                "lifecycle_stage": "lead", "attributes": state.attributes, "last_seen_at": work.now,
                "created_at": work.now, "updated_at": work.now,
            }
        )
        return state

    def _open_conversations(
        self, conn: Connection, pairs: list[tuple[InboundMessage, CustomerState]], work: _Work
    ) -> dict[tuple[uuid.UUID, str], ConversationState]:
        """The unresolved conversation of each (customer, channel), new where there is none."""
        found = work.open_conversations
        if work.unknown_conversations:
            rows = conn.execute(select(conversations_t).where(
                conversations_t.c.customer_id.in_(list(work.unknown_conversations)), conversations_t.c.status != "resolved"))
            for row in rows:
                found.setdefault((row.customer_id, row.channel), ConversationState(
                    id=row.id, customer_id=row.customer_id, channel=row.channel, status=row.status,
                    assignee_id=row.assignee_id, team=row.team, priority=row.priority,
                    bot_state=dict(row.bot_state or {}), thread=row.thread,
                ))
        for msg, customer in pairs:
            key = (customer.id, msg.channel)
            if key not in found:
                found[key] = ConversationState(
                    id=new_id(), customer_id=customer.id, channel=msg.channel, thread=msg.thread or msg.sender_id, is_new=True
                )
        return found

    def _apply(self, item: InboundItem, customer: CustomerState, conv: ConversationState, work: _Work) -> HandleResult:
        msg = item.message
        now = work.now
        message_id = new_id()
        intent = None
        if item.parse and isinstance(item.parse.get("intent"), dict):
            intent = item.parse["intent"].get("name")
        meta: dict[str, Any] = dict(msg.metadata)
        if msg.payload:
            meta["payload"] = msg.payload
        if msg.thread:
            meta["thread"] = msg.thread
        if msg.sent_at:
            meta["sent_at"] = msg.sent_at.isoformat()
        if item.parse:
            meta["nlu"] = {"intent": item.parse.get("intent"), "entities": item.parse.get("entities", [])}
        work.messages.append(
            {
                "id": message_id, "conversation_id": conv.id, "customer_id": customer.id, "channel": msg.channel,
                "direction": "in", "sender_kind": "customer", "sender_agent_id": None, "text": msg.text,
                "attachments": [a.to_dict() for a in msg.attachments], "buttons": [], "external_id": msg.external_id,
                "in_reply_to": None, "intent": intent, "status": None, "metadata": meta, "created_at": now, "edited_at": None,
            }
        )
        conv.thread = msg.thread or msg.sender_id
        work.conversations[conv.id] = conv
        profile = msg.profile
        if profile.verified and not customer.is_new and (
            (profile.email and profile.email.lower() != customer.email) or (profile.phone and profile.phone != customer.phone)
        ):
            work.contact_joins.append((customer.id, profile.email, profile.phone))
        start_param = msg.metadata.get("start_param")
        if start_param and not customer.is_new and customer.attributes.get("last_start_param") != start_param:
            # a campaign or referral link the customer came back through
            customer.attributes["last_start_param"] = start_param
            customer.attributes.setdefault("start_param", start_param)
            work.customer_updates[customer.id]["attributes"] = dict(customer.attributes)
        if customer.last_seen_at is None or now - customer.last_seen_at > LAST_SEEN_RESOLUTION:
            work.customer_updates[customer.id]["last_seen_at"] = now
            customer.last_seen_at = now
        if conv.status == "snoozed":
            conv.status = "open" if conv.assignee_id else "pending"

        result = HandleResult(False, str(message_id), str(conv.id), str(customer.id))
        if conv.status in HUMAN_STATES:
            return result  # a person holds it: the bot stays silent
        try:
            decision = self.decide(Turn(msg, item.parse, customer, conv))
        except Exception:  # noqa: BLE001 - a broken bot must not lose the message
            log.exception("bot failed on message %s; storing it unanswered", message_id)
            return result
        self._apply_decision(decision, msg, message_id, customer, conv, work, result)
        return result

    def _apply_decision(
        self,
        decision: Decision,
        msg: InboundMessage,
        message_id: uuid.UUID,
        customer: CustomerState,
        conv: ConversationState,
        work: _Work,
        result: HandleResult,
    ) -> None:
        now = work.now
        recipient = conv.thread or msg.sender_id
        inline = msg.channel in self.inline_channels
        for reply in decision.replies:
            reply_id = new_id()
            out = OutboundMessage(
                channel=msg.channel, recipient=recipient, text=reply.text, buttons=list(reply.buttons),
                attachments=list(reply.attachments), metadata=dict(reply.metadata), message_id=str(reply_id),
                conversation_id=str(conv.id), customer_id=str(customer.id),
            )
            work.messages.append(
                {
                    "id": reply_id, "conversation_id": conv.id, "customer_id": customer.id, "channel": msg.channel,
                    "direction": "out", "sender_kind": "bot", "sender_agent_id": None, "text": reply.text,
                    "attachments": [a.to_dict() for a in reply.attachments], "buttons": [b.to_dict() for b in reply.buttons],
                    "external_id": None, "in_reply_to": message_id, "intent": None,
                    "status": "sent" if inline else "queued", "metadata": {"recipient": recipient, **reply.metadata},
                    "created_at": now, "edited_at": None,
                }
            )
            if not inline:
                outbox_id = new_id()
                out.outbox_id = str(outbox_id)
                work.outbox.append(
                    {
                        "id": outbox_id, "message_id": reply_id, "conversation_id": conv.id, "customer_id": customer.id,
                        "channel": msg.channel, "recipient": recipient, "payload": out.to_payload(), "status": "queued",
                        "attempts": 0, "next_attempt_at": now, "claimed_until": None, "last_error": None,
                        "external_id": None, "created_at": now, "sent_at": None, "campaign_run_id": None, "campaign_variant": None,
                    }
                )
            result.replies.append(out)
        if decision.bot_state is not None:
            conv.bot_state = decision.bot_state
        if decision.handoff is not None:
            conv.status = "pending"
            conv.team = decision.handoff.team
            conv.priority = decision.handoff.priority
            work.handoffs.append(conv.id)
            work.messages.append(
                {
                    "id": new_id(), "conversation_id": conv.id, "customer_id": customer.id, "channel": msg.channel,
                    "direction": "sys", "sender_kind": "system", "sender_agent_id": None,
                    "text": f"Handed off to {decision.handoff.team} ({decision.handoff.reason})",
                    "attachments": [], "buttons": [], "external_id": None, "in_reply_to": message_id, "intent": None,
                    "status": None, "metadata": {"event": "handoff", "team": decision.handoff.team,
                                                 "priority": decision.handoff.priority, "reason": decision.handoff.reason},
                    "created_at": now, "edited_at": None,
                }
            )
        updates = {k: v for k, v in decision.customer_updates.items() if k in CUSTOMER_FIELDS}
        for key, value in updates.items():
            setattr(customer, key, value)
        if decision.attributes:
            customer.attributes.update(decision.attributes)
            updates["attributes"] = dict(customer.attributes)
        if updates:
            updates["updated_at"] = now
            work.customer_updates[customer.id].update(updates)
        for channel, purpose, granted in decision.consents:
            work.consents.append({"customer_id": customer.id, "channel": channel, "purpose": purpose, "granted": granted})
        for tag in sorted(decision.add_tags - customer.tags):
            customer.tags.add(tag)
            work.new_tags.append({"customer_id": customer.id, "tag": tag})

    def _rows(self, work: _Work) -> dict[str, list[dict[str, Any]]]:
        """The rows of the batch's common writes, by part of WRITE_BATCH, each in the order that
        lets two processes writing the same keys wait for each other instead of deadlocking."""
        new_convs: list[dict[str, Any]] = []
        changed_convs: list[dict[str, Any]] = []
        for state in work.conversations.values():
            record = {k: getattr(state, k) for k in CONVERSATION_STATE} | {"updated_at": work.now, "last_message_at": work.now}
            if state.is_new:
                new_convs.append({"id": state.id, "customer_id": state.customer_id, "channel": state.channel,
                                  "created_at": work.now, "snoozed_until": None, **record})
            else:
                changed_convs.append({"b_id": state.id, **record})
        new_ids = {row["id"] for row in work.new_customers}
        last_seen = [{"b_id": cid, "last_seen_at": fields["last_seen_at"]} for cid, fields in work.customer_updates.items()
                     if set(fields) == {"last_seen_at"} and cid not in new_ids]
        work.new_identities.sort(key=lambda r: (r["channel"], r["external_id"]))
        changed_convs.sort(key=lambda r: r["b_id"])
        work.messages.sort(key=lambda r: (r["channel"], r["external_id"] or ""))
        last_seen.sort(key=lambda r: r["b_id"])
        return {"customers": work.new_customers, "identities": work.new_identities, "conversations": new_convs,
                "conversation_changes": changed_convs, "messages": work.messages, "outbox": work.outbox, "last_seen": last_seen}

    @staticmethod
    def _other_customer_updates(work: _Work) -> dict[uuid.UUID, dict[str, Any]]:
        return {cid: fields for cid, fields in work.customer_updates.items() if fields and set(fields) != {"last_seen_at"}}

    def _has_rare_writes(self, work: _Work) -> bool:
        return bool(work.reachable_again or work.edits or work.new_tags or work.consents or work.handoffs
                    or self._other_customer_updates(work))

    def _flush_rare(self, conn: Connection, work: _Work) -> None:
        """What few batches write, a statement each, after the common writes."""
        for channel, external_id in work.reachable_again:
            conn.execute(update(identities_t).where(identities_t.c.channel == channel, identities_t.c.external_id == external_id)
                         .values(reachable=True))
        for edit in work.edits:
            meta = dict(edit["meta"] or {})
            meta.setdefault("edits", []).append({"text": edit["previous"], "replaced_at": work.now.isoformat()})
            conn.execute(
                update(messages_t).where(messages_t.c.id == edit["id"]).values(text=edit["text"], edited_at=work.now, metadata=meta)
            )
        for cid, fields in self._other_customer_updates(work).items():
            conn.execute(update(customers_t).where(customers_t.c.id == cid).values(**fields))
        if work.new_tags:
            conn.execute(INSERT_TAGS, work.new_tags)
        if work.consents:  # current state and the audit trail (an opt-out written in the conversation, a form's consent)
            record_consents(conn, [ConsentChange(**consent) for consent in work.consents], source="bot", now=work.now)
        if work.handoffs:
            from crm_store.routing import route_handoffs

            route_handoffs(conn, list(dict.fromkeys(work.handoffs)), work.now)


def _customer_state(row: Any) -> CustomerState:
    return CustomerState(
        id=row.id, name=row.name, first_name=row.first_name, last_name=row.last_name, email=row.email, phone=row.phone,
        locale=row.locale, timezone=row.timezone, lifecycle_stage=row.lifecycle_stage,
        attributes=dict(row.attributes or {}), last_seen_at=row.last_seen_at,
    )


def _profile_dict(msg: InboundMessage) -> dict[str, Any]:
    profile = msg.profile
    return {k: v for k, v in {
        "first_name": profile.first_name, "last_name": profile.last_name, "username": profile.username,
        "language": profile.language, "email": profile.email, "phone": profile.phone,
    }.items() if v}
