"""Telegram updates -> :class:`InboundMessage`.

The webhook and the long-poller both come through :func:`parse_update`, so
a message means the same thing however it arrived.  Ids follow one rule:
a message is ``"{chat_id}:{message_id}"`` (unique per bot, stable across
Telegram's retries), which is what the store dedupes on and what an edit
points back to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from telegram import CallbackQuery, Message, Update

from contracts.messages import Attachment, InboundMessage, Profile

CHANNEL = "telegram"
#: Keys under which the Bot API nests a ``User`` object.
_USER_KEYS = frozenset({"from", "user", "forward_from", "via_bot", "left_chat_member", "sender_user", "sender_business_bot"})


@dataclass(slots=True)
class Parsed:
    """What one update asks of us; every field may be empty (ignore, answer 200)."""

    inbound: InboundMessage | None = None
    #: An inline button press to acknowledge with answerCallbackQuery.
    callback_query_id: str | None = None
    #: A private chat whose user blocked the bot (my_chat_member -> kicked).
    blocked_user: str | None = None


def fill_old_fields(data: Any) -> Any:
    """Add the fields PTB requires that old payloads lack.

    Telegram has sent ``User.is_bot`` since 2017 and ``file_unique_id`` on
    every file since 2019, and PTB requires both; only old examples
    (including Telegram's own webhook guide) omit them.  Rejecting those
    would drop a customer's message over fields that say nothing about
    them, so users default to ``is_bot: false`` and files to their
    ``file_id`` as the unique id.
    """
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if key in _USER_KEYS and isinstance(value, dict) and "is_bot" not in value:
                value = {**value, "is_bot": False}
            elif key == "new_chat_members" and isinstance(value, list):
                value = [{**v, "is_bot": False} if isinstance(v, dict) and "is_bot" not in v else v for v in value]
            out[key] = fill_old_fields(value)
        if "file_id" in out and "file_unique_id" not in out:
            out["file_unique_id"] = out["file_id"]
        return out
    if isinstance(data, list):
        return [fill_old_fields(v) for v in data]
    return data


def message_external_id(chat_id: int | str, message_id: int | str) -> str:
    return f"{chat_id}:{message_id}"


def parse_update(update: Update) -> Parsed:
    if update.message is not None:
        return Parsed(inbound=_from_message(update.message))
    if update.edited_message is not None:
        return Parsed(inbound=_from_edit(update.edited_message))
    if update.callback_query is not None:
        query = update.callback_query
        return Parsed(inbound=_from_callback(query), callback_query_id=query.id)
    member = update.my_chat_member
    if member is not None and member.chat.type == "private" and member.new_chat_member.status == "kicked":
        return Parsed(blocked_user=str(member.from_user.id if member.from_user else member.chat.id))
    return Parsed()


def profile_of(user: Any) -> Profile:
    return Profile(first_name=user.first_name, last_name=user.last_name, username=user.username, language=user.language_code)


def _from_message(message: Message) -> InboundMessage | None:
    user = message.from_user
    if user is None or user.is_bot:
        return None  # channel posts and other bots: nobody to answer
    text = message.text if message.text is not None else message.caption
    attachments = _attachments(message)
    if text is None and not attachments:
        return None  # service messages (joins, pins, title changes)
    profile = profile_of(user)
    contact = message.contact
    if contact is not None and contact.user_id == user.id:
        phone = e164(contact.phone_number)
        if phone:
            profile.phone, profile.verified = phone, True
    metadata: dict[str, Any] = {"chat_type": message.chat.type}
    if message.message_thread_id is not None and message.is_topic_message:
        metadata["message_thread_id"] = message.message_thread_id
    if message.reply_to_message is not None:
        metadata["reply_to"] = message_external_id(message.chat.id, message.reply_to_message.message_id)
    start = _start_param(message)
    if start is not None:
        metadata["start_param"] = start
    return InboundMessage(
        channel=CHANNEL,
        sender_id=str(user.id),
        text=text,
        external_id=message_external_id(message.chat.id, message.message_id),
        thread=str(message.chat.id),
        attachments=attachments,
        profile=profile,
        metadata=metadata,
        sent_at=message.date,
    )


def _from_edit(message: Message) -> InboundMessage | None:
    inbound = _from_message(message)
    if inbound is None:
        return None
    inbound.kind = "edit"
    inbound.edit_of = inbound.external_id
    # Each edit is its own event (a retry of it is the same edit_date).
    stamp = int(message.edit_date.timestamp()) if message.edit_date else 0
    inbound.external_id = f"{inbound.external_id}:edit:{stamp}"
    return inbound


def _from_callback(query: CallbackQuery) -> InboundMessage | None:
    if query.data is None:
        return None  # a game button: nothing Dangol offered
    message = query.message
    chat_id = message.chat.id if message is not None else query.from_user.id
    return InboundMessage(
        channel=CHANNEL,
        sender_id=str(query.from_user.id),
        text=_button_title(query) or query.data,
        external_id=f"callback:{query.id}",
        thread=str(chat_id),
        kind="postback",
        payload=query.data,
        profile=profile_of(query.from_user),
        metadata={"in_reply_to": message_external_id(chat_id, message.message_id)} if message is not None else {},
    )


def _button_title(query: CallbackQuery) -> str | None:
    markup = getattr(query.message, "reply_markup", None)
    for row in getattr(markup, "inline_keyboard", ()) or ():
        for button in row:
            if button.callback_data == query.data:
                return button.text
    return None


def _start_param(message: Message) -> str | None:
    text = message.text or ""
    match = re.match(r"^/start(?:@\w+)?(?:\s+(\S+))?", text)
    if match is None:
        return None
    return match.group(1) or ""


def _attachments(message: Message) -> list[Attachment]:
    found: list[Attachment] = []
    if message.photo:
        largest = max(message.photo, key=lambda p: (p.width or 0) * (p.height or 0))
        found.append(Attachment("image", file_id=largest.file_id,
                                extra={"file_unique_id": largest.file_unique_id, "width": largest.width, "height": largest.height}))
    for kind, media in (("document", message.document), ("audio", message.audio), ("video", message.video),
                        ("voice", message.voice), ("video", message.video_note), ("video", message.animation)):
        if media is not None and not (kind == "document" and message.animation is not None):
            extra = {"file_unique_id": media.file_unique_id}
            if getattr(media, "duration", None) is not None:
                extra["duration"] = _seconds(media.duration)
            found.append(Attachment(kind, file_id=media.file_id, name=getattr(media, "file_name", None),
                                    mime_type=getattr(media, "mime_type", None), extra=extra))
    if message.sticker is not None:
        sticker = message.sticker
        found.append(Attachment("sticker", file_id=sticker.file_id,
                                extra={"file_unique_id": sticker.file_unique_id, "emoji": sticker.emoji, "set_name": sticker.set_name,
                                       "is_animated": sticker.is_animated, "is_video": sticker.is_video}))
    if message.location is not None and message.venue is None:
        found.append(Attachment("location", extra={"latitude": message.location.latitude, "longitude": message.location.longitude}))
    if message.venue is not None:
        venue = message.venue
        found.append(Attachment("location", name=venue.title, extra={"latitude": venue.location.latitude,
                                                                      "longitude": venue.location.longitude, "address": venue.address}))
    if message.contact is not None:
        contact = message.contact
        found.append(Attachment("contact", name=" ".join(n for n in (contact.first_name, contact.last_name) if n) or None,
                                extra={"phone_number": contact.phone_number, "user_id": contact.user_id}))
    return found


def _seconds(value: Any) -> float:
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)


def e164(raw: str | None) -> str | None:
    """Telegram gives the number as digits, with or without '+': make it +<digits>."""
    if not raw:
        return None
    digits = re.sub(r"\D", "", raw)
    return f"+{digits}" if 8 <= len(digits) <= 15 else None
