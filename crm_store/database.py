"""Engines, connections and schema upgrades for SQLite and PostgreSQL.

SQLite gets WAL mode, a busy timeout and ``BEGIN IMMEDIATE`` on its writer
connection so that concurrent writers queue instead of failing; reads use a
separate engine whose transactions stay deferred, so readers never wait; and
the WAL is copied back into the file by a thread of its own
(:mod:`crm_store.checkpoint`), never inside a commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from crm_store.checkpoint import WalCheckpointer

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: Bytes a SQLite WAL file is cut back to once its pages are all copied back.
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


async def pause_before_retry(attempt: int) -> None:
    """A short, growing, jittered wait, so that two colliding writers do not collide again."""
    await asyncio.sleep(0.01 * (attempt + 1) * (1 + random.random()))


class _WriteLockTaken(Exception):
    """An inline SQLite transaction found another writer holding the lock (see Database.run_in_transaction)."""


class StoreUnavailable(Exception):
    """A write could not be done (or not be confirmed); nothing was acknowledged, so the caller retries."""


class SchemaNotCurrent(Exception):
    """The database is behind the code: run ``dangol db upgrade``."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


#: Planner settings of the store's own PostgreSQL sessions.  The message path's
#: reads and updates look rows up by key in small batches, and with the default
#: cost of a random page (4.0, set for spinning disks) PostgreSQL scans whole
#: tables of a few thousand rows instead and hashes them: measured on the REST
#: channel (500 customers, 2 serving processes), 0.32-0.38 ms of PostgreSQL CPU
#: per message with the default against 0.19-0.28 with 1.1, the value usual for
#: SSDs and cached data.  Other clients of the database keep the server's own.
PG_SESSION_SETTINGS = {"random_page_cost": "1.1"}


class Database:
    """One store: a writer engine and a reader engine over the same database."""

    def __init__(self, url: str, *, pool_size: int = 8, sqlite_synchronous: str = "FULL", checkpoints: bool = True) -> None:
        """``checkpoints=False``: another store object of this process tree copies the
        SQLite WAL back (the message-path writer's child leaves it to its parent)."""
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self._checkpointer: WalCheckpointer | None = None
        if self.is_sqlite:
            path = self._prepare_sqlite_path(url)
            if path is not None and checkpoints:
                self._checkpointer = WalCheckpointer(path)
                self._checkpointer.start()
            self.writer = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60)
            self.reader = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
            self._sqlite_pragmas(self.writer, sqlite_synchronous, immediate=True)
            self._sqlite_pragmas(self.reader, sqlite_synchronous, immediate=False)
            # The message path's batches run as synchronous code on one thread
            # of their own: one hop per batch instead of several per statement.
            sync_url = make_url(url).set(drivername="sqlite+pysqlite")
            self.sync_writer: Engine | None = create_engine(sync_url, pool_size=1, max_overflow=0, pool_timeout=60)
            self._sqlite_pragmas(self.sync_writer, sqlite_synchronous, immediate=True)
            self._write_thread: ThreadPoolExecutor | None = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
            # Short transactions may run on the event loop's own thread, and only
            # when the write lock is free (no busy wait: see run_in_transaction).
            self.inline_writer: Engine | None = create_engine(sync_url, pool_size=1, max_overflow=0, pool_timeout=1)
            self._sqlite_pragmas(self.inline_writer, sqlite_synchronous, immediate=True, busy_timeout_ms=0)
        else:
            self.writer = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False,
                                              connect_args={"server_settings": dict(PG_SESSION_SETTINGS)})
            self.reader = self.writer
            self.sync_writer = None
            self.inline_writer = None
            self._write_thread = None
        # the writer's pool, its connections lent without a transaction (see run_autocommit)
        self._autocommit = self.writer.execution_options(isolation_level="AUTOCOMMIT")

    @staticmethod
    def _prepare_sqlite_path(url: str) -> str | None:
        """The database file's path (its folder made), or None for an in-memory database."""
        database = make_url(url).database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        path = Path(database).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return str(path)

    @staticmethod
    def _sqlite_pragmas(engine: AsyncEngine | Engine, synchronous: str, *, immediate: bool, busy_timeout_ms: int = 30000) -> None:
        target = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

        @event.listens_for(target, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            # crm_store.checkpoint copies the WAL back; a commit never does
            cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
            cursor.close()

        @event.listens_for(target, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits on success and rolls back on any error."""
        async with self.writer.begin() as conn:
            yield conn

    async def run_in_transaction(self, fn: Callable[..., T], *args: Any, inline: bool = False) -> T:
        """Run synchronous ``fn(connection, *args)`` in one write transaction.

        On SQLite it runs on the writer thread with the plain sqlite3 driver;
        on PostgreSQL through the async connection's greenlet bridge.

        ``inline`` (SQLite, for short transactions run often, such as the
        delivery worker's): run on the calling thread when no other writer
        holds the lock, and on the writer thread when one does.  The writer
        thread needs the GIL back after every row SQLite steps through, and a
        busy event loop gives it up only every few milliseconds: measured, a
        claim of 256 outbox rows that takes 8 ms took 50-100 ms there, and the
        senders ran dry waiting for it.  Inline, the loop is busy for the 8 ms
        instead; it never waits for a lock (the attempt fails at once and the
        thread takes over).
        """
        if self.sync_writer is not None and self._write_thread is not None:
            if inline and self.inline_writer is not None:
                try:
                    return self._sync_transaction(fn, args, self.inline_writer)
                except _WriteLockTaken:
                    pass
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._write_thread, self._sync_transaction, fn, args, self.sync_writer)
        async with self.writer.begin() as conn:
            return await conn.run_sync(fn, *args)

    async def run_autocommit(self, fn: Callable[..., T], *args: Any) -> T:
        """PostgreSQL: run synchronous ``fn(connection, *args)`` on a connection outside any
        transaction: each statement commits on its own, unless ``fn`` says ``BEGIN``.

        For work that can be one statement (the message path's batch), this
        spares the BEGIN and COMMIT round trips.
        """
        if self.sync_writer is not None:
            raise NotImplementedError("run_autocommit is for PostgreSQL; SQLite writes through run_in_transaction")
        async with self._autocommit.connect() as conn:
            return await conn.run_sync(fn, *args)

    @staticmethod
    def _sync_transaction(fn: Callable[..., T], args: tuple[Any, ...], engine: Engine) -> T:
        with engine.connect() as conn:
            try:
                transaction = conn.begin()
            except OperationalError as exc:  # BEGIN IMMEDIATE with no busy timeout: another writer has the lock
                if "locked" in str(exc.orig) or "busy" in str(exc.orig):
                    raise _WriteLockTaken from None
                raise
            with transaction:
                return fn(conn, *args)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reader.connect() as conn:
            yield conn

    async def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations up to ``revision``."""
        async with self.writer.connect() as conn:
            await conn.run_sync(_run_upgrade, revision)
            await conn.commit()

    async def current_revision(self) -> str | None:
        async with self.reader.connect() as conn:
            return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())

    async def check_current(self) -> None:
        current = await self.current_revision()
        head = head_revision()
        if current != head:
            raise SchemaNotCurrent(f"database is at revision {current or 'none'}, code expects {head}")

    async def ping(self) -> None:
        async with self.reader.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        if self.sync_writer is not None and self._write_thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._write_thread, self.sync_writer.dispose)
            self._write_thread.shutdown(wait=True)
        if self.inline_writer is not None:
            self.inline_writer.dispose()
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.close)


def _run_upgrade(sync_connection: Any, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = sync_connection
    command.upgrade(config, revision)
