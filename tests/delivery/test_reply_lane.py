"""Replies before campaign rows: in the worker's lanes and at the rate limiter."""

from __future__ import annotations

import asyncio
import time

from channels.base import RateLimit, SendResult
from channels.delivery import DeliveryWorker
from channels.delivery_lanes import Lanes
from channels.ratelimit import RateLimiter
from contracts.messages import OutboundMessage
from crm_store.database import Database
from crm_store.outbox import Outbox
from tests.delivery.test_delivery_worker import ScriptedChannel, queue_replies
from tests.fakes.base import eventually
from tests.helpers import count


def message(recipient: str, *, campaign: bool = False) -> OutboundMessage:
    return OutboundMessage("telegram", recipient, text="hi", campaign=campaign)


def test_a_campaign_row_is_known_by_its_payload() -> None:
    assert OutboundMessage.from_payload("telegram", "1", {"text": "sale", "campaign": {"purpose": "marketing"}}).campaign
    assert not OutboundMessage.from_payload("telegram", "1", {"text": "hello"}).campaign


async def test_a_sender_takes_a_reply_claimed_after_a_batch_of_campaign_rows_first() -> None:
    lanes = Lanes(campaign_senders=4)
    for i in range(100):
        lanes.put(message(f"c{i}", campaign=True))
    lanes.put(message("customer"))
    taken = await lanes.get()
    assert taken is not None and taken.recipient == "customer"


async def test_senders_beyond_the_campaign_share_wait_for_replies() -> None:
    lanes = Lanes(campaign_senders=2)
    for i in range(5):
        lanes.put(message(f"c{i}", campaign=True))
    first, second = await lanes.get(), await lanes.get()
    free_sender = asyncio.create_task(lanes.get())
    await asyncio.sleep(0)
    assert not free_sender.done()  # two campaign rows in flight: this sender stays free for replies
    lanes.put(message("customer"))
    reply = await free_sender
    assert reply is not None and reply.recipient == "customer"
    assert first is not None and second is not None
    lanes.done(first)
    after = await lanes.get()
    assert after is not None and after.campaign


async def test_closing_stops_the_waiting_senders() -> None:
    lanes = Lanes(campaign_senders=1)
    waiting = asyncio.create_task(lanes.get())
    await asyncio.sleep(0)
    lanes.close()
    assert await waiting is None


async def test_a_reply_booked_after_a_waiting_campaign_message_starts_first() -> None:
    limiter = RateLimiter()
    limit = [RateLimit("telegram:bot", 10, 1.0)]
    limiter.reserve(limit)  # the bucket is busy for a tenth of a second
    order: list[str] = []

    async def send(name: str, campaign: bool) -> None:
        await limiter.acquire(limit, behind_others=campaign)
        order.append(name)

    campaign = asyncio.create_task(send("campaign", True))
    await asyncio.sleep(0)  # the campaign message waits for the bucket
    await asyncio.gather(campaign, send("reply", False))
    assert order == ["reply", "campaign"]


async def test_without_limits_a_campaign_message_does_not_wait() -> None:
    limiter = RateLimiter()
    limiter.enabled = False
    await asyncio.wait_for(limiter.acquire([RateLimit("k", 1, 60.0)], behind_others=True), timeout=1)


async def test_a_reply_backlog_is_claimed_a_batch_ahead_not_all_at_once(db: Database) -> None:
    """Replies leave in order anyway: holding the whole backlog would only give the worker leases to renew."""
    await queue_replies(db, 20)
    gate = asyncio.Event()

    class Stuck(ScriptedChannel):
        async def send(self, message: OutboundMessage) -> SendResult:
            await gate.wait()
            return await super().send(message)

    channel = Stuck()
    worker = DeliveryWorker(Outbox(db), {"webchat": channel}, batch=4, concurrency=1, poll_seconds=0.02)
    worker.start()
    await eventually(lambda: count(db, "outbox", status="sending"), timeout=5)
    for _ in range(10):  # ten polls, each of which could claim more
        await asyncio.sleep(0.02)
    held = await count(db, "outbox", status="sending")
    gate.set()
    await eventually(lambda: len(channel.sent) == 20, timeout=10)
    await worker.stop()
    assert 4 <= held <= 2 * 4  # the one being sent and fewer than two batches waiting


async def test_a_stalled_process_never_puts_more_than_the_limit_into_one_window() -> None:
    """Booked starts alone would let the sends woken late by a stall crowd the ones booked after them."""
    limiter = RateLimiter()
    limit = [RateLimit("telegram:bot", 3, 0.3)]  # starts booked a tenth of a second apart
    started: list[float] = []

    async def send() -> None:
        await limiter.acquire(limit)
        started.append(time.monotonic())

    async def stall() -> None:
        await asyncio.sleep(0.05)
        time.sleep(0.25)  # the whole event loop stops, as on a loaded machine: two booked sends wake late

    await asyncio.gather(stall(), *(send() for _ in range(8)))
    most = max(sum(1 for t in started if first <= t < first + 0.29) for first in started)
    assert most <= 3, [round(t - started[0], 3) for t in started]
