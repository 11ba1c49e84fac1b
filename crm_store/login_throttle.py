"""Console login throttling: an attempt is counted before its password is checked, atomically, in the database.

Reading the failure count, checking the password (about 120 ms of argon2)
and then writing the failure let parallel guesses through uncounted: 100 at
once checked 94 passwords against a limit of 5.  Here taking an attempt is
one transaction that reads the counts and records the attempt together,
serialized per key (SQLite: its one writer, ``BEGIN IMMEDIATE``;
PostgreSQL: transaction advisory locks on the e-mail and the address), so
every process sharing the database agrees and no guess goes uncounted.
A successful login clears that e-mail's attempts from that address.

Attempts are throttled with exponential back-off rather than a hard lock,
on three keys (rows of ``login_failures``, one per attempt):

- the e-mail *from one address*: 5 free attempts, then 30 s, 60 s, 120 s …
  between attempts (at most 15 minutes).  What an attacker does from their
  address does not slow the account's owner at theirs;
- the address, whatever the e-mail: 20 free, then the same back-off, so one
  address cannot try many accounts (behind a reverse proxy the address is
  the client's, through ``trusted_proxies``);
- the e-mail from any address: 50 free, then a back-off capped at one
  minute: guessing spread over many addresses is slowed, but aimed at a
  victim it costs them at most a minute's wait, never a lock-out.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, insert, select, text
from sqlalchemy.engine import Connection

from crm_store.columns import new_id, utcnow
from crm_store.database import Database
from crm_store.models import LoginFailure

failures_t = LoginFailure.__table__
_f = failures_t.c

#: Attempts older than this are forgotten.
WINDOW = dt.timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Backoff:
    """``free`` attempts in :data:`WINDOW`, then ``base`` seconds before the next, doubling, at most ``cap``."""

    free: int
    base: float
    cap: float

    def wait(self, attempts: int, last: dt.datetime | None, now: dt.datetime) -> float:
        if attempts < self.free or last is None:
            return 0.0
        delay = min(self.cap, self.base * 2 ** (attempts - self.free))
        return max(0.0, (last + dt.timedelta(seconds=delay) - now).total_seconds())


PER_EMAIL_AND_ADDRESS = Backoff(free=5, base=30.0, cap=WINDOW.total_seconds())
PER_ADDRESS = Backoff(free=20, base=30.0, cap=WINDOW.total_seconds())
PER_EMAIL = Backoff(free=50, base=5.0, cap=60.0)


async def take_attempt(db: Database, email: str, address: str) -> int:
    """Count a login attempt now, before its password is checked: 0 when it may go on, else the seconds to wait.

    An attempt that must wait is not recorded, so hammering does not
    lengthen the wait.
    """
    email, address = email[:320], address[:64]
    if db.is_sqlite:
        return await db.run_in_transaction(_take, email, address, False)
    async with db.write() as conn:
        return await conn.run_sync(_take, email, address, True)


async def clear_attempts(db: Database, email: str, address: str) -> None:
    """After a successful login: this e-mail's attempts from this address are forgotten."""
    async with db.write() as conn:
        await conn.execute(delete(failures_t).where(_f.email == email[:320], _f.address == address[:64]))


def _take(conn: Connection, email: str, address: str, advisory_locks: bool) -> int:
    now = utcnow()
    if advisory_locks:
        # READ COMMITTED would let two transactions count the same rows and both insert: one lock per key, in a fixed order
        for key in sorted({f"login-email:{email}", f"login-address:{address}"}):
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(key.encode("utf-8")) - 2**31})
    since = now - WINDOW
    conn.execute(delete(failures_t).where(_f.created_at < since, _f.email == email))
    conn.execute(delete(failures_t).where(_f.created_at < since, _f.address == address))
    waits = []
    for where, backoff in ((and_(_f.email == email, _f.address == address), PER_EMAIL_AND_ADDRESS),
                           (_f.address == address, PER_ADDRESS), (_f.email == email, PER_EMAIL)):
        attempts, last = conn.execute(select(func.count(), func.max(_f.created_at)).where(where, _f.created_at >= since)).one()
        if isinstance(last, str):  # SQLite hands an aggregate of a datetime column back as text
            last = dt.datetime.fromisoformat(last)
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=dt.UTC)
        waits.append(backoff.wait(int(attempts), last, now))
    wait = max(waits)
    if wait > 0:
        return max(1, int(wait + 0.999))
    conn.execute(insert(failures_t).values(id=new_id(), email=email, address=address, created_at=now))
    return 0
