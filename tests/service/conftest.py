"""An app under test: the real aiohttp app on a loopback test server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.services import SERVICES
from bot.config import CoreSettings
from dangol.app import build_app
from crm_store import agents
from crm_store.database import Database

ClientFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def client(aiohttp_client: Any, make_settings: Callable[..., CoreSettings]) -> TestClient:
    return await aiohttp_client(build_app(make_settings()))


@pytest.fixture
def store(client: TestClient) -> Database:
    db = client.app[SERVICES].db
    assert db is not None
    return db


@pytest.fixture
def token_for(store: Database) -> Callable[[str], Awaitable[str]]:
    async def make(role: str) -> str:
        _, token = await agents.create_agent(store, email=f"{role}-{id(make)}@example.com", name=role.title(), role=role)
        return token

    return make


@pytest.fixture
async def admin(token_for: Callable[[str], Awaitable[str]]) -> dict[str, str]:
    return {"Authorization": f"Bearer {await token_for('admin')}"}
