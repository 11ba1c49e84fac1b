"""The delivery worker: drains the outbox through the channels.

It claims due rows, sends each through its channel under that channel's
rate limits, and settles the results in batches.  Failures are retried with
exponential backoff (with jitter, capped); a row that has used its attempts,
or that the platform refuses for good, ends ``failed`` with its last error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Mapping

from channels.base import (
    Channel,
    OutboundMessage,
    PermanentSendError,
    RecipientBlocked,
    RetryAfter,
    SendError,
)
from channels.ratelimit import RateLimiter
from crm_store.group_commit import GroupCommitter
from crm_store.outbox import Outbox, Settlement
from crm_store.types import utcnow

log = logging.getLogger(__name__)

class DeliveryWorker:
    def __init__(
        self,
        outbox: Outbox,
        channels: Mapping[str, Channel],
        *,
        batch: int = 256,
        concurrency: int = 32,
        max_attempts: int = 8,
        backoff_base: float = 2.0,
        backoff_cap: float = 600.0,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        rate_limits: bool = True,
        on_result: Callable[[OutboundMessage, str], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.channels = dict(channels)
        self.batch = batch
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.limiter = RateLimiter()
        self.limiter.enabled = rate_limits
        self.on_result = on_result
        self._concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._stopping = False
        self._inflight: set[asyncio.Task[None]] = set()
        #: Outbox ids claimed by this worker and not yet settled, with when their lease was last set (monotonic).
        self._held: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        # Results settle in batches; a few milliseconds of waiting turns one
        # transaction per finished send into one per several dozen.
        self._settler: GroupCommitter[Settlement, None] = GroupCommitter(outbox.settle, max_batch=256, linger=0.003)

    def wake(self) -> None:
        """New rows were written: look now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._settler.start()
        self._task = asyncio.create_task(self._run(), name="delivery")

    async def stop(self, timeout: float = 20.0) -> None:
        """Claim nothing more; let in-flight sends finish and settle."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=timeout)
        await self._settler.close()

    async def run_once(self) -> int:
        """Claim and send one batch; wait for it.  For tests and ``dangol worker --once``."""
        claimed = await self._claim()
        await asyncio.gather(*(self._deliver(m) for m in claimed))
        return len(claimed)

    async def _claim(self) -> list[OutboundMessage]:
        # Only leases past a third of their time are renewed: a row sent within
        # moments of its claim (the usual case) costs the claim nothing, and one
        # kept waiting by a rate limit is renewed well before it could lapse.
        started = time.monotonic()
        due = started - self.lease_seconds / 3
        renew = [outbox_id for outbox_id, since in self._held.items() if since <= due]
        claimed = await self.outbox.claim(self.batch, self.lease_seconds, channels=list(self.channels), renew=renew)
        for outbox_id in renew:
            if outbox_id in self._held:
                self._held[outbox_id] = started
        return claimed

    async def _claim_or_nothing(self) -> list[OutboundMessage]:
        try:
            return await self._claim()
        except Exception:  # noqa: BLE001 - the database may be briefly away; keep the worker alive
            log.exception("outbox claim failed")
            return []

    async def _run(self) -> None:
        ahead: asyncio.Task[list[OutboundMessage]] | None = None
        while not self._stopping:
            self._wake.clear()
            claimed = await ahead if ahead is not None else await self._claim_or_nothing()
            ahead = None
            # Rows still held here (a rate limit can keep a busy group chat's replies
            # longer than a lease) had their lease renewed by this claim, so it cannot
            # hand them out again; the filter is the second lock on that door.
            claimed = [m for m in claimed if m.outbox_id not in self._held]
            now = time.monotonic()
            self._held.update((m.outbox_id, now) for m in claimed if m.outbox_id is not None)
            # A full batch means more are probably due: the next claim starts while the
            # last `concurrency` of this one wait for a slot, so sends never stall on it.
            # (Not earlier: claimed rows wait in memory, and their lease runs meanwhile.)
            prefetch_at = max(0, len(claimed) - self._concurrency) if len(claimed) == self.batch else -1
            for index, message in enumerate(claimed):
                if index == prefetch_at and not self._stopping:
                    ahead = asyncio.create_task(self._claim_or_nothing())
                await self._slots.acquire()
                task = asyncio.create_task(self._deliver_in_slot(message))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            if ahead is None and len(claimed) < self.batch and not self._stopping:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                except TimeoutError:
                    pass
        if ahead is not None:
            await self._release_unsent(await ahead)

    async def _release_unsent(self, claimed: list[OutboundMessage]) -> None:
        """Stopping with a prefetched batch: its rows go back to the queue now, not after their lease."""
        if claimed:
            await self.outbox.release([m.outbox_id for m in claimed if m.outbox_id])

    async def _deliver_in_slot(self, message: OutboundMessage) -> None:
        """The slot bounds concurrent sends, so it is freed before the result is written."""
        try:
            settlement = await self._send(message)
        finally:
            self._slots.release()
        await self._record(settlement, message)

    async def _record(self, settlement: Settlement, message: OutboundMessage) -> None:
        try:
            await self._settler.submit(settlement)
        except Exception:  # noqa: BLE001 - the store refused it even after retries: say so, nobody awaits this task
            log.exception("could not record that outbox row %s was %s; the row comes back after its lease",
                          message.outbox_id, settlement.outcome)
            return
        finally:
            if message.outbox_id is not None:
                self._held.pop(message.outbox_id, None)
        if self.on_result:
            self.on_result(message, settlement.outcome)

    async def _deliver(self, message: OutboundMessage) -> None:
        await self._record(await self._send(message), message)

    async def _send(self, message: OutboundMessage) -> Settlement:
        assert message.outbox_id is not None
        channel = self.channels.get(message.channel)
        if channel is None:
            return self._settle(message, "failed", error=f"channel {message.channel} is not configured")
        limits = channel.rate_limits(message)
        await self.limiter.acquire(limits)
        started = time.monotonic()
        try:
            result = await channel.send(message)
        except RetryAfter as exc:
            for limit in limits:
                self.limiter.penalise(limit.key, exc.seconds)
            return self._retry(message, str(exc), exc.seconds)
        except RecipientBlocked as exc:
            await self.outbox.mark_unreachable(message.channel, message.customer_id, message.recipient)
            return self._settle(message, "failed", error=f"recipient blocked: {exc}")
        except PermanentSendError as exc:
            return self._settle(message, "failed", error=str(exc) or type(exc).__name__)
        except (SendError, TimeoutError, OSError) as exc:
            return self._retry(message, str(exc) or type(exc).__name__, None)
        except Exception as exc:  # noqa: BLE001 - an unknown failure is retried, never lost
            log.exception("unexpected error sending outbox row %s", message.outbox_id)
            return self._retry(message, f"{type(exc).__name__}: {exc}", None)
        log.debug("sent %s via %s in %.1f ms", message.outbox_id, message.channel, (time.monotonic() - started) * 1000)
        return self._settle(message, "sent", external_id=result.external_id)

    def _retry(self, message: OutboundMessage, error: str, after: float | None) -> Settlement:
        if message.attempt >= self.max_attempts:
            return self._settle(message, "failed", error=f"gave up after {message.attempt} attempts: {error}")
        if after is None:
            delay = min(self.backoff_cap, self.backoff_base ** message.attempt)
            after = delay * (0.5 + random.random() / 2)
        return self._settle(message, "retry", next_at=utcnow() + dt.timedelta(seconds=after), error=error)

    @staticmethod
    def _settle(
        message: OutboundMessage,
        outcome: str,
        *,
        next_at: dt.datetime | None = None,
        error: str | None = None,
        external_id: str | None = None,
    ) -> Settlement:
        if outcome == "failed":
            log.warning("outbox row %s failed: %s", message.outbox_id, error)
        return Settlement(
            outbox_id=message.outbox_id or "", message_id=message.message_id, outcome=outcome,  # type: ignore[arg-type]
            next_attempt_at=next_at, error=error, external_id=external_id,
        )
