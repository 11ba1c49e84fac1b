"""Sending through telegram.Bot to the loopback Bot API, and how its errors reach the worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from channels.base import PermanentSendError, RateLimit, RecipientBlocked, RetryAfter, SendError
from contracts.messages import Attachment, Button, OutboundMessage
from channels.telegram import TelegramChannel
from channels.telegram.request import AiohttpRequest
from tests.channels.telegram.conftest import SECRET, TOKEN
from tests.fakes.telegram import FakeTelegram


@pytest.fixture
async def channel(fake_telegram: FakeTelegram) -> AsyncIterator[TelegramChannel]:
    ch = TelegramChannel(TOKEN, SECRET, fake_telegram.url)
    await ch.start()
    yield ch
    await ch.stop()


def out(recipient: str = "424242", **kw: Any) -> OutboundMessage:
    return OutboundMessage(channel="telegram", recipient=recipient, **kw)


async def test_text_is_sent_as_plain_text_and_the_result_names_the_message(channel: TelegramChannel, fake_telegram: FakeTelegram) -> None:
    result = await channel.send(out(text="주문하신 상품이 발송되었습니다 *now*"))
    [call] = fake_telegram.called("sendMessage")
    assert call["text"] == "주문하신 상품이 발송되었습니다 *now*"
    assert int(call["chat_id"]) == 424242 and "parse_mode" not in call
    assert result.external_id == f"424242:{fake_telegram._message_id}"  # noqa: SLF001


async def test_a_parse_mode_in_the_reply_metadata_is_used(channel: TelegramChannel, fake_telegram: FakeTelegram) -> None:
    await channel.send(out(text="<b>hi</b>", metadata={"parse_mode": "HTML"}))
    assert fake_telegram.called("sendMessage")[0]["parse_mode"] == "HTML"


async def test_quick_replies_become_an_inline_keyboard(channel: TelegramChannel, fake_telegram: FakeTelegram) -> None:
    await channel.send(out(text="Pick one", buttons=[Button("Track order", "/track"), Button("Talk to a person", "/human")]))
    markup = fake_telegram.called("sendMessage")[0]["reply_markup"]
    assert markup == {"inline_keyboard": [[{"text": "Track order", "callback_data": "/track"}],
                                          [{"text": "Talk to a person", "callback_data": "/human"}]]}


async def test_a_payload_longer_than_64_bytes_is_refused_not_truncated(channel: TelegramChannel, fake_telegram: FakeTelegram) -> None:
    with pytest.raises(PermanentSendError, match="64 bytes"):
        await channel.send(out(text="x", buttons=[Button("Long", "/choose" + "가" * 20)]))
    assert fake_telegram.calls == []


async def test_a_photo_by_url_carries_the_text_as_caption_and_the_buttons(channel: TelegramChannel, fake_telegram: FakeTelegram) -> None:
    await channel.send(out(text="New in", buttons=[Button("Buy", "/buy")],
                           attachments=[Attachment("image", url="https://example.com/p.jpg")]))
    [call] = fake_telegram.called("sendPhoto")
    assert call["photo"] == "https://example.com/p.jpg" and call["caption"] == "New in"
    assert call["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "/buy"
    assert fake_telegram.called("sendMessage") == []


async def test_a_document_by_url_is_sent_with_senddocument(channel: TelegramChannel, fake_telegram: FakeTelegram) -> None:
    await channel.send(out(attachments=[Attachment("document", url="https://example.com/invoice.pdf")]))
    assert fake_telegram.called("sendDocument")[0]["document"] == "https://example.com/invoice.pdf"


async def test_text_longer_than_telegrams_limit_is_split(channel: TelegramChannel, fake_telegram: FakeTelegram) -> None:
    await channel.send(out(text="line\n" * 2000))
    parts = [c["text"] for c in fake_telegram.called("sendMessage")]
    assert len(parts) == 3 and all(len(p) <= 4096 for p in parts)


async def test_429_becomes_retry_after_with_telegrams_delay(channel: TelegramChannel, fake_telegram: FakeTelegram, shared_dir: Any) -> None:
    import json

    body = json.loads((shared_dir / "fixtures/telegram/api_error_429_retry_after.json").read_text())
    fake_telegram.fail("sendMessage", 429, body)
    with pytest.raises(RetryAfter) as caught:
        await channel.send(out(text="hi"))
    assert caught.value.seconds == 8


async def test_a_blocked_bot_is_recipient_blocked(channel: TelegramChannel, fake_telegram: FakeTelegram, shared_dir: Any) -> None:
    import json

    fake_telegram.fail("sendMessage", 403, json.loads((shared_dir / "fixtures/telegram/api_error_403_bot_blocked.json").read_text()))
    with pytest.raises(RecipientBlocked):
        await channel.send(out(text="hi"))


async def test_chat_not_found_is_permanent(channel: TelegramChannel, fake_telegram: FakeTelegram, shared_dir: Any) -> None:
    import json

    fake_telegram.fail("sendMessage", 400, json.loads((shared_dir / "fixtures/telegram/api_error_400_chat_not_found.json").read_text()))
    with pytest.raises(PermanentSendError, match="(?i)chat not found"):
        await channel.send(out(text="hi"))


async def test_a_migrated_group_is_sent_to_its_new_id(channel: TelegramChannel, fake_telegram: FakeTelegram, shared_dir: Any) -> None:
    import json

    fake_telegram.fail("sendMessage", 400, json.loads((shared_dir / "fixtures/telegram/api_error_400_migrate_to_chat_id.json").read_text()))
    result = await channel.send(out("-4012345678", text="hi"))
    assert [int(c["chat_id"]) for c in fake_telegram.called("sendMessage")] == [-4012345678, -100123456789]
    assert result.external_id and result.external_id.startswith("-100123456789:")


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retryable(channel: TelegramChannel, fake_telegram: FakeTelegram, status: int) -> None:
    fake_telegram.fail("sendMessage", status, {"ok": False, "error_code": status, "description": "Internal Server Error"})
    with pytest.raises(SendError):
        await channel.send(out(text="hi"))


async def test_a_timeout_is_retryable(fake_telegram: FakeTelegram) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        channel = TelegramChannel(TOKEN, SECRET, fake_telegram.url)
        channel.bot = channel.make_bot(session)
        channel.bot._request = (channel.bot._request[0], AiohttpRequest(session, read_timeout=0.2))  # noqa: SLF001
        fake_telegram.fail("sendMessage", 200, delay=1.0)
        with pytest.raises(SendError):
            await channel.send(out(text="hi"))


async def test_a_refused_token_is_retryable_so_rows_wait_for_the_fix(fake_telegram: FakeTelegram) -> None:
    channel = TelegramChannel("999:WRONG", SECRET, fake_telegram.url)
    await channel.start()
    try:
        with pytest.raises(SendError, match="token"):
            await channel.send(out(text="hi"))
    finally:
        await channel.stop()


def test_rate_limits_follow_telegrams_published_limits() -> None:
    channel = TelegramChannel(TOKEN, SECRET)
    assert channel.rate_limits(out("424242")) == [RateLimit("telegram:bot", 30, 1.1), RateLimit("telegram:chat:424242", 1, 1.0)]
    assert RateLimit("telegram:group:-100123", 20, 60.0) in channel.rate_limits(out("-100123"))
