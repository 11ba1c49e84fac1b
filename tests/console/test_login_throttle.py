"""Login attempts are counted before the password is checked, atomically, per e-mail and address, with back-off."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.config import CoreSettings
from bot.services import SERVICES
from crm_store import agents, login_throttle
from crm_store.database import Database
from dangol.app import build_app
from tests.console.conftest import PASSWORD, csrf_of

EMAIL = "minji@example.com"


@pytest.fixture
async def proxied(aiohttp_client: Any, make_settings: Callable[..., CoreSettings]) -> TestClient:
    """The app behind a trusted proxy on loopback, so each test request can come from an address of its choice."""
    client = await aiohttp_client(build_app(make_settings(trusted_proxies="127.0.0.0/8")))
    await agents.create_agent(client.app[SERVICES].db, email=EMAIL, name="Minji", role="agent", password=PASSWORD)
    return client


async def attempt(client: TestClient, password: str, address: str) -> int:
    headers = {"X-Forwarded-For": address}
    form = await (await client.get("/console/login", headers=headers)).text()
    response = await client.post("/console/login", headers=headers, allow_redirects=False,
                                 data={"email": EMAIL, "password": password, "csrf": csrf_of(form)})
    await response.read()
    return response.status


async def test_100_parallel_guesses_check_at_most_the_limit(proxied: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    checked = 0
    real = agents.agent_for_password

    async def counting(db: Database, email: str, password: str) -> Any:
        nonlocal checked
        checked += 1
        await asyncio.sleep(0.05)  # a password check takes time: the race window the counter must close
        return await real(db, email, password)

    monkeypatch.setattr(agents, "agent_for_password", counting)
    statuses = await asyncio.gather(*(attempt(proxied, PASSWORD if i == 77 else f"guess-{i}", "198.51.100.1") for i in range(100)))
    assert checked <= login_throttle.PER_EMAIL_AND_ADDRESS.free
    assert statuses.count(429) >= 100 - login_throttle.PER_EMAIL_AND_ADDRESS.free


async def test_an_attacker_elsewhere_does_not_lock_the_owner_out(proxied: TestClient) -> None:
    for i in range(login_throttle.PER_EMAIL_AND_ADDRESS.free + 3):
        await attempt(proxied, f"guess-{i}", "203.0.113.66")
    assert await attempt(proxied, "guess-x", "203.0.113.66") == 429
    assert await attempt(proxied, PASSWORD, "198.51.100.20") == 303


async def test_the_wait_grows_exponentially_and_a_refused_attempt_does_not_lengthen_it(db: Database) -> None:
    backoff = login_throttle.PER_EMAIL_AND_ADDRESS
    for _ in range(backoff.free):
        assert await login_throttle.take_attempt(db, EMAIL, "192.0.2.1") == 0
    first = await login_throttle.take_attempt(db, EMAIL, "192.0.2.1")
    assert backoff.base - 2 <= first <= backoff.base + 1
    again = await login_throttle.take_attempt(db, EMAIL, "192.0.2.1")
    assert again <= first


async def test_two_processes_sharing_the_database_share_the_count(db_url: str) -> None:
    first, second = Database(db_url), Database(db_url)
    try:
        results = await asyncio.gather(*(login_throttle.take_attempt(first if i % 2 else second, "shared@example.com", "192.0.2.9")
                                         for i in range(40)))
    finally:
        await first.dispose()
        await second.dispose()
    assert results.count(0) == login_throttle.PER_EMAIL_AND_ADDRESS.free
