"""A segment on real scores: Online Retail (a tenth of its customers) imported and scored, then
"RFM cell = at risk and CLV > 100" counted by the database through the segments API, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient

from crm_store.database import Database
from tests.helpers import rows
from tests.insights.test_dashboards import load_retail



def at_risk_and_worth(clv: float) -> dict[str, object]:
    return {"all": [{"field": "scores.rfm_cell", "op": "eq", "value": "at_risk"}, {"field": "scores.clv", "op": "gt", "value": clv}]}


async def test_at_risk_customers_worth_more_than_100_are_counted_by_the_database(
        client: TestClient, store: Database, admin: dict[str, str], online_retail_tenth: Path) -> None:
    await load_retail(store, online_retail_tenth)
    scored = await rows(store, "customer_scores")
    counted = {}
    for clv in (100, 1000):
        response = await client.post("/api/v1/segments/count", json={"rule": at_risk_and_worth(clv)}, headers=admin)
        assert response.status == 200, await response.text()
        counted[clv] = (await response.json())["count"]
        assert counted[clv] == sum(1 for s in scored if s.rfm_cell == "at_risk" and s.clv is not None and s.clv > clv)
    assert counted[100] > counted[1000] > 0
