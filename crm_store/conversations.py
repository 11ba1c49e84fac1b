"""Reading conversations and their messages."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from crm_store.database import Database
from crm_store.errors import NotFound
from crm_store.models import ChannelIdentity, Conversation, Message
from crm_store.paging import Page, decode_cursor, encode_cursor

conversations_t = Conversation.__table__
messages_t = Message.__table__


def conversation_dict(row: Any) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": str(row.id), "customer_id": str(row.customer_id), "channel": row.channel, "status": row.status,
        "assignee_id": str(row.assignee_id) if row.assignee_id else None, "team": row.team, "priority": row.priority,
        "created_at": iso(row.created_at), "updated_at": iso(row.updated_at), "last_message_at": iso(row.last_message_at),
        "snoozed_until": iso(row.snoozed_until), "first_response_at": iso(row.first_response_at),
        "first_response_seconds": float(row.first_response_seconds) if row.first_response_seconds is not None else None,
        "resolved_at": iso(row.resolved_at),
        "resolution_seconds": float(row.resolution_seconds) if row.resolution_seconds is not None else None,
    }


def message_dict(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id), "conversation_id": str(row.conversation_id), "customer_id": str(row.customer_id),
        "channel": row.channel, "direction": row.direction, "sender_kind": row.sender_kind,
        "sender_agent_id": str(row.sender_agent_id) if row.sender_agent_id else None,
        "sender_name": (row.metadata or {}).get("sender_name"), "text": row.text,
        "attachments": row.attachments or [], "buttons": row.buttons or [], "external_id": row.external_id,
        "intent": row.intent, "status": row.status, "created_at": row.created_at.isoformat(),
        "edited_at": row.edited_at.isoformat() if row.edited_at else None,
    }


async def list_conversations(
    db: Database, *, limit: int = 50, cursor: str | None = None, status: str | None = None,
    channel: str | None = None, customer_id: uuid.UUID | None = None, team: str | None = None,
) -> Page:
    stmt = select(conversations_t).order_by(conversations_t.c.id.desc()).limit(limit + 1)
    if cursor:
        stmt = stmt.where(conversations_t.c.id < decode_cursor(cursor))
    if status:
        stmt = stmt.where(conversations_t.c.status == status)
    if channel:
        stmt = stmt.where(conversations_t.c.channel == channel)
    if customer_id:
        stmt = stmt.where(conversations_t.c.customer_id == customer_id)
    if team:
        stmt = stmt.where(conversations_t.c.team == team)
    async with db.read() as conn:
        rows = (await conn.execute(stmt)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([conversation_dict(r) for r in rows], encode_cursor(rows[-1].id) if more and rows else None)


async def get_conversation(db: Database, conversation_id: uuid.UUID) -> dict[str, Any]:
    async with db.read() as conn:
        row = (await conn.execute(select(conversations_t).where(conversations_t.c.id == conversation_id))).first()
    if row is None:
        raise NotFound(f"conversation {conversation_id} does not exist", "conversation_id")
    return conversation_dict(row)


async def list_messages(db: Database, conversation_id: uuid.UUID, *, limit: int = 100, cursor: str | None = None) -> Page:
    """Oldest first; the cursor moves forward in time."""
    await get_conversation(db, conversation_id)
    stmt = select(messages_t).where(messages_t.c.conversation_id == conversation_id).order_by(messages_t.c.id).limit(limit + 1)
    if cursor:
        stmt = stmt.where(messages_t.c.id > decode_cursor(cursor))
    async with db.read() as conn:
        rows = (await conn.execute(stmt)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([message_dict(r) for r in rows], encode_cursor(rows[-1].id) if more and rows else None)


async def get_message(db: Database, message_id: uuid.UUID) -> dict[str, Any] | None:
    async with db.read() as conn:
        row = (await conn.execute(select(messages_t).where(messages_t.c.id == message_id))).first()
    return message_dict(row) if row is not None else None


async def history_for_identity(db: Database, channel: str, external_id: str, *, after: uuid.UUID | None = None,
                               limit: int = 500) -> list[dict[str, Any]]:
    """What a returning visitor should see: their messages and the replies, after ``after``."""
    identities_t = ChannelIdentity.__table__
    customer = select(identities_t.c.customer_id).where(identities_t.c.channel == channel, identities_t.c.external_id == external_id)
    stmt = (
        select(messages_t)
        .where(messages_t.c.customer_id.in_(customer), messages_t.c.channel == channel, messages_t.c.direction.in_(("in", "out")))
        .order_by(messages_t.c.id.desc())
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(messages_t.c.id > after)
    async with db.read() as conn:
        rows = (await conn.execute(stmt)).all()
    return [message_dict(r) for r in reversed(rows)]
