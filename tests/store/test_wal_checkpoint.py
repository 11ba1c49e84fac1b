"""SQLite's WAL is copied back by the store's own thread, never inside a commit."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sqlalchemy import text

from crm_store import checkpoint
from crm_store.database import Database
from tests.fakes.base import eventually


def _path(url: str) -> Path:
    return Path(url.split("///", 1)[1])


async def test_no_connection_of_the_store_checkpoints_in_its_commits(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        async with db.write() as conn:
            writer_setting = (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar()
        async with db.read() as conn:
            reader_setting = (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar()
    finally:
        await db.dispose()
    assert writer_setting == 0 and reader_setting == 0


async def test_the_background_thread_copies_committed_pages_back_into_the_file(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint, "INTERVAL_SECONDS", 3600.0)
    db = Database(sqlite_url)
    file = _path(sqlite_url)
    try:
        size_before = file.stat().st_size
        async with db.write() as conn:
            await conn.execute(text("CREATE TABLE filler (id INTEGER PRIMARY KEY, body TEXT)"))
            for _ in range(20):
                await conn.execute(text("INSERT INTO filler (body) VALUES (:b)"), {"b": "x" * 4000})
        assert file.stat().st_size == size_before  # the commits copied nothing back
        assert db._checkpointer is not None  # noqa: SLF001
        db._checkpointer.wake()  # noqa: SLF001
        await eventually(lambda: file.stat().st_size > size_before + 20 * 4000, timeout=5)
    finally:
        await db.dispose()


async def test_closing_the_store_leaves_every_row_in_the_database_file(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    async with db.write() as conn:
        await conn.execute(text("CREATE TABLE kept (v TEXT)"))
        await conn.execute(text("INSERT INTO kept VALUES ('단골')"))
    await db.dispose()
    path = _path(sqlite_url)
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    with sqlite3.connect(path) as probe:
        assert probe.execute("SELECT v FROM kept").fetchall() == [("단골",)]
