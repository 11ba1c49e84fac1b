"""SQLite's writers: the writer thread, and short transactions run inline when the lock is free."""

from __future__ import annotations

import asyncio
import threading
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
