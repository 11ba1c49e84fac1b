"""A 10,000-customer campaign across Telegram, Slack and web chat, killed with SIGKILL mid-run and restarted.

The real ``dangol serve`` sends through python-telegram-bot and slack-sdk
into loopback fakes.  Each reachable, consenting customer gets exactly one
message with their own name and code, except those whose send was in
flight at the kill (a lease brings such a row back: the platform may have
had it); the rest are skipped for the right reason, and the report adds up.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from campaigns import service
from crm_store import segments
from crm_store.database import Database
from tests.campaigns.conftest import add_customers
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.helpers import count
from tests.service.processes import ServeProcess

pytestmark = pytest.mark.slow

N = 10_000
TELEGRAM_SHARE = 300  # Telegram's 30 messages/s per bot sets the pace: 10 s of them
SLACK_UNTIL = 5_000


def person(i: int) -> dict[str, Any]:
    channel, external = ("telegram", str(10_000 + i)) if i < TELEGRAM_SHARE else \
        ("slack", f"U{i:06d}") if i < SLACK_UNTIL else ("webchat", f"visitor-{i}")
    p: dict[str, Any] = {"name": f"Customer {i}", "channels": {channel: external}, "attributes": {"code": f"C{i}"},
                         "reachable": i % 25 != 2}
    if i % 10 == 0:
        pass  # never consented
    elif i % 10 == 1:
        p["consent"] = False
    else:
        p["consent"] = True
    if i % 50 == 3:
        p["attributes"] = {}  # the template cannot be filled for them
    return p


def expected_skip(i: int) -> str | None:
    if i % 25 == 2:
        return "unreachable"
    if i % 10 == 0:
        return "no_consent"
    if i % 10 == 1:
        return "opted_out"
    if i % 50 == 3:
        return "render_error"
    return None


async def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_killed_broadcast_resumes_and_messages_no_one_twice(db_url: str, tmp_path: Path) -> None:
    db = Database(db_url)
    async with FakeTelegram() as telegram, FakeSlack() as slack:
        env = {"DANGOL_TELEGRAM_TOKEN": telegram.token, "DANGOL_TELEGRAM_WEBHOOK_SECRET": "s3cret", "DANGOL_TELEGRAM_API_URL": telegram.url,
               "DANGOL_SLACK_BOT_TOKEN": slack.token, "DANGOL_SLACK_SIGNING_SECRET": "signing", "DANGOL_SLACK_API_URL": slack.api_url,
               "DANGOL_DELIVERY_LEASE_SECONDS": "2"}
        try:
            await add_customers(db, [person(i) for i in range(N)])
            segment = await segments.create_rule_segment(db, "everyone", {"not": {"tag": "none"}})
            campaign = await service.create(db, {
                "name": "Crash test", "segment_id": segment["id"], "purpose": "marketing", "channels": ["telegram", "slack", "webchat"],
                "message": {"text": "Hello {{ customer.name }}, your code is {{ customer.attributes.code }}"}}, None)
            cid = uuid.UUID(campaign["id"])
            server = ServeProcess(db_url, tmp_path, extra_env=env)
            await server.wait_ready()
            await service.send(db, cid)

            async def some_sent() -> bool:
                return await count(db, "outbox", status="sent") >= 1500
            await wait_for(some_sent, 60, "the first 1,500 sends")
            server.kill()
            in_flight = await count(db, "outbox", status="sending")

            restarted = ServeProcess(db_url, tmp_path, extra_env=env)
            await restarted.wait_ready()

            async def done() -> bool:
                return (await service.report(db, cid))["status"] == "done"
            await wait_for(done, 120, "the run to finish after the restart")
            assert restarted.terminate() == 0
        finally:
            await db.dispose()

    report = await _report(db_url, cid)
    wanted = {i for i in range(N) if expected_skip(i) is None}
    texts = [(c["chat_id"], c["text"]) for c in telegram.called("sendMessage")]
    texts += [(c["channel"], c["text"]) for c in slack.called("chat.postMessage")]
    received = Counter(recipient for recipient, _ in texts)
    twice = sum(n - 1 for n in received.values() if n > 1)
    assert twice <= in_flight, f"{twice} customers messaged twice, {in_flight} sends were in flight at the kill"
    by_recipient = {person(i)["channels"].popitem()[1]: i for i in wanted}
    for recipient, text in texts:
        i = by_recipient[str(recipient)]  # nobody outside the wanted set got anything
        assert text == f"Hello Customer {i}, your code is C{i}"
    platform_wanted = {r for r, i in by_recipient.items() if i < SLACK_UNTIL}
    assert set(map(str, received)) == platform_wanted
    skips = Counter(expected_skip(i) for i in range(N) if expected_skip(i))
    assert report["skipped"] == {**dict.fromkeys(("opted_out", "no_consent", "unreachable", "capped", "render_error"), 0), **skips}
    assert (report["targeted"], report["sent"], report["failed"], report["queued"]) == (N, len(wanted), 0, 0)
    assert report["targeted"] == report["sent"] + report["failed"] + sum(report["skipped"].values())


async def _report(db_url: str, cid: uuid.UUID) -> dict[str, Any]:
    db = Database(db_url)
    try:
        return await service.report(db, cid)
    finally:
        await db.dispose()
