"""The widget in a real browser: Debian's chromium driven by Playwright."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.browser


async def test_the_widget_sends_a_message_and_shows_the_reply(client: TestClient, browser: Any) -> None:
    page = await browser.new_page()
    await page.goto(str(client.server.make_url("/webchat")))
    await page.wait_for_selector(".dgl-status:text('online')", timeout=10_000)
    await page.fill(".dgl-form input", "hello")
    await page.press(".dgl-form input", "Enter")
    reply = page.locator(".dgl-msg.dgl-out").first
    await reply.wait_for(timeout=10_000)
    assert "hello" in (await reply.inner_text()).lower()
    assert await page.locator(".dgl-msg.dgl-in").first.inner_text() == "hello"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "webchat-widget.png"))


async def test_a_reload_keeps_the_visitor_and_shows_each_message_once(client: TestClient, browser: Any) -> None:
    page = await browser.new_page()
    await page.goto(str(client.server.make_url("/webchat")))
    await page.wait_for_selector(".dgl-status:text('online')", timeout=10_000)
    await page.fill(".dgl-form input", "<script>alert(1)</script>")
    await page.press(".dgl-form input", "Enter")
    await page.locator(".dgl-msg.dgl-out").first.wait_for(timeout=10_000)
    await page.reload()
    await page.wait_for_selector(".dgl-status:text('online')", timeout=10_000)
    await page.locator(".dgl-msg.dgl-out").first.wait_for(timeout=10_000)
    customer_messages = await page.locator(".dgl-msg.dgl-in").all_inner_texts()
    assert customer_messages == ["<script>alert(1)</script>"]
    assert await page.locator(".dgl-msg.dgl-out").count() >= 1
    assert await page.evaluate("() => document.querySelectorAll('.dgl-log script').length") == 0
