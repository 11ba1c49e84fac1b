"""The README's first steps, as a new user follows them, in a real browser.

``dangol serve`` runs as its own process on a fresh folder; ``dangol agent
create`` makes the admin and prints a one-time password; the admin logs in
and is made to choose a password; a web chat visitor asks for a person and
is told they wait; the handoff appears in the inbox live; the admin answers
and the visitor sees the answer under the admin's name.  Screenshots at a
desktop width and at 390 px go to ``test-artifacts/`` for a person to look at.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import ARTIFACTS
from tests.service.processes import ServeProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT = 15_000
NEW_PASSWORD = "my own password 1"


def dangol(workdir: Path, database_url: str, *args: str) -> str:
    env = {**os.environ, "DANGOL_DATABASE_URL": database_url}
    done = subprocess.run([sys.executable, "-m", "dangol.cli", *args], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def no_sideways_scroll(page: Any) -> bool:
    return bool(await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"))


async def test_the_readme_leads_from_install_to_an_answered_web_chat(tmp_path: Path, browser: Any) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/dangol.db"
    server = ServeProcess(url, tmp_path)
    try:
        await server.wait_ready(timeout=120)  # a busy CI machine starts the write child slowly
        async with aiohttp.ClientSession() as session:  # "Try it": the REST channel answers
            async with session.post(server.url + "/webhooks/rest/webhook", json={"sender": "me", "message": "hello"}) as r:
                assert "hello" in (await r.json())[0]["text"].lower()
        created = json.loads(await asyncio.to_thread(
            dangol, tmp_path, url, "agent", "create", "--email", "admin@example.com", "--name", "Admin", "--role", "admin", "--json"))

        desktop = await browser.new_context(viewport={"width": 1366, "height": 860})
        console = await desktop.new_page()
        await console.goto(server.url + "/console")
        await console.fill("input[name=email]", "admin@example.com")
        await console.fill("input[name=password]", created["password"])
        await console.click("button[type=submit]")
        await console.wait_for_selector("h1:text('Change your password')", timeout=WAIT)
        ARTIFACTS.mkdir(exist_ok=True)
        await console.screenshot(path=str(ARTIFACTS / "readme-change-password.png"))
        await console.fill("input[name=current_password]", created["password"])
        await console.fill("input[name=new_password]", NEW_PASSWORD)
        await console.fill("input[name=confirm_password]", NEW_PASSWORD)
        await console.click("form.password-card button[type=submit]")
        await console.wait_for_selector("h1:text('Inbox')", timeout=WAIT)
        await console.wait_for_selector("#live-status.on", timeout=WAIT)

        phone = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        widget = await phone.new_page()
        await widget.goto(server.url + "/webchat")
        await widget.wait_for_selector(".dgl-status:text('online')", timeout=WAIT)
        await widget.fill(".dgl-form input", "I want to talk to a person")
        await widget.press(".dgl-form input", "Enter")
        await widget.locator(".dgl-msg.dgl-out").first.wait_for(timeout=WAIT)
        await widget.fill(".dgl-form input", "hello?")
        await widget.press(".dgl-form input", "Enter")
        await widget.locator(".dgl-msg.dgl-out", has_text="in the queue for a person").wait_for(timeout=WAIT)

        row = console.locator("tr.row.status-pending", has=console.locator(".ch-webchat"))
        await row.first.wait_for(timeout=WAIT)  # live, no reload
        assert "Visitor #" in await row.first.locator(".name").inner_text()
        await console.screenshot(path=str(ARTIFACTS / "readme-inbox-desktop.png"))
        await row.first.locator("a").click()
        await console.wait_for_selector("#conv-delivery", timeout=WAIT)
        await console.fill("#reply-text", "Hi, this is Admin from support. How can I help?")
        await console.click("#send-reply")
        await console.locator(".msg.out.sender-agent").first.wait_for(timeout=WAIT)
        await console.screenshot(path=str(ARTIFACTS / "readme-conversation-desktop.png"))

        answer = widget.locator(".dgl-msg.dgl-out", has_text="this is Admin from support")
        await answer.wait_for(timeout=WAIT)
        assert await answer.locator(".dgl-who").inner_text() == "Admin"
        await widget.screenshot(path=str(ARTIFACTS / "readme-webchat-390.png"))

        await console.set_viewport_size({"width": 390, "height": 844})
        await console.wait_for_timeout(200)
        assert await no_sideways_scroll(console)
        await console.screenshot(path=str(ARTIFACTS / "readme-conversation-390.png"), full_page=True)
        await console.goto(server.url + "/console/inbox")
        await console.wait_for_selector("h1:text('Inbox')", timeout=WAIT)
        assert await no_sideways_scroll(console)
        assert not await console.locator(".sidebar nav").is_visible()  # folded into the menu
        await console.screenshot(path=str(ARTIFACTS / "readme-inbox-390.png"), full_page=True)
        await console.click(".menu-button")
        await console.locator(".sidebar nav a", has_text="Customers").click()
        await console.wait_for_selector("h1:text('Customers')", timeout=WAIT)
        assert await no_sideways_scroll(console)
        await console.screenshot(path=str(ARTIFACTS / "readme-customers-390.png"), full_page=True)
        await console.set_viewport_size({"width": 360, "height": 740})
        await console.wait_for_timeout(200)
        assert await no_sideways_scroll(console)
        await desktop.close()  # the live sockets close, so the server stops at once
        await phone.close()
    finally:
        assert server.terminate() == 0, server.log()
