"""One sender per channel on a shared database, and the rows of a sender that is gone back at once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from bot.delivery_leads import DeliveryLeads
from channels.delivery import DeliveryWorker
from crm_store.database import Database
from crm_store.leadership import Leadership
from crm_store.outbox import Outbox
from tests.delivery.test_delivery_worker import ScriptedChannel, queue_replies
from tests.helpers import count, rows


@pytest.fixture
async def pg_db(db_url: str) -> AsyncIterator[Database]:
    """The PostgreSQL store (tests using it run on PostgreSQL only: on SQLite one process always leads)."""
    database = Database(db_url)
    yield database
    await database.dispose()


on_postgresql = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
async def make_leads(db_url: str) -> AsyncIterator[Callable[[Database], DeliveryLeads]]:
    made: list[DeliveryLeads] = []

    def make(db: Database) -> DeliveryLeads:
        leads = DeliveryLeads(db_url, Outbox(db), ["webchat"], every=3600)  # refreshed by hand here
        made.append(leads)
        return leads

    yield make
    for leads in made:
        await leads.close()


def worker_for(db: Database, channel: ScriptedChannel, leads: DeliveryLeads) -> DeliveryWorker:
    return DeliveryWorker(Outbox(db), {"webchat": channel}, leading=leads.leading, sender_key=leads.sender_key)


@on_postgresql
async def test_one_process_at_a_time_leads_a_channel_and_another_takes_over_when_it_stops(
        pg_db: Database, make_leads: Callable[[Database], DeliveryLeads]) -> None:
    first, second = make_leads(pg_db), make_leads(pg_db)
    await first.start()
    await second.start()
    assert first.leading() == {"webchat"}
    assert second.leading() == frozenset()
    await first.close()
    assert await second.refresh() == {"webchat"}


@on_postgresql
async def test_a_process_that_does_not_lead_a_channel_claims_none_of_its_rows(
        pg_db: Database, make_leads: Callable[[Database], DeliveryLeads]) -> None:
    await queue_replies(pg_db, 3)
    leader, other = make_leads(pg_db), make_leads(pg_db)
    await leader.start()
    await other.start()
    channel = ScriptedChannel()
    assert await worker_for(pg_db, channel, other).run_once() == 0
    assert channel.sent == [] and await count(pg_db, "outbox", status="queued") == 3
    assert await worker_for(pg_db, channel, leader).run_once() == 3


async def test_the_rows_of_a_sender_that_died_come_back_as_soon_as_another_takes_over(
        db: Database, make_leads: Callable[[Database], DeliveryLeads]) -> None:
    await queue_replies(db, 4)
    dead = make_leads(db)
    await dead.start()
    held = await Outbox(db).claim(10, 60, channels=["webchat"], claimed_by=dead.sender_key)  # claimed, never sent
    assert len(held) == 4
    assert {row.claimed_by for row in await rows(db, "outbox")} == {dead.sender_key}
    await dead.close()  # its sessions end, as a killed process's do
    successor = make_leads(db)
    await successor.start()
    channel = ScriptedChannel()
    assert await worker_for(db, channel, successor).run_once() == 4  # not after the 60 s lease
    assert sorted(m.outbox_id for m in channel.sent) == sorted(row.outbox_id for row in held)
    assert await count(db, "outbox", status="sent") == 4


@on_postgresql
async def test_the_rows_of_a_live_sender_stay_with_it_when_another_takes_the_lead(
        pg_db: Database, pg_database: str, make_leads: Callable[[Database], DeliveryLeads]) -> None:
    await queue_replies(pg_db, 2)
    alive = Leadership(pg_database, "delivery-sender:still-sending")  # a sender that gave up the lead, not its life
    assert await alive.try_lead()
    try:
        await Outbox(pg_db).claim(10, 60, channels=["webchat"], claimed_by=alive.key)
        successor = make_leads(pg_db)
        await successor.start()
        assert successor.leading() == {"webchat"}
        assert await worker_for(pg_db, ScriptedChannel(), successor).run_once() == 0
        assert await count(pg_db, "outbox", status="sending") == 2
    finally:
        await alive.close()
    assert await Outbox(pg_db).reclaim_held(["webchat"]) == 2
