"""The delivery worker's claimed rows waiting for a sender: replies in a lane of their own, ahead of campaigns.

A broadcast's rows are claimed by the batch and can wait in the worker for
minutes behind a platform's rate limit; a customer's answer from the bot or
an agent must not wait behind them.  So a sender always takes a reply
first, and at most ``campaign_senders`` senders hold campaign rows at once:
the others stay free for replies even while every campaign row waits on a
rate limit (see :meth:`channels.ratelimit.RateLimiter.acquire`, where a
reply also goes ahead of the campaign rows already waiting).
"""

from __future__ import annotations

import asyncio
from collections import deque

from contracts.messages import OutboundMessage


class Lanes:
    """Two FIFO lanes, replies and campaign rows, drained by sender tasks through :meth:`get`."""

    def __init__(self, campaign_senders: int) -> None:
        self.campaign_senders = max(1, campaign_senders)
        self._replies: deque[OutboundMessage] = deque()
        self._campaign: deque[OutboundMessage] = deque()
        self._campaign_sending = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    @property
    def replies_waiting(self) -> int:
        """Replies claimed and not yet taken by a sender."""
        return len(self._replies)

    @property
    def campaign_waiting(self) -> int:
        """Campaign rows claimed and not yet taken by a sender."""
        return len(self._campaign)

    def __len__(self) -> int:
        return len(self._replies) + len(self._campaign)

    def put(self, message: OutboundMessage) -> None:
        (self._campaign if message.campaign else self._replies).append(message)
        self._wake_one()

    async def get(self) -> OutboundMessage | None:
        """The next row to send (a reply before any campaign row); None once closed and empty."""
        while True:
            if self._replies:
                return self._replies.popleft()
            if self._campaign and self._campaign_sending < self.campaign_senders:
                self._campaign_sending += 1
                return self._campaign.popleft()
            if self._closed:
                return None
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter  # a waiter cancelled here stays in the deque, done: waking skips it

    def done(self, message: OutboundMessage) -> None:
        """A sender finished with ``message``: a campaign sender's place is free again."""
        if message.campaign:
            self._campaign_sending -= 1
            if self._campaign:
                self._wake_one()

    def drain(self) -> list[OutboundMessage]:
        """Everything no sender has taken, removed (replies first)."""
        taken = [*self._replies, *self._campaign]
        self._replies.clear()
        self._campaign.clear()
        return taken

    def close(self) -> None:
        """Senders waiting for rows stop (``get`` returns None once nothing is left)."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
