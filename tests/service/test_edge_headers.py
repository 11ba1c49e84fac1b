"""What the edge tells browsers and who it believes: the web chat page's CSP, /metrics' callers, trusted proxies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.config import ConfigError, CoreSettings, load_settings
from dangol.app import build_app


async def test_the_web_chat_page_has_a_csp_framed_only_by_itself_by_default(client: Any) -> None:
    response = await client.get("/webchat")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self' 'sha256-" in policy
    assert "frame-ancestors 'self'" in policy and "https:" not in policy.split("frame-ancestors")[1]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_the_allowed_origins_may_frame_the_web_chat_page(aiohttp_client: Any, make_settings: Callable[..., CoreSettings]) -> None:
    client = await aiohttp_client(build_app(make_settings(webchat_allowed_origins="https://shop.example, https://m.shop.example:8443")))
    policy = (await client.get("/webchat")).headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://shop.example https://m.shop.example:8443" in policy


def test_an_origin_that_could_inject_a_directive_is_a_config_error() -> None:
    with pytest.raises((ConfigError, ValueError)):
        load_settings(webchat_allowed_origins="https://shop.example; script-src *")


async def test_metrics_answer_a_caller_on_this_machine(client: Any) -> None:
    response = await client.get("/metrics")
    assert response.status == 200 and "dangol_messages_in_total" in await response.text()


async def test_metrics_refuse_a_request_relayed_by_a_proxy(client: Any) -> None:
    response = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response.status == 403 and (await response.json())["error"]["code"] == "forbidden"


async def test_with_a_metrics_token_metrics_need_it(aiohttp_client: Any, make_settings: Callable[..., CoreSettings]) -> None:
    client = await aiohttp_client(build_app(make_settings(metrics_token="m-token")))
    assert (await client.get("/metrics")).status == 401
    relayed = await client.get("/metrics", headers={"Authorization": "Bearer m-token", "X-Forwarded-For": "203.0.113.9"})
    assert relayed.status == 200


async def login_cookie(client: Any, headers: dict[str, str]) -> Any:
    """The cookie the login form sets (the session cookie is set the same way, from ``request.secure``)."""
    response = await client.get("/console/login", headers=headers)
    assert response.status == 200
    return response.cookies["dgl_login"]


HTTPS = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}


async def test_behind_a_trusted_proxy_saying_https_the_console_cookies_are_secure(
        aiohttp_client: Any, make_settings: Callable[..., CoreSettings]) -> None:
    client = await aiohttp_client(build_app(make_settings(trusted_proxies="127.0.0.0/8")))
    cookie = await login_cookie(client, HTTPS)
    assert cookie["secure"]


async def test_an_untrusted_peer_saying_https_gets_no_secure_cookie(
        aiohttp_client: Any, make_settings: Callable[..., CoreSettings]) -> None:
    client = await aiohttp_client(build_app(make_settings(trusted_proxies="10.0.0.0/8")))
    cookie = await login_cookie(client, HTTPS)
    assert not cookie["secure"]


def test_a_trusted_proxy_that_is_no_network_is_a_config_error() -> None:
    with pytest.raises((ConfigError, ValueError)):
        load_settings(trusted_proxies="10.0.0.0/8, proxy.internal")
