"""The shapes of messages as every layer sees them.

Channels build :class:`InboundMessage` from a platform's webhook and send
:class:`OutboundMessage`; the engine decides on the first and produces the
second; the store keeps their fields as rows and never sees these classes.
"""

from __future__ import annotations

import datetime as dt
import operator
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar

MessageKind = Literal["message", "edit", "postback"]
C = TypeVar("C", bound=type)


def pickled_by_fields(cls: C) -> C:
    """Pickle a slots dataclass as its class and its field values, in order.

    The message path sends these across a pipe (bot.pipeline.write_child) for
    every message; the ``__getstate__`` that ``dataclass(slots=True)``
    writes looks the fields up on every call: measured, 5.2 µs to pickle
    an InboundMessage that way, against 1.3 µs this way.
    """
    names = [f.name for f in fields(cls)]
    values = operator.attrgetter(*names)
    if len(names) == 1:
        cls.__reduce__ = lambda self: (type(self), (values(self),))  # type: ignore[method-assign, attr-defined]
    else:
        cls.__reduce__ = lambda self: (type(self), values(self))  # type: ignore[method-assign, attr-defined]
    return cls


@pickled_by_fields
@dataclass(slots=True)
class Attachment:
    """A file or structured item that came with, or goes out with, a message.

    ``type`` is one of image, document, audio, voice, video, sticker,
    location, contact, file.  Platforms identify files differently (Telegram
    by ``file_id``, the web by URL), so both are kept.
    """

    type: str
    url: str | None = None
    file_id: str | None = None
    name: str | None = None
    mime_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type}
        for key in ("url", "file_id", "name", "mime_type"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.extra:
            data["extra"] = self.extra
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attachment:
        return cls(
            type=str(data["type"]),
            url=data.get("url"),
            file_id=data.get("file_id"),
            name=data.get("name"),
            mime_type=data.get("mime_type"),
            extra=dict(data.get("extra") or {}),
        )


@pickled_by_fields
@dataclass(slots=True)
class Profile:
    """What the platform tells us about the sender.

    ``email``/``phone`` are only set when the platform vouches for them
    (``verified=True``); the engine merges customers only on verified data.
    """

    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    language: str | None = None
    email: str | None = None
    phone: str | None = None
    verified: bool = False
    timezone: str | None = None


@pickled_by_fields
@dataclass(slots=True)
class InboundMessage:
    """One thing a customer did on a platform, normalised.

    ``external_id`` is unique per channel and is what makes a platform's
    retry harmless: the store refuses a second row with the same pair.
    ``thread`` is the address replies go to (a Telegram chat id, a Slack
    channel plus thread ts); it differs from ``sender_id`` in groups.
    """

    channel: str
    sender_id: str
    text: str | None = None
    external_id: str | None = None
    thread: str | None = None
    kind: MessageKind = "message"
    edit_of: str | None = None
    payload: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    profile: Profile = field(default_factory=Profile)
    metadata: dict[str, Any] = field(default_factory=dict)
    sent_at: dt.datetime | None = None


@pickled_by_fields
@dataclass(slots=True)
class Button:
    """A quick reply: ``title`` is shown, ``payload`` comes back as a postback."""

    title: str
    payload: str

    def to_dict(self) -> dict[str, str]:
        return {"title": self.title, "payload": self.payload}


@pickled_by_fields
@dataclass(slots=True)
class OutboundMessage:
    """One outbox row as a channel sees it."""

    channel: str
    recipient: str
    text: str | None = None
    buttons: list[Button] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    outbox_id: str | None = None
    message_id: str | None = None
    conversation_id: str | None = None
    customer_id: str | None = None
    attempt: int = 1
    #: A campaign message (its outbox row carries a ``campaign`` key): it yields to replies on the way out.
    campaign: bool = False

    def to_payload(self) -> dict[str, Any]:
        """The JSON kept in the outbox row (everything but the row's own ids)."""
        data: dict[str, Any] = {}
        if self.text is not None:
            data["text"] = self.text
        if self.buttons:
            data["buttons"] = [b.to_dict() for b in self.buttons]
        if self.attachments:
            data["attachments"] = [a.to_dict() for a in self.attachments]
        if self.metadata:
            data["metadata"] = self.metadata
        return data

    @classmethod
    def from_payload(cls, channel: str, recipient: str, payload: dict[str, Any], **ids: Any) -> OutboundMessage:
        return cls(
            channel=channel,
            recipient=recipient,
            text=payload.get("text"),
            buttons=[Button(str(b["title"]), str(b["payload"])) for b in payload.get("buttons", [])],
            attachments=[Attachment.from_dict(a) for a in payload.get("attachments", [])],
            metadata=dict(payload.get("metadata") or {}),
            campaign="campaign" in payload,
            **ids,
        )


@pickled_by_fields
@dataclass(slots=True)
class HandleResult:
    """What the engine did with one inbound message."""

    duplicate: bool
    message_id: str | None
    conversation_id: str | None
    customer_id: str | None
    replies: list[OutboundMessage] = field(default_factory=list)


