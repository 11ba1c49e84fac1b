"""Campaigns through the API: the contract, sending with consent, caps, variants, reports adding up."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from campaigns import service
from channels.base import Channel, OutboundMessage, RateLimit, SendResult
from channels.delivery import DeliveryWorker
from crm_store.database import Database
from crm_store.outbox import Outbox
from contracts.messages import InboundMessage
from tests.campaigns.conftest import add_customers
from tests.helpers import count, rows, sample_engine

API = "/api/v1"


class Recording(Channel):
    """A platform that accepts everything and remembers it (the store-to-channel path is what is tested here)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.sent: list[OutboundMessage] = []

    async def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        return SendResult(external_id=f"{self.name}-{len(self.sent)}")

    def rate_limits(self, message: OutboundMessage) -> Sequence[RateLimit]:
        return ()


def recording_worker(db: Database, names: Sequence[str] = ("telegram", "slack", "webchat")) -> tuple[DeliveryWorker, dict[str, Recording]]:
    channels = {name: Recording(name) for name in names}
    return DeliveryWorker(Outbox(db), channels, rate_limits=False), channels  # type: ignore[arg-type]


async def drain(worker: DeliveryWorker) -> None:
    while await worker.run_once():
        pass


async def make_segment(client: TestClient, headers: dict[str, str], rule: dict[str, Any] | None = None) -> str:
    response = await client.post(f"{API}/segments", json={"name": "everyone", "rule": rule or {"not": {"tag": "nobody"}}},
                                 headers=headers)
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def make_campaign(client: TestClient, headers: dict[str, str], segment_id: str, **extra: Any) -> dict[str, Any]:
    body = {"name": "Winter sale", "segment_id": segment_id, "purpose": "marketing", "channels": ["telegram", "slack", "webchat"],
            "message": {"text": "Hi {{ customer.name | default('friend', true) }}, {{ customer.attributes.discount | default(10) }}% off"},
            **extra}
    response = await client.post(f"{API}/campaigns", json=body, headers=headers)
    assert response.status == 201, await response.text()
    return await response.json()


async def send_and_drain(client: TestClient, store: Database, headers: dict[str, str], campaign_id: str,
                         worker: DeliveryWorker) -> dict[str, Any]:
    response = await client.post(f"{API}/campaigns/{campaign_id}/send", headers=headers)
    assert response.status == 202
    await service.tick(store)
    await drain(worker)
    await service.tick(store)
    return await (await client.get(f"{API}/campaigns/{campaign_id}/report", headers=headers)).json()


PEOPLE = [
    {"name": "Ann", "channels": {"telegram": "1", "slack": "U1"}, "consent": True, "attributes": {"discount": 20}},
    {"name": "Bob", "channels": {"slack": "U2"}, "consent": True},
    {"name": "Cy", "channels": {"webchat": "v3"}, "consent": True},
    {"name": "Di", "channels": {"telegram": "4"}, "consent": False},
    {"name": "Ed", "channels": {"telegram": "5"}},
    {"name": "Fay"},
    {"name": "Gus", "channels": {"telegram": "7"}, "consent": True, "reachable": False},
]


async def test_a_campaign_reaches_each_consenting_customer_once_on_their_preferred_channel(
        client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    await add_customers(store, PEOPLE)
    campaign = await make_campaign(client, marketer, await make_segment(client, marketer))
    assert campaign["status"] == "draft"
    worker, channels = recording_worker(store)
    report = await send_and_drain(client, store, marketer, campaign["id"], worker)
    texts = {m.channel: sorted(x.text for x in channels[m.channel].sent) for m in
             [msg for ch in channels.values() for msg in ch.sent]}
    assert texts == {"telegram": ["Hi Ann, 20% off"], "slack": ["Hi Bob, 10% off"], "webchat": ["Hi Cy, 10% off"]}
    assert report["status"] == "done"
    assert (report["targeted"], report["sent"], report["failed"], report["queued"]) == (7, 3, 0, 0)
    assert report["skipped"] == {"opted_out": 1, "no_consent": 1, "unreachable": 2, "capped": 0, "render_error": 0}
    assert report["targeted"] == report["sent"] + report["failed"] + sum(report["skipped"].values())


async def test_a_second_tick_or_send_writes_no_second_message(client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    await add_customers(store, PEOPLE)
    campaign = await make_campaign(client, marketer, await make_segment(client, marketer))
    worker, channels = recording_worker(store)
    await send_and_drain(client, store, marketer, campaign["id"], worker)
    await service.tick(store)
    assert (await client.post(f"{API}/campaigns/{campaign['id']}/send", headers=marketer)).status == 409
    await drain(worker)
    assert sum(len(ch.sent) for ch in channels.values()) == 3


async def test_korean_customers_get_the_advertising_marks_and_wait_out_the_night(
        client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    await add_customers(store, [{"name": "민수", "locale": "ko-KR", "timezone": "Asia/Seoul", "channels": {"telegram": "1"},
                                 "consent": True}])
    campaign = await make_campaign(client, marketer, await make_segment(client, marketer), sender_name="단골상점")
    await client.post(f"{API}/campaigns/{campaign['id']}/send", headers=marketer)
    night = dt.datetime(2026, 12, 6, 14, 30, tzinfo=dt.UTC)  # 23:30 in Seoul
    await service.tick(store, night)
    (row,) = await rows(store, "outbox")
    assert row.payload["text"].startswith("(광고) 단골상점\nHi 민수")
    assert "수신거부" in row.payload["text"]
    assert row.next_attempt_at == dt.datetime(2026, 12, 6, 23, 0, tzinfo=dt.UTC)  # 08:00 in Seoul: it waits, it is not dropped


async def test_a_template_reaching_for_python_internals_is_refused(client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    segment = await make_segment(client, marketer)
    for text in ("{{ ''.__class__ }}", "{{ customer|attr('__class__') }}", "{{ customer.name "):
        response = await client.post(f"{API}/campaigns", json={"name": "x", "segment_id": segment, "purpose": "marketing",
                                                               "channels": ["telegram"], "message": {"text": text}}, headers=marketer)
        assert response.status == 422
        assert (await response.json())["error"]["field"] == "message.text"
    assert await count(store, "campaigns") == 0


async def test_a_customer_the_template_cannot_fill_is_skipped_with_the_reason(
        client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    await add_customers(store, [{"name": "Ann", "channels": {"telegram": "1"}, "consent": True, "attributes": {"code": "A1"}},
                                {"name": "Bob", "channels": {"telegram": "2"}, "consent": True}])
    campaign = await make_campaign(client, marketer, await make_segment(client, marketer),
                                   message={"text": "Your code: {{ customer.attributes.code }}"})
    worker, channels = recording_worker(store)
    report = await send_and_drain(client, store, marketer, campaign["id"], worker)
    assert [m.text for m in channels["telegram"].sent] == ["Your code: A1"]
    assert report["skipped"]["render_error"] == 1
    (skip,) = await rows(store, "campaign_skips")
    assert "code" in skip.detail


async def test_a_withdrawal_after_materializing_stops_the_message_at_send_time(
        client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    (ann,) = await add_customers(store, [{"name": "Ann", "channels": {"telegram": "1"}, "consent": True}])
    campaign = await make_campaign(client, marketer, await make_segment(client, marketer))
    await client.post(f"{API}/campaigns/{campaign['id']}/send", headers=marketer)
    await service.tick(store)
    await client.put(f"{API}/customers/{ann}/consents", json={"channel": "*", "purpose": "marketing", "granted": False,
                                                              "source": "phone"}, headers=marketer)
    worker, channels = recording_worker(store)
    await drain(worker)
    await service.tick(store)
    report = await (await client.get(f"{API}/campaigns/{campaign['id']}/report", headers=marketer)).json()
    assert channels["telegram"].sent == []
    assert (report["status"], report["skipped"]["opted_out"], report["sent"]) == ("done", 1, 0)


async def test_the_frequency_cap_skips_customers_messaged_enough(client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    await add_customers(store, [{"name": "Ann", "channels": {"telegram": "1"}, "consent": True}])
    segment = await make_segment(client, marketer)
    worker, channels = recording_worker(store)
    first = await make_campaign(client, marketer, segment)
    await send_and_drain(client, store, marketer, first["id"], worker)
    second = await make_campaign(client, marketer, segment, frequency_cap={"max": 1, "days": 7})
    report = await send_and_drain(client, store, marketer, second["id"], worker)
    assert report["skipped"]["capped"] == 1 and len(channels["telegram"].sent) == 1


async def test_ab_variants_split_by_weight_and_report_each(client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    await add_customers(store, [{"name": f"c{i}", "channels": {"telegram": str(i)}, "consent": True} for i in range(400)])
    campaign = await make_campaign(client, marketer, await make_segment(client, marketer), variants_ab=[
        {"name": "A", "weight": 3, "message": {"text": "A {{ customer.name }}"}}, {"name": "B", "weight": 1}])
    worker, channels = recording_worker(store)
    report = await send_and_drain(client, store, marketer, campaign["id"], worker)
    a, b = report["variants"]["A"]["sent"], report["variants"]["B"]["sent"]
    assert a + b == 400 and 240 < a < 360
    assert sum(1 for m in channels["telegram"].sent if m.text.startswith("A ")) == a


async def test_pause_holds_the_rest_and_resume_sends_it(client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    await add_customers(store, [{"name": f"c{i}", "channels": {"telegram": str(i)}, "consent": True} for i in range(5)])
    campaign = await make_campaign(client, marketer, await make_segment(client, marketer))
    await client.post(f"{API}/campaigns/{campaign['id']}/send", headers=marketer)
    await service.tick(store)
    paused = await client.post(f"{API}/campaigns/{campaign['id']}/pause", headers=marketer)
    assert (await paused.json())["status"] == "paused"
    worker, channels = recording_worker(store)
    await drain(worker)
    assert channels["telegram"].sent == []
    assert (await (await client.post(f"{API}/campaigns/{campaign['id']}/resume", headers=marketer)).json())["status"] == "running"
    await drain(worker)
    await service.tick(store)
    report = await (await client.get(f"{API}/campaigns/{campaign['id']}/report", headers=marketer)).json()
    assert (report["status"], report["sent"]) == ("done", 5)


async def test_the_report_comes_as_csv(client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    await add_customers(store, PEOPLE)
    campaign = await make_campaign(client, marketer, await make_segment(client, marketer))
    worker, _ = recording_worker(store)
    await send_and_drain(client, store, marketer, campaign["id"], worker)
    response = await client.get(f"{API}/campaigns/{campaign['id']}/report?format=csv", headers=marketer)
    assert response.content_type == "text/csv"
    header, total = (await response.text()).strip().splitlines()
    assert header.startswith("variant,targeted") and total.startswith("all,7,")


@pytest.mark.parametrize("path", ["/campaigns", "/segments"])
async def test_an_agent_gets_403_on_marketing(client: TestClient, headers_for: Callable[[str], Awaitable[dict[str, str]]],
                                              path: str) -> None:
    response = await client.get(f"{API}{path}", headers=await headers_for("agent"))
    assert response.status == 403


async def test_a_campaign_on_an_unknown_segment_is_a_422(client: TestClient, marketer: dict[str, str]) -> None:
    response = await client.post(f"{API}/campaigns", json={"name": "x", "segment_id": "0190d2c4-0000-7000-8000-000000000000",
                                                           "purpose": "marketing", "channels": ["telegram"],
                                                           "message": {"text": "hi"}}, headers=marketer)
    assert response.status == 422 and (await response.json())["error"]["field"] == "segment_id"


async def test_replies_go_out_before_a_broadcast_backlog(store: Database, client: TestClient, marketer: dict[str, str]) -> None:
    await add_customers(store, [{"name": f"c{i}", "channels": {"webchat": f"v{i}"}, "consent": True} for i in range(50)])
    campaign = await make_campaign(client, marketer, await make_segment(client, marketer))
    await client.post(f"{API}/campaigns/{campaign['id']}/send", headers=marketer)
    await service.tick(store)  # 50 campaign rows due now
    engine = await sample_engine(store)
    await engine.handle(InboundMessage(channel="webchat", sender_id="support-1", text="hello", external_id="s1"))
    await engine.close()  # the bot's answer is queued after the broadcast
    worker, channels = recording_worker(store, ("webchat",))
    worker.batch = 10
    await worker.run_once()
    assert channels["webchat"].sent[0].recipient == "support-1"
    assert len(channels["webchat"].sent) == 10


async def test_a_message_is_previewed_for_any_customer_as_they_would_get_it(client: TestClient, store: Database,
                                                                           marketer: dict[str, str]) -> None:
    kim, ann = await add_customers(store, [
        {"name": "민수", "locale": "ko", "channels": {"slack": "U1"}, "consent": True, "attributes": {"code": "K1"}},
        {"name": "Ann", "channels": {"telegram": "1"}}])
    message = {"text": "{{ customer.name }}: {{ customer.attributes.code | default('none') }}",
               "variants": {"slack": {"text": "*{{ customer.name }}*"}}}
    shown = await (await client.post(f"{API}/templates/preview", headers=marketer, json={
        "message": message, "customer_id": str(kim), "channels": ["telegram", "slack"], "sender_name": "상점"})).json()
    assert shown["would_send"] and shown["channel"] == "slack" and shown["text"].startswith("(광고) 상점\n*민수*")
    skipped = await (await client.post(f"{API}/templates/preview", headers=marketer, json={
        "message": message, "customer_id": str(ann), "channels": ["telegram"]})).json()
    assert (skipped["would_send"], skipped["skip_reason"], skipped["text"]) == (False, "no_consent", "Ann: none")
    refused = await client.post(f"{API}/templates/preview", headers=marketer, json={
        "message": {"text": "{{ ''.__class__ }}"}, "customer_id": str(ann), "channels": ["telegram"]})
    assert refused.status == 422
