"""Dashboards with Online Retail loaded: every chart's data from /api/v1/reports as JSON and CSV,
the reports page and a customer's value panel in a real browser at desktop and phone widths."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from crm_store import agents
from crm_store.database import Database
from crm_store.events import EventIn, store_events
from insights.scoring import score_customers
from insights.sources import read_online_retail
from tests.conftest import ARTIFACTS

PASSWORD = "correct horse battery"
WAIT = 10_000


async def load_retail(store: Database, path: Path) -> None:
    events = [e for _, e in read_online_retail(path) if isinstance(e, EventIn)]
    await store.run_in_transaction(store_events, events)
    await score_customers(store, dt.datetime(2011, 12, 10, tzinfo=dt.UTC))


async def chat(client: TestClient, sender: str, text: str) -> None:
    response = await client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
    assert response.status == 200


async def load_with_visitors(client: TestClient, store: Database, path: Path) -> Database:
    await load_retail(store, path)
    for n in range(3):
        await chat(client, f"visitor-{n}", "hello")
    return store


@pytest.fixture
async def loaded(client: TestClient, store: Database, online_retail_tenth: Path) -> Database:
    """A tenth of Online Retail (its real distributions), for the checks of every report on both stores."""
    return await load_with_visitors(client, store, online_retail_tenth)


@pytest.fixture
async def loaded_whole(client: TestClient, store: Database, online_retail: Path) -> Database:
    """All of Online Retail, as the pages a person looks at show it."""
    return await load_with_visitors(client, store, online_retail)


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
async def test_every_report_is_served_as_json_and_csv(client: TestClient, admin: dict[str, str], loaded: Database) -> None:
    grid = await (await client.get("/api/v1/reports/rfm-grid", headers=admin)).json()
    assert grid["rows"] and all(1 <= r["rfm_r"] <= 5 and 1 <= r["rfm_f"] <= 5 for r in grid["rows"])
    countries = await (await client.get("/api/v1/reports/revenue-by-country", headers=admin)).json()
    assert countries["rows"][0]["country"] == "United Kingdom" and countries["rows"][0]["revenue"] > 0
    channels = await (await client.get("/api/v1/reports/conversations-by-channel", headers=admin)).json()
    assert sum(r["conversations"] for r in channels["rows"]) == 3
    response = await client.get("/api/v1/reports/clv-distribution?format=csv", headers=admin)
    assert response.status == 200 and response.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert rows and set(rows[0]) == {"bin", "from", "to", "customers", "clv"}
    # a window that ends before it starts is empty, not refused (the document cannot say one must precede the other)
    inverted = await client.get("/api/v1/reports/conversations-by-channel?since=2099-02-01T00:00:00Z&until=2099-01-01T00:00:00Z",
                                headers=admin)
    answer = await inverted.json()
    assert inverted.status == 200 and answer["since"] == answer["until"] and sum(r["conversations"] for r in answer["rows"]) == 0


async def open_console(browser: Any, client: TestClient, email: str, width: int) -> Any:
    context = await browser.new_context(viewport={"width": width, "height": 900})
    page = await context.new_page()
    await page.goto(str(client.server.make_url("/console/reports")))
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_selector("h1:text('Reports')", timeout=WAIT)
    return page


@pytest.mark.browser
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_reports_page_and_the_value_panel_render_in_the_browser(client: TestClient, loaded_whole: Database, browser: Any) -> None:
    await agents.create_agent(loaded_whole, email="mk@example.com", name="Marketer", role="marketer", password=PASSWORD)
    await segments_with_history(loaded_whole)
    await campaign_to(loaded_whole, "at risk")
    ARTIFACTS.mkdir(exist_ok=True)
    for width, name in ((1440, "desktop"), (390, "phone")):
        page = await open_console(browser, client, "mk@example.com", width)
        assert await page.locator("svg.chart").count() == 9
        for title in ("Campaign funnel", "Segment sizes over time"):
            assert "No data yet" not in await page.locator(f".chart-card:has-text('{title}')").inner_text()
        assert await page.locator("svg.chart rect").count() > 20  # the grid, bars and legends are drawn
        assert "No data yet" not in await page.locator(".chart-card:has-text('RFM grid')").inner_text()
        overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow > 1:
            print(await page.evaluate("""[...document.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""))
        assert overflow <= 1, f"the page scrolls sideways by {overflow}px at {width}px"
        await page.screenshot(path=str(ARTIFACTS / f"insights-reports-{name}.png"), full_page=True)
        await page.goto(str(client.server.make_url("/console/customers?q=")))
        await page.goto(str(client.server.make_url(await customer_with_recommendations(loaded_whole))))
        await page.wait_for_selector("h3:text('Value and prediction')", timeout=WAIT)
        assert await page.locator(".insights dt:text('CLV, 12 months')").count() == 1
        assert await page.locator(".insights .recs li").count() >= 1
        await page.screenshot(path=str(ARTIFACTS / f"insights-customer-{name}.png"), full_page=True)
        await page.context.close()


async def segments_with_history(db: Database) -> None:
    """Two segments on scores, counted as three daily scoring runs would have counted them."""
    from crm_store.segment_sizes import record_sizes
    from crm_store.segments import create_rule_segment

    await create_rule_segment(db, "at risk", {"field": "scores.rfm_cell", "op": "eq", "value": "at_risk"})
    await create_rule_segment(db, "champions", {"field": "scores.rfm_cell", "op": "eq", "value": "champions"})
    for days_ago in (2, 1, 0):
        await db.run_in_transaction(record_sizes, dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago))


async def campaign_to(db: Database, segment_name: str) -> None:
    """A service campaign run to a segment of Online Retail customers (none reachable on a channel: all targeted, none sent)."""
    import uuid

    from campaigns import service
    from crm_store.segments import list_segments

    segment = next(s for s in await list_segments(db) if s["name"] == segment_name)
    campaign = await service.create(db, {"name": "Win back", "segment_id": segment["id"], "purpose": "service", "channels": ["telegram"],
                                         "message": {"text": "We miss you, {{ customer.name | default('friend', true) }}"}}, None)
    await service.send(db, uuid.UUID(campaign["id"]))
    await service.tick(db)


async def customer_with_recommendations(db: Database) -> str:
    from sqlalchemy import select

    from crm_store.insight_tables import CustomerRecommendation, CustomerScores

    async with db.read() as conn:
        row = (await conn.execute(select(CustomerScores.customer_id).join(
            CustomerRecommendation.__table__, CustomerRecommendation.customer_id == CustomerScores.customer_id)
            .where(CustomerScores.frequency > 1).limit(1))).first()
    assert row is not None
    return f"/console/customers/{row[0]}"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_customers_csv_is_for_marketers_and_admins(client: TestClient, loaded: Database) -> None:
    from tests.console.conftest import log_in

    await agents.create_agent(loaded, email="mk2@example.com", name="M", role="marketer", password=PASSWORD)
    await log_in(client, "mk2@example.com")
    response = await client.get("/console/customers.csv")
    assert response.status == 200 and response.headers["Content-Disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert len(rows) > 10 and any(r["rfm_cell"] for r in rows)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_customers_csv_of_a_segment_holds_its_members_only(client: TestClient, loaded: Database) -> None:
    from crm_store.segments import count_rule, create_rule_segment
    from tests.console.conftest import log_in

    rule = {"field": "scores.rfm_cell", "op": "in", "value": ["champions", "loyal"]}
    segment = await create_rule_segment(loaded, "best", rule)
    await agents.create_agent(loaded, email="mk3@example.com", name="M", role="marketer", password=PASSWORD)
    await log_in(client, "mk3@example.com")
    response = await client.get(f"/console/customers.csv?segment={segment['id']}")
    assert response.status == 200 and segment["id"] in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert len(rows) == await count_rule(loaded, rule) > 0
    assert {r["rfm_cell"] for r in rows} == {"champions", "loyal"} and all(r["clv"] for r in rows)
    assert (await client.get("/console/customers.csv?segment=0192f5a0-0000-7000-8000-000000000000")).status == 404
