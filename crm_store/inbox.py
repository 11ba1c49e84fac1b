"""What agents read and write in a conversation: the inbox, replies, notes, labels, SLAs.

A reply is a message row and an outbox row addressed to the conversation's
channel and thread, written in one transaction, so it is either on its way
to the customer or not written at all.  A note is a message row with no
outbox row and a direction (``sys``) that no channel's history shows.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from crm_store.assignment import Change, audit, handed_off_at, load, take_over_for_reply, teams_of
from crm_store.columns import new_id, utcnow
from crm_store.conversations import conversation_dict, message_dict
from crm_store.database import Database
from crm_store.display_names import display_name
from crm_store.errors import Conflict, NotFound
from crm_store.models import (
    Agent,
    AuditEvent,
    CannedResponse,
    ChannelIdentity,
    Conversation,
    ConversationLabel,
    ConversationSla,
    Customer,
    CustomerEvent,
    Message,
    OutboxRow,
)
from crm_store.outbox import payload

conversations_t = Conversation.__table__
messages_t = Message.__table__
outbox_t = OutboxRow.__table__
customers_t = Customer.__table__
labels_t = ConversationLabel.__table__
sla_t = ConversationSla.__table__
canned_t = CannedResponse.__table__
audit_t = AuditEvent.__table__
agents_t = Agent.__table__
identities_t = ChannelIdentity.__table__
events_t = CustomerEvent.__table__

SHORTCUT_USE = re.compile(r"^/([a-z0-9][a-z0-9_\-]{0,63})(?=\s|$)")
PLACEHOLDER = re.compile(r"\{(\w{1,64})\}")
LABEL = re.compile(r"^[\w\-:.]{1,64}$", re.UNICODE)
VIEWS = ("mine", "team", "unassigned", "all")
WORKING = ("pending", "open", "snoozed")


@dataclass(slots=True)
class Written:
    """A reply or note as stored, with the conversation changes it caused."""

    message: dict[str, Any]
    changes: list[Change] = field(default_factory=list)
    queued: bool = False


# -- replies and notes -------------------------------------------------------------
def expand(conn: Connection, text: str, customer: Any) -> str:
    """``/shortcut`` at the start becomes the canned text; ``{field}`` takes the customer's value."""
    match = SHORTCUT_USE.match(text)
    if match:
        canned = conn.execute(select(canned_t.c.text).where(canned_t.c.shortcut == match.group(1))).scalar()
        if canned is None:
            raise ValueError(f"text: there is no canned response /{match.group(1)}")
        text = canned + text[match.end():]
    fields = {k: getattr(customer, k) for k in ("name", "first_name", "last_name", "email", "phone")}
    fields.update({k: v for k, v in (customer.attributes or {}).items() if isinstance(v, str | int | float)})
    first = customer.first_name or (customer.name or "").split(" ")[0] or None
    fields["first_name"] = first

    def value(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in fields:
            return m.group(0)
        got = fields[key]
        return "" if got is None else str(got)

    return PLACEHOLDER.sub(value, text)


async def reply(db: Database, conversation_id: uuid.UUID, agent_id: uuid.UUID, text: str | None,
                attachments: list[dict[str, Any]]) -> Written:
    """Store the agent's reply and its outbox row together; the first one sets the first-response time.

    ``attachments`` as stored (``contracts.messages.Attachment.to_dict()``)."""
    def run(conn: Connection) -> Written:
        now = utcnow()
        conv = load(conn, conversation_id)
        if conv.status == "resolved":
            raise Conflict("the conversation is resolved; reopen it to reply", "status")
        customer = conn.execute(select(customers_t).where(customers_t.c.id == conv.customer_id)).one()
        body = expand(conn, text, customer) if text else None
        if not body and not attachments:
            raise ValueError("text: a reply needs text or an attachment")
        recipient = conv.thread
        if not recipient:
            recipient = conn.execute(select(identities_t.c.external_id).where(
                identities_t.c.customer_id == conv.customer_id, identities_t.c.channel == conv.channel)).scalar()
        if not recipient:
            raise Conflict(f"the customer has no address on {conv.channel}", "channel")
        changes = [c for c in [take_over_for_reply(conn, conv, agent_id, now)] if c is not None]
        message_id, outbox_id = new_id(), new_id()
        # the customer sees who answers (the web chat shows it above the reply)
        sender_name = conn.execute(select(agents_t.c.name).where(agents_t.c.id == agent_id)).scalar()
        row = {
            "id": message_id, "conversation_id": conv.id, "customer_id": conv.customer_id, "channel": conv.channel,
            "direction": "out", "sender_kind": "agent", "sender_agent_id": agent_id, "text": body,
            "attachments": list(attachments), "buttons": [], "external_id": None, "in_reply_to": None,
            "intent": None, "status": "queued", "metadata": {"recipient": recipient, "sender_name": sender_name},
            "created_at": now, "edited_at": None,
        }
        conn.execute(insert(messages_t).values(**row))
        conn.execute(insert(outbox_t).values(
            id=outbox_id, message_id=message_id, conversation_id=conv.id, customer_id=conv.customer_id, channel=conv.channel,
            recipient=recipient, payload=payload(body, attachments=attachments, metadata={"sender_name": sender_name}),
            status="queued", attempts=0, next_attempt_at=now,
            claimed_until=None, last_error=None, external_id=None, created_at=now, sent_at=None,
        ))
        conn.execute(update(conversations_t).where(conversations_t.c.id == conv.id).values(last_message_at=now, updated_at=now))
        seconds = round((now - handed_off_at(conn, conv)).total_seconds(), 3)
        first = conn.execute(
            update(conversations_t).where(conversations_t.c.id == conv.id, conversations_t.c.first_response_at.is_(None))
            .values(first_response_at=now, first_response_seconds=seconds)
        ).rowcount
        if first:
            audit(conn, conv.id, agent_id, "first_response", now, seconds=seconds)
        stored = conn.execute(select(messages_t).where(messages_t.c.id == message_id)).one()
        return Written(message_dict(stored), changes, queued=True)

    return await db.run_in_transaction(run)


async def add_note(db: Database, conversation_id: uuid.UUID, agent_id: uuid.UUID, text: str) -> Written:
    if not text.strip():
        raise ValueError("text: a note needs text")

    def run(conn: Connection) -> Written:
        now = utcnow()
        conv = load(conn, conversation_id)
        message_id = new_id()
        conn.execute(insert(messages_t).values(
            id=message_id, conversation_id=conv.id, customer_id=conv.customer_id, channel=conv.channel, direction="sys",
            sender_kind="agent", sender_agent_id=agent_id, text=text, attachments=[], buttons=[], external_id=None,
            in_reply_to=None, intent=None, status=None, metadata={"note": True}, created_at=now, edited_at=None,
        ))
        conn.execute(update(conversations_t).where(conversations_t.c.id == conv.id).values(updated_at=now))
        return Written(message_dict(conn.execute(select(messages_t).where(messages_t.c.id == message_id)).one()))

    return await db.run_in_transaction(run)


async def change_labels(db: Database, conversation_id: uuid.UUID, agent_id: uuid.UUID, add: list[str],
                        remove: list[str]) -> list[str]:
    for label in [*add, *remove]:
        if not LABEL.match(label):
            raise ValueError(f"labels: {label!r} must be 1-64 letters, digits, - _ : .")

    def run(conn: Connection) -> list[str]:
        now = utcnow()
        load(conn, conversation_id)
        current = set(_labels(conn, [conversation_id]).get(conversation_id, []))
        gone = set(remove) & current
        new = sorted(set(add) - current - set(remove))
        if gone:
            conn.execute(delete(labels_t).where(labels_t.c.conversation_id == conversation_id, labels_t.c.label.in_(gone)))
        if new:
            conn.execute(insert(labels_t), [{"conversation_id": conversation_id, "label": label} for label in new])
        if gone or new:
            audit(conn, conversation_id, agent_id, "labels", now, added=new, removed=sorted(gone))
        return sorted((current - gone) | set(new))

    return await db.run_in_transaction(run)


def _labels(conn: Connection | Any, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    found: dict[uuid.UUID, list[str]] = {}
    if ids:
        for row in conn.execute(select(labels_t).where(labels_t.c.conversation_id.in_(ids)).order_by(labels_t.c.label)):
            found.setdefault(row.conversation_id, []).append(row.label)
    return found


# -- reading ----------------------------------------------------------------------
def sla_state(row: Any, now: dt.datetime) -> dict[str, Any]:
    """Time left (negative when late) and whether each target was or is being missed."""
    def one(due: dt.datetime | None, done: dt.datetime | None) -> dict[str, Any] | None:
        if due is None:
            return None
        if done is not None:
            return {"due_at": due.isoformat(), "done_at": done.isoformat(), "seconds_left": None, "breached": done > due}
        left = (due - now).total_seconds()
        return {"due_at": due.isoformat(), "done_at": None, "seconds_left": round(left), "breached": left < 0}

    return {"handed_off_at": row.handed_off_at.isoformat() if row.handed_off_at else None,
            "first_response": one(row.first_response_due_at, row.first_response_at),
            "resolution": one(row.resolution_due_at, row.resolved_at)}


def _inbox_select() -> Any:
    last_text = (
        select(messages_t.c.text).where(messages_t.c.conversation_id == conversations_t.c.id, messages_t.c.direction != "sys")
        .order_by(messages_t.c.id.desc()).limit(1).scalar_subquery()
    )
    return (
        select(conversations_t, customers_t.c.name.label("customer_name"), customers_t.c.email.label("customer_email"),
               customers_t.c.first_name.label("customer_first_name"), customers_t.c.last_name.label("customer_last_name"),
               customers_t.c.phone.label("customer_phone"), customers_t.c.attributes.label("customer_attributes"),
               sla_t.c.handed_off_at, sla_t.c.first_response_due_at, sla_t.c.resolution_due_at,
               agents_t.c.name.label("assignee_name"), last_text.label("last_text"))
        .join(customers_t, customers_t.c.id == conversations_t.c.customer_id)
        .outerjoin(sla_t, sla_t.c.conversation_id == conversations_t.c.id)
        .outerjoin(agents_t, agents_t.c.id == conversations_t.c.assignee_id)
    )


def _inbox_item(row: Any, labels: list[str], now: dt.datetime) -> dict[str, Any]:
    shown = display_name(row.customer_id, name=row.customer_name, first_name=row.customer_first_name,
                         last_name=row.customer_last_name, email=row.customer_email, phone=row.customer_phone,
                         attributes=row.customer_attributes)
    return {**conversation_dict(row), "customer_name": row.customer_name, "customer_email": row.customer_email,
            "customer_display_name": shown,
            "assignee_name": row.assignee_name, "labels": labels, "last_text": row.last_text, "sla": sla_state(row, now)}


async def inbox(db: Database, agent_id: uuid.UUID, *, view: str = "all", channel: str | None = None,
                status: str | None = None, label: str | None = None, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Conversations for one agent's view, most recent activity first."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}")
    c = conversations_t.c
    stmt = _inbox_select()
    stmt = stmt.where(c.status == status) if status else stmt.where(c.status.in_(WORKING))
    if view == "mine":
        stmt = stmt.where(c.assignee_id == agent_id)
    elif view == "unassigned":
        stmt = stmt.where(c.assignee_id.is_(None))
    if channel:
        stmt = stmt.where(c.channel == channel)
    if label:
        stmt = stmt.where(c.id.in_(select(labels_t.c.conversation_id).where(labels_t.c.label == label)))
    async with db.read() as conn:
        if view == "team":
            teams = await conn.run_sync(teams_of, agent_id)
            stmt = stmt.where(c.team.in_(teams))
        stmt = stmt.order_by(c.last_message_at.desc().nulls_last(), c.id.desc()).limit(limit).offset(offset)
        rows = (await conn.execute(stmt)).all()
        labels = await conn.run_sync(_labels, [r.id for r in rows])
    now = utcnow()
    return [_inbox_item(r, labels.get(r.id, []), now) for r in rows]


async def conversation_detail(db: Database, conversation_id: uuid.UUID) -> dict[str, Any]:
    async with db.read() as conn:
        row = (await conn.execute(_inbox_select().where(conversations_t.c.id == conversation_id))).first()
        if row is None:
            raise NotFound(f"conversation {conversation_id} does not exist", "conversation_id")
        labels = await conn.run_sync(_labels, [row.id])
    return _inbox_item(row, labels.get(row.id, []), utcnow())


async def customer_history(db: Database, customer_id: uuid.UUID, limit: int = 300) -> list[dict[str, Any]]:
    """The customer's messages on every channel, oldest first, with the agents' names."""
    stmt = (
        select(messages_t, agents_t.c.name.label("agent_name"))
        .outerjoin(agents_t, agents_t.c.id == messages_t.c.sender_agent_id)
        .where(messages_t.c.customer_id == customer_id).order_by(messages_t.c.id.desc()).limit(limit)
    )
    async with db.read() as conn:
        rows = (await conn.execute(stmt)).all()
    items = []
    for row in reversed(rows):
        item = message_dict(row)
        item["agent_name"] = row.agent_name
        item["note"] = bool((row.metadata or {}).get("note"))
        items.append(item)
    return items


async def customer_panel(db: Database, customer_id: uuid.UUID) -> dict[str, Any]:
    """What an agent needs beside the chat: past conversations, events and purchases."""
    async with db.read() as conn:
        conversations = (await conn.execute(
            _inbox_select().where(conversations_t.c.customer_id == customer_id).order_by(conversations_t.c.id.desc()).limit(50)
        )).all()
        events = (await conn.execute(
            select(events_t).where(events_t.c.customer_id == customer_id).order_by(events_t.c.occurred_at.desc()).limit(50)
        )).all()
    now = utcnow()
    return {
        "conversations": [_inbox_item(r, [], now) for r in conversations],
        "events": [{"id": str(e.id), "type": e.type, "properties": e.properties or {},
                    "amount": str(e.amount) if e.amount is not None else None, "currency": e.currency,
                    "occurred_at": e.occurred_at.isoformat()} for e in events],
    }


async def audit_events(db: Database, conversation_id: uuid.UUID, limit: int = 200) -> list[dict[str, Any]]:
    stmt = (
        select(audit_t, agents_t.c.name.label("agent_name")).outerjoin(agents_t, agents_t.c.id == audit_t.c.agent_id)
        .where(audit_t.c.conversation_id == conversation_id).order_by(audit_t.c.id).limit(limit)
    )
    async with db.read() as conn:
        rows = (await conn.execute(stmt)).all()
    return [{"id": str(r.id), "conversation_id": str(r.conversation_id), "action": r.action,
             "agent_id": str(r.agent_id) if r.agent_id else None, "agent_name": r.agent_name, "details": r.details or {},
             "created_at": r.created_at.isoformat()} for r in rows]


async def sla_report(db: Database, *, since: dt.datetime, until: dt.datetime, team: str | None = None) -> dict[str, Any]:
    """Targets met and missed for conversations handed to people in [since, until)."""
    stmt = _inbox_select().where(sla_t.c.handed_off_at >= since, sla_t.c.handed_off_at < until)
    if team:
        stmt = stmt.where(conversations_t.c.team == team)
    async with db.read() as conn:
        rows = (await conn.execute(stmt.order_by(sla_t.c.handed_off_at))).all()
    now = utcnow()
    groups: dict[tuple[str | None, str], dict[str, Any]] = {}
    breaches: list[dict[str, Any]] = []
    for row in rows:
        state = sla_state(row, now)
        group = groups.setdefault((row.team, row.priority), {
            "team": row.team, "priority": row.priority, "conversations": 0, "first_response_breached": 0,
            "resolution_breached": 0, "responded": 0, "resolved": 0, "first_response_seconds_total": 0.0,
        })
        group["conversations"] += 1
        if row.first_response_seconds is not None:
            group["responded"] += 1
            group["first_response_seconds_total"] += float(row.first_response_seconds)
        if row.resolved_at is not None:
            group["resolved"] += 1
        for kind in ("first_response", "resolution"):
            target = state[kind]
            if target and target["breached"]:
                group[f"{kind}_breached"] += 1
                if len(breaches) < 500:
                    breaches.append({"conversation_id": str(row.id), "team": row.team, "priority": row.priority,
                                     "target": kind, "due_at": target["due_at"], "done_at": target["done_at"]})
    items = []
    for group in groups.values():
        total = group.pop("first_response_seconds_total")
        group["average_first_response_seconds"] = round(total / group["responded"], 3) if group["responded"] else None
        items.append(group)
    items.sort(key=lambda g: (g["team"] or "", g["priority"]))
    return {"since": since.isoformat(), "until": until.isoformat(), "groups": items, "breaches": breaches}

