"""A killed ``dangol serve`` loses no acknowledged message; SIGTERM finishes in-flight work.

These run the real service as a process on a real SQLite file and on
PostgreSQL, kill it with SIGKILL right after the last acknowledgement, and
look for every message after a restart.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from crm_store.database import Database
from tests.helpers import count
from tests.service.processes import ServeProcess

pytestmark = pytest.mark.slow


async def post_messages(url: str, n: int, prefix: str) -> list[int]:
    async with aiohttp.ClientSession() as session:
        async def one(i: int) -> int:
            body = {"sender": f"{prefix}-{i % 10}", "message": f"hello {i}", "message_id": f"{prefix}-{i}"}
            async with session.post(url + "/webhooks/rest/webhook", json=body) as response:
                await response.read()
                return response.status

        return list(await asyncio.gather(*(one(i) for i in range(n))))


async def webchat_send(url: str, n: int) -> tuple[str, list[str]]:
    """Send ``n`` messages and return as soon as all are acknowledged (replies may still be queued)."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url + "/webchat/ws") as ws:
        await ws.send_json({"type": "hello"})
        visitor = ""
        acked: list[str] = []
        for i in range(n):
            await ws.send_json({"type": "message", "client_id": f"c{i}", "text": "hello"})
        while len(acked) < n:
            frame = await asyncio.wait_for(ws.receive_json(), 10)
            if frame["type"] == "welcome":
                visitor = frame["visitor"]
            elif frame["type"] == "ack":
                acked.append(frame["id"])
        return visitor, acked


async def webchat_collect(url: str, visitor: str, want_replies: int, timeout: float = 20.0) -> dict[str, dict]:
    """Reconnect as ``visitor`` and gather messages by id until ``want_replies`` replies are seen."""
    seen: dict[str, dict] = {}
    async with aiohttp.ClientSession() as session, session.ws_connect(url + "/webchat/ws") as ws:
        await ws.send_json({"type": "hello", "visitor": visitor})
        deadline = asyncio.get_running_loop().time() + timeout
        while sum(m["direction"] == "out" for m in seen.values()) < want_replies:
            remaining = deadline - asyncio.get_running_loop().time()
            frame = await asyncio.wait_for(ws.receive_json(), max(remaining, 0.01))
            if frame["type"] == "message":
                seen[frame["id"]] = frame
    return seen


async def test_a_killed_server_loses_no_acknowledged_message_and_delivers_every_queued_reply(db_url: str, tmp_path: Path) -> None:
    # a short lease so rows caught mid-send by the kill come back within the test
    lease = {"DANGOL_DELIVERY_LEASE_SECONDS": "2"}
    server = ServeProcess(db_url, tmp_path, extra_env=lease)
    await server.wait_ready()
    statuses = await post_messages(server.url, 150, "rest")
    visitor, acked = await webchat_send(server.url, 20)
    server.kill()
    assert statuses == [200] * 150

    db = Database(db_url)
    try:
        assert await count(db, "messages", direction="in", channel="rest") == 150
        assert await count(db, "messages", direction="in", channel="webchat") == 20

        restarted = ServeProcess(db_url, tmp_path, extra_env=lease)
        await restarted.wait_ready()
        seen = await webchat_collect(restarted.url, visitor, want_replies=20)
        assert {i for i, m in seen.items() if m["direction"] == "in"} == set(acked)
        for _ in range(100):
            if await count(db, "outbox", status="sent") == 20:
                break
            await asyncio.sleep(0.2)
        assert await count(db, "outbox", status="sent") == 20
        assert await count(db, "outbox") == 20
        assert restarted.terminate() == 0
    finally:
        await db.dispose()


async def test_sigterm_finishes_in_flight_requests_and_exits_cleanly(sqlite_url: str, tmp_path: Path) -> None:
    server = ServeProcess(sqlite_url, tmp_path, args=("--log-json",))
    await server.wait_ready()
    sending = asyncio.create_task(post_messages(server.url, 100, "term"))
    await asyncio.sleep(0.05)
    code = server.terminate()
    statuses = await asyncio.gather(sending, return_exceptions=True)
    assert code == 0
    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    assert lines[-1]["message"] == "stopped cleanly"
    answered = statuses[0] if isinstance(statuses[0], list) else []
    db = Database(sqlite_url)
    try:
        stored = await count(db, "messages", direction="in")
    finally:
        await db.dispose()
    assert stored >= sum(s == 200 for s in answered)


async def test_several_processes_share_the_port_and_stop_together(pg_database: str, tmp_path: Path) -> None:
    from tests.conftest import _truncate

    await _truncate(pg_database)
    server = ServeProcess(pg_database, tmp_path, extra_env={"DANGOL_WORKERS": "2"})
    await server.wait_ready()
    for _ in range(300):  # the second process starts after the first is ready
        if server.log().count("dangol started") == 2:
            break
        await asyncio.sleep(0.1)
    assert server.log().count("dangol started") == 2
    statuses = await post_messages(server.url, 60, "multi")
    assert statuses == [200] * 60
    assert server.terminate() == 0
    assert server.log().count("stopped cleanly") == 2
    db = Database(pg_database)
    try:
        assert await count(db, "messages", direction="in") == 60
    finally:
        await db.dispose()


async def test_the_other_processes_stop_when_the_first_is_killed(pg_database: str, tmp_path: Path) -> None:
    from tests.conftest import _truncate

    await _truncate(pg_database)
    server = ServeProcess(pg_database, tmp_path, extra_env={"DANGOL_WORKERS": "2"})
    await server.wait_ready()
    children = _children(server.proc.pid)
    assert len(children) == 1
    server.kill()
    for _ in range(150):
        if not Path(f"/proc/{children[0]}").exists() or _is_zombie(children[0]):
            break
        await asyncio.sleep(0.1)
    assert not Path(f"/proc/{children[0]}").exists() or _is_zombie(children[0])


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
