"""Can the store take a write right now?  A probe for readiness, bounded in time.

``SELECT 1`` on a reader answers while the write lock is held for seconds
(SQLite allows readers beside a writer; PostgreSQL answers reads on a
connection whose writes would wait for a lock), so a load balancer kept
sending messages that could only wait and fail.  The probe takes the write
lock itself and gives it back at once, writing nothing:

- SQLite: ``BEGIN IMMEDIATE`` then ``ROLLBACK`` on a connection of its own
  with a busy timeout of ``timeout`` seconds (not through the writer
  thread, which may be the very thing that is stuck);
- PostgreSQL: a transaction that asks for a transaction id
  (``txid_current()``, refused on a read-only standby) under a
  ``lock_timeout`` and ``statement_timeout``, then rolls back.
"""

from __future__ import annotations

import asyncio
import sqlite3

from sqlalchemy import text
from sqlalchemy.engine import make_url

from crm_store.database import Database


async def write_probe(db: Database, timeout: float = 1.0) -> None:
    """Return once a write could start within ``timeout`` seconds; raise ``TimeoutError`` or the store's error otherwise."""
    if db.is_sqlite:
        path = make_url(db.url).database
        if not path or path == ":memory:":
            return
        await asyncio.wait_for(asyncio.to_thread(_sqlite_probe, path, timeout), timeout + 1.0)
        return
    millis = max(1, int(timeout * 1000))
    async with asyncio.timeout(timeout + 1.0):
        async with db.writer.connect() as conn:
            async with conn.begin() as transaction:
                await conn.execute(text(f"SET LOCAL lock_timeout = {millis}"))
                await conn.execute(text(f"SET LOCAL statement_timeout = {millis}"))
                await conn.execute(text("SELECT txid_current()"))
                await transaction.rollback()


def _sqlite_probe(path: str, timeout: float) -> None:
    connection = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise TimeoutError(f"the write lock was not free within {timeout:.1f} s") from None
            raise
        connection.execute("ROLLBACK")
    finally:
        connection.close()
