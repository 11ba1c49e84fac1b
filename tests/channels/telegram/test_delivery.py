"""Replies leave through the app's delivery worker: a 403 marks the customer unreachable, a 429 waits."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient

from tests.channels.telegram.conftest import eventually, store_of
from tests.fakes.telegram import FakeTelegram
from tests.helpers import count, rows


async def test_a_customer_who_blocked_the_bot_is_marked_unreachable_and_not_retried(
    client: TestClient, post_update: Any, tg_fixture: Any, fake_telegram: FakeTelegram, shared_dir: Any
) -> None:
    blocked = json.loads((shared_dir / "fixtures/telegram/api_error_403_bot_blocked.json").read_text())
    fake_telegram.fail("sendMessage", 403, blocked, times=100)
    await post_update(tg_fixture("update_message_text_private.json"))
    db = store_of(client)
    await eventually(lambda: _settled(db))
    [identity] = await rows(db, "channel_identities")
    assert identity.reachable is False
    assert all(r.status == "failed" and r.attempts == 1 for r in await rows(db, "outbox"))


async def test_a_429_is_waited_out_and_the_reply_then_delivered(
    client: TestClient, post_update: Any, tg_fixture: Any, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.fail("sendMessage", 429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
                                            "parameters": {"retry_after": 1}})
    await post_update(tg_fixture("update_message_text_private.json"))
    db = store_of(client)
    await eventually(lambda: _settled(db), timeout=8)
    calls = [c for c in fake_telegram.calls if c.method == "sendMessage"]
    assert await count(db, "outbox", status="sent") >= 1
    assert calls[1].at - calls[0].at >= 0.9


async def _settled(db: Any) -> bool:
    statuses = {r.status for r in await rows(db, "outbox")}
    return bool(statuses) and statuses <= {"sent", "failed"}
