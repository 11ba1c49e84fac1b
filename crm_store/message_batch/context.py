"""What the engine needs to know of a batch of inbound messages, read in as few statements as the dialect allows.

One :func:`load_context` call per batch, inside the batch's transaction:
messages already stored under the same (channel, external id), the messages
that edits refer to, each sender's identity, customer (with tags) and
unresolved conversation on that channel, and, for senders seen for the first
time whose platform vouches for an e-mail or phone, the customer who already
has it.  The engine decides on these records and hands back a
:class:`~crm_store.message_batch.plan.WritePlan`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.engine import Connection

from crm_store.models import ChannelIdentity, Conversation, ConversationSla, Customer, CustomerTag, Message
from crm_store.statements import InList, Prebuilt

messages_t = Message.__table__
identities_t = ChannelIdentity.__table__
customers_t = Customer.__table__
conversations_t = Conversation.__table__
tags_t = CustomerTag.__table__
sla_t = ConversationSla.__table__

_c, _v, _i, _m = customers_t.c, conversations_t.c, identities_t.c, messages_t.c
EXISTING_INBOUND = Prebuilt(lambda in_list: select(_m.id, _m.external_id, _m.conversation_id, _m.customer_id).where(
    _m.channel == bindparam("channel"), _m.direction == "in", in_list(_m.external_id, "ids")))
PREVIOUS_REPLIES = Prebuilt(lambda in_list: select(messages_t).where(in_list(_m.in_reply_to, "ids")).order_by(_m.id))


def _senders(in_list: InList, *extra: Any) -> Any:
    """Identity, customer and unresolved conversation on that channel of each sender, in one query."""
    return (
        select(_i.external_id, _i.reachable, _c.id, _c.name, _c.first_name, _c.last_name, _c.email, _c.phone, _c.locale,
               _c.timezone, _c.lifecycle_stage, _c.attributes, _c.last_seen_at, _v.id.label("conv_id"), _v.status,
               _v.assignee_id, _v.team, _v.priority, _v.bot_state, _v.thread, _v.first_response_at,
               sla_t.c.first_response_due_at, *extra)
        .join(customers_t, _c.id == _i.customer_id)
        .outerjoin(conversations_t, and_(_v.customer_id == _c.id, _v.channel == bindparam("channel"), _v.status != "resolved"))
        # what a customer waiting for a person is told (bot.engine.waiting), in the same read
        .outerjoin(sla_t, sla_t.c.conversation_id == _v.id)
        .where(_i.channel == bindparam("channel"), in_list(_i.external_id, "senders"))
    )


SENDERS = Prebuilt(_senders)
#: PostgreSQL: with each customer's tags as an array, one round trip fewer than SENDERS then TAGS.
SENDERS_WITH_TAGS = Prebuilt(lambda in_list: _senders(
    in_list, select(func.array_agg(tags_t.c.tag)).where(tags_t.c.customer_id == _c.id).scalar_subquery().label("tags")))
TAGS = Prebuilt(lambda in_list: select(tags_t.c.customer_id, tags_t.c.tag).where(in_list(tags_t.c.customer_id, "ids")))

Key = tuple[str, str]


@dataclass(slots=True)
class CustomerRecord:
    """A customer as the engine may read and change it during one batch."""

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
        """What reply templates may substitute (``{first_name}``, ``{email}`` ...)."""
        data = {k: getattr(self, k) for k in ("name", "first_name", "last_name", "email", "phone", "locale")}
        data.update({k: v for k, v in self.attributes.items() if isinstance(v, str | int | float)})
        return data


@dataclass(slots=True)
class ConversationRecord:
    """An unresolved conversation (or one the batch opens, ``is_new``) as the engine may change it."""

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
    #: A person has answered in it (a customer waiting for one is no longer told they wait).
    answered_by_person: bool = False
    #: When the team's SLA wants a person's first answer.
    first_response_due: dt.datetime | None = None


@dataclass(slots=True)
class StoredReply:
    """A reply stored before, as a retried request gets it again."""

    id: uuid.UUID
    channel: str
    recipient: str
    payload: dict[str, Any]
    conversation_id: uuid.UUID
    customer_id: uuid.UUID


@dataclass(slots=True)
class StoredInbound:
    """A message already stored under the same (channel, external id), with the replies it got."""

    id: uuid.UUID
    conversation_id: uuid.UUID
    customer_id: uuid.UUID
    replies: list[StoredReply] = field(default_factory=list)


@dataclass(slots=True)
class EditTarget:
    id: uuid.UUID
    text: str | None
    meta: dict[str, Any]
    conversation_id: uuid.UUID
    customer_id: uuid.UUID


@dataclass(slots=True)
class Sender:
    """Who sent a message; a verified e-mail or phone may join a first-time sender to a known customer."""

    channel: str
    sender_id: str
    verified_email: str | None = None
    verified_phone: str | None = None


@dataclass(slots=True)
class BatchContext:
    duplicates: dict[Key, StoredInbound] = field(default_factory=dict)
    edit_targets: dict[Key, EditTarget] = field(default_factory=dict)
    #: (channel, sender id) -> customer id, for senders with an identity.
    identities: dict[Key, uuid.UUID] = field(default_factory=dict)
    #: Identities marked unreachable (the customer had blocked us); writing again lifts that.
    unreachable: set[Key] = field(default_factory=set)
    #: (channel, sender id) -> customer id, for first-time senders whose verified contact a customer has.
    by_contact: dict[Key, uuid.UUID] = field(default_factory=dict)
    customers: dict[uuid.UUID, CustomerRecord] = field(default_factory=dict)
    #: (customer id, channel) -> its unresolved conversation there.
    open_conversations: dict[tuple[uuid.UUID, str], ConversationRecord] = field(default_factory=dict)


def load_context(conn: Connection, senders: Iterable[Sender], *, inbound_ids: Iterable[Key] = (),
                 edits: Iterable[Key] = ()) -> BatchContext:
    """Everything about ``senders`` (and the ``inbound_ids`` and ``edits`` given) the engine decides on."""
    ctx = BatchContext()
    inbound = list(inbound_ids)
    if inbound:
        _load_duplicates(conn, inbound, ctx)
    edit_keys = list(edits)
    if edit_keys:
        _load_edit_targets(conn, edit_keys, ctx)
    senders = list(senders)
    if senders:
        _load_senders(conn, senders, ctx)
    return ctx


def _load_duplicates(conn: Connection, keys: list[Key], ctx: BatchContext) -> None:
    by_channel: dict[str, set[str]] = defaultdict(set)
    for channel, external_id in keys:
        by_channel[channel].add(external_id)
    for channel, ids in by_channel.items():
        for row in conn.execute(EXISTING_INBOUND(conn), {"channel": channel, "ids": list(ids)}):
            ctx.duplicates[(channel, row.external_id)] = StoredInbound(row.id, row.conversation_id, row.customer_id)
    if ctx.duplicates:
        by_id = {found.id: found for found in ctx.duplicates.values()}
        for row in conn.execute(PREVIOUS_REPLIES(conn), {"ids": list(by_id)}):
            by_id[row.in_reply_to].replies.append(StoredReply(
                row.id, row.channel, row.metadata.get("recipient", ""),
                {"text": row.text, "buttons": row.buttons, "attachments": row.attachments}, row.conversation_id, row.customer_id))


def _load_edit_targets(conn: Connection, keys: list[Key], ctx: BatchContext) -> None:
    for channel, external_id in dict.fromkeys(keys):
        row = conn.execute(
            select(_m.id, _m.text, _m.metadata.label("meta"), _m.conversation_id, _m.customer_id).where(
                _m.channel == channel, _m.direction == "in", _m.external_id == external_id)
        ).first()
        if row is not None:
            ctx.edit_targets[(channel, external_id)] = EditTarget(row.id, row.text, row.meta, row.conversation_id, row.customer_id)


def _load_senders(conn: Connection, senders: list[Sender], ctx: BatchContext) -> None:
    by_channel: dict[str, set[str]] = defaultdict(set)
    for sender in senders:
        by_channel[sender.channel].add(sender.sender_id)
    with_tags = conn.dialect.name == "postgresql"
    for channel, ids in by_channel.items():
        statement = SENDERS_WITH_TAGS(conn) if with_tags else SENDERS(conn)
        for row in conn.execute(statement, {"channel": channel, "senders": list(ids)}):
            ctx.identities[(channel, row.external_id)] = row.id
            if not row.reachable:
                ctx.unreachable.add((channel, row.external_id))
            if row.id not in ctx.customers:
                ctx.customers[row.id] = customer = _customer(row)
                if with_tags and row.tags:
                    customer.tags.update(row.tags)
            if row.conv_id is not None:
                ctx.open_conversations[(row.id, channel)] = ConversationRecord(
                    id=row.conv_id, customer_id=row.id, channel=channel, status=row.status, assignee_id=row.assignee_id,
                    team=row.team, priority=row.priority, bot_state=dict(row.bot_state or {}), thread=row.thread,
                    answered_by_person=row.first_response_at is not None, first_response_due=row.first_response_due_at,
                )
    if not with_tags:
        _load_tags(conn, ctx.customers)
    first_time = {(s.channel, s.sender_id): s for s in senders if (s.channel, s.sender_id) not in ctx.identities}
    if first_time:
        _match_by_contact(conn, list(first_time.values()), ctx)


def _match_by_contact(conn: Connection, senders: list[Sender], ctx: BatchContext) -> None:
    """First-time senders whose platform vouches for an e-mail or phone join the customer who has it (the oldest)."""
    emails = {s.verified_email.lower() for s in senders if s.verified_email}
    phones = {s.verified_phone for s in senders if s.verified_phone}
    if not emails and not phones:
        return
    clauses = []
    if emails:
        clauses.append(_c.email.in_(emails))
    if phones:
        clauses.append(_c.phone.in_(phones))
    rows = conn.execute(select(_c.id, _c.email, _c.phone).where(or_(*clauses)).order_by(_c.created_at)).all()
    by_email: dict[str, uuid.UUID] = {}
    by_phone: dict[str, uuid.UUID] = {}
    for row in rows:
        if row.email:
            by_email.setdefault(row.email.lower(), row.id)
        if row.phone:
            by_phone.setdefault(row.phone, row.id)
    wanted = (set(by_email.values()) | set(by_phone.values())) - set(ctx.customers)
    if wanted:
        loaded = {row.id: _customer(row) for row in conn.execute(select(customers_t).where(_c.id.in_(wanted)))}
        _load_tags(conn, loaded)
        ctx.customers.update(loaded)
    matched: set[uuid.UUID] = set()
    for sender in senders:
        cid = by_email.get((sender.verified_email or "").lower()) or by_phone.get(sender.verified_phone or "")
        if cid is not None:
            ctx.by_contact[(sender.channel, sender.sender_id)] = cid
            matched.add(cid)
    if matched:
        for row in conn.execute(select(conversations_t).where(_v.customer_id.in_(matched), _v.status != "resolved")):
            ctx.open_conversations.setdefault((row.customer_id, row.channel), ConversationRecord(
                id=row.id, customer_id=row.customer_id, channel=row.channel, status=row.status,
                assignee_id=row.assignee_id, team=row.team, priority=row.priority,
                bot_state=dict(row.bot_state or {}), thread=row.thread,
            ))


def _load_tags(conn: Connection, customers: dict[uuid.UUID, CustomerRecord]) -> None:
    if customers:
        for row in conn.execute(TAGS(conn), {"ids": list(customers)}):
            customers[row.customer_id].tags.add(row.tag)


def _customer(row: Any) -> CustomerRecord:
    return CustomerRecord(
        id=row.id, name=row.name, first_name=row.first_name, last_name=row.last_name, email=row.email, phone=row.phone,
        locale=row.locale, timezone=row.timezone, lifecycle_stage=row.lifecycle_stage,
        attributes=dict(row.attributes or {}), last_seen_at=row.last_seen_at,
    )
