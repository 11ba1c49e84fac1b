"""SQLite's writers: the writer thread, and short transactions run inline when the lock is free."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crm_store.database import Database


async def test_an_inline_sqlite_transaction_never_waits_for_another_writers_lock(tmp_path: Path) -> None:
    """It runs on the caller's thread only when the lock is free, else on the writer thread, which waits."""
    import sqlite3

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}")
    await db.upgrade()
    other = sqlite3.connect(tmp_path / "inline.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    threads: list[str] = []

    def note_thread(conn: Any) -> None:
        threads.append(threading.current_thread().name)

    loop = asyncio.get_running_loop()
    loop.call_later(0.1, other.execute, "COMMIT")
    await db.run_in_transaction(note_thread, inline=True)
    await db.run_in_transaction(note_thread, inline=True)
    other.close()
    await db.dispose()
    assert threads[0].startswith("sqlite-writer") and threads[1] == threading.current_thread().name


async def test_a_batch_run_on_its_own_thread_is_written_there_and_waits_for_a_held_lock(tmp_path: Path) -> None:
    """run_batch(own_thread=True), as the write child runs it: no hop to the writer thread
    while the lock is free; a lock held by another process is waited for there, and nothing is lost."""
    import sqlite3

    from sqlalchemy import insert

    from crm_store.message_batch import run_batch
    from crm_store.models import AppSetting

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'own.db'}")
    await db.upgrade()
    threads: list[str] = []

    def unit(conn: Any, items: Sequence[str], look_for_duplicates: bool) -> tuple[list[Any], list[Any]]:
        threads.append(threading.current_thread().name)
        conn.execute(insert(AppSetting.__table__), [{"key": key, "value": "v"} for key in items])
        return list(items), []

    other = sqlite3.connect(tmp_path / "own.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(0.1, other.execute, "COMMIT")
    held, _ = await run_batch(db, ["first"], unit, own_thread=True)
    free, _ = await run_batch(db, ["second"], unit, own_thread=True)
    stored = other.execute("SELECT count(*) FROM app_settings WHERE key IN ('first', 'second')").fetchone()[0]
    other.close()
    await db.dispose()
    assert held == ["first"] and free == ["second"] and stored == 2
    assert threads[0].startswith("sqlite-writer") and threads[1] == threading.current_thread().name
