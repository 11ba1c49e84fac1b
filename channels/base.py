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

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from aiohttp import web

from contracts.messages import HandleResult, InboundMessage, OutboundMessage
from crm_store import conversations
from crm_store.app_settings import get_or_create_secret
from crm_store.database import Database
from crm_store.live import LiveHub
from crm_store.outbox import Outbox


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


@dataclass(frozen=True, slots=True)
class ChannelServices:
    """What a channel may ask of the rest of the service once it runs: a few narrow calls, not the store.

    ``events`` carries live events between serving processes (the web chat
    relays pushes to the process holding a visitor's socket through it).
    """

    #: ``history(channel, external_id, after)``: what a returning visitor should see, oldest first.
    history: Callable[[str, str, uuid.UUID | None], Awaitable[list[dict[str, Any]]]]
    #: ``message(id)``: one stored message, or None.
    message: Callable[[uuid.UUID], Awaitable[dict[str, Any] | None]]
    #: ``mark_unreachable(channel, external_id)``: the customer blocked us there; stop sending.
    mark_unreachable: Callable[[str, str], Awaitable[None]]
    #: ``secret(name)``: a random key made once and shared by every serving process.
    secret: Callable[[str], Awaitable[str]]
    events: LiveHub | None = None
    #: ``take_queued(channel, recipient)``: replies waiting for the recipient (a person's, say), settled as
    #: delivered; for a channel that can reach a customer only in the answer to their next request.
    take_queued: Callable[[str, str], Awaitable[list[OutboundMessage]]] | None = None
    #: ``queued_recipients(channel)``: who has replies waiting on the channel (one read for all of them).
    queued_recipients: Callable[[str], Awaitable[set[str]]] | None = None

    @classmethod
    def over(cls, db: Database, events: LiveHub | None) -> ChannelServices:
        async def history(channel: str, external_id: str, after: uuid.UUID | None) -> list[dict[str, Any]]:
            return await conversations.history_for_identity(db, channel, external_id, after=after)

        async def mark_unreachable(channel: str, external_id: str) -> None:
            await Outbox(db).mark_unreachable(channel, None, external_id)

        async def secret(name: str) -> str:
            return await get_or_create_secret(db, name)

        async def take_queued(channel: str, recipient: str) -> list[OutboundMessage]:
            return [OutboundMessage.from_payload(row.channel, row.recipient, row.payload, outbox_id=row.outbox_id,
                                                 message_id=row.message_id, conversation_id=row.conversation_id,
                                                 customer_id=row.customer_id, attempt=row.attempt)
                    for row in await Outbox(db).take_queued(channel, recipient)]

        return cls(history, lambda message_id: conversations.get_message(db, message_id), mark_unreachable, secret, events,
                   take_queued, Outbox(db).queued_recipients)


class Channel:
    """Base class of every channel.

    Subclasses set ``name``, mount their webhook routes in :meth:`setup` and
    implement :meth:`send`.  ``handle_inbound`` is given by the app; a
    channel calls it and acknowledges its platform only after it returns,
    because by then the message is durable.
    """

    name: ClassVar[str]
    #: How replies reach the customer: in the HTTP answer to the inbound request
    #: (True: the engine marks them sent, no outbox row) or through the outbox.
    inline_replies: ClassVar[bool] = False
    #: "module:group": a click group of commands for ``dangol`` (see channels.registry).
    commands: ClassVar[str | None] = None
    #: How a reply reaches the customer, in a few words for the console.
    delivery_note: ClassVar[str] = "sent through the platform's API by the delivery worker"

    @property
    def sends_outbox(self) -> bool:
        """Whether the delivery worker sends this channel's outbox rows (those of people and campaigns)."""
        return not self.inline_replies

    def describe_delivery(self) -> str:
        """How this channel, as configured, delivers replies (shown in the console)."""
        return self.delivery_note

    def __init__(self) -> None:
        self.handle_inbound: InboundHandler | None = None
        #: Set by the app before :meth:`start` (see :class:`ChannelServices`).
        self.services: ChannelServices | None = None
        #: Set by the app: counts a notice the platform sent about us (Slack's
        #: ``app_rate_limited``) in the service's metrics, by kind.
        self.count_notice: Callable[[str], None] | None = None

    def setup(self, app: web.Application, handle_inbound: InboundHandler) -> None:
        """Mount webhook routes on ``app``; keep ``handle_inbound`` for later."""
        self.handle_inbound = handle_inbound

    async def start(self) -> None:
        """Open sessions, start polling or sockets (called once the loop runs)."""

    async def stop(self) -> None:
        """Release what :meth:`start` opened."""

    def note_queued(self) -> None:
        """A person's reply was just queued on this channel by this process."""

    async def send(self, message: OutboundMessage) -> SendResult:
        raise NotImplementedError

    def rate_limits(self, message: OutboundMessage) -> Sequence[RateLimit]:
        """Buckets this send draws from; the delivery worker waits on each."""
        return ()
