"""The dashboards' campaign funnel (targeted -> sent -> replied -> converted) and segment sizes over time,
from /api/v1/reports as JSON and CSV, agreeing with the campaign's own report and the segments' counts."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from aiohttp.test_utils import TestClient

from contracts.messages import InboundMessage
from crm_store.columns import utcnow
from crm_store.database import Database
from crm_store.events import EventIn, store_events
from crm_store.segment_sizes import record_sizes
from insights.scoring import score_customers
from tests.campaigns.conftest import add_customers
from tests.campaigns.test_campaign_api import make_campaign, make_segment, recording_worker, send_and_drain
from tests.helpers import sample_engine

API = "/api/v1"
FUNNEL = ("targeted", "sent", "replied", "converted")


async def report(client: TestClient, headers: dict[str, str], name: str, **query: str) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/reports/{name}", params=query, headers=headers)
    assert response.status == 200, await response.text()
    return (await response.json())["rows"]


async def report_csv(client: TestClient, headers: dict[str, str], name: str) -> list[dict[str, str]]:
    response = await client.get(f"{API}/reports/{name}", params={"format": "csv"}, headers=headers)
    assert response.status == 200 and response.content_type == "text/csv"
    return list(csv.DictReader(io.StringIO(await response.text())))


async def test_the_funnel_counts_each_stage_as_the_campaign_report_does(client: TestClient, store: Database,
                                                                         marketer: dict[str, str]) -> None:
    ann, bob, _, _ = await add_customers(store, [
        {"name": "Ann", "channels": {"telegram": "1"}, "consent": True},
        {"name": "Bob", "channels": {"telegram": "2"}, "consent": True},
        {"name": "Cy", "channels": {"telegram": "3"}, "consent": True},
        {"name": "Di", "channels": {"telegram": "4"}}])  # no consent: targeted, skipped
    campaign = await make_campaign(client, marketer, await make_segment(client, marketer), channels=["telegram"],
                                   goal={"event": "purchase", "within_days": 7})
    worker, _ = recording_worker(store, ("telegram",))
    await send_and_drain(client, store, marketer, campaign["id"], worker)
    engine = await sample_engine(store)
    await engine.handle(InboundMessage(channel="telegram", sender_id="1", text="how much is it?", external_id="reply-1"))
    await engine.close()
    later = utcnow() + dt.timedelta(minutes=5)
    await store.run_in_transaction(store_events, [EventIn("purchase", later, customer_id=ann, amount=30.0),
                                                  EventIn("purchase", later, customer_id=bob, amount=12.5)])
    own = await (await client.get(f"{API}/campaigns/{campaign['id']}/report", headers=marketer)).json()
    (row,) = await report(client, marketer, "campaign-funnel")
    assert [row[k] for k in FUNNEL] == [4, 3, 1, 2] == [own[k] for k in FUNNEL]
    assert row["campaign"] == "Winter sale" and row["revenue"] == 42.5
    (line,) = await report_csv(client, marketer, "campaign-funnel")
    assert [int(line[k]) for k in FUNNEL] == [4, 3, 1, 2]
    assert await report(client, marketer, "campaign-funnel", since="2020-01-01T00:00:00Z", until="2020-02-01T00:00:00Z") == []


async def test_segment_sizes_are_recorded_by_each_scoring_run_one_count_a_day(client: TestClient, store: Database,
                                                                               marketer: dict[str, str]) -> None:
    await add_customers(store, [{"name": "Ann", "lifecycle_stage": "customer"}, {"name": "Bob"}])
    buyers = await make_segment(client, marketer, {"field": "lifecycle_stage", "op": "eq", "value": "customer"})
    await make_segment(client, marketer)  # everyone
    yesterday = utcnow() - dt.timedelta(days=1)
    await store.run_in_transaction(record_sizes, yesterday)
    await add_customers(store, [{"name": "Cy", "lifecycle_stage": "customer"}])
    await score_customers(store, recommendations=0)
    await score_customers(store, recommendations=0)  # a second run the same day replaces the day's count
    rows = await report(client, marketer, "segment-sizes")
    by_day = {(r["day"], r["segment_id"]): r["customers"] for r in rows}
    today, before = utcnow().date().isoformat(), yesterday.date().isoformat()
    assert len(rows) == 4 and by_day[(before, buyers)] == 1 and by_day[(today, buyers)] == 2
    assert sorted(v for (day, _), v in by_day.items() if day == today) == [2, 3]
    assert len(await report_csv(client, marketer, "segment-sizes")) == 4
