"""Live events reach every process: in-process on SQLite, through LISTEN/NOTIFY on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from crm_store import live
from crm_store.live import LiveHub

#: How long a test waits for an event before it calls it lost (a hang guard, not a speed limit).
WAIT = 10


async def test_an_event_reaches_every_subscriber_of_the_process() -> None:
    hub = LiveHub("sqlite+aiosqlite:///unused.db")
    await hub.start()
    first, second = hub.subscribe(), hub.subscribe()
    hub.publish({"type": "message", "conversation_id": "c1"})
    assert (await asyncio.wait_for(first.get(), WAIT))["conversation_id"] == "c1"
    assert (await asyncio.wait_for(second.get(), WAIT))["conversation_id"] == "c1"
    assert not hub.cross_process
    await hub.close()


async def test_a_subscriber_of_some_event_types_gets_only_those() -> None:
    hub = LiveHub("sqlite+aiosqlite:///unused.db")
    relays = hub.subscribe(frozenset({"private.webchat.relay"}))
    hub.publish({"type": "message", "conversation_id": "c1"}, {"type": "private.webchat.relay", "visitor": "v1"})
    assert (await asyncio.wait_for(relays.get(), WAIT))["visitor"] == "v1"
    assert relays.empty()
    await hub.close()


async def test_a_subscriber_of_every_event_type_does_not_get_private_ones() -> None:
    """The console listens to everything but a component's messages to itself (the web chat's relay)."""
    hub = LiveHub("sqlite+aiosqlite:///unused.db")
    everything = hub.subscribe()
    hub.publish({"type": "private.webchat.relay", "visitor": "v1"}, {"type": "message", "conversation_id": "c1"})
    assert (await asyncio.wait_for(everything.get(), WAIT))["type"] == "message"
    assert everything.empty()
    await hub.close()


async def test_events_published_in_one_process_reach_another_in_order(pg_database: str) -> None:
    here, there = LiveHub(pg_database), LiveHub(pg_database)  # two hubs, two PostgreSQL sessions: two processes' worth
    await here.start()
    await there.start()
    try:
        inbox = there.subscribe()
        await asyncio.sleep(0.3)  # both LISTEN connections are up
        here.publish(*({"type": "message", "conversation_id": f"c{i}", "text": "안녕 " * 50} for i in range(200)))
        got = [await asyncio.wait_for(inbox.get(), WAIT) for _ in range(200)]  # how fast: bench/, not here
        assert [e["conversation_id"] for e in got] == [f"c{i}" for i in range(200)]
        local = here.subscribe()
        here.publish({"type": "conversation", "conversation_id": "x"})
        assert (await asyncio.wait_for(local.get(), WAIT))["conversation_id"] == "x"
        await asyncio.sleep(0.2)
        assert local.empty()  # its own NOTIFY is not delivered twice
    finally:
        await here.close()
        await there.close()


async def test_events_published_one_by_one_in_a_burst_travel_in_one_notify(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each inbound message publishes its own event: a burst of them costs one round trip, not one each.

    The linger is stretched to a second, so that a loaded machine's slow
    loop cannot spread ten events a millisecond apart beyond it.
    """
    monkeypatch.setattr(live, "FLUSH_LINGER", 1.0)
    here, there = LiveHub(pg_database), LiveHub(pg_database)
    notifies: list[str] = []
    receive = there._on_notify
    there._on_notify = lambda conn, pid, channel, payload: (notifies.append(payload), receive(conn, pid, channel, payload))  # type: ignore[method-assign]
    await here.start()
    await there.start()
    try:
        inbox = there.subscribe()
        await asyncio.sleep(0.3)  # both LISTEN connections are up
        for i in range(10):
            here.publish({"type": "message", "conversation_id": f"c{i}"})
            await asyncio.sleep(0.001)  # messages a millisecond apart, as under load
        got = [await asyncio.wait_for(inbox.get(), WAIT) for _ in range(10)]
    finally:
        await here.close()
        await there.close()
    assert [e["conversation_id"] for e in got] == [f"c{i}" for i in range(10)]
    assert len(notifies) == 1


async def test_a_process_that_wants_some_types_gets_them_from_a_notify_that_carries_others(pg_database: str) -> None:
    here, there = LiveHub(pg_database), LiveHub(pg_database)
    await here.start()
    await there.start()
    try:
        relays = there.subscribe(frozenset({"private.webchat.relay"}))
        await asyncio.sleep(0.3)  # both LISTEN connections are up
        here.publish(*({"type": "message", "conversation_id": f"c{i}"} for i in range(5)),
                     {"type": "private.webchat.relay", "visitor": "방문자-1"})
        got = await asyncio.wait_for(relays.get(), WAIT)
        await asyncio.sleep(0.1)
    finally:
        await here.close()
        await there.close()
    assert got["visitor"] == "방문자-1" and relays.empty()
