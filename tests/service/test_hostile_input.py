"""Hostile bodies are refused at the edge, naming the field, and cost no other request anything."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp.test_utils import TestClient

from crm_store.database import Database
from tests.helpers import count

WEBHOOK = "/webhooks/rest/webhook"


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


def raw(body: str) -> dict[str, Any]:
    return {"data": body.encode("utf-8", "surrogatepass"), "headers": {"Content-Type": "application/json"}}


async def test_a_lone_surrogate_in_message_is_a_400_naming_the_field(client: TestClient, store: Database) -> None:
    response = await client.post(WEBHOOK, **raw('{"sender": "s1", "message": "hi \\ud800"}'))
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "invalid_unicode" and error["field"] == "message"
    assert await count(store, "messages") == 0


async def test_a_lone_surrogate_as_raw_bytes_in_sender_is_refused(client: TestClient) -> None:
    response = await client.post(WEBHOOK, data=b'{"sender": "s\xed\xa0\x80", "message": "hi"}',
                                 headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json())["error"]["field"] == "sender"


async def test_a_surrogate_pair_is_an_emoji_and_is_accepted(client: TestClient) -> None:
    response = await client.post(WEBHOOK, **raw('{"sender": "s2", "message": "hello \\ud83d\\ude00"}'))
    assert response.status == 200


async def test_metadata_nested_too_deep_is_a_400_naming_the_field(client: TestClient) -> None:
    response = await client.post(WEBHOOK, json={"sender": "s3", "message": "hi", "metadata": nested(100)})
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "too_deep" and error["field"].startswith("metadata.a.a")


async def test_a_body_too_deep_for_the_json_parser_is_a_400_not_a_500(client: TestClient) -> None:
    response = await client.post(WEBHOOK, **raw("[" * 5000 + "]" * 5000))
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "too_deep"


async def test_the_api_refuses_a_surrogate_in_a_body_field(client: TestClient, admin: dict[str, str]) -> None:
    body = '{"name": "Kim \\udfff", "email": "kim@example.com"}'
    response = await client.post("/api/v1/customers", headers={**admin, "Content-Type": "application/json"},
                                 data=body.encode())
    assert response.status == 400
    assert (await response.json())["error"]["field"] == "name"


async def test_poisoned_requests_among_legitimate_load_fail_no_legitimate_one(client: TestClient, store: Database) -> None:
    poison = [
        raw('{"sender": "mallory", "message": "\\ud800"}'),
        raw('{"sender": "\\udbff", "message": "hi"}'),
        raw('{"sender": "mallory", "message": "hi", "message_id": "\\udc00"}'),
        {"json": {"sender": "mallory", "message": "hi", "metadata": nested(600)}},
        raw("{" * 1200 + "}" * 1200),
    ]

    async def legitimate(i: int) -> int:
        response = await client.post(WEBHOOK, json={"sender": f"c{i % 16}", "message": "where is my order", "message_id": f"ok-{i}"})
        await response.read()
        return response.status

    async def hostile(i: int) -> int:
        response = await client.post(WEBHOOK, **poison[i % len(poison)])
        await response.read()
        return response.status

    good = [legitimate(i) for i in range(150)]
    bad = [hostile(i) for i in range(15)]
    tasks = good[:50] + bad[:5] + good[50:100] + bad[5:10] + good[100:] + bad[10:]
    statuses = await asyncio.gather(*tasks)
    good_statuses = [s for s, t in zip(statuses, tasks, strict=True) if t in good]
    bad_statuses = [s for s, t in zip(statuses, tasks, strict=True) if t in bad]
    assert good_statuses == [200] * 150
    assert all(400 <= s < 500 for s in bad_statuses)
    assert await count(store, "messages", direction="in") == 150


async def test_a_web_chat_frame_with_a_lone_surrogate_gets_an_error_frame_and_the_socket_lives(client: TestClient) -> None:
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.send_str(json.dumps({"type": "hello"}))
        while (await ws.receive_json())["type"] != "ready":
            pass
        await ws.send_str('{"type": "message", "client_id": "c1", "text": "\\ud800"}')
        error = await ws.receive_json()
        assert error["type"] == "error" and error["error"]["field"] == "text"
        await ws.send_str(json.dumps({"type": "message", "client_id": "c2", "text": "hello"}))
        while (frame := await ws.receive_json())["type"] != "ack":
            pass
        assert frame["client_id"] == "c2"
