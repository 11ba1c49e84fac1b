"""Spacing of sends so that no window of ``per_seconds`` holds more than ``count``.

A token bucket would let a full bucket burst and then refill, doubling the
rate seen in one window; platforms such as Telegram count per window, so
each bucket here hands out evenly spaced start times (GCRA without burst).

Replies book their start time ahead; campaign messages never do
(``behind_others``): they wait until a bucket is free at that moment, so a
reply that comes later still takes the next free slot before them, and a
broadcast's backlog never sits between a customer and their answer.
"""

from __future__ import annotations

import asyncio
import time
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
        if not behind_others:
            delay = self.reserve(limits)
            if delay > 0:
                await asyncio.sleep(delay)
            return
        if not self.enabled or not limits:
            return
        lock = self._behind.get(limits[0].key)
        if lock is None:
            lock = self._behind[limits[0].key] = asyncio.Lock()
        async with lock:
            while (wait := self._busy_for(limits)) > 0:
                await asyncio.sleep(wait)
            self.reserve(limits)

    def _busy_for(self, limits: Sequence[RateLimit]) -> float:
        """Seconds until every bucket of ``limits`` is free (0 when they are now)."""
        now = self._clock()
        return max(self._next.get(limit.key, now) for limit in limits) - now

    def penalise(self, key: str, seconds: float) -> None:
        """Push a bucket back after the platform said 429 with a retry delay."""
        self._next[key] = max(self._next.get(key, 0.0), self._clock() + seconds)
