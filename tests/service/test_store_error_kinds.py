"""A constraint error is the request's fault (4xx naming the field); only a store that is gone is a 503."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.exc import IntegrityError

from bot.app import error_middleware

API = "/api/v1"


async def test_patching_a_customers_lifecycle_stage_to_null_is_a_422_naming_the_field(
        client: TestClient, admin: dict[str, str]) -> None:
    created = await (await client.post(f"{API}/customers", json={"name": "Kim"}, headers=admin)).json()
    response = await client.patch(f"{API}/customers/{created['id']}", json={"lifecycle_stage": None}, headers=admin)
    assert response.status == 422
    assert (await response.json())["error"]["field"] == "lifecycle_stage"
    still = await (await client.get(f"{API}/customers/{created['id']}", headers=admin)).json()
    assert still["lifecycle_stage"] == "lead"


async def raising(aiohttp_client: Any, exc: Exception) -> Any:
    async def handler(request: web.Request) -> web.Response:
        raise exc

    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/x", handler)
    client = await aiohttp_client(app)
    return await client.post("/x")


async def test_a_not_null_violation_is_a_422_naming_the_column(aiohttp_client: Any) -> None:
    import sqlite3
    response = await raising(aiohttp_client, IntegrityError("UPDATE customers ...", {}, sqlite3.IntegrityError(
        "NOT NULL constraint failed: customers.lifecycle_stage")))
    assert response.status == 422 and "Retry-After" not in response.headers
    assert (await response.json())["error"]["field"] == "lifecycle_stage"


async def test_a_unique_violation_is_a_409_naming_the_column(aiohttp_client: Any) -> None:
    import sqlite3
    response = await raising(aiohttp_client, IntegrityError("INSERT INTO teams ...", {}, sqlite3.IntegrityError(
        "UNIQUE constraint failed: teams.name")))
    assert response.status == 409
    assert (await response.json())["error"] == {"code": "conflict", "message": "name conflicts with an existing record", "field": "name"}
