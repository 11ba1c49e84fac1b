"""The /api/v1 contract: tokens, roles, customers, conversations, errors, OpenAPI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from crm_store.database import Database
from tests.helpers import count, total_rows

API = "/api/v1"


async def test_a_request_without_a_token_is_refused(client: TestClient) -> None:
    response = await client.get(f"{API}/customers")
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_wrong_token_is_refused_and_writes_nothing(client: TestClient, store: Database) -> None:
    before = await total_rows(store)
    response = await client.post(f"{API}/customers", json={"name": "x"}, headers={"Authorization": "Bearer dgl_wrong"})
    assert response.status == 401
    assert await total_rows(store) == before


async def test_a_customer_is_created_and_read_back_with_korean_text(client: TestClient, admin: dict[str, str]) -> None:
    body = {"name": "김민수", "email": "Minsu@Example.com", "phone": "+82 10-1234-5678", "timezone": "Asia/Seoul",
            "locale": "ko-KR", "attributes": {"plan": "프리미엄"}, "tags": ["vip"]}
    created = await client.post(f"{API}/customers", json=body, headers=admin)
    assert created.status == 201
    customer = await created.json()
    got = await (await client.get(f"{API}/customers/{customer['id']}", headers=admin)).json()
    assert got["name"] == "김민수"
    assert got["email"] == "minsu@example.com"
    assert got["phone"] == "+821012345678"
    assert got["attributes"] == {"plan": "프리미엄"}
    assert got["tags"] == ["vip"]
    assert got["identities"] == [] and got["consents"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"phone": "010-1234"}, "phone"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"lifecycle_stage": "vip"}, "lifecycle_stage"),
        ({"tags": ["has space"]}, "tags"),
        ({"nickname": "x"}, "nickname"),
    ],
)
async def test_a_bad_customer_field_is_named_and_nothing_is_written(
    client: TestClient, store: Database, admin: dict[str, str], body: dict, field: str
) -> None:
    before = await count(store, "customers")
    response = await client.post(f"{API}/customers", json=body, headers=admin)
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["field"] == field
    assert await count(store, "customers") == before


async def test_a_second_customer_with_the_same_email_is_a_conflict(client: TestClient, admin: dict[str, str]) -> None:
    await client.post(f"{API}/customers", json={"email": "a@example.com"}, headers=admin)
    response = await client.post(f"{API}/customers", json={"email": "a@example.com"}, headers=admin)
    assert response.status == 409
    assert (await response.json())["error"]["field"] == "email"


async def test_customers_are_listed_page_by_page_without_gaps_or_repeats(client: TestClient, admin: dict[str, str]) -> None:
    for i in range(7):
        await client.post(f"{API}/customers", json={"name": f"c{i}"}, headers=admin)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get(f"{API}/customers", params=params, headers=admin)).json()
        seen += [c["name"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"c{i}" for i in reversed(range(7))]


async def test_customers_are_filtered_by_tag_email_and_search(client: TestClient, admin: dict[str, str]) -> None:
    await client.post(f"{API}/customers", json={"name": "Ann", "email": "ann@example.com", "tags": ["vip"]}, headers=admin)
    await client.post(f"{API}/customers", json={"name": "Bob", "email": "bob@example.com"}, headers=admin)

    async def names(**params: str) -> list[str]:
        page = await (await client.get(f"{API}/customers", params=params, headers=admin)).json()
        return [c["name"] for c in page["items"]]

    assert await names(tag="vip") == ["Ann"]
    assert await names(email="BOB@example.com") == ["Bob"]
    assert await names(q="an") == ["Ann"]


async def test_a_bad_cursor_or_limit_is_a_400_naming_it(client: TestClient, admin: dict[str, str]) -> None:
    bad_cursor = await client.get(f"{API}/customers", params={"cursor": "zzz"}, headers=admin)
    assert bad_cursor.status == 400 and (await bad_cursor.json())["error"]["field"] == "cursor"
    bad_limit = await client.get(f"{API}/customers", params={"limit": "0"}, headers=admin)
    assert bad_limit.status == 400 and (await bad_limit.json())["error"]["field"] == "limit"


async def test_attributes_merge_and_tags_change(client: TestClient, admin: dict[str, str]) -> None:
    customer = await (await client.post(f"{API}/customers", json={"attributes": {"a": 1, "b": 2}, "tags": ["x"]}, headers=admin)).json()
    patch = {"attributes": {"b": None, "c": "삼"}, "add_tags": ["y"], "remove_tags": ["x"], "lifecycle_stage": "customer"}
    updated = await (await client.patch(f"{API}/customers/{customer['id']}", json=patch, headers=admin)).json()
    assert updated["attributes"] == {"a": 1, "c": "삼"}
    assert updated["tags"] == ["y"]
    assert updated["lifecycle_stage"] == "customer"


async def test_an_unknown_customer_is_a_404(client: TestClient, admin: dict[str, str]) -> None:
    missing = await client.get(f"{API}/customers/01a209f4-aa1c-70e7-9b52-1562a6311764", headers=admin)
    assert missing.status == 404
    garbage = await client.get(f"{API}/customers/not-an-id", headers=admin)
    assert garbage.status == 404


async def test_merging_moves_identities_and_conversations_to_one_customer(
    client: TestClient, store: Database, admin: dict[str, str]
) -> None:
    await client.post("/webhooks/rest/webhook", json={"sender": "phone-user", "message": "hello"})
    await client.post("/webhooks/rest/webhook", json={"sender": "web-user", "message": "hello"})
    customers = (await (await client.get(f"{API}/customers", headers=admin)).json())["items"]
    keep, other = customers[0]["id"], customers[1]["id"]
    merged = await (await client.post(f"{API}/customers/{keep}/merge", json={"other_id": other}, headers=admin)).json()
    assert sorted(i["external_id"] for i in merged["identities"]) == ["phone-user", "web-user"]
    assert await count(store, "customers") == 1
    conversations = await (await client.get(f"{API}/conversations", params={"customer_id": keep}, headers=admin)).json()
    messages = await (await client.get(f"{API}/conversations/{conversations['items'][0]['id']}/messages", headers=admin)).json()
    assert sum(m["direction"] == "in" for m in messages["items"]) == 2
    assert (await client.get(f"{API}/customers/{other}", headers=admin)).status == 404


async def test_conversations_are_listed_by_status_with_their_messages(client: TestClient, admin: dict[str, str]) -> None:
    await client.post("/webhooks/rest/webhook", json={"sender": "u1", "message": "hello"})
    page = await (await client.get(f"{API}/conversations", params={"status": "bot"}, headers=admin)).json()
    assert len(page["items"]) == 1
    conversation = page["items"][0]
    assert conversation["channel"] == "rest"
    messages = (await (await client.get(f"{API}/conversations/{conversation['id']}/messages", headers=admin)).json())["items"]
    assert [m["direction"] for m in messages][:2] == ["in", "out"]
    assert messages[0]["text"] == "hello"
    assert (await (await client.get(f"{API}/conversations", params={"status": "resolved"}, headers=admin)).json())["items"] == []


async def test_a_marketer_cannot_read_conversations_but_can_read_customers(
    client: TestClient, token_for: Callable[[str], Awaitable[str]]
) -> None:
    marketer = {"Authorization": f"Bearer {await token_for('marketer')}"}
    assert (await client.get(f"{API}/conversations", headers=marketer)).status == 403
    assert (await client.get(f"{API}/customers", headers=marketer)).status == 200
    assert (await client.post(f"{API}/customers", json={"name": "x"}, headers=marketer)).status == 403


async def test_the_openapi_document_describes_every_api_route(client: TestClient) -> None:
    document = await (await client.get(f"{API}/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    described = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    mounted = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource is not None and route.resource.canonical.startswith(API) and route.method != "HEAD"
        and not route.resource.canonical.endswith("openapi.json")
    }
    assert mounted and mounted == described
    for ops in document["paths"].values():
        for op in ops.values():
            for ref in [r["content"]["application/json"]["schema"]["$ref"] for r in op["responses"].values() if "content" in r]:
                assert ref.split("/")[-1] in document["components"]["schemas"]
