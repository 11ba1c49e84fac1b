"""The customer record: create, read, list, update and merge."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, delete, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_store import sequences
from crm_store.columns import new_id, utcnow
from crm_store.database import Database, pause_before_retry
from crm_store.display_names import display_name_of
from crm_store.errors import Conflict, NotFound
from crm_store.models import (
    ChannelIdentity,
    Consent,
    Conversation,
    Customer,
    CustomerEvent,
    CustomerTag,
    Message,
    OutboxRow,
)
from crm_store.paging import Page, decode_cursor, encode_cursor

customers_t = Customer.__table__
tags_t = CustomerTag.__table__
identities_t = ChannelIdentity.__table__
consents_t = Consent.__table__
conversations_t = Conversation.__table__
messages_t = Message.__table__
events_t = CustomerEvent.__table__
outbox_t = OutboxRow.__table__

log = logging.getLogger(__name__)
#: Tries of a join by verified contact before the customer is left on its own.
JOIN_ATTEMPTS = 3
FIELDS = ("name", "first_name", "last_name", "email", "phone", "locale", "timezone", "lifecycle_stage")


async def create_customer(db: Database, data: dict[str, Any]) -> dict[str, Any]:
    now = utcnow()
    customer_id = new_id()
    values = {k: data.get(k) for k in FIELDS if data.get(k) is not None}
    values.setdefault("lifecycle_stage", "lead")
    async with db.write() as conn:
        await _check_unique_contact(conn, values.get("email"), values.get("phone"), None)
        await conn.execute(insert(customers_t).values(
            id=customer_id, attributes=data.get("attributes") or {}, created_at=now, updated_at=now, **values
        ))
        tags = sorted(set(data.get("tags") or []))
        if tags:
            await conn.execute(insert(tags_t), [{"customer_id": customer_id, "tag": t} for t in tags])
            await conn.run_sync(sequences.on_tags, [(customer_id, t) for t in tags], now)
        return await _customer(conn, customer_id)


async def _check_unique_contact(conn: AsyncConnection, email: str | None, phone: str | None, exclude: uuid.UUID | None) -> None:
    """One customer per e-mail and per phone: a second one is a merge waiting to happen."""
    for field, value in (("email", email), ("phone", phone)):
        if not value:
            continue
        stmt = select(customers_t.c.id).where(customers_t.c[field] == value)
        if exclude is not None:
            stmt = stmt.where(customers_t.c.id != exclude)
        other = (await conn.execute(stmt.limit(1))).scalar()
        if other is not None:
            raise Conflict(f"customer {other} already has this {field}; merge them instead", field)


async def get_customer(db: Database, customer_id: uuid.UUID) -> dict[str, Any]:
    async with db.read() as conn:
        return await _customer(conn, customer_id)


async def _customer(conn: AsyncConnection, customer_id: uuid.UUID) -> dict[str, Any]:
    row = (await conn.execute(select(customers_t).where(customers_t.c.id == customer_id))).first()
    if row is None:
        raise NotFound(f"customer {customer_id} does not exist", "customer_id")
    tags = [r.tag for r in await conn.execute(select(tags_t.c.tag).where(tags_t.c.customer_id == customer_id).order_by(tags_t.c.tag))]
    identities = [
        {"channel": r.channel, "external_id": r.external_id, "reachable": r.reachable, "created_at": r.created_at.isoformat()}
        for r in await conn.execute(select(identities_t).where(identities_t.c.customer_id == customer_id).order_by(identities_t.c.created_at))
    ]
    consents = [
        {"channel": r.channel, "purpose": r.purpose, "granted": r.granted, "updated_at": r.updated_at.isoformat()}
        for r in await conn.execute(select(consents_t).where(consents_t.c.customer_id == customer_id))
    ]
    return _customer_dict(row, tags, identities, consents)


def _customer_dict(row: Any, tags: list[str], identities: list[dict[str, Any]] | None = None,
                   consents: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    data = {"id": str(row.id), "display_name": display_name_of(row), **{k: getattr(row, k) for k in FIELDS},
            "attributes": row.attributes or {}, "tags": tags,
            "last_seen_at": row.last_seen_at.isoformat() if row.last_seen_at else None,
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}
    if identities is not None:
        data["identities"] = identities
    if consents is not None:
        data["consents"] = consents
    return data


async def list_customers(
    db: Database,
    *,
    limit: int = 50,
    cursor: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    tag: str | None = None,
    lifecycle_stage: str | None = None,
    channel: str | None = None,
    q: str | None = None,
) -> Page:
    stmt: Select[Any] = select(customers_t).order_by(customers_t.c.id.desc()).limit(limit + 1)
    if cursor:
        stmt = stmt.where(customers_t.c.id < decode_cursor(cursor))
    if email:
        stmt = stmt.where(customers_t.c.email == email.lower())
    if phone:
        stmt = stmt.where(customers_t.c.phone == phone)
    if lifecycle_stage:
        stmt = stmt.where(customers_t.c.lifecycle_stage == lifecycle_stage)
    if tag:
        stmt = stmt.where(customers_t.c.id.in_(select(tags_t.c.customer_id).where(tags_t.c.tag == tag)))
    if channel:
        stmt = stmt.where(customers_t.c.id.in_(select(identities_t.c.customer_id).where(identities_t.c.channel == channel)))
    if q:
        like = f"%{q.lower()}%"
        stmt = stmt.where(or_(func.lower(customers_t.c.name).like(like), func.lower(customers_t.c.email).like(like),
                              customers_t.c.phone.like(f"%{q}%")))
    async with db.read() as conn:
        rows = (await conn.execute(stmt)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        tags: dict[uuid.UUID, list[str]] = {r.id: [] for r in rows}
        if rows:
            for t in await conn.execute(select(tags_t).where(tags_t.c.customer_id.in_(list(tags))).order_by(tags_t.c.tag)):
                tags[t.customer_id].append(t.tag)
    items = [_customer_dict(r, tags[r.id]) for r in rows]
    return Page(items, encode_cursor(rows[-1].id) if more and rows else None)


async def update_customer(
    db: Database,
    customer_id: uuid.UUID,
    *,
    fields: dict[str, Any],
    attributes: dict[str, Any] | None = None,
    add_tags: Sequence[str] = (),
    remove_tags: Sequence[str] = (),
    tags: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Set ``fields``; merge ``attributes`` (a null value removes the key); change tags."""
    async with db.write() as conn:
        row = (await conn.execute(select(customers_t).where(customers_t.c.id == customer_id))).first()
        if row is None:
            raise NotFound(f"customer {customer_id} does not exist", "customer_id")
        values = {k: v for k, v in fields.items() if k in FIELDS}
        await _check_unique_contact(conn, values.get("email"), values.get("phone"), customer_id)
        if attributes is not None:
            merged = dict(row.attributes or {})
            for key, value in attributes.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            values["attributes"] = merged
        values["updated_at"] = utcnow()
        await conn.execute(update(customers_t).where(customers_t.c.id == customer_id).values(**values))
        if tags is not None:
            await conn.execute(delete(tags_t).where(tags_t.c.customer_id == customer_id))
            add_tags = list(tags)
        if remove_tags:
            await conn.execute(delete(tags_t).where(tags_t.c.customer_id == customer_id, tags_t.c.tag.in_(list(remove_tags))))
        existing = {r.tag for r in await conn.execute(select(tags_t.c.tag).where(tags_t.c.customer_id == customer_id))}
        new = sorted(set(add_tags) - existing)
        if new:
            await conn.execute(insert(tags_t), [{"customer_id": customer_id, "tag": t} for t in new])
            await conn.run_sync(sequences.on_tags, [(customer_id, t) for t in new], values["updated_at"])
        return await _customer(conn, customer_id)


async def merge_customers(db: Database, keep_id: uuid.UUID, merge_id: uuid.UUID) -> dict[str, Any]:
    """Fold ``merge_id`` into ``keep_id``: identities, conversations, messages, events, consents, tags.

    Fields empty on the kept customer are filled from the merged one, and
    attributes are combined (the kept customer's values win).  The merged
    customer is deleted; everything it had now belongs to ``keep_id``.
    """
    if keep_id == merge_id:
        raise Conflict("cannot merge a customer into itself", "other_id")
    async with db.write() as conn:
        rows = {r.id: r for r in await conn.execute(select(customers_t).where(customers_t.c.id.in_([keep_id, merge_id])))}
        if keep_id not in rows:
            raise NotFound(f"customer {keep_id} does not exist", "customer_id")
        if merge_id not in rows:
            raise NotFound(f"customer {merge_id} does not exist", "other_id")
        keep, other = rows[keep_id], rows[merge_id]
        fill = {k: getattr(other, k) for k in FIELDS if getattr(keep, k) is None and getattr(other, k) is not None}
        fill["attributes"] = {**(other.attributes or {}), **(keep.attributes or {})}
        seen = [t for t in (keep.last_seen_at, other.last_seen_at) if t]
        fill["last_seen_at"] = max(seen) if seen else None
        fill["created_at"] = min(keep.created_at, other.created_at)
        fill["updated_at"] = utcnow()
        # the merged row's unique-ish contact fields must move off it before the kept row takes them
        await conn.execute(update(customers_t).where(customers_t.c.id == merge_id).values(email=None, phone=None))
        await conn.execute(update(customers_t).where(customers_t.c.id == keep_id).values(**fill))
        await conn.execute(update(identities_t).where(identities_t.c.customer_id == merge_id).values(customer_id=keep_id))
        await _merge_open_conversations(conn, keep_id, merge_id)
        await conn.execute(update(conversations_t).where(conversations_t.c.customer_id == merge_id).values(customer_id=keep_id))
        # outbox before messages: the order the delivery worker settles in, so the two never deadlock
        await conn.execute(update(outbox_t).where(outbox_t.c.customer_id == merge_id).values(customer_id=keep_id))
        await conn.execute(update(messages_t).where(messages_t.c.customer_id == merge_id).values(customer_id=keep_id))
        await conn.execute(update(events_t).where(events_t.c.customer_id == merge_id).values(customer_id=keep_id))
        keep_consents = {(r.channel, r.purpose) for r in await conn.execute(select(consents_t).where(consents_t.c.customer_id == keep_id))}
        for r in (await conn.execute(select(consents_t).where(consents_t.c.customer_id == merge_id))).all():
            if (r.channel, r.purpose) in keep_consents:
                await conn.execute(delete(consents_t).where(consents_t.c.id == r.id))
            else:
                await conn.execute(update(consents_t).where(consents_t.c.id == r.id).values(customer_id=keep_id))
        keep_tags = {r.tag for r in await conn.execute(select(tags_t.c.tag).where(tags_t.c.customer_id == keep_id))}
        other_tags = {r.tag for r in await conn.execute(select(tags_t.c.tag).where(tags_t.c.customer_id == merge_id))}
        await conn.execute(delete(tags_t).where(tags_t.c.customer_id == merge_id))
        if other_tags - keep_tags:
            await conn.execute(insert(tags_t), [{"customer_id": keep_id, "tag": t} for t in sorted(other_tags - keep_tags)])
        await conn.execute(delete(customers_t).where(customers_t.c.id == merge_id))
        return await _customer(conn, keep_id)


async def _merge_open_conversations(conn: AsyncConnection, keep_id: uuid.UUID, merge_id: uuid.UUID) -> None:
    """Both customers may have an open conversation on one channel; only one may stay open.

    The merged customer's messages move into the kept conversation and its
    own conversation is closed, so the history reads as one thread.
    """
    open_keep = {r.channel: r.id for r in await conn.execute(
        select(conversations_t.c.id, conversations_t.c.channel).where(conversations_t.c.customer_id == keep_id, conversations_t.c.status != "resolved"))}
    for r in (await conn.execute(select(conversations_t.c.id, conversations_t.c.channel).where(
            conversations_t.c.customer_id == merge_id, conversations_t.c.status != "resolved"))).all():
        target = open_keep.get(r.channel)
        if target is None:
            continue
        await conn.execute(update(messages_t).where(messages_t.c.conversation_id == r.id).values(conversation_id=target))
        await conn.execute(update(outbox_t).where(outbox_t.c.conversation_id == r.id).values(conversation_id=target))
        await conn.execute(delete(conversations_t).where(conversations_t.c.id == r.id))


async def join_verified_contact(db: Database, customer_id: uuid.UUID, email: str | None, phone: str | None) -> uuid.UUID:
    """:func:`join_or_fill` (see there), tried again when another process's write got in the way.

    The message path calls it after its batch is committed: a failure here must not
    fail the batch, so after the last try the customer stays one of its own (logged).
    """
    for attempt in range(JOIN_ATTEMPTS):
        try:
            return await join_or_fill(db, customer_id, email, phone)
        except DBAPIError as exc:
            log.info("joining customer %s by verified contact conflicted (%s); retrying", customer_id, exc.orig or exc)
            await pause_before_retry(attempt)
    log.warning("could not join customer %s by verified contact; it stays a customer of its own", customer_id)
    return customer_id


async def join_or_fill(db: Database, customer_id: uuid.UUID, email: str | None, phone: str | None) -> uuid.UUID:
    """A platform vouched for this customer's e-mail or phone: one person, one record.

    If another customer already has that e-mail or phone, this customer is
    merged into that one (the record the business already knew), and its id
    is returned; otherwise the contact fills this customer's empty fields.
    """
    email = email.lower() if email else None
    async with db.read() as conn:
        clauses = [customers_t.c[field] == value for field, value in (("email", email), ("phone", phone)) if value]
        other = (await conn.execute(
            select(customers_t.c.id).where(or_(*clauses), customers_t.c.id != customer_id).order_by(customers_t.c.created_at).limit(1)
        )).scalar() if clauses else None
        current = (await conn.execute(select(customers_t.c.email, customers_t.c.phone).where(customers_t.c.id == customer_id))).first()
    if other is not None:
        await merge_customers(db, other, customer_id)
        return other
    if current is not None:
        fill = {k: v for k, v in (("email", email), ("phone", phone)) if v and getattr(current, k) is None}
        if fill:
            async with db.write() as conn:
                await conn.execute(update(customers_t).where(customers_t.c.id == customer_id).values(updated_at=utcnow(), **fill))
    return customer_id

