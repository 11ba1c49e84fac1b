"""The console in a real browser: Debian's chromium, headless, through Playwright.

An agent logs in, sees the conversation the bot handed off appear live, takes
it and replies; the visitor sees the reply in the web chat widget; a note is
not delivered; the conversation is resolved and reopened.  Screenshots of the
inbox and the conversation go to ``test-artifacts/`` for people to look at.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sqlalchemy import update

from crm_store import agents
from crm_store.database import Database
from crm_store.models import ConversationSla
from crm_store.columns import utcnow
from tests.conftest import ARTIFACTS
from tests.console.conftest import PASSWORD, Handoff, MakePerson

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]

WAIT = 10_000
#: Messages of any alert() that ran: an escaping failure would show up here.
DIALOGS: list[str] = []


async def open_console(browser: Any, client: TestClient, email: str) -> Any:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    page.on("dialog", lambda dialog: DIALOGS.append(dialog.message))
    await page.goto(str(client.server.make_url("/console/inbox")))
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_selector("h1:text('Inbox')", timeout=WAIT)
    await page.wait_for_selector("#live-status.on", timeout=WAIT)
    return page


async def open_widget(browser: Any, client: TestClient) -> Any:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(str(client.server.make_url("/webchat")))
    await page.wait_for_selector(".dgl-status:text('online')", timeout=WAIT)
    return page


async def say(widget: Any, text: str) -> None:
    await widget.fill(".dgl-form input", text)
    await widget.press(".dgl-form input", "Enter")


async def a_busy_morning(client: TestClient, store: Database, handoff: Handoff, headers: dict[str, str]) -> None:
    """Other customers already waiting, with SLA targets (one missed), so the inbox looks like a real one."""
    policy = await client.put("/api/v1/sla-policies", headers=headers, json={"team": "support", "priority": "medium",
                                                                              "first_response_seconds": 600, "resolution_seconds": 86400})
    assert policy.status == 200
    for sender, name, email, label in [("r1", "Jordan Lee", "jordan@example.com", "billing"),
                                       ("r2", "Sofia Martins", "sofia@example.com", "delivery")]:
        conversation = await handoff(sender)
        await client.patch(f"/api/v1/customers/{conversation['customer_id']}", headers=headers, json={"name": name, "email": email})
        await client.post(f"/api/v1/conversations/{conversation['id']}/labels", headers=headers, json={"add": [label]})
        if sender == "r1":
            sla = ConversationSla.__table__
            async with store.write() as conn:
                await conn.execute(update(sla).where(sla.c.conversation_id == uuid.UUID(conversation["id"]))
                                   .values(first_response_due_at=utcnow() - dt.timedelta(minutes=3)))


async def test_an_agent_takes_a_handed_off_web_chat_replies_and_the_visitor_sees_it(
    client: TestClient, browser: Any, person: MakePerson, store: Database, handoff: Handoff, admin: dict[str, str]
) -> None:
    me = await person("agent", team="support", presence="away", password=PASSWORD, name="Daniel Park")
    email = (await agents.get_agent(store, me.id)).email
    await a_busy_morning(client, store, handoff, admin)
    console = await open_console(browser, client, email)
    widget = await open_widget(browser, client)

    await say(widget, "I want to talk to a person")
    await widget.locator(".dgl-msg.dgl-out").first.wait_for(timeout=WAIT)
    row = console.locator("tr.row.status-pending", has=console.locator(".ch-webchat"))
    await row.first.wait_for(timeout=WAIT)  # arrived live, no reload
    conversation_id = (await row.first.locator("a").get_attribute("href")).rsplit("/", 1)[-1]
    conversation = await (await client.get(f"/api/v1/conversations/{conversation_id}", headers=me.headers)).json()
    await client.patch(f"/api/v1/customers/{conversation['customer_id']}", headers=me.headers,
                       json={"name": "Kim Minji", "email": "minji@example.com", "locale": "ko-KR", "timezone": "Asia/Seoul",
                             "lifecycle_stage": "customer", "tags": ["vip"], "attributes": {"plan": "Premium"}})
    await console.reload()
    await console.wait_for_selector("#live-status.on", timeout=WAIT)
    await row.first.locator(".name", has_text="Kim Minji").wait_for(timeout=WAIT)
    ARTIFACTS.mkdir(exist_ok=True)
    await console.screenshot(path=str(ARTIFACTS / "console-inbox.png"))

    await row.first.locator("a").click()
    await console.click("#claim")
    await console.wait_for_selector("#conv-status:text('open')", timeout=WAIT)
    await console.fill("#reply-text", "Hi Minji, this is support. I'm sorry about the wait. How can I help?")
    await console.click("#send-reply")
    await console.locator(".msg.out.sender-agent").first.wait_for(timeout=WAIT)
    reply = widget.locator(".dgl-msg.dgl-out", has_text="this is support")
    await reply.wait_for(timeout=WAIT)

    await console.fill("#reply-text", "Internal: customer sounds upset, be gentle")
    await console.click("button[value=note]")
    await console.locator(".msg.note").first.wait_for(timeout=WAIT)
    await say(widget, "My order never arrived")
    await console.locator(".msg.in", has_text="My order never arrived").wait_for(timeout=WAIT)  # live into the open conversation
    await console.screenshot(path=str(ARTIFACTS / "console-conversation.png"))
    await asyncio.sleep(0.5)
    assert await widget.locator(".dgl-msg", has_text="Internal:").count() == 0

    await console.click("#resolve")
    await console.wait_for_selector("#conv-status:text('resolved')", timeout=WAIT)
    await console.click("#reopen")
    await console.wait_for_selector("#conv-status:text('open')", timeout=WAIT)
    await widget.reload()
    await widget.locator(".dgl-msg.dgl-out", has_text="this is support").wait_for(timeout=WAIT)
    assert await widget.locator(".dgl-msg", has_text="Internal:").count() == 0


async def test_customer_written_markup_renders_as_text(
    client: TestClient, browser: Any, person: MakePerson, store: Database, handoff: Handoff
) -> None:
    me = await person("agent", password=PASSWORD)
    email = (await agents.get_agent(store, me.id)).email
    conversation = await handoff("xss")
    name = "<img src=x onerror=alert(1)>"
    await client.patch(f"/api/v1/customers/{conversation['customer_id']}", headers=me.headers,
                       json={"name": name, "attributes": {"note": "<b onmouseover=alert(2)>x</b>"}})
    await client.post("/webhooks/rest/webhook", json={"sender": "xss", "message": "<script>alert(1)</script>"})
    console = await open_console(browser, client, email)
    await console.locator(".who .name", has_text=name).wait_for(timeout=WAIT)
    await console.goto(str(client.server.make_url(f"/console/conversations/{conversation['id']}")))
    await console.locator(".msg.in .text", has_text="<script>alert(1)</script>").wait_for(timeout=WAIT)
    assert await console.locator("h1", has_text=name).count() == 1
    assert await console.evaluate("() => document.querySelectorAll('img, #messages script, b[onmouseover]').length") == 0
    await console.hover("h1")
    assert DIALOGS == []
