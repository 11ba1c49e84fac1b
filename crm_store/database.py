"""Engines, connections and schema upgrades for SQLite and PostgreSQL.

SQLite gets WAL mode, a busy timeout and ``BEGIN IMMEDIATE`` on its writer
connection so that concurrent writers queue instead of failing; reads use a
separate engine whose transactions stay deferred, so readers never wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaNotCurrent(Exception):
    """The database is behind the code: run ``dangol db upgrade``."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


class Database:
    """One store: a writer engine and a reader engine over the same database."""

    def __init__(self, url: str, *, pool_size: int = 8, sqlite_synchronous: str = "FULL") -> None:
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        if self.is_sqlite:
            self._prepare_sqlite_path(url)
            self.writer = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60)
            self.reader = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
            self._sqlite_pragmas(self.writer, sqlite_synchronous, immediate=True)
            self._sqlite_pragmas(self.reader, sqlite_synchronous, immediate=False)
        else:
            self.writer = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False)
            self.reader = self.writer

    @staticmethod
    def _prepare_sqlite_path(url: str) -> None:
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _sqlite_pragmas(engine: AsyncEngine, synchronous: str, *, immediate: bool) -> None:
        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits on success and rolls back on any error."""
        async with self.writer.begin() as conn:
            yield conn

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
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


def _run_upgrade(sync_connection: Any, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = sync_connection
    command.upgrade(config, revision)


def run_sync(coro: Any) -> Any:
    """Run a coroutine from synchronous CLI code."""
    return asyncio.run(coro)
