"""The web chat websocket: identity, acknowledgements, replies, replay after reconnect."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import ClientWebSocketResponse
from aiohttp.test_utils import TestClient

from crm_store.database import Database
from tests.helpers import count


async def next_frame(ws: ClientWebSocketResponse, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    async def wait() -> dict[str, Any]:
        while True:
            frame = await ws.receive_json()
            if frame["type"] == kind:
                return frame

    return await asyncio.wait_for(wait(), timeout)


async def hello(client: TestClient, visitor: str | None = None, after: str | None = None) -> tuple[ClientWebSocketResponse, str, list]:
    ws = await client.ws_connect("/webchat/ws")
    await ws.send_json({"type": "hello", "visitor": visitor, "after": after})
    welcome = await next_frame(ws, "welcome")
    history = []
    while (frame := await asyncio.wait_for(ws.receive_json(), 5)) ["type"] != "ready":
        history.append(frame)
    return ws, welcome["visitor"], history


async def test_the_widget_page_carries_the_embeddable_script(client: TestClient) -> None:
    page = await (await client.get("/webchat")).text()
    assert '<script src="/webchat/widget.js"' in page
    script = await client.get("/webchat/widget.js")
    assert script.status == 200 and script.content_type == "application/javascript"


async def test_a_message_is_acknowledged_then_answered(client: TestClient) -> None:
    ws, _, _ = await hello(client)
    await ws.send_json({"type": "message", "client_id": "c1", "text": "hello"})
    ack = await next_frame(ws, "ack")
    assert ack["client_id"] == "c1" and ack["id"] and not ack["duplicate"]
    reply = await next_frame(ws, "message")
    assert reply["direction"] == "out" and reply["text"]
    await ws.close()


async def test_a_message_resent_after_a_reconnect_is_stored_and_answered_once(client: TestClient, store: Database) -> None:
    ws, visitor, _ = await hello(client)
    await ws.send_json({"type": "message", "client_id": "c1", "text": "hello"})
    first = await next_frame(ws, "ack")
    await ws.close()
    ws, _, _ = await hello(client, visitor, after=first["id"])
    await ws.send_json({"type": "message", "client_id": "c1", "text": "hello"})
    again = await next_frame(ws, "ack")
    assert again["duplicate"] and again["id"] == first["id"]
    assert await count(store, "messages", direction="in") == 1
    assert await count(store, "messages", direction="out") == 1
    await ws.close()


async def test_a_returning_visitor_is_the_same_customer_and_gets_the_history(client: TestClient, store: Database) -> None:
    ws, visitor, history = await hello(client)
    assert history == []
    await ws.send_json({"type": "message", "client_id": "c1", "text": "hello"})
    await next_frame(ws, "message")
    await ws.close()
    ws, same, history = await hello(client, visitor)
    assert same == visitor
    assert [m["direction"] for m in history] == ["in", "out"]
    assert history[0]["text"] == "hello"
    assert await count(store, "customers") == 1
    await ws.close()


async def test_a_reconnect_replays_only_what_came_after_the_last_message_shown(client: TestClient) -> None:
    ws, visitor, _ = await hello(client)
    await ws.send_json({"type": "message", "client_id": "c1", "text": "hello"})
    first_reply = await next_frame(ws, "message")
    await ws.send_json({"type": "message", "client_id": "c2", "text": "help"})
    await next_frame(ws, "ack")
    await ws.close()
    await asyncio.sleep(0.2)
    ws, _, history = await hello(client, visitor, after=first_reply["id"])
    assert [m["text"] for m in history if m["direction"] == "in"] == ["help"]
    assert all(m["id"] != first_reply["id"] for m in history)
    await ws.close()


async def test_a_forged_visitor_id_gets_a_new_identity(client: TestClient) -> None:
    ws, visitor, _ = await hello(client)
    await ws.close()
    forged = visitor.split(".")[0] + ".0000"
    ws, other, _ = await hello(client, forged)
    assert other.split(".")[0] != visitor.split(".")[0]
    await ws.close()


async def test_bad_frames_get_an_error_frame_naming_the_field(client: TestClient, store: Database) -> None:
    ws = await client.ws_connect("/webchat/ws")
    await ws.send_json({"type": "message", "client_id": "c1", "text": "hi"})
    assert (await next_frame(ws, "error"))["error"]["code"] == "hello_first"
    await ws.send_json({"type": "hello"})
    await next_frame(ws, "ready")
    await ws.send_str("{not json")
    assert (await next_frame(ws, "error"))["error"]["code"] == "invalid_json"
    await ws.send_json({"type": "message", "text": "hi"})
    assert (await next_frame(ws, "error"))["error"]["field"] == "client_id"
    await ws.send_json({"type": "message", "client_id": "c2", "text": "x" * 5000})
    assert (await next_frame(ws, "error"))["error"]["field"] == "text"
    assert await count(store, "messages") == 0
    await ws.close()
