"""An agent's reply to a Telegram customer reaches Telegram (a loopback fake of the Bot API); a note does not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.services import SERVICES
from bot.config import load_settings
from dangol.app import build_app
from crm_store import agents
from tests.console.conftest import PASSWORD, log_in
from tests.fakes.telegram import FakeTelegram

TOKEN = "123456:TEST-token"
SECRET = "s3cret_webhook-token"


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
async def tg_client(aiohttp_client: Any, sqlite_url: str, fake_telegram: FakeTelegram) -> TestClient:
    settings = load_settings(database_url=sqlite_url, telegram_token=TOKEN, telegram_webhook_secret=SECRET,
                             telegram_api_url=fake_telegram.url, delivery_backoff_base=0.05)
    return await aiohttp_client(build_app(settings))


def update(update_id: int, text: str) -> dict[str, Any]:
    person = {"id": 4242, "is_bot": False, "first_name": "Minji", "last_name": "Kim", "language_code": "ko"}
    return {"update_id": update_id, "message": {"message_id": update_id, "date": 1763900000, "text": text, "from": person,
                                                "chat": {"id": 4242, "type": "private", "first_name": "Minji"}}}


async def sent_texts(fake: FakeTelegram) -> list[str]:
    return [str(p.get("text")) for p in fake.called("sendMessage")]


async def eventually_sent(fake: FakeTelegram, text: str) -> dict[str, Any]:
    import asyncio

    for _ in range(250):
        for params in fake.called("sendMessage"):
            if text in str(params.get("text")):
                return params
        await asyncio.sleep(0.02)
    raise AssertionError(f"{text!r} never reached Telegram; sent: {await sent_texts(fake)}")


async def test_a_console_reply_reaches_the_telegram_chat_and_a_note_does_not(tg_client: TestClient, fake_telegram: FakeTelegram) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    assert (await tg_client.post("/webhooks/telegram", json=update(1, "I want to talk to a person"), headers=headers)).status == 200
    await eventually_sent(fake_telegram, "person")
    db = tg_client.app[SERVICES].db
    assert db is not None
    record, _ = await agents.create_agent(db, email="tg@example.com", name="Daniel Park", role="agent", password=PASSWORD)
    csrf = await log_in(tg_client, "tg@example.com")
    inbox = await (await tg_client.get("/console/inbox?view=unassigned")).text()
    conversation_id = inbox.split('data-conversation-id="', 1)[1].split('"', 1)[0]
    url = f"/console/conversations/{conversation_id}"
    await tg_client.post(url, data={"csrf": csrf, "action": "claim"})
    await tg_client.post(url, data={"csrf": csrf, "action": "note", "text": "Internal: check order 1234"})
    await tg_client.post(url, data={"csrf": csrf, "action": "reply", "text": "Hi Minji, Daniel here. Let me check."})
    params = await eventually_sent(fake_telegram, "Daniel here")
    assert str(params["chat_id"]) == "4242"
    assert not any("Internal" in text for text in await sent_texts(fake_telegram))
