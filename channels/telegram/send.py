"""OutboundMessage -> Bot API calls, and Telegram's errors -> the worker's.

The delivery worker has one retry policy for every platform; this module's
job is to tell it which failures are worth retrying (RetryAfter, SendError),
which mean the customer is gone (RecipientBlocked) and which never work as
they are (PermanentSendError).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram import error as tg

from channels.base import OutboundMessage, PermanentSendError, RecipientBlocked, RetryAfter, SendError, SendResult
from channels.telegram.parse import message_external_id

log = logging.getLogger(__name__)

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64


def keyboard(message: OutboundMessage) -> InlineKeyboardMarkup | None:
    """Quick replies as an inline keyboard, one button a row (readable on a phone)."""
    if not message.buttons:
        return None
    rows = []
    for button in message.buttons:
        if len(button.payload.encode()) > MAX_CALLBACK_DATA:
            # Truncating would hand the bot a different payload when pressed.
            raise PermanentSendError(f"button {button.title!r}: payload is longer than Telegram's {MAX_CALLBACK_DATA} bytes")
        rows.append([InlineKeyboardButton(button.title, callback_data=button.payload)])
    return InlineKeyboardMarkup(rows)


def chunks(text: str, size: int = MAX_TEXT) -> list[str]:
    """Split long text at line breaks where possible, never above ``size``."""
    parts: list[str] = []
    while len(text) > size:
        cut = text.rfind("\n", 0, size)
        cut = cut if cut > size // 2 else size
        parts.append(text[:cut])
        text = text[cut:].lstrip("\n")
    if text or not parts:
        parts.append(text)
    return parts


async def deliver(bot: Bot, message: OutboundMessage) -> SendResult:
    chat_id = int(message.recipient.split(":", 1)[0])
    try:
        sent = await _deliver_to(bot, chat_id, message)
    except tg.ChatMigrated as exc:
        # A group became a supergroup: the old id is dead, the new one is given.
        log.warning("telegram chat %s migrated to %s; sending there", chat_id, exc.new_chat_id)
        sent = await _mapped(lambda: _deliver_to(bot, exc.new_chat_id, message))
    except Exception as exc:  # noqa: BLE001 - translated below
        raise translate(exc) from exc
    return SendResult(external_id=message_external_id(sent.chat.id, sent.message_id))


async def _mapped(call: Callable[[], Awaitable[Message]]) -> Message:
    try:
        return await call()
    except Exception as exc:  # noqa: BLE001
        raise translate(exc) from exc


async def _deliver_to(bot: Bot, chat_id: int, message: OutboundMessage) -> Message:
    """Text (split at 4096), then each attachment; buttons ride on the last call.

    Returns the first message sent: that is the one the stored reply points to.
    """
    markup = keyboard(message)
    params: dict[str, Any] = {}
    if message.metadata.get("parse_mode"):
        params["parse_mode"] = message.metadata["parse_mode"]
    if message.metadata.get("message_thread_id"):
        params["message_thread_id"] = message.metadata["message_thread_id"]
    media = [a for a in message.attachments if a.type in ("image", "document") and (a.url or a.file_id)]
    text = message.text or ""
    caption = None
    if len(media) == 1 and len(text) <= MAX_CAPTION:
        caption, text = text or None, ""
    calls: list[Callable[[InlineKeyboardMarkup | None], Awaitable[Message]]] = []
    if text or not media:
        for part in chunks(text):
            calls.append(lambda markup, part=part: bot.send_message(chat_id, part, reply_markup=markup, **params))
    for attachment in media:
        source = attachment.url or attachment.file_id
        if attachment.type == "image":
            calls.append(lambda markup, s=source: bot.send_photo(chat_id, s, caption=caption, reply_markup=markup, **params))
        else:
            calls.append(lambda markup, s=source: bot.send_document(chat_id, s, caption=caption, reply_markup=markup, **params))
    first: Message | None = None
    for index, call in enumerate(calls):
        sent = await call(markup if index == len(calls) - 1 else None)
        first = first or sent
    assert first is not None
    return first


def translate(exc: BaseException) -> BaseException:
    """PTB's exception -> the delivery worker's; order matters (BadRequest is a NetworkError)."""
    if isinstance(exc, (SendError, PermanentSendError)):
        return exc
    if isinstance(exc, tg.RetryAfter):
        return RetryAfter(_seconds(exc), "telegram: too many requests")
    if isinstance(exc, tg.Forbidden):
        return RecipientBlocked(f"telegram: {exc.message}")
    if isinstance(exc, tg.ChatMigrated):
        return PermanentSendError(f"telegram: chat migrated to {exc.new_chat_id}")
    if isinstance(exc, tg.BadRequest):
        return PermanentSendError(f"telegram: {exc.message}")
    if isinstance(exc, tg.InvalidToken):
        # Every send fails until the operator fixes the token: keep the rows and retry.
        return SendError(f"telegram: the bot token was refused ({exc.message})")
    if isinstance(exc, (tg.TimedOut, tg.NetworkError, tg.TelegramError, TimeoutError, OSError)):
        return SendError(f"telegram: {exc}")
    return exc


def _seconds(exc: tg.RetryAfter) -> float:
    value = exc._retry_after  # noqa: SLF001 - the public property warns about int vs timedelta
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
