"""Liveness, readiness and the Prometheus metrics."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from bot.config import CoreSettings, load_settings
from dangol.app import build_app
from tests.conftest import _pg_admin


async def test_liveness_answers(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert response.status == 200 and (await response.json())["status"] == "ok"


async def test_readiness_checks_the_database_and_its_migrations(client: TestClient) -> None:
    body = await (await client.get("/readyz")).json()
    assert body == {"status": "ok", "checks": {"database": "ok", "migrations": "ok", "writes": "ok", "engine": "ok"}}


async def test_readiness_fails_on_a_database_behind_the_code(aiohttp_client: Any, pg_database: str) -> None:
    base, name = pg_database.rsplit("/", 1)
    empty = f"{name}_empty"
    await _pg_admin(f'CREATE DATABASE "{empty}"')
    try:
        client = await aiohttp_client(build_app(load_settings(database_url=f"{base}/{empty}")))
        response = await client.get("/readyz")
        assert response.status == 503
        assert "revision" in (await response.json())["checks"]["migrations"]
        await client.close()
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{empty}" WITH (FORCE)')


async def webchat_message(client: TestClient, text: str) -> None:
    """Send one web chat message and wait until it is stored."""
    ws = await client.ws_connect("/webchat/ws")
    await ws.send_json({"type": "hello"})
    await ws.send_json({"type": "message", "client_id": "c1", "text": text})
    while (await ws.receive_json())["type"] != "ack":
        pass
    await ws.close()


def metric(text: str, name: str, **labels: str) -> float:
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{{{re.escape(selector)}}} ([0-9.e+-]+)$" if labels else rf"^{re.escape(name)} ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.M)
    assert match, f"{name}{{{selector}}} not in metrics"
    return float(match.group(1))


async def test_metrics_count_messages_by_channel_and_time_their_handling(client: TestClient) -> None:
    for i in range(3):
        await client.post("/webhooks/rest/webhook", json={"sender": "m", "message": "hello", "message_id": f"x{i % 2}"})
    await webchat_message(client, "hello")
    text = await (await client.get("/metrics")).text()
    assert metric(text, "dangol_messages_in_total", channel="rest", outcome="stored") == 2
    assert metric(text, "dangol_messages_in_total", channel="rest", outcome="duplicate") == 1
    assert metric(text, "dangol_messages_in_total", channel="webchat", outcome="stored") == 1
    assert metric(text, "dangol_message_handling_seconds_count", channel="rest") == 3
    assert metric(text, "dangol_messages_out_total", channel="rest", result="sent") >= 2
    assert 'dangol_outbox_depth{status="queued"}' in text


async def test_the_outbox_depth_is_reported(aiohttp_client: Any, make_settings: Callable[..., CoreSettings]) -> None:
    client = await aiohttp_client(build_app(make_settings(delivery_enabled=False)))
    await webchat_message(client, "hello")
    text = await (await client.get("/metrics")).text()
    assert metric(text, "dangol_outbox_depth", status="queued") >= 1
