"""While customers are being served, campaign sends are held to a rate the event loop's lag and busy share drive;
otherwise uncapped.

The pacer's clock is the test's: lag and busy windows are fed in as
measurements, so nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from bot.config import CoreSettings
from channels.delivery import DeliveryWorker
from channels.delivery_pacing import FLOOR, SUPPORT_WINDOW, CampaignPacer
from contracts.messages import InboundMessage
from crm_store.database import Database
from crm_store.models import OutboxRow
from crm_store.outbox import Outbox
from tests.delivery.test_delivery_worker import ScriptedChannel, queue_replies
from tests.fakes.base import eventually
from tests.helpers import sample_engine

TARGET = 0.005
BUSY = 0.5


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pacer_with(clock: Clock) -> CampaignPacer:
    return CampaignPacer(TARGET, BUSY, clock=clock)


def sending(pacer: CampaignPacer, clock: Clock, per_second: int, lag: float, busy: float = 0.1) -> None:
    """One window of 0.2 s in which the campaign sent ``per_second`` a second, the loop lagged ``lag`` and ran
    callbacks ``busy`` of the time."""
    for _ in range(per_second // 5):
        pacer.note_sent()
    clock.now += 0.2
    pacer.observe(lag, busy)


def test_without_support_traffic_campaign_sends_are_not_capped_however_busy_the_loop() -> None:
    clock = Clock()
    pacer = pacer_with(clock)
    for _ in range(10):
        sending(pacer, clock, 2000, lag=0.5)
    assert pacer.rate is None


async def test_support_traffic_meeting_an_uncapped_broadcast_caps_it_at_once_from_low_and_it_grows_back() -> None:
    clock = Clock()
    pacer = pacer_with(clock)
    sending(pacer, clock, 2000, lag=0.0)  # at night: uncapped
    pacer.note_support()
    await pacer.wait()  # the next campaign send starts the cap, before any window is measured
    assert pacer.rate == FLOOR
    rates = []
    for _ in range(20):
        pacer.note_support()
        sending(pacer, clock, 100, lag=TARGET / 2, busy=BUSY / 2)
        rates.append(pacer.rate)
    assert rates == sorted(rates) and rates[-1] > 100


async def test_a_new_cap_starts_from_half_the_last_rate_that_held() -> None:
    clock = Clock()
    pacer = pacer_with(clock)
    pacer.note_support()
    await pacer.wait()
    for _ in range(20):
        pacer.note_support()
        sending(pacer, clock, 100, lag=TARGET / 2)
    held = pacer.rate
    clock.now += SUPPORT_WINDOW
    sending(pacer, clock, 2000, lag=0.0)  # customers gone: uncapped again
    assert pacer.rate is None and held is not None
    pacer.note_support()
    await pacer.wait()
    assert FLOOR < pacer.rate <= held / 2


def test_a_lagging_loop_halves_the_rate_down_to_the_floor_and_no_further() -> None:
    clock = Clock()
    pacer = pacer_with(clock)
    pacer.note_support()
    pacer.rate = 800.0  # a cap that had grown
    sending(pacer, clock, 800, lag=TARGET * 4)
    rates = [pacer.rate]
    for _ in range(12):
        pacer.note_support()
        sending(pacer, clock, 100, lag=TARGET * 4)
        rates.append(pacer.rate)
    assert rates[0] == 400.0 and rates[1] == rates[0] / 2
    assert rates[-1] == FLOOR
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:], strict=False))


def test_a_loop_busy_past_its_share_halves_the_rate_though_no_timer_fires_late() -> None:
    clock = Clock()
    pacer = pacer_with(clock)
    pacer.note_support()
    pacer.rate = 800.0
    sending(pacer, clock, 800, lag=TARGET / 2, busy=BUSY + 0.3)
    first = pacer.rate
    pacer.note_support()
    sending(pacer, clock, 800, lag=TARGET / 2, busy=BUSY + 0.3)
    assert first is not None and pacer.rate == first / 2
    pacer.note_support()
    sending(pacer, clock, 400, lag=TARGET / 2, busy=BUSY - 0.1)
    assert pacer.rate > first / 2


def test_a_loop_back_under_the_target_lets_the_rate_grow_again() -> None:
    clock = Clock()
    pacer = pacer_with(clock)
    pacer.note_support()
    for _ in range(10):
        sending(pacer, clock, 100, lag=TARGET * 4)
    low = pacer.rate
    for _ in range(5):
        pacer.note_support()
        sending(pacer, clock, 10, lag=TARGET / 2)
    assert pacer.rate is not None and low is not None and pacer.rate > low


def test_the_cap_is_lifted_once_support_traffic_has_stopped() -> None:
    clock = Clock()
    pacer = pacer_with(clock)
    pacer.note_support()
    sending(pacer, clock, 100, lag=TARGET * 4)
    assert pacer.rate is not None
    clock.now += SUPPORT_WINDOW
    sending(pacer, clock, 100, lag=TARGET * 4)
    assert pacer.rate is None


async def test_under_a_cap_a_campaign_send_waits_for_its_turn_and_without_one_goes_at_once() -> None:
    clock = Clock()
    pacer = pacer_with(clock)
    await asyncio.wait_for(pacer.wait(), 1)  # no cap: at once
    pacer.note_support()
    pacer.rate = 10.0  # one send each 0.1 s of the pacer's clock
    await asyncio.wait_for(pacer.wait(), 1)
    second = asyncio.create_task(pacer.wait())
    for _ in range(3):
        await asyncio.sleep(0)
    assert not second.done()  # its turn is 0.1 s later on the pacer's clock, which has not moved
    clock.now += 0.1
    await asyncio.wait_for(second, 1)


async def test_a_released_pacer_lets_every_send_go_at_once_though_customers_still_write() -> None:
    """A stopping worker's last rows go out in the time it has: the cap must not start again at the next send."""
    clock = Clock()
    pacer = pacer_with(clock)
    pacer.note_support()
    await pacer.wait()
    assert pacer.rate == FLOOR
    pacer.release()
    pacer.note_support()
    for _ in range(50):  # at the floor's 5 a second these would wait 10 s of the test's clock, which never moves
        await asyncio.wait_for(pacer.wait(), 1)
    assert pacer.rate is None


async def test_paced_senders_take_their_turns_one_at_a_time_in_the_order_they_came() -> None:
    clock = Clock()
    pacer = pacer_with(clock)
    pacer.note_support()
    pacer.rate = 10.0
    await pacer.wait()  # the first slot
    order: list[int] = []

    async def sender(i: int) -> None:
        await pacer.wait()
        order.append(i)

    senders = [asyncio.create_task(sender(i)) for i in range(4)]
    for step in range(1, 5):
        for _ in range(5):
            await asyncio.sleep(0)
        assert order == list(range(step - 1))  # the next turn has not come on the pacer's clock
        clock.now += 0.1
        await asyncio.wait_for(asyncio.shield(senders[step - 1]), 1)
    assert order == [0, 1, 2, 3]


async def as_campaign_rows(db: Database) -> None:
    """The queued rows become a broadcast's (a service campaign's: no consent is checked at the claim)."""
    outbox = OutboxRow.__table__
    async with db.write() as conn:
        for row_id, payload in (await conn.execute(select(outbox.c.id, outbox.c.payload))).all():
            await conn.execute(update(outbox).where(outbox.c.id == row_id).values(
                status="campaign", payload={**payload, "campaign": {"purpose": "service", "tz": "UTC", "quiet": []}}))


async def test_under_the_cap_campaign_rows_wait_their_turn_while_a_reply_goes_out(db: Database) -> None:
    await queue_replies(db, 6)
    await as_campaign_rows(db)
    channel = ScriptedChannel()
    clock = Clock()  # the pacer's clock stands still: after the first campaign row, the next one's turn never comes
    worker = DeliveryWorker(Outbox(db), {"webchat": channel}, batch=8, concurrency=4, poll_seconds=0.02, support_lag=TARGET)
    assert worker.pacer is not None
    worker.pacer.clock = clock
    worker.note_support()
    worker.pacer.rate = FLOOR
    worker.start()
    try:
        await eventually(lambda: len(channel.sent) == 1, timeout=10)
        engine = await sample_engine(db)
        await engine.handle(InboundMessage(channel="webchat", sender_id="customer", text="hello", external_id="late"))
        await engine.close()
        worker.wake()
        await eventually(lambda: any(m.recipient == "customer" for m in channel.sent), timeout=10)
        assert [m.campaign for m in channel.sent] == [True, False]  # the reply went out; the broadcast waits its turn
    finally:
        await worker.stop()


def test_the_service_caps_its_campaign_sends_by_default_and_the_setting_turns_it_off(
        make_settings: Callable[..., CoreSettings]) -> None:
    assert make_settings().delivery_support_lag_ms > 0
    assert 0 < make_settings().delivery_support_busy < 1
    assert DeliveryWorker(Outbox(None), {}, support_lag=0).pacer is None  # type: ignore[arg-type]


def test_the_lag_is_measured_only_while_support_traffic_meets_campaign_sends() -> None:
    clock = Clock()
    pacer = pacer_with(clock)
    assert not pacer.measuring  # nothing flows
    sending(pacer, clock, 1000, lag=0.0)
    assert not pacer.measuring  # a broadcast at night: uncapped, nothing to measure
    pacer.note_support()
    assert pacer.measuring
    quiet = pacer_with(Clock())
    quiet.note_support()
    assert not quiet.measuring  # customers, but no campaign going out
    quiet.observe(None)
    assert quiet.rate is None


async def test_the_service_counts_a_customer_as_served_from_the_moment_their_message_arrives(aiohttp_client: Any, db_url: str) -> None:
    """The cap must start before the first customer's message waits behind an uncapped broadcast, not once it is
    answered: measured on PostgreSQL, the requests of the first fraction of a second took 80-250 ms otherwise."""
    from bot.app import create_app
    from bot.config import load_settings
    from bot.services import SERVICES

    client = await aiohttp_client(create_app(load_settings(database_url=db_url)))
    services = client.app[SERVICES]
    assert services.delivery is not None and services.delivery.pacer is not None and services.engine is not None
    pacer = services.delivery.pacer
    assert not pacer.support_flowing
    handle = services.engine.handle
    seen: list[bool] = []

    async def handling(message: InboundMessage) -> Any:
        seen.append(pacer.support_flowing)
        return await handle(message)

    services.engine.handle = handling  # type: ignore[method-assign]
    response = await client.post("/webhooks/rest/webhook", json={"sender": "first", "message": "hello"})
    assert response.status == 200
    assert seen == [True]
