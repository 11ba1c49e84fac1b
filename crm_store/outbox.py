"""Claiming and settling outbox rows.

A claim moves rows to ``sending`` with a lease and counts the attempt in the
same statement, so two workers (or two processes) never hold the same row,
and a worker that dies mid-send leaves rows that come back when their lease
runs out.  Results are settled in batches, like inbound writes.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from crm_store.database import Database, pause_before_retry
from crm_store.models import ChannelIdentity, Message, OutboxRow
from crm_store.records import OutboundMessage
from crm_store.statements import Executemany, Prebuilt
from crm_store.types import utcnow

log = logging.getLogger(__name__)
#: Tries of one settle transaction before its results are given up on (the worker logs it; the rows come back after their lease).
SETTLE_ATTEMPTS = 5

outbox_t = OutboxRow.__table__
messages_t = Message.__table__

Outcome = Literal["sent", "retry", "failed"]


@dataclass(slots=True)
class Settlement:
    outbox_id: str
    message_id: str | None
    outcome: Outcome
    next_attempt_at: dt.datetime | None = None
    error: str | None = None
    external_id: str | None = None


class Outbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, limit: int, lease_seconds: float, channels: Sequence[str] | None = None,
                    renew: Sequence[str] = ()) -> list[OutboundMessage]:
        """Take up to ``limit`` due rows (on the store's writer, like every message-path write).

        ``renew``: rows the caller still holds (waiting for a rate limit, say)
        get a fresh lease first, in the same transaction, so this claim cannot
        hand them out a second time.
        """
        if not renew and not await self._anything_due(channels):
            return []
        return await self.db.run_in_transaction(_claim, limit, lease_seconds, channels, [uuid.UUID(i) for i in renew])

    async def _anything_due(self, channels: Sequence[str] | None) -> bool:
        """Look before claiming: an idle worker polls every second, and a claim takes
        the store's write lock.  On SQLite that lock is the message path's too, and
        a writer that finds it taken waits out SQLite's busy back-off (sleeps of 1
        to 100 ms) however short the claim was; a read takes no lock."""
        async with self.db.read() as conn:
            if channels is None:
                row = (await conn.execute(ANY_DUE, {"now": utcnow()})).first()
            else:
                row = (await conn.execute(ANY_DUE_ON_CHANNELS(conn.sync_connection), {"now": utcnow(), "channels": list(channels)})).first()
        return row is not None

    async def settle(self, results: Sequence[Settlement]) -> list[None]:
        """Record many send results in one transaction (a group-commit batch).

        A result must not be lost: its row would come back when its lease
        ran out and the message would be sent twice.  A transaction that
        collides with another (a claim renewing the same rows, a merge) is
        tried again.
        """
        attempt = 0
        while True:
            try:
                await self.db.run_in_transaction(_settle, results)
                return [None] * len(results)
            except DBAPIError as exc:
                attempt += 1
                if attempt == SETTLE_ATTEMPTS:
                    raise
                log.info("settling %d outbox rows conflicted (%s); retrying", len(results), type(exc.orig).__name__ if exc.orig else exc)
                await pause_before_retry(attempt - 1)

    async def release(self, outbox_ids: Sequence[str]) -> None:
        """Claimed rows that were never sent go back to the queue now, their attempt not counted."""
        await self.db.run_in_transaction(_release, [uuid.UUID(i) for i in outbox_ids])

    async def mark_unreachable(self, channel: str, customer_id: str | None, recipient: str) -> None:
        """The customer blocked us on ``channel``: stop trying that identity."""
        identities = ChannelIdentity.__table__
        async with self.db.write() as conn:
            stmt = update(identities).where(identities.c.channel == channel)
            if customer_id:
                stmt = stmt.where(identities.c.customer_id == uuid.UUID(customer_id))
            else:
                stmt = stmt.where(identities.c.external_id == recipient)
            await conn.execute(stmt.values(reachable=False))

    async def depth(self) -> dict[str, int]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(outbox_t.c.status, func.count()).where(outbox_t.c.status.in_(("queued", "sending"))).group_by(outbox_t.c.status)
            )
            return {row[0]: row[1] for row in rows}


__all__ = ["Outbox", "Settlement"]


# Statements built once: the delivery worker runs them for every batch it
# claims and settles (see crm_store.inbound on why that matters).
_o = outbox_t.c
_DUE = or_(
    (_o.status == "queued") & (_o.next_attempt_at <= bindparam("now")),
    (_o.status == "sending") & (_o.claimed_until < bindparam("now")),
)
PICK = select(_o.id).where(_DUE).order_by(_o.next_attempt_at).limit(bindparam("limit")).with_for_update(skip_locked=True)
PICK_ON_CHANNELS = Prebuilt(lambda in_list: (
    select(_o.id).where(_DUE, in_list(_o.channel, "channels"))
    .order_by(_o.next_attempt_at).limit(bindparam("limit")).with_for_update(skip_locked=True)
))
ANY_DUE = select(_o.id).where(_DUE).limit(1)
ANY_DUE_ON_CHANNELS = Prebuilt(lambda in_list: select(_o.id).where(_DUE, in_list(_o.channel, "channels")).limit(1))
TAKE = Prebuilt(lambda in_list: (
    update(outbox_t).where(in_list(_o.id, "ids"))
    .values(status="sending", attempts=_o.attempts + 1, claimed_until=bindparam("until"))
    .returning(outbox_t)
))
SENT = Executemany(
    update(outbox_t).where(_o.id == bindparam("b_id"))
    .values(status="sent", sent_at=bindparam("b_now"), claimed_until=None, external_id=bindparam("b_ext"), last_error=None)
)
RETRY = Executemany(
    update(outbox_t).where(_o.id == bindparam("b_id"))
    .values(status="queued", claimed_until=None, next_attempt_at=bindparam("b_next"), last_error=bindparam("b_err"))
)
FAILED = Executemany(
    update(outbox_t).where(_o.id == bindparam("b_id")).values(status="failed", claimed_until=None, last_error=bindparam("b_err")))
#: Renewed rows are locked in id order, skipping those a settle holds: the settle
#: is recording their result, so renewing their lease is moot, and waiting on it
#: while it waits on a row locked here would deadlock (seen on PostgreSQL).
RENEW = Prebuilt(lambda in_list: (
    update(outbox_t).where(_o.id.in_(
        select(_o.id).where(in_list(_o.id, "ids"), _o.status == "sending").order_by(_o.id).with_for_update(skip_locked=True)
    )).values(claimed_until=bindparam("until"))
))
RELEASE = Prebuilt(lambda in_list: (
    update(outbox_t).where(in_list(_o.id, "ids"), _o.status == "sending")
    .values(status="queued", claimed_until=None, attempts=_o.attempts - 1)
))
MESSAGE_STATUS = Executemany(
    update(messages_t).where(messages_t.c.id == bindparam("b_id"))
    .values(status=bindparam("b_status"), external_id=bindparam("b_ext"))
)


def _claim(conn: Connection, limit: int, lease_seconds: float, channels: Sequence[str] | None,
           renew: list[uuid.UUID]) -> list[OutboundMessage]:
    """Due rows move to ``sending`` with a lease and a counted attempt, in one statement each."""
    now = utcnow()
    if renew:
        conn.execute(RENEW(conn), {"ids": renew, "until": now + dt.timedelta(seconds=lease_seconds)})
    if channels is None:
        picked = conn.execute(PICK, {"now": now, "limit": limit})
    else:
        picked = conn.execute(PICK_ON_CHANNELS(conn), {"now": now, "limit": limit, "channels": list(channels)})
    ids = [row.id for row in picked]
    if not ids:
        return []
    claimed = conn.execute(TAKE(conn), {"ids": ids, "until": now + dt.timedelta(seconds=lease_seconds)}).all()
    claimed.sort(key=lambda r: r.next_attempt_at)
    return [
        OutboundMessage.from_payload(
            row.channel, row.recipient, row.payload, outbox_id=str(row.id),
            message_id=str(row.message_id) if row.message_id else None,
            conversation_id=str(row.conversation_id) if row.conversation_id else None,
            customer_id=str(row.customer_id) if row.customer_id else None, attempt=row.attempts,
        )
        for row in claimed
    ]


def _release(conn: Connection, ids: list[uuid.UUID]) -> None:
    if ids:
        conn.execute(RELEASE(conn), {"ids": ids})


def _settle(conn: Connection, results: Sequence[Settlement]) -> None:
    """One executemany per outcome, and the messages' delivery status beside."""
    now = utcnow()
    # Rows are locked in id order, as a claim's RENEW locks them, so two such
    # transactions wait for each other at worst and never deadlock.
    results = sorted(results, key=lambda r: uuid.UUID(r.outbox_id))
    by_outcome: dict[str, list[Settlement]] = {}
    for result in results:
        by_outcome.setdefault(result.outcome, []).append(result)
    if sent := by_outcome.get("sent"):
        SENT(conn, [{"b_id": uuid.UUID(r.outbox_id), "b_ext": r.external_id, "b_now": now} for r in sent])
    if retry := by_outcome.get("retry"):
        RETRY(conn, [{"b_id": uuid.UUID(r.outbox_id), "b_next": r.next_attempt_at or now, "b_err": r.error} for r in retry])
    if failed := by_outcome.get("failed"):
        FAILED(conn, [{"b_id": uuid.UUID(r.outbox_id), "b_err": r.error} for r in failed])
    message_updates = [
        {"b_id": uuid.UUID(r.message_id), "b_status": "sent" if r.outcome == "sent" else "failed", "b_ext": r.external_id}
        for r in results
        if r.message_id and r.outcome in ("sent", "failed")
    ]
    if message_updates:
        message_updates.sort(key=lambda row: row["b_id"])
        MESSAGE_STATUS(conn, message_updates)
