"""The delivery worker: claim, send, settle, retry with backoff, give up, never double-send."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import Any

import pytest

from sqlalchemy import update
from sqlalchemy.exc import DBAPIError

from channels.base import Channel, PermanentSendError, RateLimit, RecipientBlocked, RetryAfter, SendError, SendResult
from contracts.messages import OutboundMessage
from channels.delivery import DeliveryWorker
from crm_store.database import Database
from crm_store.models import OutboxRow
from crm_store.outbox import Outbox
from contracts.messages import InboundMessage
from crm_store.columns import utcnow
from tests.fakes.base import eventually
from tests.helpers import rows, sample_engine


class ScriptedChannel(Channel):
    """Stands in for a platform API: records sends and fails as told."""

    name = "webchat"

    def __init__(self, failures: Sequence[Exception] = (), limits: Sequence[RateLimit] = ()) -> None:
        super().__init__()
        self.failures = list(failures)
        self.limits = list(limits)
        self.sent: list[OutboundMessage] = []

    async def send(self, message: OutboundMessage) -> SendResult:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)
        return SendResult(external_id=f"ext-{len(self.sent)}")

    def rate_limits(self, message: OutboundMessage) -> Sequence[RateLimit]:
        return self.limits


async def queue_replies(db: Database, n: int = 1) -> None:
    engine = await sample_engine(db)
    await asyncio.gather(*(engine.handle(InboundMessage(channel="webchat", sender_id=f"v{i}", text="hello", external_id=f"m{i}"))
                           for i in range(n)))
    await engine.close()


def worker(db: Database, channel: Channel, **kw: object) -> DeliveryWorker:
    return DeliveryWorker(Outbox(db), {"webchat": channel}, backoff_base=2.0, **kw)  # type: ignore[arg-type]


async def make_due(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(update(OutboxRow.__table__).where(OutboxRow.__table__.c.status == "queued").values(next_attempt_at=utcnow()))


async def test_a_queued_reply_is_sent_once_and_marked_sent(db: Database) -> None:
    await queue_replies(db)
    channel = ScriptedChannel()
    w = worker(db, channel)
    assert await w.run_once() == 1
    assert await w.run_once() == 0
    await w.stop()
    (row,) = await rows(db, "outbox")
    assert (row.status, row.attempts, row.external_id) == ("sent", 1, "ext-1")
    (message,) = await rows(db, "messages", direction="out")
    assert message.status == "sent"
    assert len(channel.sent) == 1 and channel.sent[0].text


async def test_a_transient_failure_is_retried_later_with_growing_backoff(db: Database) -> None:
    await queue_replies(db)
    w = worker(db, ScriptedChannel([SendError("502 bad gateway"), SendError("timeout")]))
    before = utcnow()
    await w.run_once()
    (row,) = await rows(db, "outbox")
    assert row.status == "queued" and row.attempts == 1 and row.last_error == "502 bad gateway"
    first_wait = row.next_attempt_at - before
    assert dt.timedelta(seconds=0.9) <= first_wait <= dt.timedelta(seconds=3)
    assert await w.run_once() == 0  # not due yet
    await make_due(db)
    before = utcnow()
    await w.run_once()
    (row,) = await rows(db, "outbox")
    assert row.attempts == 2 and row.next_attempt_at - before >= dt.timedelta(seconds=1.9)
    await make_due(db)
    await w.run_once()
    await w.stop()
    (row,) = await rows(db, "outbox")
    assert row.status == "sent" and row.attempts == 3


async def test_a_row_fails_with_its_last_error_after_the_last_attempt(db: Database) -> None:
    await queue_replies(db)
    w = worker(db, ScriptedChannel([SendError(f"boom {i}") for i in range(5)]), max_attempts=3)
    for _ in range(3):
        await w.run_once()
        await make_due(db)
    await w.stop()
    (row,) = await rows(db, "outbox")
    assert row.status == "failed" and row.attempts == 3
    assert "boom 2" in row.last_error
    (message,) = await rows(db, "messages", direction="out")
    assert message.status == "failed"


async def test_a_platform_retry_after_is_honoured(db: Database) -> None:
    await queue_replies(db)
    w = worker(db, ScriptedChannel([RetryAfter(30)]))
    before = utcnow()
    await w.run_once()
    await w.stop()
    (row,) = await rows(db, "outbox")
    assert row.status == "queued"
    assert row.next_attempt_at - before >= dt.timedelta(seconds=29)


async def test_a_permanent_refusal_is_not_retried(db: Database) -> None:
    await queue_replies(db)
    w = worker(db, ScriptedChannel([PermanentSendError("chat not found")]))
    await w.run_once()
    await w.stop()
    (row,) = await rows(db, "outbox")
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "chat not found")


async def test_a_customer_who_blocked_us_is_marked_unreachable(db: Database) -> None:
    await queue_replies(db)
    w = worker(db, ScriptedChannel([RecipientBlocked("bot was blocked by the user")]))
    await w.run_once()
    await w.stop()
    (row,) = await rows(db, "outbox")
    assert row.status == "failed"
    (identity,) = await rows(db, "channel_identities")
    assert identity.reachable is False


async def test_rows_left_sending_by_a_dead_worker_come_back_after_their_lease(db: Database) -> None:
    await queue_replies(db)
    outbox = Outbox(db)
    claimed = await outbox.claim(10, lease_seconds=60)
    assert len(claimed) == 1
    assert await outbox.claim(10, lease_seconds=60) == []
    async with db.write() as conn:
        await conn.execute(update(OutboxRow.__table__).values(claimed_until=utcnow() - dt.timedelta(seconds=1)))
    again = await outbox.claim(10, lease_seconds=60)
    assert [m.outbox_id for m in again] == [claimed[0].outbox_id]
    assert again[0].attempt == 2


async def test_concurrent_claimers_never_take_the_same_row(db: Database) -> None:
    await queue_replies(db, 60)
    outboxes = [Outbox(db) for _ in range(4)]
    batches = await asyncio.gather(*(o.claim(20, lease_seconds=60) for o in outboxes for _ in range(2)))
    ids = [m.outbox_id for batch in batches for m in batch]
    assert len(ids) == len(set(ids)) == 60


async def test_rate_limits_space_sends_within_their_window(db: Database) -> None:
    await queue_replies(db, 6)
    channel = ScriptedChannel(limits=[RateLimit("test:bucket", 20, 1.0)])
    w = worker(db, channel)
    started = asyncio.get_running_loop().time()
    await w.run_once()
    elapsed = asyncio.get_running_loop().time() - started
    await w.stop()
    assert len(channel.sent) == 6
    assert elapsed >= 5 / 20 * 0.9


async def test_a_running_worker_claiming_ahead_sends_every_row_once(db: Database) -> None:
    await queue_replies(db, 21)
    channel = ScriptedChannel()
    w = DeliveryWorker(Outbox(db), {"webchat": channel}, batch=5, concurrency=2, poll_seconds=0.05)
    w.start()
    for _ in range(200):
        if len(channel.sent) >= 21:
            break
        await asyncio.sleep(0.02)
    await w.stop()
    sent = [m.outbox_id for m in channel.sent]
    assert len(sent) == len(set(sent)) == 21
    assert {r.status for r in await rows(db, "outbox")} == {"sent"}


async def stop_while_two_sends_wait(db: Database) -> ScriptedChannel:
    """12 replies queued; a worker sending two at a time (batches of 4, the next claimed ahead) is
    stopped while both sends wait on the channel, which then lets them finish.  The channel, once stopped."""
    await queue_replies(db, 12)
    gate = asyncio.Event()

    class Slow(ScriptedChannel):
        async def send(self, message: OutboundMessage) -> SendResult:
            await gate.wait()
            return await super().send(message)

    channel = Slow()
    w = DeliveryWorker(Outbox(db), {"webchat": channel}, batch=4, concurrency=2, poll_seconds=0.05)
    w.start()
    await asyncio.sleep(0.3)  # two sends hold the slots; the next batch was claimed ahead
    stopping = asyncio.create_task(w.stop())
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.wait_for(stopping, timeout=5)
    return channel


async def test_rows_claimed_ahead_go_back_uncounted_when_the_worker_stops(db: Database) -> None:
    channel = await stop_while_two_sends_wait(db)
    outbox = await rows(db, "outbox")
    assert not [r for r in outbox if r.status == "sending"]
    queued = [r for r in outbox if r.status == "queued"]
    assert queued and all(r.attempts == 0 for r in queued if r.external_id is None)
    assert len(channel.sent) + len(queued) == 12


async def test_a_row_held_past_its_lease_is_not_sent_twice(db: Database) -> None:
    await queue_replies(db, 8)

    class Slow(ScriptedChannel):
        async def send(self, message: OutboundMessage) -> SendResult:
            await asyncio.sleep(0.08)  # like a rate limit holding a busy chat's replies
            return await super().send(message)

    channel = Slow()
    w = DeliveryWorker(Outbox(db), {"webchat": channel}, batch=4, concurrency=1, lease_seconds=0.1, poll_seconds=0.02)
    w.start()
    for _ in range(300):
        if {r.status for r in await rows(db, "outbox")} == {"sent"}:
            break
        await asyncio.sleep(0.02)
    await w.stop()
    sent = [m.outbox_id for m in channel.sent]
    assert len(sent) == len(set(sent)) == 8


async def test_a_settle_that_collides_with_another_transaction_is_tried_again(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lost result would leave the row 'sending' until its lease ran out, and the reply would go out twice."""
    import crm_store.outbox

    real_settle = crm_store.outbox._settle  # noqa: SLF001
    collisions = [DBAPIError("UPDATE outbox ...", {}, Exception("deadlock detected"))]

    def settle_colliding_once(conn: Any, results: Any) -> None:
        if collisions:
            raise collisions.pop()
        real_settle(conn, results)

    monkeypatch.setattr(crm_store.outbox, "_settle", settle_colliding_once)
    await queue_replies(db, 3)
    channel = ScriptedChannel()
    w = worker(db, channel)
    assert await w.run_once() == 3
    await w.stop()
    assert not collisions
    assert sorted(row.status for row in await rows(db, "outbox")) == ["sent"] * 3
    assert len(channel.sent) == 3


async def test_a_claim_renews_the_rows_its_worker_still_holds_instead_of_handing_them_out(db: Database) -> None:
    """RENEW locks rows in id order and steps around rows a settle holds (no deadlock); the rows it renews stay with the worker."""
    await queue_replies(db, 2)
    outbox = Outbox(db)
    claimed = await outbox.claim(10, 60, channels=["webchat"])
    assert len(claimed) == 2
    renewed = await outbox.claim(10, 60, channels=["webchat"], renew=[m.outbox_id for m in claimed if m.outbox_id])
    assert renewed == []  # both still held: renewed, not handed out again
    by_id = {row.id: row for row in await rows(db, "outbox")}
    assert all(row.status == "sending" for row in by_id.values())


async def test_a_result_the_store_refuses_for_good_is_logged_and_the_row_comes_back_after_its_lease(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import crm_store.outbox

    def always_colliding(conn: Any, results: Any) -> None:
        raise DBAPIError("UPDATE outbox ...", {}, Exception("deadlock detected"))

    monkeypatch.setattr(crm_store.outbox, "_settle", always_colliding)
    monkeypatch.setattr(crm_store.outbox, "SETTLE_ATTEMPTS", 2)
    await queue_replies(db)
    w = worker(db, ScriptedChannel(), lease_seconds=0.2)
    assert await w.run_once() == 1
    await w.stop()
    assert "could not record the results of outbox rows" in caplog.text
    (row,) = await rows(db, "outbox")
    assert row.status == "sending" and row.claimed_until is not None  # its lease, not a lost row, brings it back


async def test_a_claim_records_the_results_it_is_given_in_the_same_transaction(db: Database) -> None:
    from crm_store.outbox import Settlement

    await queue_replies(db, 3)
    outbox = Outbox(db)
    first = await outbox.claim(1, 60, channels=["webchat"])
    done = [Settlement(outbox_id=m.outbox_id or "", message_id=m.message_id, outcome="sent", external_id="ext-1") for m in first]
    rest = await outbox.claim(10, 60, channels=["webchat"], settle=done)
    assert len(rest) == 2 and first[0].outbox_id not in {m.outbox_id for m in rest}
    by_id = {str(row.id): row for row in await rows(db, "outbox")}
    assert (by_id[first[0].outbox_id].status, by_id[first[0].outbox_id].external_id) == ("sent", "ext-1")
    (message,) = [m for m in await rows(db, "messages", direction="out") if str(m.id) == first[0].message_id]
    assert message.status == "sent"


async def test_a_claim_takes_lapsed_leases_first_then_the_rows_due_longest(db: Database) -> None:
    await queue_replies(db, 4)
    table = OutboxRow.__table__
    by_age = sorted(await rows(db, "outbox"), key=lambda r: r.id)
    now = utcnow()
    async with db.write() as conn:
        for age, row in enumerate(by_age):  # the last queued row has waited longest
            await conn.execute(update(table).where(table.c.id == row.id).values(next_attempt_at=now - dt.timedelta(minutes=age + 1)))
        await conn.execute(update(table).where(table.c.id == by_age[0].id)
                           .values(status="sending", claimed_until=now - dt.timedelta(seconds=1), attempts=1))
    claimed = await Outbox(db).claim(2, 60, channels=["webchat"])
    assert [m.outbox_id for m in claimed] == [str(by_age[0].id), str(by_age[3].id)]


async def test_picking_due_rows_walks_the_index_in_due_order_instead_of_sorting_the_backlog(db: Database) -> None:
    """A claim from a large campaign must cost the same as one from a small queue."""
    if not db.is_sqlite:
        pytest.skip("reads SQLite's query plan; PostgreSQL plans by its statistics")
    from crm_store.outbox import PICK

    assert db.sync_writer is not None
    with db.sync_writer.connect() as conn:
        for kind in ("queued", "lapsed"):
            compiled = PICK[kind, True](conn).params(channels=["webchat"], now=utcnow(), limit=256).compile(
                conn, compile_kwargs={"render_postcompile": True})
            placeholders = ("2030-01-01 00:00:00",) * len(compiled.positiontup or ())  # the plan does not depend on them
            plan = " ".join(str(row) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, placeholders))
            assert "ix_outbox_status_next" in plan and "TEMP B-TREE" not in plan, plan


async def test_a_worker_renews_the_leases_of_rows_waiting_behind_a_slow_chat_so_no_other_worker_takes_them(db: Database) -> None:
    """Rows claimed ahead wait while slow sends hold the senders; a second worker claims meanwhile."""
    await queue_replies(db, 8)

    class Slow(ScriptedChannel):
        async def send(self, message: OutboundMessage) -> SendResult:
            await asyncio.sleep(0.06)
            return await super().send(message)

    channel = Slow()
    # two batches of 4 claimed at once; the second waits 0.24 s behind the first, longer than the lease
    w = DeliveryWorker(Outbox(db), {"webchat": channel}, batch=4, concurrency=1, lease_seconds=0.15, poll_seconds=0.02)
    other = Outbox(db)
    taken_by_other: list[OutboundMessage] = []
    w.start()
    while "queued" in {r.status for r in await rows(db, "outbox")}:  # until w holds every row
        await asyncio.sleep(0.005)
    for _ in range(100):
        taken_by_other += await other.claim(10, 60, channels=["webchat"])
        if len(channel.sent) + len(taken_by_other) >= 8:
            break
        await asyncio.sleep(0.02)
    await w.stop()
    assert len(channel.sent) == 8 and not taken_by_other


async def test_a_results_flush_settles_what_no_claim_took(db: Database) -> None:
    await queue_replies(db, 2)
    seen: list[str] = []
    w = DeliveryWorker(Outbox(db), {"webchat": ScriptedChannel()}, poll_seconds=5, settle_linger=0.01,
                       on_result=lambda message, outcome: seen.append(outcome))
    w.start()
    for _ in range(100):
        if len(seen) == 2:
            break
        await asyncio.sleep(0.02)
    statuses = {r.status for r in await rows(db, "outbox")}
    await w.stop()
    assert seen == ["sent", "sent"] and statuses == {"sent"}


async def test_stopping_while_results_wait_to_be_flushed_settles_them_and_returns(db: Database) -> None:
    await queue_replies(db, 2)
    channel = ScriptedChannel()
    w = DeliveryWorker(Outbox(db), {"webchat": channel}, poll_seconds=5, settle_linger=0.3)
    w.start()
    await eventually(lambda: len(channel.sent) == 2)
    await asyncio.wait_for(w.stop(), timeout=5)  # the flush lingering when stop() began must not leave it waiting
    assert {r.status for r in await rows(db, "outbox")} == {"sent"}


def _store_away(statement: str) -> Any:
    async def fail(self: Outbox, *args: Any) -> None:
        raise DBAPIError(statement, {}, Exception("connection lost"))
    return fail


@pytest.fixture
def cannot_mark_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Outbox, "mark_unreachable", _store_away("UPDATE channel_identities ..."))


@pytest.mark.usefixtures("cannot_mark_unreachable")
async def test_a_store_failure_while_sending_retries_the_row_and_the_sender_goes_on(db: Database) -> None:
    await queue_replies(db, 2)
    channel = ScriptedChannel([RecipientBlocked("bot was blocked by the user")])
    w = DeliveryWorker(Outbox(db), {"webchat": channel}, concurrency=1, poll_seconds=0.05, backoff_base=60.0)
    w.start()
    await eventually(lambda: bool(channel.sent))  # the one sender lived on to send the next row
    await w.stop()
    statuses = sorted((r.status, r.attempts, bool(r.last_error)) for r in await rows(db, "outbox"))
    assert statuses == [("queued", 1, True), ("sent", 1, False)]


@pytest.mark.usefixtures("cannot_mark_unreachable")
async def test_one_batch_records_every_result_when_one_send_meets_a_store_failure(db: Database) -> None:
    await queue_replies(db, 2)
    w = worker(db, ScriptedChannel([RecipientBlocked("bot was blocked by the user")]))
    assert await w.run_once() == 2
    await w.stop()
    assert sorted(r.status for r in await rows(db, "outbox")) == ["queued", "sent"]  # nothing left 'sending' to go out twice


async def test_stopping_finishes_the_sends_in_flight_when_the_unsent_rows_cannot_be_given_back(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Outbox, "release", _store_away("UPDATE outbox ..."))
    channel = await stop_while_two_sends_wait(db)
    outbox = await rows(db, "outbox")
    assert len(channel.sent) == 2 and sum(r.status == "sent" for r in outbox) == 2
    assert any(r.status == "sending" for r in outbox)  # the rows claimed ahead wait for their lease
