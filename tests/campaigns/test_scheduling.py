"""Schedules: at a time, on cron in a time zone, 09:00 in each customer's zone; the misfire rule; one leader."""

from __future__ import annotations

import datetime as dt

import pytest
from aiohttp.test_utils import TestClient

from campaigns import service
from campaigns.scheduling import after_firing, local_send_time
from crm_store.database import Database
from crm_store.leadership import Leadership
from tests.campaigns.conftest import add_customers
from tests.campaigns.test_campaign_api import API, make_campaign, make_segment
from tests.fakes.base import eventually
from tests.helpers import count, rows

UTC = dt.UTC


async def test_customers_in_seoul_and_new_york_get_a_0900_local_campaign_at_their_own_0900(
        client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    await add_customers(store, [
        {"name": "Seoul", "timezone": "Asia/Seoul", "channels": {"telegram": "1"}, "consent": True},
        {"name": "NY", "timezone": "America/New_York", "channels": {"telegram": "2"}, "consent": True},
        {"name": "Nowhere", "channels": {"telegram": "3"}, "consent": True},
    ])
    campaign = await make_campaign(client, marketer, await make_segment(client, marketer),
                                   schedule={"type": "local_time", "time": "09:00", "date": "2026-12-08"},
                                   default_timezone="Europe/Berlin")
    assert (await client.post(f"{API}/campaigns/{campaign['id']}/send", headers=marketer)).status == 202
    await service.tick(store, dt.datetime(2026, 12, 7, 12, tzinfo=UTC))
    by_chat = {r.recipient: r.next_attempt_at for r in await rows(store, "outbox")}
    assert by_chat == {"1": dt.datetime(2026, 12, 8, 0, tzinfo=UTC),  # 09:00 KST
                       "2": dt.datetime(2026, 12, 8, 14, tzinfo=UTC),  # 09:00 EST
                       "3": dt.datetime(2026, 12, 8, 8, tzinfo=UTC)}  # 09:00 in Berlin, the campaign's default


def test_local_time_without_a_date_is_the_next_such_time() -> None:
    now = dt.datetime(2026, 12, 6, 4, tzinfo=UTC)  # 13:00 in Seoul, 23:00 the day before in New York
    assert local_send_time("09:00", "Asia/Seoul", "UTC", now) == dt.datetime(2026, 12, 7, 0, tzinfo=UTC)
    assert local_send_time("09:00", "America/New_York", "UTC", now) == dt.datetime(2026, 12, 6, 14, tzinfo=UTC)


async def test_a_cron_schedule_fires_in_its_zone_once_per_firing(client: TestClient, store: Database, marketer: dict[str, str]) -> None:
    await add_customers(store, [{"name": "A", "channels": {"telegram": "1"}, "consent": True}])
    campaign = await make_campaign(client, marketer, await make_segment(client, marketer),
                                   schedule={"type": "cron", "cron": "0 9 * * *", "timezone": "Asia/Seoul"})
    sent = await (await client.post(f"{API}/campaigns/{campaign['id']}/send", headers=marketer)).json()
    assert sent["status"] == "scheduled"
    first = dt.datetime.fromisoformat(sent["next_fire_at"])
    assert first.astimezone(dt.timezone(dt.timedelta(hours=9))).hour == 9
    await service.tick(store, first - dt.timedelta(seconds=1))
    assert await count(store, "campaign_runs") == 0
    await service.tick(store, first + dt.timedelta(seconds=2))
    await service.tick(store, first + dt.timedelta(seconds=3))  # a second tick of the same firing starts nothing
    assert await count(store, "campaign_runs") == 1
    (again,) = await rows(store, "campaigns")
    assert (again.status, again.next_fire_at) == ("scheduled", first + dt.timedelta(days=1))


async def test_a_schedule_at_a_time_fires_once_and_the_campaign_is_done(client: TestClient, store: Database,
                                                                        marketer: dict[str, str]) -> None:
    await add_customers(store, [{"name": "A", "channels": {"telegram": "1"}, "consent": True}])
    campaign = await make_campaign(client, marketer, await make_segment(client, marketer),
                                   schedule={"type": "at", "at": "2099-01-02T10:00:00+09:00"})
    await client.post(f"{API}/campaigns/{campaign['id']}/send", headers=marketer)
    await service.tick(store, dt.datetime(2099, 1, 2, 1, 0, 5, tzinfo=UTC))
    (run,) = await rows(store, "campaign_runs")
    assert run.status == "sending" and await count(store, "outbox") == 1


def test_the_misfire_rule_runs_a_late_firing_within_grace_and_skips_a_later_one() -> None:
    schedule = {"type": "interval", "every_minutes": 60, "timezone": "UTC", "start": "2026-12-01T00:00", "misfire_grace_seconds": 600}
    fired = dt.datetime(2026, 12, 6, 1, tzinfo=UTC)
    assert after_firing(schedule, fired, fired + dt.timedelta(minutes=5)) == (True, dt.datetime(2026, 12, 6, 2, tzinfo=UTC))
    runs, nxt = after_firing(schedule, fired, fired + dt.timedelta(hours=3, minutes=30))
    assert (runs, nxt) == (False, dt.datetime(2026, 12, 6, 5, tzinfo=UTC))  # the missed ones coalesce; the next is after now


@pytest.mark.parametrize("schedule", [{"type": "cron", "cron": "61 * * * *"}, {"type": "weekly"},
                                      {"type": "at", "at": "tomorrow"}, {"type": "cron", "cron": "0 9 * * *", "timezone": "Mars/Base"}])
async def test_a_bad_schedule_is_a_422(client: TestClient, store: Database, marketer: dict[str, str], schedule: dict) -> None:
    segment = await make_segment(client, marketer)
    response = await client.post(f"{API}/campaigns", json={"name": "x", "segment_id": segment, "purpose": "marketing",
                                                           "channels": ["telegram"], "message": {"text": "hi"}, "schedule": schedule},
                                 headers=marketer)
    assert response.status == 422 and (await response.json())["error"]["field"].startswith("schedule")


async def test_one_process_leads_until_its_session_ends(db_url: str) -> None:
    first, second = Leadership(db_url, "test-duty"), Leadership(db_url, "test-duty")
    try:
        assert await first.try_lead() is True
        if db_url.startswith("sqlite"):
            return  # one process on SQLite: it always leads
        assert await second.try_lead() is False
        assert await first.try_lead() is True
        first._conn.terminate()  # noqa: SLF001 - the leader's session dies as it would with its process
        await eventually(second.try_lead)  # as soon as PostgreSQL has ended the dead session
        assert await first.try_lead() is False
    finally:
        await first.close()
        await second.close()
