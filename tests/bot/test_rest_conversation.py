"""The sample bot through the real app's REST channel, as `dangol serve` runs it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from bot.services import SERVICES
from bot.app import create_app
from bot.config import CoreSettings
from crm_store.conversations import list_conversations
from crm_store.customers import list_customers

WEBHOOK = "/webhooks/rest/webhook"


async def say(client: TestClient, sender: str, message: str) -> list[dict[str, Any]]:
    response = await client.post(WEBHOOK, json={"sender": sender, "message": message})
    assert response.status == 200
    return await response.json()


async def test_an_order_status_request_over_rest(aiohttp_client: Any, make_settings: Callable[..., CoreSettings]) -> None:
    client = await aiohttp_client(create_app(make_settings()))
    replies = await say(client, "rest-1", "where is my order?")
    assert [b["payload"] for b in replies[-1]["buttons"]] == ["/cancel"]
    await say(client, "rest-1", "ORD-777777")
    bad = await say(client, "rest-1", "rest-1 at example")
    assert "doesn't look like an e-mail address" in bad[0]["text"]
    done = await say(client, "rest-1", "rest1@example.com")
    assert "ORD-777777" in done[0]["text"]
    (waiting,) = await say(client, "rest-1", "hello?")  # a person has it now: the customer is told they wait
    assert "in the queue for a person" in waiting["text"]
    db = client.app[SERVICES].db
    (conversation,) = (await list_conversations(db)).items
    assert (conversation["status"], conversation["team"]) == ("pending", "orders")
    (customer,) = (await list_customers(db)).items
    assert customer["email"] == "rest1@example.com"


async def test_the_cancel_button_over_rest(aiohttp_client: Any, make_settings: Callable[..., CoreSettings]) -> None:
    client = await aiohttp_client(create_app(make_settings()))
    await say(client, "rest-2", "주문 조회")
    (cancelled,) = await say(client, "rest-2", "/cancel")
    assert "취소했어요" in cancelled["text"]
