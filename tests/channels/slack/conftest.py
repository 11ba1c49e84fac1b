"""A real Dangol app with the Slack channel on, its Web API calls going to a loopback fake."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from slack_sdk.signature import SignatureVerifier

from bot.services import SERVICES
from bot.app import create_app
from bot.config import load_settings
from crm_store.database import Database
from tests.fakes.slack import FakeSlack

BOT_TOKEN = "xoxb-test-token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def slack_fixture(shared_dir: Path) -> Callable[[str], dict[str, Any]]:
    """A payload from ../shared/fixtures/slack (read there, never copied)."""
    def load(name: str) -> dict[str, Any]:
        return json.loads((shared_dir / "fixtures" / "slack" / name).read_text(encoding="utf-8"))
    return load


@pytest.fixture
async def fake_slack(slack_fixture: Callable[[str], dict[str, Any]]) -> AsyncIterator[FakeSlack]:
    fake = FakeSlack(BOT_TOKEN)
    await fake.start()
    yield fake
    await fake.close()


def slack_settings(database_url: str, fake: FakeSlack, **overrides: Any) -> Any:
    return load_settings(database_url=database_url, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
                         slack_api_url=fake.api_url, delivery_backoff_base=0.05, **overrides)


@pytest.fixture
async def client(aiohttp_client: Any, sqlite_url: str, fake_slack: FakeSlack) -> TestClient:
    return await aiohttp_client(create_app(slack_settings(sqlite_url, fake_slack)))


@pytest.fixture
async def any_db_client(aiohttp_client: Any, db_url: str, fake_slack: FakeSlack) -> TestClient:
    return await aiohttp_client(create_app(slack_settings(db_url, fake_slack)))


def store_of(client: TestClient) -> Database:
    db = client.app[SERVICES].db
    assert db is not None
    return db


def signed(body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None, **extra: str) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature, **extra}


def make_senders(client: TestClient) -> tuple[Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]]:
    async def event(payload: dict[str, Any], **sign: Any) -> Any:
        body = json.dumps(payload)
        headers = {"Content-Type": "application/json", **signed(body, **sign)}
        return await client.post("/webhooks/slack/events", data=body, headers=headers)

    async def interaction(payload: dict[str, Any], **sign: Any) -> Any:
        body = "payload=" + urllib.parse.quote(json.dumps(payload))
        headers = {"Content-Type": "application/x-www-form-urlencoded", **signed(body, **sign)}
        return await client.post("/webhooks/slack/interactions", data=body, headers=headers)

    return event, interaction


@pytest.fixture
def send_event(client: TestClient) -> Callable[..., Awaitable[Any]]:
    return make_senders(client)[0]


@pytest.fixture
def send_interaction(client: TestClient) -> Callable[..., Awaitable[Any]]:
    return make_senders(client)[1]
