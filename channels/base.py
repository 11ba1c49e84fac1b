"""The contract between a messaging platform and the rest of Dangol.

Modelled on Rasa's InputChannel/OutputChannel split: a channel turns a
platform's webhook into :class:`InboundMessage` objects for the engine, and
turns :class:`OutboundMessage` rows claimed from the outbox into platform API
calls.  Channels never touch the engine's internals: they are handed an
``InboundHandler`` callable, and they report delivery failures by raising the
typed errors below so that one delivery worker can apply one retry policy to
every platform.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from aiohttp import web

from crm_store.database import Database
from crm_store.live import LiveHub

from crm_store.records import (
    Attachment,
    Button,
    HandleResult,
    InboundMessage,
    MessageKind,
    OutboundMessage,
    Profile,
)

__all__ = [
    "Attachment", "Button", "Channel", "HandleResult", "InboundHandler", "InboundMessage", "MessageKind",
    "OutboundMessage", "PermanentSendError", "Profile", "RateLimit", "RecipientBlocked",
    "RetryAfter", "SendError", "SendResult",
]

@dataclass(slots=True)
class SendResult:
    """What the platform answered: its own id for the message, if it gave one."""

    external_id: str | None = None


class SendError(Exception):
    """A send that failed in a way worth retrying later (5xx, timeout, network)."""


class RetryAfter(SendError):
    """The platform asked us to slow down (HTTP 429); wait ``seconds`` first."""

    def __init__(self, seconds: float, message: str = "rate limited") -> None:
        super().__init__(f"{message} (retry after {seconds:g}s)")
        self.seconds = seconds


class PermanentSendError(Exception):
    """A send that will never succeed as it is (bad request, chat not found)."""


class RecipientBlocked(PermanentSendError):
    """The customer blocked the bot or left: mark the identity unreachable."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` sends per ``per_seconds`` within one bucket ``key``."""

    key: str
    count: int
    per_seconds: float


InboundHandler = Callable[[InboundMessage], Awaitable[HandleResult]]


class Channel:
    """Base class of every channel.

    Subclasses set ``name``, mount their webhook routes in :meth:`setup` and
    implement :meth:`send`.  ``handle_inbound`` is given by the app; a
    channel calls it and acknowledges its platform only after it returns,
    because by then the message is durable.
    """

    name: ClassVar[str]
    #: Replies are returned in the HTTP response (REST) instead of the outbox.
    inline_replies: ClassVar[bool] = False

    def __init__(self) -> None:
        self.handle_inbound: InboundHandler | None = None
        #: Set by the app before :meth:`start`, for channels that read history.
        self.db: Database | None = None
        #: Set by the app before :meth:`start`: events shared by every serving process.
        self.live: LiveHub | None = None

    def setup(self, app: web.Application, handle_inbound: InboundHandler) -> None:
        """Mount webhook routes on ``app``; keep ``handle_inbound`` for later."""
        self.handle_inbound = handle_inbound

    async def start(self) -> None:
        """Open sessions, start polling or sockets (called once the loop runs)."""

    async def stop(self) -> None:
        """Release what :meth:`start` opened."""

    async def send(self, message: OutboundMessage) -> SendResult:
        raise NotImplementedError

    def rate_limits(self, message: OutboundMessage) -> Sequence[RateLimit]:
        """Buckets this send draws from; the delivery worker waits on each."""
        return ()
