"""A real Dangol app with the Telegram channel on, sending to a loopback Bot API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.services import SERVICES
from bot.app import create_app
from bot.config import load_settings
from crm_store.database import Database
from tests.fakes.base import eventually  # noqa: F401 - re-exported for the Telegram tests
from tests.fakes.telegram import FakeTelegram

TOKEN = "123456:TEST-token"
SECRET = "s3cret_webhook-token"
HERE = Path(__file__).resolve().parent


@pytest.fixture
def tg_fixture(shared_dir: Path) -> Callable[[str], dict[str, Any]]:
    """A payload from ../shared/fixtures/telegram (read there, never copied)."""
    def load(name: str) -> dict[str, Any]:
        return json.loads((shared_dir / "fixtures" / "telegram" / name).read_text(encoding="utf-8"))
    return load


def own_fixture(name: str) -> dict[str, Any]:
    """One of ours, for what ../shared has no real capture of (see fixtures/README.md)."""
    return json.loads((HERE / "fixtures" / name).read_text(encoding="utf-8"))


def as_update(message: dict[str, Any], update_id: int = 900001) -> dict[str, Any]:
    """Wrap a bare Message fixture in the Update envelope Telegram posts."""
    return {"update_id": update_id, "message": message}


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN) as fake:
        yield fake  # type: ignore[misc]


def telegram_settings(database_url: str, fake: FakeTelegram, **overrides: Any) -> Any:
    return load_settings(database_url=database_url, telegram_token=TOKEN, telegram_webhook_secret=SECRET,
                         telegram_api_url=fake.url, delivery_backoff_base=0.05, **overrides)


@pytest.fixture
async def client(aiohttp_client: Any, sqlite_url: str, fake_telegram: FakeTelegram) -> TestClient:
    """Behaviour that does not depend on the database kind runs on SQLite only (speed)."""
    return await aiohttp_client(create_app(telegram_settings(sqlite_url, fake_telegram)))


@pytest.fixture
async def any_db_client(aiohttp_client: Any, db_url: str, fake_telegram: FakeTelegram) -> TestClient:
    """The same app on SQLite and on PostgreSQL, for what the store guarantees."""
    return await aiohttp_client(create_app(telegram_settings(db_url, fake_telegram)))


def store_of(client: TestClient) -> Database:
    db = client.app[SERVICES].db
    assert db is not None
    return db


@pytest.fixture
def post_update(client: TestClient) -> Callable[..., Awaitable[Any]]:
    return make_poster(client)


def make_poster(client: TestClient) -> Callable[..., Awaitable[Any]]:
    async def post(update: dict[str, Any], secret: str | None = SECRET) -> Any:
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        return await client.post("/webhooks/telegram", json=update, headers=headers)
    return post
