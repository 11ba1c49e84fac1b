"""How much of this process campaign sends may take while customers are being served: an adaptive cap.

Every send costs the process that makes it: the platform client's request, JSON, the claim and the
settling transactions, all on the event loop that also answers customers' webhooks and the console.
With a platform's limits off, or generous, a broadcast drains as fast as the worker goes and takes the
whole loop: measured with 100,000 Telegram recipients draining into a fake, the REST channel's p99 went
from about 20 ms to 830-910 ms (SQLite and PostgreSQL), every request waiting behind send after send.

So while support traffic flows (an inbound message arrived within the last ``SUPPORT_WINDOW`` seconds)
campaign sends are paced: at most ``rate`` a second, a rate driven by the loop's own lag, how late a
short timer fires (``PROBE_SECONDS``), worst case over each ``WINDOW_SECONDS``:

- a window whose lag passed the target, or in which the loop ran callbacks more than the busy target's share of
  the time, halves the rate (never below ``FLOOR`` a second);
- a window under both targets lets it grow by a fifth, plus one;
- when support traffic meets campaign sends, the cap starts at once (at the first campaign send) from half the
  last rate that held, or the floor: not from what the campaign was sending uncapped.

Without support traffic there is no cap: a broadcast at night drains at full speed.  The lag is only
measured while it can matter (support traffic flowing and campaign messages going out); otherwise the
watcher wakes once a window, not a hundred times a second in every serving process.  Replies (the bot's
answers, agents' messages) are never paced; they have their own lane (channels/delivery_lanes.py).
The targets are ``delivery_support_lag_ms`` (0 turns the cap off) and ``delivery_support_busy``.  The lag alone
missed a loop kept busy by sends that each wait on the network (PostgreSQL's claims and settles): at 800-1,000
campaign sends a second the lag stayed under 5 ms while the serving process ran 70-85% of the time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: Seconds after the last inbound message during which support traffic counts as flowing.
SUPPORT_WINDOW = 3.0
#: The lag probe's timer, and the window whose worst lag adapts the rate.
PROBE_SECONDS = 0.01
WINDOW_SECONDS = 0.2
#: The least campaign sends a second while support traffic flows: a broadcast never stops altogether.
FLOOR = 5.0
#: How often a paced sender looks again whether its turn came (the rate or the traffic may have changed).
RECHECK_SECONDS = 0.05


class CampaignPacer:
    """The cap on campaign sends (see the module's docstring); ``lag_target`` in seconds, ``busy_target`` a share of the
    loop's time (1: not watched)."""

    def __init__(self, lag_target: float, busy_target: float = 1.0, *, clock: Callable[[], float] = time.monotonic,
                 cpu_clock: Callable[[], float] = time.thread_time) -> None:
        self.lag_target = lag_target
        self.busy_target = busy_target
        self.clock = clock
        #: CPU seconds of the thread that runs the event loop (the watcher reads it there).
        self.cpu_clock = cpu_clock
        #: Paced senders wait their turn one at a time: only the first sleeps toward the next slot.
        self._turn = asyncio.Lock()
        #: Campaign sends a second allowed now; None: no cap (no support traffic, or not measured yet).
        self.rate: float | None = None
        self._support_at = float("-inf")
        self._next = 0.0
        #: Campaign sends counted since the last window, and when it began (the rate a cap starts from).
        self._sent = 0
        self._window_at = clock()
        self._sending_rate = 0.0
        #: The last rate that kept the loop within its targets while customers were served (where a new cap starts).
        self._held: float | None = None
        #: No cap any more: the worker is stopping (see :meth:`release`).
        self._released = False

    @property
    def support_flowing(self) -> bool:
        return self.clock() - self._support_at < SUPPORT_WINDOW

    def note_support(self) -> None:
        """An inbound message arrived: customers are being served."""
        self._support_at = self.clock()

    def release(self) -> None:
        """No cap from now on, whatever the traffic: the worker is stopping, and the rows it still holds go out
        unpaced in the time it has (a cap would start again at the next send while customers write)."""
        self._released = True
        self.rate = None

    def note_sent(self) -> None:
        """A campaign message went out (counted for the rate a cap starts from)."""
        self._sent += 1

    @property
    def measuring(self) -> bool:
        """Whether the next window's lag can change anything: support traffic flows while the campaign sends."""
        return self.support_flowing and (self.rate is not None or self._sending_rate > 0 or self._sent > 0)

    def observe(self, lag: float | None, busy: float = 0.0) -> None:
        """The end of a window whose worst event-loop lag was ``lag`` seconds (None: not measured, nothing to pace
        in it) and whose loop ran callbacks ``busy`` of the time (0-1): adapt the rate."""
        now = self.clock()
        elapsed = now - self._window_at
        if elapsed > 0:
            self._sending_rate = self._sent / elapsed
        self._sent, self._window_at = 0, now
        if not self.support_flowing:
            self.rate = None
            return
        if lag is None:
            return
        if self.rate is None:
            self.rate = self._starting_rate()
        if lag > self.lag_target or busy > self.busy_target:
            self.rate = max(FLOOR, self.rate / 2)
        else:
            self._held = self.rate
            self.rate = self.rate * 1.2 + 1

    def _starting_rate(self) -> float:
        """Where a cap starts when support traffic meets campaign sends: half the last rate that held, else the floor.

        Not what the campaign was sending: uncapped, a broadcast takes the loop (2,000 sends a second and more), and
        halving from there took a second of windows, in which the first support requests waited 70-180 ms
        (measured on PostgreSQL, every REST request over 60 ms of a 20-second stream fell in its first 0.4 s).
        From low, the rate grows back by a fifth a window while the loop keeps within its targets."""
        return max(FLOOR, self._held / 2) if self._held else FLOOR

    async def wait(self) -> None:
        """Before a campaign send: wait for its turn under the cap (at once when there is none).

        The senders holding campaign rows queue for their turns, and only the first sleeps toward the next slot:
        each of them waking to look at every recheck woke the loop some thirty times a send."""
        if self._released or not self.support_flowing:
            return
        if self.rate is None:  # customers came while the campaign went out uncapped: capped from this send on
            self.rate = self._starting_rate()
        async with self._turn:
            while True:
                rate = self.rate
                if rate is None or self._released or not self.support_flowing:
                    return
                now = self.clock()
                if now >= self._next:
                    self._next = max(now, self._next) + 1 / rate
                    return
                await asyncio.sleep(min(self._next - now, RECHECK_SECONDS))

    async def watch(self) -> None:
        """Measure the loop's lag and adapt the rate, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            if not self.measuring:
                await asyncio.sleep(WINDOW_SECONDS)
                self.observe(None)
                continue
            worst = 0.0
            window_start, cpu_start = loop.time(), self.cpu_clock()
            window_end = window_start + WINDOW_SECONDS
            while loop.time() < window_end:
                started = loop.time()
                await asyncio.sleep(PROBE_SECONDS)
                worst = max(worst, loop.time() - started - PROBE_SECONDS)
            self.observe(worst, (self.cpu_clock() - cpu_start) / max(loop.time() - window_start, PROBE_SECONDS))
