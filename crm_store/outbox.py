"""Claiming and settling outbox rows.

A claim moves rows to ``sending`` with a lease and counts the attempt in the
same statement, so two workers (or two processes) never hold the same row.
A claim records its sender (``claimed_by``: the key of an advisory lock the
sender's process holds while it lives, see bot/delivery_leads.py), so the rows
of a sender that died come back as soon as another takes over
(:meth:`Outbox.reclaim_held`); failing that, when their lease runs out.
Results are settled in batches, like inbound writes.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from crm_store import campaign_send
from crm_store.columns import utcnow
from crm_store.database import Database, pause_before_retry
from crm_store.models import ChannelIdentity, Message, OutboxRow
from crm_store.statements import Executemany, InList, Prebuilt

log = logging.getLogger(__name__)
#: Tries of one settle transaction before its results are given up on (the worker logs it; the rows come back after their lease).
SETTLE_ATTEMPTS = 5

outbox_t = OutboxRow.__table__
messages_t = Message.__table__

Outcome = Literal["sent", "retry", "failed"]


class ClaimedRow(NamedTuple):
    """An outbox row a claim handed out: where it goes, what it says (``payload``, see :func:`payload`), which attempt."""

    outbox_id: str
    channel: str
    recipient: str
    payload: dict[str, Any]
    message_id: str | None
    conversation_id: str | None
    customer_id: str | None
    attempt: int


def payload(text: str | None, buttons: Sequence[dict[str, Any]] = (), attachments: Sequence[dict[str, Any]] = (),
            metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON an outbox row keeps of its message (everything but the row's own ids); empty parts are left out."""
    data: dict[str, Any] = {}
    if text is not None:
        data["text"] = text
    if buttons:
        data["buttons"] = list(buttons)
    if attachments:
        data["attachments"] = list(attachments)
    if metadata:
        data["metadata"] = metadata
    return data


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
                    renew: Sequence[str] = (), *, look_first: bool = True,
                    settle: Sequence[Settlement] = (), campaign_limit: int | None = None,
                    claimed_by: int | None = None) -> list[ClaimedRow]:
        """Take up to ``limit`` due rows (on the store's writer, like every message-path write).

        Replies first (rows whose lease lapsed, then queued rows, oldest due
        first), then campaign rows up to what is left of ``limit`` and at most
        ``campaign_limit``: a worker holding a batch of campaign rows still
        claims the replies that come meanwhile, and no more campaign rows.

        ``renew``: rows the caller still holds (waiting for a rate limit, say)
        get a fresh lease first, in the same transaction, so this claim cannot
        hand them out a second time.  ``settle``: results to record first, in
        the same transaction, so a busy worker commits once per claim rather
        than once per claim and again per handful of results.
        ``look_first=False``: the caller expects rows (its last claim was
        full), so the read that spares an idle poll the write lock would only
        delay it.  A claim that fails records nothing: the caller still has
        its results to settle.  ``claimed_by``: the claiming sender's liveness key.
        """
        campaign_limit = limit if campaign_limit is None else min(limit, campaign_limit)
        if limit <= 0 and not renew and not settle:
            return []  # no room for rows, and nothing to renew or record
        if look_first and not renew and not settle and not await self._anything_due(channels, campaigns=campaign_limit > 0):
            return []
        return await self.db.run_in_transaction(_claim, limit, lease_seconds, channels, [uuid.UUID(i) for i in renew], settle,
                                               campaign_limit, claimed_by, inline=True)

    async def renew(self, outbox_ids: Sequence[str], lease_seconds: float) -> None:
        """Give rows the caller still holds a fresh lease (a worker that leads no channel now still renews what it holds)."""
        if outbox_ids:
            await self.db.run_in_transaction(_renew, [uuid.UUID(i) for i in outbox_ids], lease_seconds, inline=True)

    async def _anything_due(self, channels: Sequence[str] | None, *, campaigns: bool = True) -> bool:
        """Look before claiming: an idle worker polls every second, and a claim takes
        the store's write lock.  On SQLite that lock is the message path's too, and
        a writer that finds it taken waits out SQLite's busy back-off (sleeps of 1
        to 100 ms) however short the claim was; a read takes no lock."""
        params: dict[str, Any] = {"now": utcnow()} if channels is None else {"now": utcnow(), "channels": list(channels)}
        async with self.db.read() as conn:
            for kind in ("queued", "lapsed", "campaign") if campaigns else ("queued", "lapsed"):
                if (await conn.execute(ANY_DUE[kind, channels is not None](conn.sync_connection), params)).first() is not None:
                    return True
        return False

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
                await self.db.run_in_transaction(_settle, results, inline=True)
                return [None] * len(results)
            except DBAPIError as exc:
                attempt += 1
                if attempt == SETTLE_ATTEMPTS:
                    raise
                log.info("settling %d outbox rows conflicted (%s); retrying", len(results), type(exc.orig).__name__ if exc.orig else exc)
                await pause_before_retry(attempt - 1)

    async def release(self, outbox_ids: Sequence[str]) -> None:
        """Claimed rows that were never sent go back to the queue now, their attempt not counted."""
        await self.db.run_in_transaction(_release, [uuid.UUID(i) for i in outbox_ids], inline=True)

    async def reclaim_held(self, channels: Sequence[str] | None = None) -> int:
        """Rows on ``channels`` held by a sender that is gone become due now; how many.

        For a process that starts sending, or takes the sending over: waiting
        out the lease (``delivery_lease_seconds``) would hold those replies
        back for a minute.  On SQLite there is one serving process, so every
        row ``sending`` at its start was held by one that is gone.  On
        PostgreSQL a row's ``claimed_by`` is the key of a session advisory
        lock its sender holds while it lives: a lock this session can take
        is one nobody holds, so its rows' sender is dead (PostgreSQL ends a
        dead client's session, and its locks, as soon as it sees the
        connection close).  The attempt stays counted: the dead sender may
        have sent it.
        """
        return await self.db.run_in_transaction(_reclaim_held, None if channels is None else list(channels),
                                                self.db.is_sqlite)

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

    async def take_queued(self, channel: str, recipient: str) -> list[ClaimedRow]:
        """Queued rows for one recipient, settled as sent: a channel that answers inline (it has no
        way to reach the customer but their next request) hands them over in that answer.

        A read looks first (no write lock on the message path's store when, as
        usual, nothing waits); the rows are then taken in one transaction, so a
        row the delivery worker claimed meanwhile is not handed out twice.
        """
        async with self.db.read() as conn:
            found = (await conn.execute(select(_o.id).where(_o.channel == channel, _o.recipient == recipient,
                                                            _o.status == "queued").limit(1))).first()
        if found is None:
            return []
        return await self.db.run_in_transaction(_take_queued, channel, recipient)

    async def queued_recipients(self, channel: str, limit: int = 10_000) -> set[str]:
        """Recipients on ``channel`` with rows queued for them (at most ``limit``): one read, so a channel that
        hands replies over in its answers need not read the store on every request to learn that none wait."""
        async with self.db.read() as conn:
            rows = await conn.execute(select(_o.recipient).where(_o.channel == channel, _o.status == "queued")
                                      .distinct().limit(limit))
            return {row.recipient for row in rows}

    async def depth(self) -> dict[str, int]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(outbox_t.c.status, func.count()).where(outbox_t.c.status.in_(("queued", "sending"))).group_by(outbox_t.c.status)
            )
            return {row[0]: row[1] for row in rows}


__all__ = ["Outbox", "Settlement"]


# Statements built once: the delivery worker runs them for every batch it
# claims and settles (see crm_store.statements on why that matters).
_o = outbox_t.c
#: A row is due when it is queued and its time has come, or when the worker that
#: claimed it died mid-send (its lease ran out).  Each kind is picked by the index
#: on (status, next_attempt_at) in due order and stops at the limit: one OR of the
#: two made SQLite read and sort every due row before the LIMIT (measured: a claim of
#: 256 from a 10,000-row backlog picked in 3.9 ms, now 1.6 ms, and the gap grows with it).
_DUE = {"lapsed": (_o.status == "sending") & (_o.claimed_until < bindparam("now")),
        "queued": (_o.status == "queued") & (_o.next_attempt_at <= bindparam("now")),
        # campaign rows (crm_store.campaign_runs) are picked only when no reply is due: support never waits behind a broadcast
        "campaign": (_o.status == "campaign") & (_o.next_attempt_at <= bindparam("now"))}


def _pick(due: Any, *, on_channels: bool, lock: bool) -> Prebuilt:
    """Ids of rows matching ``due`` (on the bound ``channels`` if ``on_channels``), oldest due first:
    up to the bound ``limit``, locked (skipping rows another claim holds), or just one to look."""
    def build(in_list: InList) -> Any:
        stmt = select(_o.id).where(due)
        if on_channels:
            stmt = stmt.where(in_list(_o.channel, "channels"))
        stmt = stmt.order_by(_o.next_attempt_at)
        return stmt.limit(bindparam("limit")).with_for_update(skip_locked=True) if lock else stmt.limit(1)
    return Prebuilt(build)


#: (kind of due row, on given channels) -> statement
PICK = {(kind, on): _pick(due, on_channels=on, lock=True) for kind, due in _DUE.items() for on in (False, True)}
ANY_DUE = {(kind, on): _pick(due, on_channels=on, lock=False) for kind, due in _DUE.items() for on in (False, True)}
#: What a send needs of each claimed row (not its timestamps: converting them was a fifth of a claim).
TAKE = Prebuilt(lambda in_list: (
    update(outbox_t).where(in_list(_o.id, "ids"))
    .values(status="sending", attempts=_o.attempts + 1, claimed_until=bindparam("until"), claimed_by=bindparam("by"))
    .returning(_o.id, _o.channel, _o.recipient, _o.payload, _o.message_id, _o.conversation_id, _o.customer_id, _o.attempts)
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


def _renew(conn: Connection, ids: list[uuid.UUID], lease_seconds: float) -> None:
    conn.execute(RENEW(conn), {"ids": ids, "until": utcnow() + dt.timedelta(seconds=lease_seconds)})


def _claim(conn: Connection, limit: int, lease_seconds: float, channels: Sequence[str] | None,
           renew: list[uuid.UUID], settle: Sequence[Settlement], campaign_limit: int,
           claimed_by: int | None = None) -> list[ClaimedRow]:
    """Results first (their rows leave ``sending``, so they are neither renewed nor picked), then
    renewals, then due rows move to ``sending`` with a lease and a counted attempt."""
    if settle:
        _settle(conn, settle)
    now = utcnow()
    if renew:
        _renew(conn, renew, lease_seconds)
    params: dict[str, Any] = {"now": now, "limit": limit}
    if channels is not None:
        params["channels"] = list(channels)
    ids = [row.id for row in conn.execute(PICK["lapsed", channels is not None](conn), params)]  # waited longest
    if len(ids) < limit:
        params["limit"] = limit - len(ids)
        ids += [row.id for row in conn.execute(PICK["queued", channels is not None](conn), params)]
    if len(ids) < limit and campaign_limit > 0:
        params["limit"] = min(limit - len(ids), campaign_limit)
        ids += [row.id for row in conn.execute(PICK["campaign", channels is not None](conn), params)]
    if not ids:
        return []
    claimed = conn.execute(TAKE(conn), {"ids": ids, "until": now + dt.timedelta(seconds=lease_seconds), "by": claimed_by}).all()
    claimed = campaign_send.screen(conn, claimed, now)  # consent and quiet hours again, at send time
    due_order = {outbox_id: position for position, outbox_id in enumerate(ids)}  # PICK's: oldest due first
    claimed.sort(key=lambda r: due_order[r.id])
    return [
        ClaimedRow(str(outbox_id), channel, recipient, data, str(message_id) if message_id else None,
                   str(conversation_id) if conversation_id else None, str(customer_id) if customer_id else None, attempts)
        for outbox_id, channel, recipient, data, message_id, conversation_id, customer_id, attempts in claimed
    ]


def _take_queued(conn: Connection, channel: str, recipient: str) -> list[ClaimedRow]:
    now = utcnow()
    rows = conn.execute(
        update(outbox_t).where(_o.channel == channel, _o.recipient == recipient, _o.status == "queued")
        .values(status="sent", sent_at=now, attempts=_o.attempts + 1, claimed_until=None, last_error=None)
        .returning(_o.id, _o.channel, _o.recipient, _o.payload, _o.message_id, _o.conversation_id, _o.customer_id, _o.attempts,
                   _o.created_at)
    ).all()
    rows.sort(key=lambda r: (r.created_at, r.id))
    updates = [{"b_id": r.message_id, "b_status": "sent", "b_ext": None} for r in rows if r.message_id]
    if updates:
        MESSAGE_STATUS(conn, sorted(updates, key=lambda u: u["b_id"]))
    return [ClaimedRow(str(r.id), r.channel, r.recipient, r.payload, str(r.message_id) if r.message_id else None,
                       str(r.conversation_id) if r.conversation_id else None, str(r.customer_id) if r.customer_id else None,
                       r.attempts) for r in rows]


def _reclaim_held(conn: Connection, channels: list[str] | None, all_held: bool) -> int:
    held = _o.status == "sending"
    if channels is not None:
        held &= _o.channel.in_(channels)
    if not all_held:
        claimers = conn.execute(select(_o.claimed_by).where(held, _o.claimed_by.is_not(None)).distinct()).scalars().all()
        dead = [key for key in claimers if _unheld(conn, key)]
        if not dead:
            return 0
        held &= _o.claimed_by.in_(dead)
    result = conn.execute(update(outbox_t).where(held).values(claimed_until=utcnow() - dt.timedelta(seconds=1)))
    return int(result.rowcount or 0)


def _unheld(conn: Connection, key: int) -> bool:
    """Whether no session holds advisory lock ``key``: taking it succeeds (and it is given back at once)."""
    if not conn.execute(select(func.pg_try_advisory_lock(key))).scalar():
        return False
    conn.execute(select(func.pg_advisory_unlock(key)))
    return True


def _release(conn: Connection, ids: list[uuid.UUID]) -> None:
    if ids:
        conn.execute(RELEASE(conn), {"ids": ids})


def _settle(conn: Connection, results: Sequence[Settlement]) -> None:
    """One executemany per outcome, and the messages' delivery status beside."""
    now = utcnow()
    # Rows are locked in id order, as a claim's RENEW locks them, so two such
    # transactions wait for each other at worst and never deadlock.
    ordered = sorted(((uuid.UUID(r.outbox_id), r) for r in results), key=lambda pair: pair[0])
    by_outcome: dict[str, list[tuple[uuid.UUID, Settlement]]] = {}
    for row_id, result in ordered:
        by_outcome.setdefault(result.outcome, []).append((row_id, result))
    if sent := by_outcome.get("sent"):
        SENT(conn, [{"b_id": row_id, "b_ext": r.external_id, "b_now": now} for row_id, r in sent])
    if retry := by_outcome.get("retry"):
        RETRY(conn, [{"b_id": row_id, "b_next": r.next_attempt_at or now, "b_err": r.error} for row_id, r in retry])
    if failed := by_outcome.get("failed"):
        FAILED(conn, [{"b_id": row_id, "b_err": r.error} for row_id, r in failed])
    message_updates = [
        {"b_id": uuid.UUID(r.message_id), "b_status": "sent" if r.outcome == "sent" else "failed", "b_ext": r.external_id}
        for r in results
        if r.message_id and r.outcome in ("sent", "failed")
    ]
    if message_updates:
        message_updates.sort(key=lambda row: row["b_id"])
        MESSAGE_STATUS(conn, message_updates)
