"""The insights' scores as segment rules (``scores.<name>``, compared in the database) and in templates
(``{{ customer.scores.<name> }}``, ``{{ recommendations[0].name }}``), on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import insert

from crm_store.columns import utcnow
from crm_store.database import Database
from crm_store.insight_tables import SCORE_COLUMNS, CustomerRecommendation, CustomerScores
from tests.campaigns.conftest import add_customers
from tests.campaigns.test_campaign_api import make_campaign, make_segment, recording_worker, send_and_drain
from tests.campaigns.test_segments import segment_count
from tests.helpers import rows

API = "/api/v1"
#: name -> the scores a scoring run would have written (None: not scored, e.g. a customer added since)
SCORED: dict[str, dict[str, Any] | None] = {
    "Ann": {"rfm_cell": "at_risk", "rfm_r": 2, "rfm_f": 3, "rfm_m": 5, "clv": 340.5, "p_alive": 0.41, "expected_purchases_90d": 0.8,
            "churn_risk": 0.59, "cluster": 1, "lead_score": 56.0},
    "Bob": {"rfm_cell": "at_risk", "rfm_r": 1, "rfm_f": 4, "rfm_m": 2, "clv": 80.0, "p_alive": 0.3, "expected_purchases_90d": 0.2,
            "churn_risk": 0.7, "cluster": 1, "lead_score": 24.0},
    "Cy": {"rfm_cell": "champions", "rfm_r": 5, "rfm_f": 5, "rfm_m": 5, "clv": 910.0, "p_alive": 0.97, "expected_purchases_90d": 3.1,
           "churn_risk": 0.03, "cluster": 0, "lead_score": 80.0},
    "Di": {"lead_score": 8.0},  # no purchase: only the engagement scores
    "Ed": None,
}


async def scored_customers(store: Database, **extra: Any) -> dict[str, uuid.UUID]:
    names = list(SCORED)
    ids = await add_customers(store, [{"name": n, "channels": {"telegram": str(i)}, "consent": True, **extra} for i, n in enumerate(names)])
    by_name = dict(zip(names, ids, strict=True))
    score_rows = [{"customer_id": by_name[n], **s} for n, s in SCORED.items() if s is not None]
    recs = [{"customer_id": by_name["Ann"], "rank": 0, "sku": "22423", "name": "REGENCY CAKESTAND 3 TIER", "score": 0.8},
            {"customer_id": by_name["Ann"], "rank": 1, "sku": "85123A", "name": None, "score": 0.5}]

    def write(conn: Any) -> None:
        conn.execute(insert(CustomerScores.__table__), [{**dict.fromkeys(SCORE_COLUMNS), **row, "updated_at": utcnow()} for row in score_rows])
        conn.execute(insert(CustomerRecommendation.__table__), recs)

    await store.run_in_transaction(write)
    return by_name


@pytest.mark.parametrize(("rule", "names"), [
    ({"all": [{"field": "scores.rfm_cell", "op": "eq", "value": "at_risk"}, {"field": "scores.clv", "op": "gt", "value": 100}]}, {"Ann"}),
    ({"field": "scores.rfm_cell", "op": "in", "value": ["at_risk", "champions"]}, {"Ann", "Bob", "Cy"}),
    ({"field": "scores.rfm_cell", "op": "ne", "value": "champions"}, {"Ann", "Bob", "Di", "Ed"}),
    ({"field": "scores.clv", "op": "lte", "value": 80}, {"Bob"}),
    ({"field": "scores.p_alive", "op": "lt", "value": 0.5}, {"Ann", "Bob"}),
    ({"field": "scores.expected_purchases_90d", "op": "gte", "value": 0.8}, {"Ann", "Cy"}),
    ({"field": "scores.churn_risk", "op": "gt", "value": 0.6}, {"Bob"}),
    ({"field": "scores.cluster", "op": "eq", "value": 1}, {"Ann", "Bob"}),
    ({"field": "scores.lead_score", "op": "lt", "value": 30}, {"Bob", "Di"}),
    ({"field": "scores.rfm_r", "op": "lte", "value": 2}, {"Ann", "Bob"}),
    ({"field": "scores.rfm_f", "op": "eq", "value": 5}, {"Cy"}),
    ({"field": "scores.rfm_m", "op": "gte", "value": 5}, {"Ann", "Cy"}),
    ({"field": "scores.clv", "op": "exists", "value": False}, {"Di", "Ed"}),
])
async def test_a_score_rule_selects_its_members_in_the_database(client: TestClient, store: Database, marketer: dict[str, str],
                                                                 rule: dict[str, Any], names: set[str]) -> None:
    await scored_customers(store)
    assert await segment_count(client, marketer, rule) == len(names)
    created = await client.post(f"{API}/segments", json={"name": "s", "rule": rule}, headers=marketer)
    assert created.status == 201, await created.text()
    preview = await (await client.get(f"{API}/segments/{(await created.json())['id']}/preview", headers=marketer)).json()
    assert {s["name"] for s in preview["sample"]} == names


@pytest.mark.parametrize(("rule", "named"), [
    ({"field": "scores.lifetime_value", "op": "gt", "value": 100}, "scores.lifetime_value"),
    ({"field": "scores.clv", "op": "gt", "value": "a lot"}, "number"),
    ({"field": "scores.clv", "op": "contains", "value": "1"}, "text only"),
])
async def test_an_unknown_score_or_a_bad_comparison_is_a_422_naming_the_field(client: TestClient, marketer: dict[str, str],
                                                                              rule: dict[str, Any], named: str) -> None:
    response = await client.post(f"{API}/segments/count", json={"rule": rule}, headers=marketer)
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["field"].startswith("rule.") and named in error["message"]


async def test_a_campaign_message_reads_scores_and_the_first_recommendation(client: TestClient, store: Database,
                                                                            marketer: dict[str, str]) -> None:
    await scored_customers(store)
    segment = await make_segment(client, marketer, {"field": "scores.rfm_cell", "op": "eq", "value": "at_risk"})
    campaign = await make_campaign(client, marketer, segment, channels=["telegram"], message={
        "text": "{{ customer.name }} ({{ customer.scores.rfm_cell }}, {{ customer.scores.clv | round | int }}): "
                "{{ recommendations[0].name | title }}"})
    worker, channels = recording_worker(store, ("telegram",))
    report = await send_and_drain(client, store, marketer, campaign["id"], worker)
    assert [m.text for m in channels["telegram"].sent] == ["Ann (at_risk, 340): Regency Cakestand 3 Tier"]
    assert report["skipped"]["render_error"] == 1  # Bob has no recommendation
    (skip,) = await rows(store, "campaign_skips")
    assert skip.detail.endswith("no element 0 (the customer has 0 recommendations)")


async def test_a_score_the_customer_lacks_fails_the_render_unless_a_default_is_given(client: TestClient, store: Database,
                                                                                    marketer: dict[str, str]) -> None:
    by_name = await scored_customers(store)
    message = {"text": "{{ customer.scores.clv | default('no', true) }} / {{ recommendations[1].name }}"}
    shown = await (await client.post(f"{API}/templates/preview", headers=marketer, json={
        "message": message, "customer_id": str(by_name["Ann"]), "channels": ["telegram"]})).json()
    assert shown["text"] == "340.5 / 85123A"  # an item without a catalogue name goes by its SKU
    bare = await (await client.post(f"{API}/templates/preview", headers=marketer, json={
        "message": {"text": "{{ customer.scores.clv }}"}, "customer_id": str(by_name["Ed"]), "channels": ["telegram"]})).json()
    assert bare["would_send"] is False and bare["skip_reason"] == "render_error" and "clv" in bare["detail"]
