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


async def test_the_writer_process_writes_batches_on_its_own_thread_and_waits_for_a_held_lock(tmp_path: Path) -> None:
    """InboundWriter(own_thread=True), as the writer process runs it: no hop to the writer thread
    while the lock is free; a lock held by another process is waited for there, and nothing is lost."""
    import sqlite3

    from crm_store.inbound import Decision, InboundItem, InboundWriter, Turn
    from crm_store.records import InboundMessage

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'own.db'}")
    await db.upgrade()
    threads: list[str] = []

    def decide(turn: Turn) -> Decision:
        threads.append(threading.current_thread().name)
        return Decision()

    writer = InboundWriter(db, decide, own_thread=True)
    other = sqlite3.connect(tmp_path / "own.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(0.1, other.execute, "COMMIT")
    held = await writer.write_batch([InboundItem(InboundMessage(channel="rest", sender_id="a", text="hi", external_id="1"))])
    free = await writer.write_batch([InboundItem(InboundMessage(channel="rest", sender_id="a", text="hi", external_id="2"))])
    stored = other.execute("SELECT count(*) FROM messages WHERE direction = 'in'").fetchone()[0]
    other.close()
    await db.dispose()
    assert not held[0].duplicate and not free[0].duplicate and stored == 2
    assert threads[0].startswith("sqlite-writer") and threads[1] == threading.current_thread().name
