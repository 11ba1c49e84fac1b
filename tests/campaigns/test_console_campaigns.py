"""The marketers' console pages in Debian's chromium: segment builder with live count, template editor with
preview, a campaign sent and its results as a chart; screenshots at desktop and phone widths."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from campaigns import service
from crm_store import agents
from crm_store.database import Database
from tests.campaigns.conftest import add_customers
from tests.campaigns.test_campaign_api import drain, recording_worker
from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]

PASSWORD = "correct horse battery"
WAIT = 10_000
#: The two Korean customers who consented also take messages at night: the page's run goes out whatever the hour
#: of the test in Seoul (Korea's 21:00-08:00 rule has tests of its own with a controlled clock).
PEOPLE = [
    {"name": "김민지", "locale": "ko-KR", "timezone": "Asia/Seoul", "channels": {"telegram": "1"}, "consent": True,
     "night_consent": True, "events": [("purchase", 120, 5)]},
    {"name": "이서준", "locale": "ko-KR", "timezone": "Asia/Seoul", "channels": {"webchat": "v2"}, "consent": True,
     "night_consent": True, "events": [("purchase", 80, 20)]},
    {"name": "Jordan Lee", "locale": "en", "timezone": "America/New_York", "channels": {"webchat": "v3"}, "consent": True},
    {"name": "Sofia Martins", "locale": "en", "channels": {"webchat": "v4"}, "consent": False},
    {"name": "박지훈", "locale": "ko-KR", "channels": {"webchat": "v5"}},
]


async def log_in(browser: Any, client: TestClient, email: str, width: int) -> Any:
    context = await browser.new_context(viewport={"width": width, "height": 900})
    page = await context.new_page()
    await page.goto(str(client.server.make_url("/console/segments")))
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_selector("h1:text('Segments')", timeout=WAIT)
    return page


@pytest.mark.parametrize("width", [1440, 390])
async def test_a_marketer_builds_a_segment_writes_a_template_sends_and_reads_the_results(
        client: TestClient, store: Database, browser: Any, width: int) -> None:
    await add_customers(store, PEOPLE)
    record, _ = await agents.create_agent(store, email="mina@example.com", name="Mina Choi", role="marketer", password=PASSWORD)
    page = await log_in(browser, client, record.email, width)
    ARTIFACTS.mkdir(exist_ok=True)

    await page.fill("input[name=name]", "Korean buyers")
    await page.fill("#rule", '{"all": [{"field": "locale", "op": "eq", "value": "ko-KR"}, {"event": "purchase"}]}')
    await page.wait_for_selector("#count-value:text('2')", timeout=WAIT)  # counted live, before saving
    await page.fill("#rule", '{"all": [{"field": "colour", "op": "eq", "value": "red"}]}')
    await page.wait_for_selector("#count-note:has-text('unknown field colour')", timeout=WAIT)
    await page.fill("#rule", '{"field": "locale", "op": "in", "value": ["ko-KR", "en"]}')
    await page.wait_for_selector("#count-value:text('5')", timeout=WAIT)
    await page.screenshot(path=str(ARTIFACTS / f"campaigns-segment-builder-{width}.png"), full_page=True)
    await page.click("#segment-form button[type=submit]")
    await page.wait_for_selector("td:text('Korean buyers')", timeout=WAIT)

    await page.goto(str(client.server.make_url("/console/campaigns")))
    await page.fill("input[name=name]", "겨울 세일")
    await page.fill("input[name=sender_name]", "단골상점")
    await page.fill("#template-text", "{{ customer.name }}님, 겨울 세일이 시작됐어요!")
    await page.wait_for_selector("#preview-customer option", state="attached", timeout=WAIT)
    await page.select_option("#preview-customer", label="이서준 · ko-KR")
    await page.wait_for_selector(".bubble:has-text('(광고) 단골상점')", timeout=WAIT)
    await page.wait_for_selector(".bubble:has-text('이서준님')", timeout=WAIT)  # the preview follows the last choice
    assert "이서준님, 겨울 세일이 시작됐어요!" in await page.inner_text(".bubble")
    assert "Sends on webchat" in await page.inner_text("#template-preview")
    await page.fill("#template-text", "{{ ''.__class__ }}")
    await page.wait_for_selector("#template-preview:has-text('Python internals')", timeout=WAIT)
    await page.fill("#template-text", "{{ customer.name }}님, 겨울 세일이 시작됐어요!")
    await page.wait_for_selector(".bubble:has-text('겨울 세일')", timeout=WAIT)
    await page.screenshot(path=str(ARTIFACTS / f"campaigns-template-editor-{width}.png"), full_page=True)
    await page.click("#campaign-form button[type=submit]")
    await page.wait_for_selector("h1:text('겨울 세일')", timeout=WAIT)
    await page.click("button:text('Send')")
    await page.wait_for_selector(".status:text('running')", timeout=WAIT)

    await service.tick(store)
    worker, _ = recording_worker(store, ("telegram", "webchat"))
    await drain(worker)
    await service.tick(store)
    await page.reload()
    await page.wait_for_selector(".status:text('done')", timeout=WAIT)
    assert await page.locator("svg.chart rect").count() == 8
    legend = await page.inner_text(".legend")
    assert "sent 2" in legend and "opted out 1" in legend and "no consent 1" in legend and "unreachable 1" in legend
    await page.screenshot(path=str(ARTIFACTS / f"campaigns-results-{width}.png"), full_page=True)
    await page.context.close()


async def test_an_agent_cannot_open_the_campaign_pages(client: TestClient, store: Database, browser: Any) -> None:
    record, _ = await agents.create_agent(store, email="ag@example.com", name="Agent", role="agent", password=PASSWORD)
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(str(client.server.make_url("/console/campaigns")))
    await page.fill("input[name=email]", record.email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_selector("text=The agent role cannot open this page.", timeout=WAIT)
    await context.close()
