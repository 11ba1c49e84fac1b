"""Who wrote: users.info once per person, a verified e-mail; DANGOL_SLACK_* settings; Socket Mode."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.config import ConfigError, load_settings
from channels.registry import enabled_channels
from tests.channels.slack.conftest import BOT_TOKEN, SIGNING_SECRET, store_of
from tests.fakes.base import eventually
from tests.fakes.slack import FakeSlack
from tests.helpers import rows

Send = Any


def person(fake: FakeSlack, slack_fixture: Any, user_id: str = "U2147483697") -> dict[str, Any]:
    user = slack_fixture("api_users_info_ok.json")["user"]
    user["id"] = user_id
    fake.users[user_id] = user
    return user


async def test_the_sender_is_looked_up_once_and_their_verified_email_fills_the_customer(
    client: TestClient, send_event: Send, slack_fixture: Any, fake_slack: FakeSlack
) -> None:
    person(fake_slack, slack_fixture)
    im = slack_fixture("event_message_im.json")
    await send_event(im)
    await send_event({**im, "event_id": "Ev2", "event": {**im["event"], "ts": "1355517524.000001", "text": "again"}})
    [customer] = await rows(store_of(client), "customers")
    assert customer.email == "spengler@ghostbusters.example.com"
    assert (customer.first_name, customer.last_name, customer.timezone) == ("Egon", "Spengler", "America/Los_Angeles")
    assert len(fake_slack.called("users.info")) == 1


async def test_a_person_slack_cannot_describe_is_still_stored(client: TestClient, send_event: Send, slack_fixture: Any) -> None:
    await send_event(slack_fixture("event_message_im.json"))  # users.info answers user_not_found
    [customer] = await rows(store_of(client), "customers")
    assert customer.email is None
    assert len(await rows(store_of(client), "messages", direction="in")) == 1


def test_without_a_bot_token_the_channel_is_off(sqlite_url: str) -> None:
    assert "slack" not in {c.name for c in enabled_channels(load_settings(database_url=sqlite_url))}


def test_a_bot_token_without_a_signing_secret_stops_the_start(sqlite_url: str) -> None:
    with pytest.raises(ConfigError, match="DANGOL_SLACK_SIGNING_SECRET is required when DANGOL_SLACK_BOT_TOKEN is set"):
        load_settings(database_url=sqlite_url, slack_bot_token=BOT_TOKEN)


def test_a_signing_secret_without_a_bot_token_is_reported(sqlite_url: str) -> None:
    with pytest.raises(ConfigError, match="DANGOL_SLACK_BOT_TOKEN is required when DANGOL_SLACK_SIGNING_SECRET is set"):
        load_settings(database_url=sqlite_url, slack_signing_secret=SIGNING_SECRET)


def test_socket_mode_needs_no_signing_secret(sqlite_url: str) -> None:
    settings = load_settings(database_url=sqlite_url, slack_bot_token=BOT_TOKEN, slack_app_token="xapp-1-A111-1-abc")
    assert "slack" in {c.name for c in enabled_channels(settings)}


def test_secrets_come_from_the_environment_and_are_not_printed(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DANGOL_SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("DANGOL_SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("DANGOL_SLACK_API_URL", "http://127.0.0.1:9/api/")
    settings = load_settings(database_url=sqlite_url)
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"  # type: ignore[attr-defined]
    assert BOT_TOKEN not in repr(settings) and SIGNING_SECRET not in repr(settings)


async def test_socket_mode_feeds_the_same_listeners(aiohttp_client: Any, sqlite_url: str, fake_slack: FakeSlack, slack_fixture: Any) -> None:
    settings = load_settings(database_url=sqlite_url, slack_bot_token=BOT_TOKEN, slack_app_token="xapp-1-A111-1-abc",
                             slack_api_url=fake_slack.api_url)
    client = await aiohttp_client(create_app(settings))
    body = slack_fixture("event_message_im.json")
    await fake_slack.push_envelope({"envelope_id": "env-1", "type": "events_api", "accepts_response_payload": False,
                                    "retry_attempt": 0, "retry_reason": "", "payload": body})
    await eventually(lambda: _stored(client))
    await eventually(lambda: any(a.get("envelope_id") == "env-1" for a in fake_slack.socket_acks))
    # Without a signing secret the public webhook accepts nothing.
    assert (await client.post("/webhooks/slack/events", json=body)).status == 401


async def _stored(client: TestClient) -> bool:
    await asyncio.sleep(0)
    return len(await rows(store_of(client), "messages", direction="in")) == 1
