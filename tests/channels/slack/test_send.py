"""Replies through AsyncWebClient to the loopback Web API, and how Slack's errors reach the worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from channels.base import PermanentSendError, RecipientBlocked, RetryAfter, SendError
from contracts.messages import Attachment, Button, OutboundMessage
from channels.slack import SlackChannel
from tests.channels.slack.conftest import BOT_TOKEN, SIGNING_SECRET
from tests.fakes.slack import FakeSlack


@pytest.fixture
async def channel(fake_slack: FakeSlack) -> AsyncIterator[SlackChannel]:
    ch = SlackChannel(BOT_TOKEN, SIGNING_SECRET, api_url=fake_slack.api_url)
    await ch.start()
    yield ch
    await ch.stop()


def out(recipient: str = "C111:1595926230.009600", **kw: Any) -> OutboundMessage:
    return OutboundMessage(channel="slack", recipient=recipient, **kw)


async def test_a_reply_goes_to_the_channel_and_thread_it_answers(channel: SlackChannel, fake_slack: FakeSlack) -> None:
    result = await channel.send(out(text="배송은 2-3일 걸립니다"))
    [call] = fake_slack.called("chat.postMessage")
    assert (call["channel"], call["thread_ts"], call["text"]) == ("C111", "1595926230.009600", "배송은 2-3일 걸립니다")
    assert result.external_id and result.external_id.startswith("C111:")


async def test_a_direct_message_reply_is_not_threaded(channel: SlackChannel, fake_slack: FakeSlack) -> None:
    await channel.send(out("D024BE91L", text="hi"))
    assert "thread_ts" not in fake_slack.called("chat.postMessage")[0]


async def test_quick_replies_become_block_kit_buttons(channel: SlackChannel, fake_slack: FakeSlack) -> None:
    await channel.send(out(text="Pick one", buttons=[Button("Track order", "/track"), Button("Talk to a person", "/human")]))
    call = fake_slack.called("chat.postMessage")[0]
    assert call["text"] == "Pick one"
    actions = [b for b in call["blocks"] if b["type"] == "actions"][0]
    assert [(e["text"]["text"], e["value"]) for e in actions["elements"]] == [("Track order", "/track"), ("Talk to a person", "/human")]
    assert len({e["action_id"] for e in actions["elements"]}) == 2


async def test_an_image_by_url_is_an_image_block(channel: SlackChannel, fake_slack: FakeSlack) -> None:
    await channel.send(out(text="New in", attachments=[Attachment("image", url="https://example.com/p.jpg", name="Sneakers")]))
    blocks = fake_slack.called("chat.postMessage")[0]["blocks"]
    assert {"type": "image", "image_url": "https://example.com/p.jpg", "alt_text": "Sneakers"} in blocks


async def test_429_becomes_retry_after_with_slacks_header_and_sdk_does_not_retry(
    channel: SlackChannel, fake_slack: FakeSlack, slack_fixture: Any
) -> None:
    fake_slack.fail("chat.postMessage", 429, slack_fixture("api_error_ratelimited_429.json"), headers={"Retry-After": "7"})
    with pytest.raises(RetryAfter) as caught:
        await channel.send(out(text="hi"))
    assert caught.value.seconds == 7
    assert len(fake_slack.called("chat.postMessage")) == 1


@pytest.mark.parametrize("fixture", ["api_error_channel_not_found.json", "api_error_not_in_channel.json", "api_error_invalid_auth.json"])
async def test_errors_that_never_succeed_are_permanent(channel: SlackChannel, fake_slack: FakeSlack, slack_fixture: Any, fixture: str) -> None:
    fake_slack.fail("chat.postMessage", 200, slack_fixture(fixture))
    with pytest.raises(PermanentSendError) as caught:
        await channel.send(out(text="hi"))
    assert not isinstance(caught.value, RecipientBlocked)
    assert slack_fixture(fixture)["error"] in str(caught.value)


async def test_an_archived_channel_is_permanent(channel: SlackChannel, fake_slack: FakeSlack) -> None:
    fake_slack.method_error("chat.postMessage", "is_archived")
    with pytest.raises(PermanentSendError, match="is_archived"):
        await channel.send(out(text="hi"))


async def test_a_deactivated_user_is_recipient_blocked(channel: SlackChannel, fake_slack: FakeSlack) -> None:
    fake_slack.method_error("chat.postMessage", "user_disabled")
    with pytest.raises(RecipientBlocked):
        await channel.send(out("D024BE91L", text="hi"))


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(channel: SlackChannel, fake_slack: FakeSlack, status: int) -> None:
    fake_slack.fail("chat.postMessage", status, {"ok": False, "error": "internal_error"})
    with pytest.raises(SendError):
        await channel.send(out(text="hi"))
    assert len(fake_slack.called("chat.postMessage")) == 1


async def test_a_server_error_page_that_is_not_json_is_retryable(channel: SlackChannel, fake_slack: FakeSlack) -> None:
    fake_slack.fail("chat.postMessage", 502, "<html>bad gateway</html>")
    with pytest.raises(SendError):
        await channel.send(out(text="hi"))


async def test_a_timeout_is_retryable(fake_slack: FakeSlack) -> None:
    channel = SlackChannel(BOT_TOKEN, SIGNING_SECRET, api_url=fake_slack.api_url, timeout=0.2)
    await channel.start()
    fake_slack.fail("chat.postMessage", 200, delay=1.0)
    try:
        with pytest.raises(SendError):
            await channel.send(out(text="hi"))
    finally:
        await channel.stop()


async def test_the_client_uses_one_shared_session(channel: SlackChannel) -> None:
    assert channel.client is not None and channel.client.session is channel.session
    assert channel.client.retry_handlers == []


def test_rate_limit_is_per_channel() -> None:
    channel = SlackChannel(BOT_TOKEN, SIGNING_SECRET)
    assert [limit.key for limit in channel.rate_limits(out("C111:1.2"))] == ["slack:channel:C111"]
