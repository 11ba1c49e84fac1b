"""STOP works at once while a person holds the conversation: the bot's rules are not asked then, the engine is."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient

from bot.services import SERVICES
from contracts.messages import InboundMessage
from crm_store.database import Database
from tests.campaigns.conftest import add_customers
from tests.campaigns.test_campaign_api import API, drain, make_campaign, make_segment, recording_worker, send_and_drain
from tests.helpers import rows


async def test_수신거부_to_an_agent_withdraws_consent_is_confirmed_and_the_next_run_skips_them(
        client: TestClient, store: Database, marketer: dict[str, str],
        headers_for: Callable[[str], Awaitable[dict[str, str]]]) -> None:
    kim, _ = await add_customers(store, [{"name": "김민수", "locale": "ko-KR", "channels": {"telegram": "77"}, "consent": True},
                                         {"name": "Ann", "channels": {"telegram": "78"}, "consent": True}])
    engine = client.app[SERVICES].engine
    assert engine is not None
    first = await engine.handle(InboundMessage(channel="telegram", sender_id="77", text="상담원 연결해 주세요", external_id="t-1"))
    agent = await headers_for("agent")
    claimed = await client.post(f"{API}/conversations/{first.conversation_id}/claim", headers=agent)
    assert claimed.status == 200, await claimed.text()
    worker, channels = recording_worker(store, ("telegram",))
    await drain(worker)
    before = len(channels["telegram"].sent)

    await engine.handle(InboundMessage(channel="telegram", sender_id="77", text="수신거부", external_id="t-2"))
    await drain(worker)

    (confirmation,) = channels["telegram"].sent[before:]
    assert confirmation.recipient == "77" and "수신거부 처리되었습니다" in (confirmation.text or "")
    (conversation,) = await rows(store, "conversations", id=uuid.UUID(first.conversation_id))
    assert conversation.status == "open"  # still the agent's
    (consent,) = await rows(store, "consents", customer_id=kim, purpose="marketing", channel="*")
    assert consent.granted is False
    campaign = await make_campaign(client, marketer, await make_segment(client, marketer), channels=["telegram"])
    report = await send_and_drain(client, store, marketer, campaign["id"], worker)
    assert (report["sent"], report["skipped"]["opted_out"]) == (1, 1)
    assert [m.recipient for m in channels["telegram"].sent[before + 1:]] == ["78"]
