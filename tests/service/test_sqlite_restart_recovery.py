"""A SQLite ``dangol serve`` killed with SIGKILL mid-send: after a restart its held replies go out within seconds, not a lease."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from crm_store.database import Database
from tests.fakes.telegram import FakeTelegram
from tests.helpers import count
from tests.service.processes import ServeProcess

pytestmark = pytest.mark.slow

TOKEN = "777:RECOVERY"
SECRET = "recovery-secret"


def update(update_id: int) -> dict[str, Any]:
    person = {"id": 5000 + update_id, "is_bot": False, "first_name": "Minji"}
    return {"update_id": update_id, "message": {"message_id": update_id, "date": 1763900000, "text": "hello", "from": person,
                                                "chat": {"id": 5000 + update_id, "type": "private", "first_name": "Minji"}}}


async def test_replies_held_by_a_killed_sqlite_process_flow_within_5_s_of_the_restart(sqlite_url: str, tmp_path: Path) -> None:
    async with FakeTelegram(TOKEN) as fake:
        for method in ("sendMessage", "sendPhoto"):
            fake.fail(method, 200, times=1000, delay=60)  # every send hangs: the rows stay `sending`
        env = {"DANGOL_TELEGRAM_TOKEN": TOKEN, "DANGOL_TELEGRAM_WEBHOOK_SECRET": SECRET, "DANGOL_TELEGRAM_API_URL": fake.url,
               "DANGOL_DELIVERY_LEASE_SECONDS": "60"}
        server = ServeProcess(sqlite_url, tmp_path, extra_env=env)
        await server.wait_ready(timeout=90)
        async with aiohttp.ClientSession() as session:
            for i in range(20):
                async with session.post(server.url + "/webhooks/telegram", json=update(9000 + i),
                                        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as response:
                    assert response.status == 200
        db = Database(sqlite_url)
        try:
            for _ in range(100):
                if await count(db, "outbox", status="sending") >= 10:
                    break
                await asyncio.sleep(0.05)
            held = await count(db, "outbox", status="sending")
            assert held >= 10
            server.kill()
            fake.failures.clear()
            restarted = ServeProcess(sqlite_url, tmp_path, extra_env=env)
            await restarted.wait_ready(timeout=90)  # a loaded machine may take long to import; the clock starts when it is ready
            ready = time.monotonic()
            while await count(db, "outbox", status="sent") < 20 and time.monotonic() - ready < 10:
                await asyncio.sleep(0.1)
            took = time.monotonic() - ready
            assert await count(db, "outbox", status="sent") == 20, restarted.log()
            assert took < 5.0, f"held replies took {took:.1f} s after the restart"
            assert "held by a process that stopped" in restarted.log()
            assert restarted.terminate() == 0
        finally:
            await db.dispose()
