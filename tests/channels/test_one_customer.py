"""A person on Telegram and on Slack is one customer once a verified phone or e-mail ties them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.services import SERVICES
from bot.app import create_app
from bot.config import load_settings
from crm_store.customers import update_customer
from tests.channels.slack.conftest import BOT_TOKEN, SIGNING_SECRET, make_senders
from tests.channels.telegram.conftest import SECRET, TOKEN, as_update, make_poster, own_fixture
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.helpers import rows


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeTelegram, FakeSlack]]:
    async with FakeTelegram(TOKEN) as telegram, FakeSlack(BOT_TOKEN) as slack:
        yield telegram, slack  # type: ignore[misc]


@pytest.fixture
async def both(aiohttp_client: Any, db_url: str, fakes: tuple[FakeTelegram, FakeSlack]) -> TestClient:
    telegram, slack = fakes
    settings = load_settings(database_url=db_url, telegram_token=TOKEN, telegram_webhook_secret=SECRET, telegram_api_url=telegram.url,
                             slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=slack.api_url)
    return await aiohttp_client(create_app(settings))


def slack_person(shared_dir: Path, email: str) -> dict[str, Any]:
    user = json.loads((shared_dir / "fixtures/slack/api_users_info_ok.json").read_text())["user"]
    user["id"] = "U2147483697"
    user["profile"]["email"] = email
    return user


async def test_telegram_then_slack_by_the_same_verified_contact_is_one_customer_with_one_history(
    both: TestClient, fakes: tuple[FakeTelegram, FakeSlack], shared_dir: Path
) -> None:
    db = both.app[SERVICES].db
    assert db is not None
    # On Telegram the customer shares their own number (verified by Telegram) ...
    await make_poster(both)(as_update(own_fixture("message_contact_own.json")))
    [customer] = await rows(db, "customers")
    assert customer.phone == "+821012345678"
    # ... an agent records the e-mail they gave ...
    await update_customer(db, customer.id, fields={"email": "minji@example.com"})
    # ... and on Slack, the same e-mail (verified by Slack) finds them.
    fakes[1].users["U2147483697"] = slack_person(shared_dir, "Minji@Example.com")
    send_event, _ = make_senders(both)
    event = json.loads((shared_dir / "fixtures/slack/event_message_im.json").read_text())
    assert (await send_event(event)).status == 200
    assert [c.id for c in await rows(db, "customers")] == [customer.id]
    assert {i.channel for i in await rows(db, "channel_identities", customer_id=customer.id)} == {"telegram", "slack"}
    assert {m.channel for m in await rows(db, "messages", customer_id=customer.id, direction="in")} == {"telegram", "slack"}


async def test_a_telegram_customer_who_shares_their_contact_later_joins_the_known_customer(both: TestClient) -> None:
    db = both.app[SERVICES].db
    assert db is not None
    from crm_store.customers import create_customer

    await create_customer(db, {"name": "Minji Kim", "phone": "+821012345678"})
    first = own_fixture("message_contact_own.json")
    hello = {k: v for k, v in first.items() if k != "contact"} | {"message_id": 1, "text": "hi"}
    await make_poster(both)(as_update(hello, 1))
    await make_poster(both)(as_update(first, 2))
    assert len(await rows(db, "customers")) == 1
