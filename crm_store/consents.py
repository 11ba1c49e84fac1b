"""Consent: the current grant or withdrawal per (customer, channel, purpose), and its audit trail.

Every change writes the current state into ``consents`` and one row into
``consent_events`` (when, from where, by whom), in one transaction.  A
withdrawal always wins over an earlier grant: what counts for a channel is
the latest record among that channel and ``ANY_CHANNEL`` (what a customer
writing STOP on one platform withdraws), a withdrawal winning a tie.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from crm_store.campaign_tables import ConsentEvent
from crm_store.columns import new_id, utcnow
from crm_store.database import Database
from crm_store.errors import NotFound
from crm_store.models import Consent, Customer

consents_t = Consent.__table__
events_t = ConsentEvent.__table__
customers_t = Customer.__table__

#: A consent recorded for every channel at once (an opt-out written in any conversation).
ANY_CHANNEL = "*"
MARKETING = "marketing"
SERVICE = "service"
#: Korean law (article 50): advertising between 21:00 and 08:00 needs its own consent.
NIGHT = "marketing_night"
PURPOSES = (MARKETING, SERVICE, NIGHT)
#: Consents older than this are listed for re-confirmation (Korea: every two years).
RECONFIRM_AFTER = dt.timedelta(days=730)


@dataclass(slots=True, frozen=True)
class ConsentChange:
    customer_id: uuid.UUID
    channel: str
    purpose: str
    granted: bool


def record(conn: Connection, changes: Iterable[ConsentChange], *, source: str | None, now: dt.datetime | None = None,
           agent_id: uuid.UUID | None = None) -> None:
    """Write ``changes`` as current state and as audit events (inside the caller's transaction; three statements in all)."""
    now = now or utcnow()
    changes = list(changes)
    latest = {(c.customer_id, c.channel, c.purpose): c for c in changes}  # the last change of a key in one call is what stands
    if not latest:
        return
    keys = sorted(latest, key=lambda k: (k[0], k[1], k[2]))
    conn.execute(delete(consents_t).where(and_(consents_t.c.customer_id == bindparam("b_customer"),
                                               consents_t.c.channel == bindparam("b_channel"),
                                               consents_t.c.purpose == bindparam("b_purpose"))),
                 [{"b_customer": k[0], "b_channel": k[1], "b_purpose": k[2]} for k in keys])
    conn.execute(insert(consents_t), [{"id": new_id(), "customer_id": k[0], "channel": k[1], "purpose": k[2],
                                       "granted": latest[k].granted, "source": source, "updated_at": now} for k in keys])
    conn.execute(insert(events_t), [{"id": new_id(), "customer_id": c.customer_id, "channel": c.channel, "purpose": c.purpose,
                                     "granted": c.granted, "source": source, "agent_id": agent_id, "created_at": now}
                                    for c in changes])


async def set_consent(db: Database, change: ConsentChange, *, source: str | None, agent_id: uuid.UUID | None = None,
                      now: dt.datetime | None = None) -> dict[str, Any]:
    """Record one grant or withdrawal from the API; the customer's consents as they now stand."""
    def write(conn: Connection) -> list[dict[str, Any]]:
        if conn.execute(select(customers_t.c.id).where(customers_t.c.id == change.customer_id)).first() is None:
            raise NotFound(f"customer {change.customer_id} does not exist", "customer_id")
        record(conn, [change], source=source, now=now, agent_id=agent_id)
        return _current(conn, change.customer_id)

    return {"customer_id": str(change.customer_id), "consents": await db.run_in_transaction(write)}


def _current(conn: Connection, customer_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = conn.execute(select(consents_t).where(consents_t.c.customer_id == customer_id)
                        .order_by(consents_t.c.channel, consents_t.c.purpose))
    return [{"channel": r.channel, "purpose": r.purpose, "granted": r.granted, "source": r.source,
             "updated_at": r.updated_at.isoformat()} for r in rows]


async def history(db: Database, customer_id: uuid.UUID) -> list[dict[str, Any]]:
    """The audit trail of one customer's consents, oldest first."""
    async with db.read() as conn:
        rows = await conn.execute(select(events_t).where(events_t.c.customer_id == customer_id)
                                  .order_by(events_t.c.created_at, events_t.c.id))
        return [{"channel": r.channel, "purpose": r.purpose, "granted": r.granted, "source": r.source,
                 "agent_id": str(r.agent_id) if r.agent_id else None, "at": r.created_at.isoformat()} for r in rows]


async def due_for_reconfirmation(db: Database, *, now: dt.datetime | None = None, limit: int = 1000,
                                 after: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """Grants of marketing consent older than two years, oldest first, to ask again."""
    cutoff = (now or utcnow()) - RECONFIRM_AFTER
    stmt = (select(consents_t.c.id, consents_t.c.customer_id, consents_t.c.channel, consents_t.c.purpose, consents_t.c.updated_at,
                   customers_t.c.name, customers_t.c.email)
            .join(customers_t, customers_t.c.id == consents_t.c.customer_id)
            .where(consents_t.c.granted.is_(True), consents_t.c.purpose.in_((MARKETING, NIGHT)), consents_t.c.updated_at < cutoff)
            .order_by(consents_t.c.updated_at, consents_t.c.id).limit(limit))
    async with db.read() as conn:
        rows = (await conn.execute(stmt)).all()
    return [{"customer_id": str(r.customer_id), "name": r.name, "email": r.email, "channel": r.channel, "purpose": r.purpose,
             "granted_at": r.updated_at.isoformat()} for r in rows]


def standing(records: Sequence[tuple[str, bool, dt.datetime]], channel: str) -> bool | None:
    """The consent that counts on ``channel`` among a customer's (channel, granted, at) records of one purpose:
    True granted, False withdrawn, None never given.  The latest wins; a withdrawal wins a tie."""
    best: tuple[dt.datetime, bool] | None = None
    for rec_channel, granted, at in records:
        if rec_channel not in (channel, ANY_CHANNEL):
            continue
        key = (at, not granted)
        if best is None or key > (best[0], not best[1]):
            best = (at, granted)
    return None if best is None else best[1]


def standing_sql(customer_id: ColumnElement[Any], channel: str, purpose: str) -> ColumnElement[Any]:
    """:func:`standing` in SQL, for one customer (a correlated column), channel and purpose: the granted flag of the
    latest record on ``channel`` or ``ANY_CHANNEL``, a withdrawal first in a tie; NULL when none was given.

    A campaign run reads it for every member and channel (an index probe each on the unique (customer, channel,
    purpose) key) instead of every record; tests/campaigns/test_consent.py holds the two to the same answers."""
    c = consents_t.c
    return (select(c.granted).where(c.customer_id == customer_id, c.purpose == purpose, c.channel.in_((channel, ANY_CHANNEL)))
            .order_by(c.updated_at.desc(), c.granted.asc()).limit(1).scalar_subquery())


def load_standing(conn: Connection, customers: Sequence[uuid.UUID] | tuple[uuid.UUID, uuid.UUID], purposes: Sequence[str]
                  ) -> dict[tuple[uuid.UUID, str], list[tuple[str, bool, dt.datetime]]]:
    """Consent records of many customers at once: (customer, purpose) -> [(channel, granted, at)].

    ``customers``: a list of ids, or a (low, high) range of ids (a campaign run reads a chunk's range)."""
    out: dict[tuple[uuid.UUID, str], list[tuple[str, bool, dt.datetime]]] = {}
    if not customers:
        return out
    c = consents_t.c
    if isinstance(customers, tuple):
        who = c.customer_id.between(customers[0], customers[1])
    else:
        who = c.customer_id.in_(list(customers))
    rows = conn.execute(select(c.customer_id, c.purpose, c.channel, c.granted, c.updated_at).where(who, c.purpose.in_(list(purposes))))
    for customer_id, purpose, channel, granted, at in rows:
        out.setdefault((customer_id, purpose), []).append((channel, granted, at))
    return out
