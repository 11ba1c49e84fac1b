"""Leadership among processes on one database: who does the work that must happen once.

On PostgreSQL a leader holds a session-level advisory lock on a dedicated
connection.  The lock lives exactly as long as that session: a leader that
dies (SIGKILL, a lost host, a cut network) loses it when PostgreSQL notices
the connection is gone, and another process's next ``try_lead`` takes it
over; failover takes one retry interval.  Nothing is written to any table,
so there is no lease to expire and no clock to trust.

On SQLite there is one serving process, and it always leads.

Use one ``Leadership`` per duty (``"campaign-scheduler"``, ``"delivery:<account>"``)::

    leader = Leadership(database_url, "campaign-scheduler")
    if await leader.try_lead():   # cheap when already leading: one SELECT 1 to see the session is alive
        ...do the duty...
    await leader.close()          # gives the duty up at once
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)


def lock_key(duty: str) -> int:
    """A signed 64-bit advisory lock key for a duty's name (stable across processes and versions)."""
    return int.from_bytes(hashlib.sha256(f"dangol:{duty}".encode()).digest()[:8], "big", signed=True)


class Leadership:
    def __init__(self, database_url: str, duty: str) -> None:
        url = make_url(database_url)
        self.duty = duty
        self.key = lock_key(duty)
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False) \
            if url.get_backend_name() == "postgresql" else None
        self._conn: Any = None
        self.leading = self._dsn is None

    async def try_lead(self) -> bool:
        """Whether this process leads the duty now: keeps the lock while its session lives, or tries to take it."""
        if self._dsn is None:
            return True
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self._dsn, timeout=5)
                self.leading = False
            if self.leading:
                await self._conn.fetchval("SELECT 1", timeout=5)
                return True
            self.leading = bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key, timeout=5))
            if self.leading:
                log.info("leading %s", self.duty)
            return self.leading
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            if self.leading:
                log.warning("lost the lead of %s: %s", self.duty, exc)
            await self._drop()
            return False

    async def _drop(self) -> None:
        self.leading = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()

    async def close(self) -> None:
        """Give the duty up now (closing the session releases the lock)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
        self._conn = None
        self.leading = self._dsn is None
