"""A customer's answer overtakes a broadcast already claimed into the delivery worker, under Telegram's rate limit.

The worker claims campaign rows by the batch and holds them while the
platform's limit lets them out (about 27 a second on Telegram); a reply from
the bot or an agent written meanwhile must be the next message out, not the
one after the held batch.  Real Telegram client, loopback Bot API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from bot.services import SERVICES
from campaigns import service
from channels.delivery import DeliveryWorker
from channels.telegram import TelegramChannel
from contracts.messages import InboundMessage
from crm_store.database import Database
from crm_store.outbox import Outbox
from tests.campaigns.conftest import add_customers
from tests.campaigns.test_campaign_api import API, make_campaign, make_segment
from tests.fakes.base import eventually
from tests.fakes.telegram import SEND_METHODS, FakeTelegram
from tests.helpers import count

TOKEN = "123456:TEST-token"
CUSTOMERS = 300
#: Campaign messages that may leave between a reply's commit and the reply: the claim's round trip
#: and the send already under way.  Held behind the batch, the reply would wait for over 200.
OVERTAKEN_BY_AT_MOST = 10


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramChannel]:
    async with FakeTelegram(TOKEN) as fake:
        channel = TelegramChannel(TOKEN, None, fake.url)
        channel.fake = fake  # type: ignore[attr-defined]
        await channel.start()
        yield channel
        await channel.stop()


def sent_to(fake: FakeTelegram) -> list[str]:
    """The chats sent to, in order (a greeting may come as a photo with a caption)."""
    return [str(call.params["chat_id"]) for call in fake.calls if call.method in SEND_METHODS]


async def reply_overtakes(fake: FakeTelegram, chat: str, write: Callable[[], Awaitable[None]], worker: DeliveryWorker) -> int:
    """How many campaign messages left between the reply to ``chat`` being written and the reply."""
    await write()
    before = len(sent_to(fake))
    worker.wake()  # what the engine and the inbox API do after writing a reply
    await eventually(lambda: chat in sent_to(fake)[before:], timeout=10)
    return sent_to(fake)[before:].index(chat)


async def test_bot_and_agent_replies_go_out_ahead_of_a_claimed_broadcast(
        client: TestClient, store: Database, marketer: dict[str, str],
        headers_for: Callable[[str], Awaitable[dict[str, str]]], telegram: TelegramChannel) -> None:
    fake: FakeTelegram = telegram.fake  # type: ignore[attr-defined]
    await add_customers(store, [{"name": f"c{i}", "channels": {"telegram": str(i)}, "consent": True} for i in range(1, CUSTOMERS + 1)])
    engine = client.app[SERVICES].engine
    assert engine is not None
    handed = await engine.handle(InboundMessage(channel="telegram", sender_id="9001", text="I want to talk to a person",
                                                external_id="h-1"))
    agent = await headers_for("agent")
    assert (await client.post(f"{API}/conversations/{handed.conversation_id}/claim", headers=agent)).status == 200
    campaign = await make_campaign(client, marketer, await make_segment(client, marketer), channels=["telegram"])
    await client.post(f"{API}/campaigns/{campaign['id']}/send", headers=marketer)
    await service.tick(store)
    worker = DeliveryWorker(Outbox(store), {"telegram": telegram})  # Telegram's own limits, batches of 256
    worker.start()
    try:
        await eventually(lambda: len(sent_to(fake)) >= 20, timeout=10)
        held = await count(store, "outbox", status="sending")
        assert held >= 200  # a batch of the broadcast waits in the worker

        async def bot_reply() -> None:
            await engine.handle(InboundMessage(channel="telegram", sender_id="9002", text="hello", external_id="b-1"))

        async def agent_reply() -> None:
            response = await client.post(f"{API}/conversations/{handed.conversation_id}/reply", json={"text": "Hi, I'm Jin"},
                                         headers=agent)
            assert response.status in (200, 201), await response.text()

        assert await reply_overtakes(fake, "9002", bot_reply, worker) <= OVERTAKEN_BY_AT_MOST
        assert await reply_overtakes(fake, "9001", agent_reply, worker) <= OVERTAKEN_BY_AT_MOST
        assert await count(store, "outbox", status="sending") >= 100  # the broadcast was still held when both went out
    finally:
        await worker.stop()
    sent = sent_to(fake)
    assert len(sent) == len(set(sent)) + 1  # one message per customer, two to the one who asked for a person
