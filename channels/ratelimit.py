"""Spacing of sends so that no window of ``per_seconds`` holds more than ``count``.

A token bucket would let a full bucket burst and then refill, doubling the
rate seen in one window; platforms such as Telegram count per window, so
each bucket here hands out evenly spaced start times (GCRA without burst).

Booked times are not enough on their own: a process that stalls (a busy
event loop, a loaded machine) wakes several booked senders late and at
once, and the late one then sits closer than a window to the sends booked a
window after it.  So a bucket of more than one send also keeps the moments
its last ``count`` sends really started, and a send waits until the one
``count`` before it is a whole window behind.  (Buckets of one, such as one
message a second per chat, keep only the booking: one entry per chat of a
100,000-recipient broadcast is what they can afford.)

Replies book their start time ahead; campaign messages never do
(``behind_others``): they wait until a bucket is free at that moment, so a
reply that comes later still takes the next free slot before them, and a
broadcast's backlog never sits between a customer and their answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence

from channels.base import RateLimit


class RateLimiter:
    def __init__(self) -> None:
        self._next: dict[str, float] = {}
        self._clock = time.monotonic
        self.enabled = True
        #: One campaign message at a time waits on a channel's buckets (keyed by its first, widest
        #: bucket), so the others queue on a lock instead of all waking at every free slot.
        self._behind: dict[str, asyncio.Lock] = {}
        #: When the last ``count`` sends of each bucket of more than one really started.
        self._started: dict[str, deque[float]] = {}

    def reserve(self, limits: Sequence[RateLimit]) -> float:
        """Book the earliest moment every bucket allows; return seconds to wait."""
        if not self.enabled or not limits:
            return 0.0
        now = self._clock()
        start = max([now] + [self._next.get(limit.key, now) for limit in limits])
        for limit in limits:
            self._next[limit.key] = start + limit.per_seconds / limit.count
        return start - now

    async def acquire(self, limits: Sequence[RateLimit], *, behind_others: bool = False) -> None:
        """Wait for a start time under every bucket of ``limits``.

        ``behind_others`` (a campaign message): book nothing ahead; wait until
        every bucket is free now, and let any booking made meanwhile go first.
        """
        if not self.enabled or not limits:
            return
        if not behind_others:
            delay = self.reserve(limits)
            if delay > 0:
                await asyncio.sleep(delay)
            await self._start(limits)
            return
        lock = self._behind.get(limits[0].key)
        if lock is None:
            lock = self._behind[limits[0].key] = asyncio.Lock()
        async with lock:
            while (wait := self._busy_for(limits)) > 0:
                await asyncio.sleep(wait)
            self.reserve(limits)
            await self._start(limits)

    async def _start(self, limits: Sequence[RateLimit]) -> None:
        """Wait until no window of a many-send bucket would hold one send too many, then note the start."""
        while (wait := self._window_wait(limits)) > 0:
            await asyncio.sleep(wait)
        now = self._clock()
        for limit in limits:
            if limit.count > 1:
                started = self._started.get(limit.key)
                if started is None:
                    started = self._started[limit.key] = deque(maxlen=limit.count)
                started.append(now)

    def _window_wait(self, limits: Sequence[RateLimit]) -> float:
        """Seconds until the send ``count`` back in every many-send bucket is a whole window ago."""
        now = self._clock()
        wait = 0.0
        for limit in limits:
            started = self._started.get(limit.key)
            if started is not None and len(started) >= limit.count:
                wait = max(wait, started[-limit.count] + limit.per_seconds - now)
        return wait

    def _busy_for(self, limits: Sequence[RateLimit]) -> float:
        """Seconds until every bucket of ``limits`` is free (0 when they are now)."""
        now = self._clock()
        return max(self._next.get(limit.key, now) for limit in limits) - now

    def penalise(self, key: str, seconds: float) -> None:
        """Push a bucket back after the platform said 429 with a retry delay."""
        self._next[key] = max(self._next.get(key, 0.0), self._clock() + seconds)
