"""While a customer waits for a person they are told so, with the expected wait, never met with silence
and never with the bot's normal answers; at most once per few minutes, except when they ask for a person again."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import update

from bot.engine.waiting import ACK_INTERVAL, STATE_KEY
from crm_store import teams
from crm_store.columns import utcnow
from crm_store.database import Database
from crm_store.models import Conversation
from tests.helpers import rows
from tests.routing.conftest import API, Handoff, MakePerson, handoff, person  # noqa: F401 - shared fixtures
from tests.service.conftest import client, store  # noqa: F401 - shared fixtures


async def say(client: TestClient, sender: str, text: str) -> list[dict[str, Any]]:
    response = await client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
    assert response.status == 200
    return await response.json()


async def test_a_message_while_waiting_is_acknowledged_with_the_expected_wait_from_the_teams_sla(
    client: TestClient, handoff: Handoff, store: Database
) -> None:
    await teams.set_sla_policy(store, team="support", priority="medium", first_response_seconds=4 * 3600, resolution_seconds=None)
    await handoff("c1")
    (reply,) = await say(client, "c1", "hello?")
    assert reply["text"] == "Thanks, you're in the queue for a person on our team. Expected wait: about 4 hours."


async def test_without_an_sla_the_acknowledgement_promises_no_time(client: TestClient, handoff: Handoff) -> None:
    await handoff("c1")
    (reply,) = await say(client, "c1", "what is your refund policy?")  # a question the bot could answer: it does not
    assert reply["text"] == "Thanks, you're in the queue for a person on our team. They'll reply here as soon as they can."


async def test_the_acknowledgement_is_in_the_customers_language(client: TestClient, handoff: Handoff) -> None:
    await handoff("c1")
    (reply,) = await say(client, "c1", "아직 기다려야 하나요?")
    assert reply["text"].startswith("상담원 연결을 기다리고 계세요.")


async def test_at_most_one_acknowledgement_per_interval_but_a_new_request_for_a_person_is_always_answered(
    client: TestClient, handoff: Handoff, store: Database
) -> None:
    conversation = await handoff("c1")
    assert len(await say(client, "c1", "hello?")) == 1
    assert await say(client, "c1", "hello??") == []
    (again,) = await say(client, "c1", "/human_handoff")
    assert "in the queue" in again["text"]
    async with store.write() as conn:
        earlier = (utcnow() - ACK_INTERVAL - dt.timedelta(seconds=1)).isoformat()
        await conn.execute(update(Conversation.__table__).where(Conversation.__table__.c.id == uuid.UUID(conversation["id"]))
                           .values(bot_state={STATE_KEY: earlier}))
    assert len(await say(client, "c1", "anyone?")) == 1
    (conv,) = await rows(store, "conversations", customer_id=uuid.UUID(conversation["customer_id"]))
    assert conv.status == "pending" and conv.team == "support"  # nothing else changed


async def test_once_a_person_answers_the_bot_says_nothing(client: TestClient, handoff: Handoff, person: MakePerson) -> None:
    me = await person("agent")
    conversation = await handoff("c1")
    await client.post(f"{API}/conversations/{conversation['id']}/reply", json={"text": "Hi, Kim here"}, headers=me.headers)
    answer = await say(client, "c1", "thanks Kim")
    assert answer == [{"recipient_id": "c1", "text": "Hi, Kim here"}]
    assert await say(client, "c1", "one more thing") == []
