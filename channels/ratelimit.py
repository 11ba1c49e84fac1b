"""Spacing of sends so that no window of ``per_seconds`` holds more than ``count``.

A token bucket would let a full bucket burst and then refill, doubling the
rate seen in one window; platforms such as Telegram count per window, so
each bucket here hands out evenly spaced start times (GCRA without burst).
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

    def reserve(self, limits: Sequence[RateLimit]) -> float:
        """Book the earliest moment every bucket allows; return seconds to wait."""
        if not self.enabled or not limits:
            return 0.0
        now = self._clock()
        start = max([now] + [self._next.get(limit.key, now) for limit in limits])
        for limit in limits:
            self._next[limit.key] = start + limit.per_seconds / limit.count
        return start - now

    async def acquire(self, limits: Sequence[RateLimit]) -> None:
        delay = self.reserve(limits)
        if delay > 0:
            await asyncio.sleep(delay)

    def penalise(self, key: str, seconds: float) -> None:
        """Push a bucket back after the platform said 429 with a retry delay."""
        self._next[key] = max(self._next.get(key, 0.0), self._clock() + seconds)
