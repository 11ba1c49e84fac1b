"""Two separately started ``dangol serve`` processes on one PostgreSQL database and one Telegram bot.

As two hosts behind a load balancer would be: updates arrive at both, one
process at a time sends, and when it is killed with SIGKILL the other takes
over within seconds, sends what the dead one held, and Telegram's limit of
30 messages a second per bot holds for the pair throughout.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import _truncate
from tests.fakes.telegram import SEND_METHODS, FakeTelegram
from tests.service.processes import ServeProcess

pytestmark = pytest.mark.slow

TOKEN = "888:TWOHOSTS"
SECRET = "two-hosts-secret"
UPDATES = 600
#: Sender tasks per process: a killed sender can have sent at most this many replies it had not yet recorded.
CONCURRENCY = 8
#: Telegram's documented limit for one bot.
PER_SECOND = 30


def update(n: int) -> dict[str, Any]:
    """An update from chat ``n``: one chat per update, so every reply can be counted per chat."""
    person = {"id": 70000 + n, "is_bot": False, "first_name": "Jiwoo"}
    return {"update_id": 100000 + n, "message": {"message_id": n, "date": 1763900000, "text": "hello", "from": person,
                                                 "chat": {"id": 70000 + n, "type": "private", "first_name": "Jiwoo"}}}


async def post_all(hosts: list[ServeProcess], acked: list[int]) -> None:
    """Every update to the next host in turn, about 60 a second; one a host does not acknowledge goes to the other,
    as a load balancer would send it."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for n in range(UPDATES):
            for attempt in range(len(hosts) * 3):
                host = hosts[(n + attempt) % len(hosts)]
                try:
                    async with session.post(host.url + "/webhooks/telegram", json=update(n),
                                            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as response:
                        if response.status == 200:
                            acked.append(n)
                            break
                except (aiohttp.ClientError, TimeoutError):
                    pass
            await asyncio.sleep(1 / 60)


def sender_of(hosts: list[ServeProcess]) -> ServeProcess:
    leading = [host for host in hosts if "sending for telegram" in host.log()]
    assert len(leading) == 1, [host.log() for host in hosts]
    return leading[0]


async def test_two_hosts_send_within_the_bot_limit_and_the_survivor_takes_over_within_seconds(pg_database: str,
                                                                                              tmp_path: Path) -> None:
    await _truncate(pg_database)
    async with FakeTelegram(TOKEN) as fake:
        env = {"DANGOL_TELEGRAM_TOKEN": TOKEN, "DANGOL_TELEGRAM_WEBHOOK_SECRET": SECRET, "DANGOL_TELEGRAM_API_URL": fake.url,
               "DANGOL_OFFLOAD": "off", "DANGOL_DELIVERY_CONCURRENCY": str(CONCURRENCY)}
        hosts = [ServeProcess(pg_database, tmp_path, extra_env=env) for _ in range(2)]
        try:
            await asyncio.gather(*(host.wait_ready(timeout=90) for host in hosts))
            acked: list[int] = []
            posting = asyncio.create_task(post_all(hosts, acked))
            deadline = time.monotonic() + 60
            while len(fake.send_times) < 150 and time.monotonic() < deadline:  # mid-stream: about half posted
                await asyncio.sleep(0.05)
            assert len(fake.send_times) >= 150, [host.log() for host in hosts]
            killed = sender_of(hosts)
            killed.kill()
            killed_at = time.monotonic()
            survivor = next(host for host in hosts if host is not killed)
            await posting
            assert len(acked) == UPDATES

            def answered() -> Counter[int]:
                return Counter(int(call.params["chat_id"]) - 70000 for call in fake.calls if call.method in SEND_METHODS)

            deadline = time.monotonic() + 60
            while set(answered()) != set(acked) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            replies = answered()
            assert set(replies) == set(acked), f"unanswered: {sorted(set(acked) - set(replies))[:20]}\n{survivor.log()}"
            doubled = sum(n - 1 for n in replies.values())
            assert doubled <= CONCURRENCY, f"{doubled} updates answered twice"
            assert fake.max_in_window(1.0) <= PER_SECOND
            resumed = min(t for t in fake.send_times if t > killed_at)
            assert resumed - killed_at < 10.0, f"sending resumed {resumed - killed_at:.1f} s after the kill"
            assert "sending for telegram" in survivor.log()
            assert survivor.terminate() == 0
            print(f"two hosts: {len(acked)} acknowledged, {doubled} answered twice, at most {fake.max_in_window(1.0)} sends "
                  f"in one second, sending resumed {resumed - killed_at:.2f} s after the kill")
        finally:
            for host in hosts:
                if host.proc.poll() is None:
                    host.kill()
