"""Two `dangol serve` processes on one PostgreSQL: an agent connected to one sees what happens on the other."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
import pytest

from crm_store import agents
from crm_store.database import Database
from tests.service.processes import ServeProcess

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)]
PASSWORD = "correct horse battery"


async def next_event(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict:
    while True:
        event = json.loads((await ws.receive(timeout=10)).data)  # a hang guard; how fast is bench/'s
        if event["type"] == kind:
            return event


async def test_events_cross_processes(db_url: str, tmp_path: Path) -> None:
    db = Database(db_url)
    try:
        _, token = await agents.create_agent(db, email="two@example.com", name="Two", role="agent", password=PASSWORD)
    finally:
        await db.dispose()
    here, there = ServeProcess(db_url, tmp_path), ServeProcess(db_url, tmp_path)
    try:
        await asyncio.gather(here.wait_ready(), there.wait_ready())
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            form = await (await session.get(here.url + "/console/login")).text()
            csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
            await session.post(here.url + "/console/login", data={"email": "two@example.com", "password": PASSWORD, "csrf": csrf})
            ws = await session.ws_connect(here.url + "/console/live")
            hello = json.loads((await ws.receive(timeout=10)).data)
            assert hello["cross_process"] is True
            await asyncio.sleep(0.3)

            answer = await session.post(there.url + "/webhooks/rest/webhook", json={"sender": "p1", "message": "/human_handoff"})
            message = await next_event(ws, "message")
            assert answer.status == 200

            claimed = await session.post(f"{there.url}/api/v1/conversations/{message['conversation_id']}/claim",
                                         headers={"Authorization": f"Bearer {token}"})
            assert claimed.status == 200
            event = await next_event(ws, "conversation")
            assert (event["action"], event["conversation_id"]) == ("claimed", message["conversation_id"])
            await ws.close()
    finally:
        for process in (here, there):
            process.terminate()
