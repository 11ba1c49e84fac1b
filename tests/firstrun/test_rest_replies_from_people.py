"""A person's reply to a REST-channel customer arrives: in the customer's next answer, or at the callback URL at once."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.config import CoreSettings
from crm_store.database import Database
from dangol.app import build_app
from tests.fakes.base import eventually
from tests.helpers import rows
from tests.routing.conftest import API, Handoff, MakePerson, handoff, person  # noqa: F401 - shared fixtures
from tests.service.conftest import client, store  # noqa: F401 - shared fixtures


async def test_a_persons_reply_comes_with_the_customers_next_call_before_the_bots_and_settles_as_sent(
    client: TestClient, handoff: Handoff, person: MakePerson, store: Database
) -> None:
    me = await person("agent")
    conversation = await handoff("c1")
    sent = await client.post(f"{API}/conversations/{conversation['id']}/reply", json={"text": "Hi, I'm Kim"}, headers=me.headers)
    assert sent.status == 201
    message_id = uuid.UUID((await sent.json())["message"]["id"])
    answer = await (await client.post("/webhooks/rest/webhook", json={"sender": "c1", "message": "hello?"})).json()
    assert answer[0] == {"recipient_id": "c1", "text": "Hi, I'm Kim"}
    (outbox,) = await rows(store, "outbox", message_id=message_id)
    assert outbox.status == "sent" and outbox.sent_at is not None
    (message,) = await rows(store, "messages", id=message_id)
    assert message.status == "sent"
    again = await (await client.post("/webhooks/rest/webhook", json={"sender": "c1", "message": "still there?"})).json()
    assert all(item.get("text") != "Hi, I'm Kim" for item in again)


async def test_another_customers_reply_is_not_handed_over(client: TestClient, handoff: Handoff, person: MakePerson) -> None:
    me = await person("agent")
    conversation = await handoff("c1")
    await client.post(f"{API}/conversations/{conversation['id']}/reply", json={"text": "for c1 only"}, headers=me.headers)
    answer = await (await client.post("/webhooks/rest/webhook", json={"sender": "c2", "message": "hello"})).json()
    assert all(item.get("text") != "for c1 only" for item in answer)


async def test_with_a_callback_url_a_persons_reply_is_posted_there_at_once(
    aiohttp_client: Any, make_settings: Callable[..., CoreSettings]
) -> None:
    received: list[dict[str, Any]] = []

    async def callback(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"ok": True})

    receiver = web.Application()
    receiver.router.add_post("/bot-callback", callback)
    server = TestServer(receiver, host="127.0.0.1")
    await server.start_server()
    try:
        app = build_app(make_settings(rest_callback_url=f"http://127.0.0.1:{server.port}/bot-callback"))
        client = await aiohttp_client(app)
        from bot.services import SERVICES
        from crm_store import agents

        store = app[SERVICES].db
        _, token = await agents.create_agent(store, email="kim@example.com", name="Kim", role="agent")
        first = await (await client.post("/webhooks/rest/webhook", json={"sender": "c9", "message": "/human_handoff"})).json()
        assert first and all("recipient_id" in item for item in first)  # the bot still answers inline
        (identity,) = await rows(store, "channel_identities", channel="rest", external_id="c9")
        (conversation,) = await rows(store, "conversations", customer_id=identity.customer_id)
        sent = await client.post(f"{API}/conversations/{conversation.id}/reply", json={"text": "Posted to you"},
                                 headers={"Authorization": f"Bearer {token}"})
        assert sent.status == 201
        await eventually(lambda: received == [{"recipient_id": "c9", "text": "Posted to you"}], timeout=10)
        message_id = uuid.UUID((await sent.json())["message"]["id"])

        async def settled() -> bool:
            (row,) = await rows(store, "outbox", message_id=message_id)
            return row.status == "sent"

        await eventually(settled, timeout=10)
    finally:
        await server.close()


async def test_the_console_says_how_the_conversations_channel_delivers(
    client: TestClient, handoff: Handoff, person: MakePerson, store: Database
) -> None:
    from tests.console.conftest import PASSWORD, log_in

    conversation = await handoff("c1")
    me = await person("agent", password=PASSWORD)
    (account,) = await rows(store, "agents", id=me.id)
    await log_in(client, account.email)
    page = await (await client.get(f"/console/conversations/{conversation['id']}")).text()
    assert "Delivery: the bot answers in the HTTP response; people&#39;s replies wait for the customer&#39;s next message" in page
