"""/readyz follows the write path: a held SQLite write lock makes it 503 until the lock is free."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url

from bot.config import CoreSettings
from dangol.app import build_app


async def test_readyz_is_503_while_the_sqlite_write_lock_is_held_and_200_after(
        aiohttp_client: Any, make_settings: Callable[..., CoreSettings], sqlite_url: str) -> None:
    client = await aiohttp_client(build_app(make_settings(database_url=sqlite_url)))
    assert (await client.get("/readyz")).status == 200
    taken, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        holder = sqlite3.connect(make_url(sqlite_url).database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        taken.set()
        release.wait(15)
        holder.execute("ROLLBACK")
        holder.close()

    thread = threading.Thread(target=hold_the_lock)
    thread.start()
    try:
        assert await asyncio.to_thread(taken.wait, 5)
        polls = [await client.get("/readyz") for _ in range(3)]
        bodies = [await p.json() for p in polls]
    finally:
        release.set()
        await asyncio.to_thread(thread.join)
    assert [p.status for p in polls] == [503] * 3
    assert all(b["checks"]["database"] == "ok" and b["checks"]["writes"].startswith("blocked") for b in bodies)
    assert (await client.get("/readyz")).status == 200
