"""Triggered sequences: an event or a tag enrols a customer once; steps go out after their delays, until a goal or a reply.

The clock is the scheduler's: each tick is given the time it runs at.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from bot.engine.conversation import ConversationEngine
from bot.engine.turn import Decision
from bot.services import SERVICES
from campaigns import service
from campaigns.scheduler import CampaignScheduler
from contracts.messages import InboundMessage
from crm_store import agents
from crm_store.columns import utcnow
from crm_store.database import Database
from crm_store.models import OutboxRow
from tests.campaigns.conftest import add_customers
from tests.campaigns.test_campaign_api import API, Recording, drain, make_segment, recording_worker
from tests.console.conftest import PASSWORD, log_in
from tests.helpers import count, rows

STEPS = [{"delay": 0, "message": {"text": "Welcome, {{ customer.name }}!"}},
         {"delay": "P2D", "message": {"text": "Day two: 10% off your first order"}}]


async def start_sequence(client: TestClient, headers: dict[str, str], trigger: dict[str, Any], **extra: Any) -> str:
    body = {"name": "Welcome series", "segment_id": await make_segment(client, headers), "purpose": "marketing",
            "channels": ["telegram"], "trigger": trigger, "steps": STEPS, "goal": {"event": "purchase", "within_days": 7}, **extra}
    response = await client.post(f"{API}/campaigns", json=body, headers=headers)
    assert response.status == 201, await response.text()
    campaign_id = (await response.json())["id"]
    sent = await client.post(f"{API}/campaigns/{campaign_id}/send", headers=headers)
    assert sent.status == 202 and (await sent.json())["status"] == "running"
    return campaign_id


async def event(client: TestClient, headers: dict[str, str], customer_id: uuid.UUID, kind: str, event_id: str | None = None) -> None:
    item: dict[str, Any] = {"customer_id": str(customer_id), "type": kind, "occurred_at": utcnow().isoformat()}
    if event_id:
        item["event_id"] = event_id
    response = await client.post(f"{API}/events", json={"events": [item]}, headers=headers)
    assert response.status == 200 and (await response.json())["accepted"] == 1, await response.text()


async def tick_and_send(store: Database, at: dt.datetime, channels: dict[str, Recording], worker: Any) -> list[str]:
    """One scheduler tick at ``at`` and the delivery it causes (the worker's clock is the real one: rows the
    tick wrote for ``at`` are made due now, as if the time had come): the texts that went out."""
    before = len(channels["telegram"].sent)
    await service.tick(store, at)
    async with store.write() as conn:
        await conn.execute(update(outbox_t).where(outbox_t.c.status == "campaign", outbox_t.c.next_attempt_at <= at)
                           .values(next_attempt_at=utcnow()))
    await drain(worker)
    return [m.text or "" for m in channels["telegram"].sent[before:]]


async def report(client: TestClient, headers: dict[str, str], campaign_id: str) -> dict[str, Any]:
    return await (await client.get(f"{API}/campaigns/{campaign_id}/report", headers=headers)).json()


outbox_t = OutboxRow.__table__
ANN = {"name": "Ann", "channels": {"telegram": "501"}, "consent": True}


async def after_step_one(client: TestClient, store: Database, marketer: dict[str, str]) -> tuple[str, uuid.UUID, Any, dt.datetime]:
    """Ann signed up and got the first step: (campaign id, Ann, (worker, channels), when)."""
    (ann,) = await add_customers(store, [ANN])
    campaign_id = await start_sequence(client, marketer, {"event": "signup"})
    await event(client, marketer, ann, "signup")
    worker, channels = recording_worker(store, ("telegram",))
    now = utcnow()
    assert await tick_and_send(store, now, channels, worker) == ["Welcome, Ann!"]
    return campaign_id, ann, (worker, channels), now


async def test_a_signup_enrols_and_step_two_goes_out_after_its_delay(client: TestClient, store: Database,
                                                                    marketer: dict[str, str]) -> None:
    campaign_id, _, (worker, channels), now = await after_step_one(client, store, marketer)
    assert await tick_and_send(store, now + dt.timedelta(days=1), channels, worker) == []
    assert await tick_and_send(store, now + dt.timedelta(days=2, minutes=1), channels, worker) == ["Day two: 10% off your first order"]
    assert await tick_and_send(store, now + dt.timedelta(days=9), channels, worker) == []
    data = await report(client, marketer, campaign_id)
    assert [(s["step"], s["delay_seconds"], s["sent"]) for s in data["steps"]] == [(1, 0, 1), (2, 172800, 1)]
    assert data["enrolments"]["enrolled"] == data["enrolments"]["done"] == 1
    assert (data["status"], data["sent"]) == ("running", 2)


async def test_a_goal_event_stops_the_sequence(client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    campaign_id, ann, (worker, channels), now = await after_step_one(client, store, marketer)
    await event(client, marketer, ann, "purchase")
    assert await tick_and_send(store, now + dt.timedelta(days=3), channels, worker) == []
    data = await report(client, marketer, campaign_id)
    assert data["enrolments"]["converted"] == 1 and data["converted"] == 1
    assert [s["sent"] for s in data["steps"]] == [1, 0]


async def test_a_reply_after_a_step_stops_the_sequence(client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    campaign_id, ann, (worker, channels), now = await after_step_one(client, store, marketer)
    engine = client.app[SERVICES].engine
    assert engine is not None
    await engine.handle(InboundMessage(channel="telegram", sender_id="501", text="thanks, what sizes do you have?", external_id="r1"))
    await drain(worker)  # the bot's answer
    assert await tick_and_send(store, now + dt.timedelta(days=3), channels, worker) == []
    data = await report(client, marketer, campaign_id)
    assert data["enrolments"]["replied"] == 1 and data["steps"][0]["replied"] == 1


async def test_a_second_trigger_does_not_enrol_twice(client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    (ann,) = await add_customers(store, [ANN])
    await start_sequence(client, marketer, {"event": "signup"})
    await event(client, marketer, ann, "signup", "s-1")
    await event(client, marketer, ann, "signup", "s-2")
    worker, channels = recording_worker(store, ("telegram",))
    assert await tick_and_send(store, utcnow(), channels, worker) == ["Welcome, Ann!"]
    assert await count(store, "sequence_enrolments") == 1


async def test_a_tag_added_through_the_customers_api_enrols(client: TestClient, store: Database, marketer: dict[str, str],
                                                            headers_for: Callable[[str], Awaitable[dict[str, str]]]) -> None:
    (ann,) = await add_customers(store, [ANN])
    await start_sequence(client, marketer, {"tag": "vip"})
    response = await client.patch(f"{API}/customers/{ann}", json={"add_tags": ["vip"]}, headers=await headers_for("agent"))
    assert response.status == 200, await response.text()
    (enrolment,) = await rows(store, "sequence_enrolments")
    assert (enrolment.customer_id, enrolment.source, enrolment.step) == (ann, "tag:vip", 1)


async def test_only_a_first_purchase_enrols_when_asked(client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    new, regular = await add_customers(store, [{**ANN, "name": "New"},
                                               {"name": "Regular", "channels": {"telegram": "502"}, "consent": True,
                                                "events": [("purchase", 30.0, 40)]}])
    await start_sequence(client, marketer, {"event": "purchase", "first": True}, goal=None)
    await event(client, marketer, new, "purchase")
    await event(client, marketer, regular, "purchase")
    assert [r.customer_id for r in await rows(store, "sequence_enrolments")] == [new]


async def test_each_step_honours_consent_like_a_broadcast(client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    (ann,) = await add_customers(store, [{**ANN, "consent": False}])
    campaign_id = await start_sequence(client, marketer, {"event": "signup"})
    await event(client, marketer, ann, "signup")
    worker, channels = recording_worker(store, ("telegram",))
    assert await tick_and_send(store, utcnow(), channels, worker) == []
    data = await report(client, marketer, campaign_id)
    assert data["steps"][0]["skipped"]["opted_out"] == 1 and data["skipped"]["opted_out"] == 1


async def test_an_old_imported_event_enrols_no_one(client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    (ann,) = await add_customers(store, [ANN])
    await start_sequence(client, marketer, {"event": "signup"})
    old = {"customer_id": str(ann), "type": "signup", "occurred_at": (utcnow() - dt.timedelta(days=30)).isoformat()}
    assert (await client.post(f"{API}/events", json={"events": [old]}, headers=marketer)).status == 200
    assert await count(store, "sequence_enrolments") == 0


async def test_a_bad_step_delay_is_a_422_naming_the_step(client: TestClient, marketer: dict[str, str]) -> None:
    body = {"name": "x", "segment_id": await make_segment(client, marketer), "purpose": "marketing", "channels": ["telegram"],
            "trigger": {"event": "signup"}, "steps": [STEPS[0], {"delay": "P1M", "message": {"text": "later"}}]}
    response = await client.post(f"{API}/campaigns", json=body, headers=marketer)
    assert response.status == 422 and (await response.json())["error"]["field"] == "steps[1].delay"
    body["steps"] = [{"delay": 0, "message": {"text": "{{ ''.__class__ }}"}}]
    response = await client.post(f"{API}/campaigns", json=body, headers=marketer)
    assert response.status == 422 and (await response.json())["error"]["field"].startswith("steps[0].message")


async def test_two_ticks_at_once_write_each_step_once(client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    """A leader handing over mid-tick (or a tick racing a kick) must not send a step twice or skip the next."""
    people = await add_customers(store, [{"name": f"c{i}", "channels": {"telegram": str(600 + i)}, "consent": True} for i in range(30)])
    await start_sequence(client, marketer, {"event": "signup"})
    response = await client.post(f"{API}/events", json={"events": [
        {"customer_id": str(cid), "type": "signup", "occurred_at": utcnow().isoformat()} for cid in people]}, headers=marketer)
    assert (await response.json())["accepted"] == 30
    now = utcnow()
    await asyncio.gather(service.tick(store, now), service.tick(store, now))
    assert await count(store, "outbox", status="campaign") == 30
    await asyncio.gather(service.tick(store, now + dt.timedelta(days=2, minutes=1)),
                         service.tick(store, now + dt.timedelta(days=2, minutes=1)))
    assert await count(store, "outbox", status="campaign") == 60
    assert {r.step for r in await rows(store, "sequence_enrolments")} == {3}


async def test_the_console_campaign_page_shows_the_steps_and_their_figures(client: TestClient, store: Database,
                                                                          marketer: dict[str, str]) -> None:
    campaign_id, *_ = await after_step_one(client, store, marketer)
    await agents.create_agent(store, email="mina@example.com", name="Mina", role="marketer", password=PASSWORD)
    await log_in(client, "mina@example.com")
    html = await (await client.get(f"/console/campaigns/{campaign_id}")).text()
    steps = html[html.index("<h3>Sequence</h3>"):]
    assert "a customer's “signup” event arrives" in steps and "Enrolled 1: 1 going through" in steps
    assert "<td>1</td><td>at once</td><td>Welcome, {{ customer.name }}!</td><td class=\"num\">1</td>" in steps.replace("&#34;", '"')
    assert "<td>2</td><td>2 days</td>" in steps


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # on SQLite the one serving process always leads
async def test_with_two_processes_on_postgresql_only_the_leader_writes_due_steps(
        client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    (ann,) = await add_customers(store, [ANN])
    await start_sequence(client, marketer, {"event": "signup"})
    await event(client, marketer, ann, "signup")
    now = utcnow()
    leader = CampaignScheduler(store, clock=lambda: now)
    follower = CampaignScheduler(store, clock=lambda: now + dt.timedelta(days=3))  # would write step 2 too, if it ticked
    try:
        await leader._tick()  # noqa: SLF001 - one tick, as the interval job runs it
        await follower._tick()  # noqa: SLF001
        assert [r.payload["text"] for r in await rows(store, "outbox")] == ["Welcome, Ann!"]
        await leader.stop()  # the leader's process ends: its session, and its lead, with it
        await follower._tick()  # noqa: SLF001
        assert await count(store, "outbox") == 2
    finally:
        await leader.stop()
        await follower.stop()


async def test_a_tag_the_bot_adds_in_a_conversation_enrols(client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    await start_sequence(client, marketer, {"tag": "asked-about-sizes"})
    engine = ConversationEngine(store, lambda turn: Decision(add_tags={"asked-about-sizes"}), None, inline_channels={"rest"})
    engine.start()
    try:
        result = await engine.handle(InboundMessage(channel="telegram", sender_id="777", text="do you have it in XL?", external_id="t1"))
    finally:
        await engine.close()
    (enrolment,) = await rows(store, "sequence_enrolments")
    assert (str(enrolment.customer_id), enrolment.source) == (result.customer_id, "tag:asked-about-sizes")
