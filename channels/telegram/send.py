"""OutboundMessage -> Bot API calls, and Telegram's errors -> the worker's.

The delivery worker has one retry policy for every platform; this module's
job is to tell it which failures are worth retrying (RetryAfter, SendError),
which mean the customer is gone (RecipientBlocked) and which never work as
they are (PermanentSendError).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram import error as tg

from channels.base import PermanentSendError, RecipientBlocked, RetryAfter, SendError, SendResult
from channels.telegram.parse import message_external_id
from contracts.messages import OutboundMessage

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
        try:
            sent = await _deliver_to(bot, int(exc.new_chat_id), message)
        except Exception as again:  # noqa: BLE001 - translated below
            raise translate(again) from again
    except Exception as exc:  # noqa: BLE001 - translated below
        raise translate(exc) from exc
    return SendResult(external_id=message_external_id(sent["chat"]["id"], sent["message_id"]))


async def _call(bot: Bot, endpoint: str, data: dict[str, Any]) -> dict[str, Any]:
    """One Bot API call through PTB's request path, without building a Message.

    ``Bot.send_message`` turns every answer into a ``telegram.Message``
    (``Message.de_json``): measured here, that was 45% of the client's CPU
    per send (0.64 ms -> 0.37 ms without it), and the delivery worker needs
    only the chat and message ids.  ``Bot._post`` is the call every PTB
    method makes: it encodes the parameters (TelegramObjects included),
    applies the bot's defaults, and PTB's BaseRequest still maps HTTP
    statuses and ``parameters`` to ``telegram.error`` types.  PTB is pinned
    below 23 (pyproject) because this is not public API.
    """
    result = await bot._post(endpoint, data)  # noqa: SLF001
    if not isinstance(result, dict) or "message_id" not in result:
        raise tg.TelegramError(f"{endpoint}: unexpected answer {result!r}")
    return result


async def _deliver_to(bot: Bot, chat_id: int, message: OutboundMessage) -> dict[str, Any]:
    """Text (split at 4096), then each attachment; buttons ride on the last call.

    Returns the first message sent: that is the one the stored reply points to.
    """
    markup = keyboard(message)
    common: dict[str, Any] = {"chat_id": chat_id}
    if message.metadata.get("parse_mode"):
        common["parse_mode"] = message.metadata["parse_mode"]
    if message.metadata.get("message_thread_id"):
        common["message_thread_id"] = message.metadata["message_thread_id"]
    media = [a for a in message.attachments if a.type in ("image", "document") and (a.url or a.file_id)]
    text = message.text or ""
    caption = None
    if len(media) == 1 and len(text) <= MAX_CAPTION:
        caption, text = text or None, ""
    calls: list[tuple[str, dict[str, Any]]] = []
    if text or not media:
        calls.extend(("sendMessage", {**common, "text": part}) for part in chunks(text))
    for attachment in media:
        field = "photo" if attachment.type == "image" else "document"
        endpoint = "sendPhoto" if attachment.type == "image" else "sendDocument"
        calls.append((endpoint, {**common, field: attachment.url or attachment.file_id, "caption": caption}))
    first: dict[str, Any] | None = None
    for index, (endpoint, data) in enumerate(calls):
        if index == len(calls) - 1 and markup is not None:
            data["reply_markup"] = markup
        sent = await _call(bot, endpoint, data)
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
