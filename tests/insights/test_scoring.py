"""A scoring run writes RFM cells, predictions, clusters, lead scores and recommendations to every customer."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from dangol.insights_jobs import score_periodically
from crm_store.database import Database
from crm_store.events import EventIn, store_events
from crm_store.insight_tables import CustomerKey
from crm_store.models import Customer
from crm_store.scores import customer_insights
from insights.scoring import score_customers

AS_OF = dt.datetime(2024, 12, 31, 23, 59, tzinfo=dt.UTC)


def purchase(key: str, day: dt.date, amount: float, skus: list[str] = (), n: int = 0) -> EventIn:  # type: ignore[assignment]
    return EventIn(type="purchase", occurred_at=dt.datetime.combine(day, dt.time(12), dt.UTC), customer_key=key,
                   external_id=f"{key}-{day}-{n}", amount=amount, items=[{"sku": s, "name": f"item {s}", "quantity": 1, "price": 1.0} for s in skus])


def history() -> list[EventIn]:
    """Forty customers: twenty regulars of 2024 to December, twenty who bought once long ago."""
    events = []
    for c in range(20):
        for month in range(1, 13):
            events.append(purchase(f"regular-{c}", dt.date(2024, month, 1 + c), 50.0 + c, ["tea", "cup"] if c % 2 else ["tea", "pot"], month))
    for c in range(20):
        events.append(purchase(f"once-{c}", dt.date(2023, 1, 1 + c), 10.0, ["tea"]))
    events.append(EventIn(type="return", occurred_at=AS_OF - dt.timedelta(days=3), customer_key="regular-0", external_id="ret-1", amount=-20.0))
    return events


async def keys(db: Database) -> dict[str, Any]:
    async with db.read() as conn:
        return {r.external_id: r.customer_id for r in await conn.execute(select(CustomerKey.__table__))}


async def insights_of(db: Database, customer: Any) -> dict[str, Any]:
    async with db.read() as conn:
        return await conn.run_sync(customer_insights, customer)


async def test_regulars_are_champions_and_one_time_buyers_of_long_ago_are_lost(db: Database) -> None:
    await db.upgrade()
    await db.run_in_transaction(store_events, history())
    run = await score_customers(db, AS_OF)
    assert run.customers == 40 and run.buyers == 40 and run.bgnbd is not None
    ids = await keys(db)
    regular = (await insights_of(db, ids["regular-19"]))["scores"]
    gone = (await insights_of(db, ids["once-0"]))["scores"]
    assert regular["rfm_cell"] in ("champions", "loyal") and regular["rfm_r"] >= 4 and regular["rfm_f"] >= 4
    assert gone["rfm_cell"] in ("lost", "hibernating") and gone["rfm_r"] <= 2
    assert regular["expected_purchases_90d"] > gone["expected_purchases_90d"]
    assert regular["clv"] > gone["clv"] >= 0 and 0 <= gone["churn_risk"] <= 1
    assert regular["frequency"] == 12 and (await insights_of(db, ids["regular-0"]))["scores"]["monetary"] == 12 * 50.0 - 20.0
    assert regular["cluster"] is not None and regular["cluster_description"]


async def test_recommendations_come_from_co_purchases_and_leave_out_what_was_bought(db: Database) -> None:
    await db.upgrade()
    await db.run_in_transaction(store_events, history())
    await score_customers(db, AS_OF)
    ids = await keys(db)
    once = (await insights_of(db, ids["once-3"]))["recommendations"]
    assert once and once[0]["name"].startswith("item ") and {r["sku"] for r in once} <= {"cup", "pot"}
    odd = (await insights_of(db, ids["regular-1"]))["recommendations"]
    assert [r["sku"] for r in odd] == ["pot"]


async def test_a_second_run_replaces_the_first(db: Database) -> None:
    await db.upgrade()
    await db.run_in_transaction(store_events, history())
    await score_customers(db, AS_OF)
    await score_customers(db, AS_OF)
    from tests.helpers import count

    assert await count(db, "customer_scores") == 40
    assert await count(db, "customer_recommendations") == 20 * 2 + 20 * 1  # once: cup and pot; regulars: the other one


async def test_scoring_without_any_purchase_still_gives_lead_scores(db: Database) -> None:
    await db.upgrade()
    await db.run_in_transaction(store_events, [EventIn(type="page_view", occurred_at=AS_OF - dt.timedelta(days=1), customer_key="v-1",
                                                       external_id="pv-1")])
    run = await score_customers(db, AS_OF)
    scores = (await insights_of(db, (await keys(db))["v-1"]))["scores"]
    assert run.buyers == 0 and scores["lead_score"] == 3.0 and scores["rfm_cell"] is None


async def test_the_periodic_job_scores_again_after_each_interval(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    runs: list[float] = []

    async def fake_run(_: Database) -> None:
        runs.append(asyncio.get_running_loop().time())
        if len(runs) == 1:
            raise RuntimeError("a failed run is tried again")

    task = asyncio.create_task(score_periodically(db, 0.05, fake_run))
    try:
        for _ in range(100):
            await asyncio.sleep(0.02)
            if len(runs) >= 3:
                break
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await db.dispose()
    assert len(runs) >= 3


async def test_scoring_on_demand_through_the_api(client: TestClient, admin: dict[str, str], token_for: Callable[..., Any]) -> None:
    await client.post("/api/v1/events", json={"events": [
        {"event_id": f"p{i}", "customer_key": "k", "type": "purchase", "occurred_at": f"2024-0{i}-01T00:00:00Z", "amount": 5}
        for i in range(1, 4)]}, headers=admin)
    response = await client.post("/api/v1/insights/score", headers=admin)
    assert response.status == 200 and (await response.json())["buyers"] == 1
    agent = {"Authorization": f"Bearer {await token_for('agent')}"}
    assert (await client.post("/api/v1/insights/score", headers=agent)).status == 403


async def stages(db: Database) -> dict[str, str]:
    async with db.read() as conn:
        found = await conn.execute(select(CustomerKey.external_id, Customer.lifecycle_stage).join(Customer, Customer.id == CustomerKey.customer_id))
        return dict(found.all())


async def test_a_regular_who_stopped_buying_is_moved_to_churned_and_a_new_purchase_brings_them_back(db: Database) -> None:
    """Lifecycle stages follow the model and the events: below CHURNED_BELOW chance of being alive a
    customer is churned; their next purchase makes them a customer again."""
    await db.upgrade()
    lapsed = [purchase(f"lapsed-{c}", dt.date(2022, month, 1 + c), 40.0, ["tea"], month) for c in range(10) for month in range(1, 13)]
    await db.run_in_transaction(store_events, history() + lapsed)
    run = await score_customers(db, AS_OF, recommendations=0)
    now = await stages(db)
    assert {now[f"lapsed-{c}"] for c in range(10)} == {"churned"} and run.churned == 10
    assert {now[f"regular-{c}"] for c in range(20)} == {"customer"}
    await db.run_in_transaction(store_events, [purchase("lapsed-0", AS_OF.date(), 40.0, ["tea"], 99)])
    assert (await stages(db))["lapsed-0"] == "customer"
