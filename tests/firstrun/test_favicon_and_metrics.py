"""Small things a new user notices: a favicon on every page, and HTTP requests counted per route template and status."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.service.conftest import client  # noqa: F401 - shared fixtures


async def test_favicon_ico_is_served_and_the_pages_link_it(client: TestClient) -> None:
    icon = await client.get("/favicon.ico")
    assert icon.status == 200 and icon.headers["Content-Type"] == "image/svg+xml"
    assert (await icon.text()).startswith("<svg")
    assert 'rel="icon"' in await (await client.get("/console/login")).text()
    assert 'rel="icon"' in await (await client.get("/webchat")).text()


async def test_http_requests_are_counted_by_route_template_and_status(client: TestClient) -> None:
    await client.post("/webhooks/rest/webhook", json={"sender": "m1", "message": "hello"})
    await client.post("/webhooks/rest/webhook", json={"sender": "m2"})
    await client.get("/api/v1/customers/0190a000-0000-7000-8000-000000000001")
    await client.get("/no/such/page/42")
    text = await (await client.get("/metrics")).text()
    assert 'dangol_http_requests_total{route="/webhooks/rest/webhook",status="200"} 1.0' in text
    assert 'dangol_http_requests_total{route="/webhooks/rest/webhook",status="400"} 1.0' in text
    assert 'dangol_http_requests_total{route="/api/v1/customers/{customer_id}",status="401"} 1.0' in text
    assert 'dangol_http_requests_total{route="unmatched",status="404"} 1.0' in text
    assert "/no/such/page/42" not in text
