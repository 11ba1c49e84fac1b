"""Slack events and interactions -> :class:`InboundMessage`.

Ids: a message is ``"{channel}:{ts}"``.  Slack's ``event_id`` differs
between the ``app_mention`` and the ``message`` event of one message and a
``message_changed`` refers to its original by ``ts``, so the channel plus
``ts`` is what identifies a message (and its retries, which carry the same
``ts``) once; the event id is kept in the metadata.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from contracts.messages import Attachment, InboundMessage, Profile

CHANNEL = "slack"
#: Message subtypes that are a person saying something; the rest are system notices.
_SPOKEN = frozenset({None, "file_share", "thread_broadcast", "me_message"})
_MENTION = re.compile(r"^\s*<@[UW][A-Z0-9]+>\s*")


def message_id(channel: str, ts: str) -> str:
    return f"{channel}:{ts}"


def thread_of(channel: str, ts: str, thread_ts: str | None, channel_type: str | None) -> str:
    """Where replies go: the thread the person wrote in, a new thread under a
    channel message (so a team channel stays readable), or the DM itself."""
    if thread_ts:
        return f"{channel}:{thread_ts}"
    if channel_type == "im":
        return channel
    return f"{channel}:{ts}"


def from_bot(event: dict[str, Any], bot_user_id: str | None) -> bool:
    """Bots, including ourselves, are never customers (and answering them loops)."""
    inner = event.get("message") if event.get("subtype") == "message_changed" else event
    inner = inner or {}
    return bool(
        event.get("bot_id") or inner.get("bot_id") or event.get("subtype") == "bot_message"
        or (bot_user_id and (event.get("user") == bot_user_id or inner.get("user") == bot_user_id))
    )


def parse_message(event: dict[str, Any], *, event_id: str | None, bot_user_id: str | None) -> InboundMessage | None:
    """A ``message`` or ``app_mention`` event, or None when Dangol should not answer it."""
    if from_bot(event, bot_user_id):
        return None
    subtype = event.get("subtype")
    if subtype == "message_changed":
        return _parse_edit(event, event_id)
    if subtype not in _SPOKEN or not event.get("user"):
        return None
    channel, ts = event.get("channel"), event.get("ts")
    if not channel or not ts:
        return None
    if event.get("type") == "message" and event.get("channel_type") not in ("im", None):
        # In channels Dangol answers mentions (the app_mention event) and
        # replies in threads it is part of; anything else is people talking.
        if not (event.get("thread_ts") and bot_user_id and event.get("parent_user_id") == bot_user_id):
            return None
    attachments = [_file(f) for f in event.get("files") or []]
    text = _MENTION.sub("", event.get("text") or "") if event.get("type") == "app_mention" else event.get("text")
    return InboundMessage(
        channel=CHANNEL,
        sender_id=event["user"],
        text=text or (None if attachments else ""),
        external_id=message_id(channel, ts),
        thread=thread_of(channel, ts, event.get("thread_ts"), event.get("channel_type")),
        attachments=attachments,
        metadata=_meta(event, event_id),
        sent_at=_time(ts),
    )


def _parse_edit(event: dict[str, Any], event_id: str | None) -> InboundMessage | None:
    new, old = event.get("message") or {}, event.get("previous_message") or {}
    channel = event.get("channel")
    original_ts = new.get("ts") or old.get("ts")
    user = new.get("user") or old.get("user")
    if not channel or not original_ts or not user:
        return None
    return InboundMessage(
        channel=CHANNEL,
        sender_id=user,
        text=new.get("text"),
        # The edit event's own ts makes each edit, and each retry of it, one row.
        external_id=f"{message_id(channel, original_ts)}:edit:{event.get('ts') or event.get('event_ts')}",
        thread=thread_of(channel, original_ts, new.get("thread_ts"), event.get("channel_type")),
        kind="edit",
        edit_of=message_id(channel, original_ts),
        metadata=_meta(event, event_id),
    )


def parse_action(body: dict[str, Any], action: dict[str, Any]) -> InboundMessage | None:
    """A button press (block_actions) as the person's choice."""
    user = (body.get("user") or {}).get("id")
    value = action.get("value")
    if not user or value is None:
        return None  # selects, date pickers: nothing Dangol offered
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    message = body.get("message") or {}
    ts = container.get("message_ts") or message.get("ts")
    if not channel or not ts:
        return None
    title = (action.get("text") or {}).get("text")
    thread_ts = container.get("thread_ts") or message.get("thread_ts")
    channel_type = "im" if channel.startswith("D") else None
    return InboundMessage(
        channel=CHANNEL,
        sender_id=user,
        text=title or value,
        external_id=f"action:{channel}:{ts}:{action.get('action_id')}:{action.get('action_ts')}",
        thread=thread_of(channel, ts, thread_ts, channel_type),
        kind="postback",
        payload=value,
        metadata={"action_id": action.get("action_id"), "in_reply_to": message_id(channel, ts)},
    )


def profile_from_user(user: dict[str, Any]) -> Profile:
    """users.info's user: Slack verified the e-mail (users:read.email); the phone is typed by the person."""
    profile = user.get("profile") or {}
    first, last = profile.get("first_name"), profile.get("last_name")
    if not first and not last and (user.get("real_name") or profile.get("real_name")):
        first, _, last = (user.get("real_name") or profile.get("real_name")).partition(" ")
    email = profile.get("email") or None
    return Profile(
        first_name=first or None,
        last_name=last or None,
        username=user.get("name"),
        language=(user.get("locale") or "").replace("-", "_").split("_")[0] or None,
        email=email.lower() if email else None,
        verified=bool(email) and not user.get("is_bot"),
        timezone=user.get("tz"),
    )


def _file(f: dict[str, Any]) -> Attachment:
    mime = f.get("mimetype") or ""
    kind = "image" if mime.startswith("image/") else "video" if mime.startswith("video/") else "audio" if mime.startswith("audio/") else "file"
    return Attachment(kind, url=f.get("url_private"), file_id=f.get("id"), name=f.get("name"), mime_type=mime or None,
                      extra={k: f[k] for k in ("size", "filetype") if k in f})


def _meta(event: dict[str, Any], event_id: str | None) -> dict[str, Any]:
    meta = {"channel_type": event.get("channel_type"), "event_type": event.get("type")}
    if event_id:
        meta["event_id"] = event_id
    return {k: v for k, v in meta.items() if v}


def _time(ts: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(float(ts), dt.UTC)
    except (TypeError, ValueError):
        return None
