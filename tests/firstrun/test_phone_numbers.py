"""One phone normalization: the API reads a national number in the default_region setting, as the bot does, and stores E.164."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.config import ConfigError, CoreSettings, load_settings
from bot.forms import validate
from bot.bot_folder import SlotSpec
from dangol.app import build_app
from tests.routing.conftest import API, MakePerson, person  # noqa: F401 - shared fixtures
from tests.service.conftest import client, store  # noqa: F401 - shared fixtures


async def test_the_api_and_the_bot_store_the_same_e164_for_a_korean_national_number(client: Any, person: MakePerson) -> None:
    me = await person("admin")
    created = await client.post(f"{API}/customers", json={"phone": "010-2222-3333"}, headers=me.headers)
    assert created.status == 201, await created.text()
    stored = (await created.json())["phone"]
    assert stored == "+821022223333" == validate(SlotSpec("phone", validate="phone"), "010-2222-3333")
    found = await (await client.get(f"{API}/customers", params={"phone": "010 2222 3333"}, headers=me.headers)).json()
    assert [c["phone"] for c in found["items"]] == ["+821022223333"]


async def test_an_international_number_is_read_whatever_the_region(client: Any, person: MakePerson) -> None:
    me = await person("admin")
    created = await client.post(f"{API}/customers", json={"phone": "+1 415-555-2671"}, headers=me.headers)
    assert (await created.json())["phone"] == "+14155552671"


async def test_a_number_not_valid_in_the_region_names_the_field_and_the_region(
    aiohttp_client: Any, make_settings: Callable[..., CoreSettings], person: MakePerson, client: Any
) -> None:
    me = await person("admin")
    us = await aiohttp_client(build_app(make_settings(default_region="US")))
    refused = await us.post(f"{API}/customers", json={"phone": "010-2222-3333"}, headers=me.headers)
    assert refused.status == 422
    error = (await refused.json())["error"]
    assert error["field"] == "phone" and "valid number in US" in error["message"]
    accepted = await us.post(f"{API}/customers", json={"phone": "(415) 555-2671"}, headers=me.headers)
    assert (await accepted.json())["phone"] == "+14155552671"


def test_an_unknown_region_stops_the_start() -> None:
    with pytest.raises(ConfigError, match="default_region"):
        load_settings(default_region="XX")
