"""The delivery worker: drains the outbox through the channels.

It claims due rows, sends each through its channel under that channel's
rate limits, and settles the results in batches.  Failures are retried with
exponential backoff (with jitter, capped); a row that has used its attempts,
or that the platform refuses for good, ends ``failed`` with its last error.

On several hosts sharing one database, each channel is sent for by one
process at a time: whoever assembles the worker hands it ``leading``, the
channels this process leads now (bot/delivery_leads.py keeps it), and
``sender_key``, recorded on every row it claims so that another process can
tell when this one is gone.  The worker claims only for the channels it
leads, so a platform's rate limit, kept in this process's memory, holds for
the whole deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Collection, Mapping

from channels.base import Channel, PermanentSendError, RecipientBlocked, RetryAfter, SendError
from channels.delivery_lanes import Lanes
from channels.delivery_pacing import CampaignPacer
from channels.ratelimit import RateLimiter
from contracts.messages import OutboundMessage
from crm_store.columns import utcnow
from crm_store.outbox import Outbox, Settlement

log = logging.getLogger(__name__)


class DeliveryWorker:
    """Claims rows into two lanes (:class:`channels.delivery_lanes.Lanes`) that ``concurrency`` long-lived sender tasks drain.

    Replies are claimed as soon as they are due (the claimer is woken, or
    polls) and taken by the senders before any campaign row; campaign rows are
    claimed only after every due reply.  Of each kind the claimer claims a
    batch whenever fewer than a batch wait here, so about one batch waits
    beyond the one being sent (a claim's round trip never leaves the senders
    idle) and a backlog stays in the store, not in this process.
    Results are settled in the next claim's transaction, or by a flush
    ``settle_linger`` seconds after the first of them when no claim comes first.
    """

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
        settle_linger: float = 0.02,
        rate_limits: bool = True,
        on_result: Callable[[OutboundMessage, str], None] | None = None,
        leading: Callable[[], Collection[str]] | None = None,
        sender_key: int | None = None,
        support_lag: float = 0.0,
        support_busy: float = 1.0,
    ) -> None:
        """``support_lag``: the event-loop lag (seconds) campaign sends are held to while support traffic flows
        (channels/delivery_pacing.py); 0: no cap.  ``support_busy``: the share of its time the loop may be busy then
        (1: not watched)."""
        self.outbox = outbox
        self.channels = dict(channels)
        self.batch = batch
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.settle_linger = settle_linger
        self.limiter = RateLimiter()
        self.limiter.enabled = rate_limits
        self.on_result = on_result
        #: The channels this process sends for now (None: every channel it was given).
        self.leading = leading
        self.sender_key = sender_key
        self.pacer = CampaignPacer(support_lag, support_busy) if support_lag > 0 else None
        #: Claimed rows no sender has taken yet; a few senders are always kept free of campaign rows for replies.
        self._lanes = Lanes(concurrency - max(1, concurrency // 8) if concurrency > 1 else 1)
        #: The claimer waits for replies, or campaign rows, to drain below a batch: the sender that sees it wakes it.
        self._want_replies = False
        self._want_campaign = False
        self._wake = asyncio.Event()
        self._stopping = False
        #: Outbox ids claimed by this worker and not yet settled, with when their lease was last set (monotonic).
        self._held: dict[str, float] = {}
        #: Results not yet handed to a transaction, and the event that starts a flush of them.
        self._results: list[tuple[Settlement, OutboundMessage]] = []
        self._results_waiting = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._flusher_stopping = False
        self._senders: list[asyncio.Task[None]] = []
        self._pacing: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """New rows were written: look now rather than at the next poll."""
        self._wake.set()

    def note_support(self) -> None:
        """An inbound message arrived: campaign sends give the loop back to customers (see ``support_lag``)."""
        if self.pacer is not None:
            self.pacer.note_support()

    def start(self) -> None:
        if self.pacer is not None:
            self._pacing = asyncio.create_task(self.pacer.watch(), name="delivery-pacing")
        self._flusher = asyncio.create_task(self._flush_forever(), name="delivery-settle")
        self._senders = [asyncio.create_task(self._sender(), name=f"delivery-send-{i}") for i in range(self.concurrency)]
        self._task = asyncio.create_task(self._run(), name="delivery")

    async def stop(self, timeout: float = 20.0) -> None:
        """Claim nothing more; rows nobody has started sending go back to the queue now,
        sends in flight finish (for up to ``timeout`` seconds) and every result is settled."""
        self._stopping = True
        self._wake.set()
        if self._pacing is not None:
            self._pacing.cancel()
            await asyncio.gather(self._pacing, return_exceptions=True)
        if self.pacer is not None:
            self.pacer.release()
        if self._task is not None:
            await self._task
        await self._release_unsent(self._lanes.drain())
        self._lanes.close()
        if self._senders:
            _, stuck = await asyncio.wait(self._senders, timeout=timeout)
            for sender in stuck:  # its row stays claimed: the lease brings it back, sent or not
                sender.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        if self._flusher is not None:  # not cancelled: results in a flush under way must reach the store
            self._flusher_stopping = True
            self._results_waiting.set()
            await self._flusher
        await self._flush()

    async def run_once(self) -> int:
        """Claim and send one batch, and settle it.  For tests and ``dangol worker --once``."""
        claimed = self._hold(await self._claim())
        results = await asyncio.gather(*(self._attempt(m) for m in claimed))
        self._results.extend(zip(results, claimed, strict=True))
        await self._flush()
        return len(claimed)

    # -- claiming -------------------------------------------------------------

    async def _claim(self, *, limit: int | None = None, expect_rows: bool = False,
                     campaign_limit: int | None = None) -> list[OutboundMessage]:
        """Due rows (at most ``limit`` replies and ``campaign_limit`` campaign rows); pending results are recorded
        and held rows renewed in the same transaction.

        Only leases past a third of their time are renewed: a row sent within
        moments of its claim (the usual case) costs the claim nothing, and one
        kept waiting by a rate limit is renewed well before it could lapse.
        """
        started = time.monotonic()
        renew = self._renewable(started)
        settling = self._take_results()
        channels = self._led_channels()
        try:
            if not channels:  # another process sends for every channel: only what is held here is recorded and renewed
                if settling:
                    await self.outbox.settle([s for s, _ in settling])
                await self.outbox.renew(renew, self.lease_seconds)
                claimed = []
            else:
                claimed = await self.outbox.claim(self.batch if limit is None else limit, self.lease_seconds, channels=channels,
                                                  renew=renew, look_first=not expect_rows, settle=[s for s, _ in settling],
                                                  campaign_limit=campaign_limit, claimed_by=self.sender_key)
        except BaseException:
            self._give_back(settling)  # the flush records them, with its retries
            raise
        self._finish(settling)
        for outbox_id in renew:
            if outbox_id in self._held:
                self._held[outbox_id] = started
        return [OutboundMessage.from_payload(row.channel, row.recipient, row.payload, outbox_id=row.outbox_id,
                                             message_id=row.message_id, conversation_id=row.conversation_id,
                                             customer_id=row.customer_id, attempt=row.attempt) for row in claimed]

    def _led_channels(self) -> list[str]:
        if self.leading is None:
            return list(self.channels)
        led = self.leading()
        return [name for name in self.channels if name in led]

    def _renewable(self, now: float) -> list[str]:
        due = now - self.lease_seconds / 3
        return [outbox_id for outbox_id, since in self._held.items() if since <= due]

    def _hold(self, claimed: list[OutboundMessage]) -> list[OutboundMessage]:
        """Rows still held here (a rate limit can keep a busy group chat's replies past a lease)
        had their lease renewed by the claim, so it cannot hand them out again; this filter is
        the second lock on that door."""
        now = time.monotonic()
        fresh = [m for m in claimed if m.outbox_id is not None and m.outbox_id not in self._held]
        self._held.update((m.outbox_id, now) for m in fresh if m.outbox_id is not None)
        return fresh

    async def _run(self) -> None:
        """Claim while there is room: up to a batch more of each kind whenever fewer than a batch of it wait here."""
        expect_rows = False
        lanes = self._lanes
        while not self._stopping:
            self._wake.clear()
            reply_room = self.batch if lanes.replies_waiting < self.batch else 0
            campaign_room = self.batch if lanes.campaign_waiting < self.batch else 0
            try:
                claimed = await self._claim(limit=reply_room, expect_rows=expect_rows, campaign_limit=campaign_room)
            except Exception:  # noqa: BLE001 - the database may be briefly away; keep the worker alive
                log.exception("outbox claim failed")
                claimed = []
            for message in self._hold(claimed):
                lanes.put(message)
            campaign = sum(1 for m in claimed if m.campaign)
            # more of a kind is probably due when a claim took all the room it had for it (or had none);
            # campaign rows are claimed only once no reply is due, so they wait for the replies first
            self._want_replies = reply_room == 0 or len(claimed) - campaign == reply_room
            self._want_campaign = not self._want_replies and (campaign_room == 0 or campaign == campaign_room)
            expect_rows = (self._want_replies and reply_room > 0) or (self._want_campaign and campaign_room > 0)
            if self._room_for_more():
                continue  # the senders took them already
            if not self._stopping:
                # woken by new rows, or by a sender when there is room for what is due; else polling:
                # another process's replies are found, and the leases of rows held here renewed, within a poll
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(self.poll_seconds, self.lease_seconds / 3))

    def _room_for_more(self) -> bool:
        """Whether the claimer waits for room that is now free."""
        return ((self._want_replies and self._lanes.replies_waiting < self.batch)
                or (self._want_campaign and self._lanes.campaign_waiting < self.batch))

    async def _release_unsent(self, claimed: list[OutboundMessage]) -> None:
        """Stopping with claimed rows nobody started: they go back to the queue now, not after their lease."""
        ids = [m.outbox_id for m in claimed if m.outbox_id]
        for outbox_id in ids:
            self._held.pop(outbox_id, None)
        if ids:
            try:
                await self.outbox.release(ids)
            except Exception:  # noqa: BLE001 - stopping goes on: the sends in flight still need their results recorded
                log.exception("could not give %d unsent outbox rows back; they come back after their lease", len(ids))

    # -- sending --------------------------------------------------------------

    async def _sender(self) -> None:
        lanes = self._lanes
        while True:
            message = await lanes.get()
            if message is None:
                return
            if self._room_for_more():
                self._want_replies = self._want_campaign = False
                self._wake.set()
            try:
                settlement = await self._attempt(message)
            finally:
                lanes.done(message)
            self._results.append((settlement, message))
            self._results_waiting.set()

    # -- settling -------------------------------------------------------------

    async def _flush_forever(self) -> None:
        """Results a claim did not take are settled ``settle_linger`` after the first of them."""
        # Checked again after every flush: stop() may have set the event while one was under
        # way, and that flush's taking of the results cleared it.
        while not self._flusher_stopping:
            await self._results_waiting.wait()
            if self._flusher_stopping:
                return  # stop() settles what is left
            await asyncio.sleep(self.settle_linger)
            await self._flush()

    async def _flush(self) -> None:
        settling = self._take_results()
        if not settling:
            return
        try:
            await self.outbox.settle([s for s, _ in settling])
        except Exception:  # noqa: BLE001 - the store refused even after retries: say so, nobody awaits this
            log.exception("could not record the results of outbox rows %s; the rows come back after their lease",
                          ", ".join(f"{m.outbox_id} ({s.outcome})" for s, m in settling))
            for _, message in settling:
                if message.outbox_id is not None:
                    self._held.pop(message.outbox_id, None)
            return
        self._finish(settling)

    def _take_results(self) -> list[tuple[Settlement, OutboundMessage]]:
        taken, self._results = self._results, []
        self._results_waiting.clear()
        return taken

    def _give_back(self, settling: list[tuple[Settlement, OutboundMessage]]) -> None:
        if settling:
            self._results[:0] = settling
            self._results_waiting.set()

    def _finish(self, settled: list[tuple[Settlement, OutboundMessage]]) -> None:
        """Recorded: the rows are no longer held, and whoever counts results hears of them."""
        for settlement, message in settled:
            if message.outbox_id is not None:
                self._held.pop(message.outbox_id, None)
            if self.on_result:
                self.on_result(message, settlement.outcome)

    async def _attempt(self, message: OutboundMessage) -> Settlement:
        """``_send``, whose result is always one to record: a sender task that died, or a
        gathered batch that lost its other results, would leave rows held (and renewed) or sent twice."""
        try:
            return await self._send(message)
        except Exception as exc:  # noqa: BLE001 - the store failed mid-send (marking a blocked recipient)
            log.exception("sending outbox row %s failed outside the channel; it is tried again later", message.outbox_id)
            return self._retry(message, f"{type(exc).__name__}: {exc}", None)

    async def _send(self, message: OutboundMessage) -> Settlement:
        assert message.outbox_id is not None
        channel = self.channels.get(message.channel)
        if channel is None:
            return self._settle(message, "failed", error=f"channel {message.channel} is not configured")
        if message.campaign and self.pacer is not None:
            await self.pacer.wait()
        limits = channel.rate_limits(message)
        await self.limiter.acquire(limits, behind_others=message.campaign)
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
        if message.campaign and self.pacer is not None:
            self.pacer.note_sent()
        return self._settle(message, "sent", external_id=result.external_id)

    def _retry(self, message: OutboundMessage, error: str, after: float | None) -> Settlement:
        if message.attempt >= self.max_attempts:
            return self._settle(message, "failed", error=f"gave up after {message.attempt} attempts: {error}")
        if after is None:
            delay = min(self.backoff_cap, self.backoff_base ** message.attempt)
            after = delay * (0.5 + random.random() / 2)
        # One line an operator can follow per failed try, not only the final give-up.
        log.warning("delivery via %s to %s failed (attempt %d of %d): %s; next try in %.1f s (outbox row %s)",
                    message.channel, message.recipient, message.attempt, self.max_attempts, error, after, message.outbox_id)
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
            log.error("delivery via %s to %s given up (attempt %d): %s (outbox row %s)",
                      message.channel, message.recipient, message.attempt, error, message.outbox_id)
        return Settlement(
            outbox_id=message.outbox_id or "", message_id=message.message_id, outcome=outcome,  # type: ignore[arg-type]
            next_attempt_at=next_at, error=error, external_id=external_id,
        )
