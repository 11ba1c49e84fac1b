"""What a batch of inbound messages writes, and the statements that write it.

The engine fills a :class:`WritePlan` with rows made by the functions below
(so column names stay in the store) and :func:`write_plan` writes it inside
the batch's transaction.  The common parts (new customers, identities and
conversations, conversation changes, messages, outbox rows, last-seen
times) are one statement each on SQLite and one statement in all on
PostgreSQL (:class:`~crm_store.statements.ArrayWrite`), where round trips
cost; the rare parts (edits, tags, consents, profile changes, handoffs) a
statement each after them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.engine import Connection

from crm_store import sequences
from crm_store.assignment import route_handoffs
from crm_store.columns import new_id
from crm_store.consents import ConsentChange
from crm_store.consents import record as record_consents
from crm_store.customers import FIELDS
from crm_store.message_batch.context import ConversationRecord, CustomerRecord
from crm_store.models import ChannelIdentity, Conversation, Customer, CustomerTag, Message, OutboxRow
from crm_store.outbox import payload
from crm_store.statements import ArrayWrite, BulkInsert, Executemany, Insert, Update

messages_t = Message.__table__
outbox_t = OutboxRow.__table__
identities_t = ChannelIdentity.__table__
customers_t = Customer.__table__
conversations_t = Conversation.__table__
tags_t = CustomerTag.__table__
_c, _v = customers_t.c, conversations_t.c

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
#: PostgreSQL: the same writes as one statement (see crm_store.statements.ArrayWrite), in _rows's order.
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
#: Fields of a customer a batch may change (besides attributes and last_seen_at).
CUSTOMER_FIELDS = frozenset(FIELDS)


@dataclass(slots=True)
class WritePlan:
    """Every row one batch writes; filled by the engine through the functions of this module."""

    now: dt.datetime
    customers: list[dict[str, Any]] = field(default_factory=list)
    identities: list[dict[str, Any]] = field(default_factory=list)
    #: Conversations the batch opened or changed, by id, as they are to be left.
    conversations: dict[uuid.UUID, ConversationRecord] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    #: Changed customer fields by customer id (``last_seen_at`` alone is a common write, anything else rare).
    customer_updates: dict[uuid.UUID, dict[str, Any]] = field(default_factory=lambda: defaultdict(dict))
    reachable_again: list[tuple[str, str]] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    consents: list[dict[str, Any]] = field(default_factory=list)
    #: Conversations handed to people; routed to a team's agents in the same transaction.
    handoffs: list[uuid.UUID] = field(default_factory=list)

    def has_rare_writes(self) -> bool:
        return bool(self.reachable_again or self.edits or self.tags or self.consents or self.handoffs
                    or self.profile_updates())

    def profile_updates(self) -> dict[uuid.UUID, dict[str, Any]]:
        return {cid: fields for cid, fields in self.customer_updates.items() if fields and set(fields) != {"last_seen_at"}}

    # -- rows ------------------------------------------------------------------

    def add_customer(self, customer: CustomerRecord) -> None:
        self.customers.append({
            "id": customer.id, "name": customer.name, "first_name": customer.first_name, "last_name": customer.last_name,
            "email": customer.email, "phone": customer.phone, "locale": customer.locale, "timezone": customer.timezone,
            "lifecycle_stage": customer.lifecycle_stage, "attributes": customer.attributes, "last_seen_at": self.now,
            "created_at": self.now, "updated_at": self.now,
        })

    def add_identity(self, customer_id: uuid.UUID, channel: str, external_id: str, profile: dict[str, Any]) -> None:
        self.identities.append({"id": new_id(), "customer_id": customer_id, "channel": channel, "external_id": external_id,
                                "profile": profile, "reachable": True, "created_at": self.now})

    def add_message(self, message_id: uuid.UUID, conv: ConversationRecord, *, direction: str, sender_kind: str,
                    text: str | None, attachments: Sequence[dict[str, Any]] = (), buttons: Sequence[dict[str, Any]] = (),
                    external_id: str | None = None, in_reply_to: uuid.UUID | None = None, intent: str | None = None,
                    status: str | None = None, metadata: dict[str, Any] | None = None) -> None:
        self.messages.append({
            "id": message_id, "conversation_id": conv.id, "customer_id": conv.customer_id, "channel": conv.channel,
            "direction": direction, "sender_kind": sender_kind, "sender_agent_id": None, "text": text,
            "attachments": list(attachments), "buttons": list(buttons), "external_id": external_id,
            "in_reply_to": in_reply_to, "intent": intent, "status": status, "metadata": metadata or {},
            "created_at": self.now, "edited_at": None,
        })

    def add_outbox(self, message_id: uuid.UUID, conv: ConversationRecord, recipient: str, text: str | None,
                   buttons: Sequence[dict[str, Any]], attachments: Sequence[dict[str, Any]],
                   metadata: dict[str, Any]) -> uuid.UUID:
        """The outbox row that sends message ``message_id``; its id."""
        outbox_id = new_id()
        self.outbox.append({
            "id": outbox_id, "message_id": message_id, "conversation_id": conv.id, "customer_id": conv.customer_id,
            "channel": conv.channel, "recipient": recipient, "payload": payload(text, buttons, attachments, metadata),
            "status": "queued", "attempts": 0, "next_attempt_at": self.now, "claimed_until": None, "claimed_by": None,
            "last_error": None, "external_id": None, "created_at": self.now, "sent_at": None, "campaign_run_id": None, "campaign_variant": None,
        })
        return outbox_id

    def update_customer(self, customer_id: uuid.UUID, **fields: Any) -> None:
        self.customer_updates[customer_id].update(fields)

    def add_consent(self, customer_id: uuid.UUID, channel: str, purpose: str, granted: bool) -> None:
        self.consents.append({"customer_id": customer_id, "channel": channel, "purpose": purpose, "granted": granted})

    def add_tag(self, customer_id: uuid.UUID, tag: str) -> None:
        self.tags.append({"customer_id": customer_id, "tag": tag})

    def add_edit(self, message_id: uuid.UUID, text: str | None, previous: str | None, meta: dict[str, Any]) -> None:
        self.edits.append({"id": message_id, "text": text, "previous": previous, "meta": meta})


def write_plan(conn: Connection, plan: WritePlan) -> None:
    """Write ``plan``: inside the caller's transaction on SQLite; on PostgreSQL, on an autocommit
    connection, as one statement that is its own transaction unless rare writes come with it."""
    rows = _rows(plan)
    if conn.dialect.name != "postgresql":
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
        _write_rare(conn, plan)
        return
    if not plan.has_rare_writes():
        WRITE_BATCH(conn, rows)  # atomic, and durable when it returns
        return
    conn.exec_driver_sql("BEGIN")
    try:
        WRITE_BATCH(conn, rows)
        _write_rare(conn, plan)
        conn.exec_driver_sql("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            conn.exec_driver_sql("ROLLBACK")
        raise


def _rows(plan: WritePlan) -> dict[str, list[dict[str, Any]]]:
    """The rows of the batch's common writes, by part of WRITE_BATCH, each in the order that
    lets two processes writing the same keys wait for each other instead of deadlocking."""
    new_convs: list[dict[str, Any]] = []
    changed_convs: list[dict[str, Any]] = []
    for state in plan.conversations.values():
        record = {k: getattr(state, k) for k in CONVERSATION_STATE} | {"updated_at": plan.now, "last_message_at": plan.now}
        if state.is_new:
            new_convs.append({"id": state.id, "customer_id": state.customer_id, "channel": state.channel,
                              "created_at": plan.now, "snoozed_until": None, **record})
        else:
            changed_convs.append({"b_id": state.id, **record})
    new_ids = {row["id"] for row in plan.customers}
    last_seen = [{"b_id": cid, "last_seen_at": fields["last_seen_at"]} for cid, fields in plan.customer_updates.items()
                 if set(fields) == {"last_seen_at"} and cid not in new_ids]
    plan.identities.sort(key=lambda r: (r["channel"], r["external_id"]))
    changed_convs.sort(key=lambda r: r["b_id"])
    plan.messages.sort(key=lambda r: (r["channel"], r["external_id"] or ""))
    last_seen.sort(key=lambda r: r["b_id"])
    return {"customers": plan.customers, "identities": plan.identities, "conversations": new_convs,
            "conversation_changes": changed_convs, "messages": plan.messages, "outbox": plan.outbox, "last_seen": last_seen}


def _write_rare(conn: Connection, plan: WritePlan) -> None:
    """What few batches write, a statement each, after the common writes."""
    for channel, external_id in plan.reachable_again:
        conn.execute(update(identities_t).where(identities_t.c.channel == channel, identities_t.c.external_id == external_id)
                     .values(reachable=True))
    for edit in plan.edits:
        meta = dict(edit["meta"] or {})
        meta.setdefault("edits", []).append({"text": edit["previous"], "replaced_at": plan.now.isoformat()})
        conn.execute(update(messages_t).where(messages_t.c.id == edit["id"]).values(text=edit["text"], edited_at=plan.now, metadata=meta))
    for cid, fields in plan.profile_updates().items():
        conn.execute(update(customers_t).where(customers_t.c.id == cid).values(**fields))
    if plan.tags:
        conn.execute(INSERT_TAGS, plan.tags)
        sequences.on_tags(conn, [(tag["customer_id"], tag["tag"]) for tag in plan.tags], plan.now)  # a tag can start a campaign
    if plan.consents:  # current state and the audit trail (an opt-out written in the conversation, a form's consent)
        record_consents(conn, [ConsentChange(**consent) for consent in plan.consents], source="bot", now=plan.now)
    if plan.handoffs:
        route_handoffs(conn, list(dict.fromkeys(plan.handoffs)), plan.now)
