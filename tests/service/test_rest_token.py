"""The REST channel's token: required when set, and the channel stays off on a public address without one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from bot.config import CoreSettings
from dangol.app import build_app

WEBHOOK = "/webhooks/rest/webhook"
BODY = {"sender": "u1", "message": "hello"}


async def test_with_a_token_set_a_call_without_it_is_401(aiohttp_client: Any, make_settings: Callable[..., CoreSettings]) -> None:
    client = await aiohttp_client(build_app(make_settings(rest_token="s3cret-token")))
    assert (await client.post(WEBHOOK, json=BODY)).status == 401
    wrong = await client.post(WEBHOOK, json=BODY, headers={"Authorization": "Bearer s3cret-tokeN"})
    assert wrong.status == 401 and (await wrong.json())["error"]["code"] == "unauthorized"
    right = await client.post(WEBHOOK, json=BODY, headers={"Authorization": "Bearer s3cret-token"})
    assert right.status == 200 and (await right.json())[0]["recipient_id"] == "u1"


async def test_on_a_public_address_without_a_token_the_channel_is_off_and_the_log_says_why(
        aiohttp_client: Any, make_settings: Callable[..., CoreSettings], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        client = await aiohttp_client(build_app(make_settings(host="0.0.0.0")))
    assert (await client.post(WEBHOOK, json=BODY)).status == 404
    assert any("REST channel is off" in r.getMessage() and "rest_token" in r.getMessage() for r in caplog.records)


async def test_on_a_public_address_with_a_token_the_channel_is_on(aiohttp_client: Any, make_settings: Callable[..., CoreSettings]) -> None:
    client = await aiohttp_client(build_app(make_settings(host="0.0.0.0", rest_token="t0ken")))
    response = await client.post(WEBHOOK, json=BODY, headers={"Authorization": "Bearer t0ken"})
    assert response.status == 200


async def test_on_loopback_without_a_token_the_readme_try_it_works(aiohttp_client: Any, make_settings: Callable[..., CoreSettings]) -> None:
    client = await aiohttp_client(build_app(make_settings(host="127.0.0.1")))
    assert (await client.post(WEBHOOK, json=BODY)).status == 200
