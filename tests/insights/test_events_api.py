"""POST /api/v1/events: a batch is stored item by item; a bad item fails alone."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from crm_store.database import Database
from tests.helpers import count

API = "/api/v1"


async def test_good_items_are_stored_and_bad_ones_reported_by_index(client: TestClient, admin: dict[str, str], store: Database) -> None:
    batch = {"events": [
        {"event_id": "o-1", "customer_key": "shop-7", "type": "purchase", "occurred_at": "2024-05-01T12:00:00+09:00",
         "amount": 30000, "currency": "krw", "items": [{"sku": "T-1", "name": "찻잔", "quantity": 1, "price": 30000}]},
        {"event_id": "o-2", "customer_key": "shop-7", "type": "page_view", "occurred_at": "not a time"},
        "not an object",
        {"event_id": "o-3", "customer_id": "00000000-0000-7000-8000-000000000000", "type": "signup", "occurred_at": "2024-05-01T00:00:00Z"},
        {"event_id": "o-4", "customer_key": "shop-7", "type": "purchase", "occurred_at": "2024-05-02T00:00:00Z", "amount": "NaN"},
        {"event_id": "o-5", "customer_key": "shop-7", "type": "page_view", "occurred_at": "2024-05-02T00:00:00Z", "colour": "red"},
        {"event_id": "o-6", "type": "page_view", "occurred_at": "2024-05-02T00:00:00Z"},
        {"event_id": "o-7", "customer_key": "shop-8", "type": "signup", "occurred_at": "2024-05-03T00:00:00Z", "properties": {"via": "QR"}},
    ]}
    response = await client.post(f"{API}/events", json=batch, headers=admin)
    assert response.status == 200
    answer = await response.json()
    assert answer["accepted"] == 2 and answer["customers_created"] == 2
    errors = {e["index"]: e for e in answer["errors"]}
    assert set(errors) == {1, 2, 3, 4, 5, 6}
    assert errors[1]["field"] == "occurred_at" and errors[2]["message"] == "must be a JSON object"
    assert "does not exist" in errors[3]["message"] and errors[4]["field"] == "amount"
    assert errors[5]["message"] == "unknown field" and "customer_key" in errors[6]["message"]
    again = await (await client.post(f"{API}/events", json=batch, headers=admin)).json()
    assert again["accepted"] == 0 and again["duplicates"] == 2
    assert await count(store, "customer_events") == 2


async def test_a_batch_that_is_not_a_list_of_events_is_refused_naming_the_field(client: TestClient, admin: dict[str, str]) -> None:
    for body, field in (({"events": []}, "events"), ({"events": "x"}, "events"), ({"items": []}, "events")):
        response = await client.post(f"{API}/events", json=body, headers=admin)
        assert response.status == 422, body
        assert (await response.json())["error"]["field"] == field


async def test_a_customer_s_insights_are_empty_before_scoring_and_404_for_nobody(client: TestClient, admin: dict[str, str]) -> None:
    created = await (await client.post(f"{API}/customers", json={"name": "Kim"}, headers=admin)).json()
    got = await (await client.get(f"{API}/customers/{created['id']}/insights", headers=admin)).json()
    assert got == {"scores": {}, "recommendations": []}
    missing = await client.get(f"{API}/customers/00000000-0000-7000-8000-000000000000/insights", headers=admin)
    assert missing.status == 404
