"""A handed-off conversation lands in its team's queue and is dealt round-robin to online agents.

Runs on SQLite and PostgreSQL (``db_url``), through the real app and its API.
"""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient

from crm_store.database import Database
from tests.helpers import rows
from tests.routing.conftest import API, Handoff, MakePerson


async def test_a_handoff_with_nobody_online_waits_unassigned_in_its_team_queue(
    client: TestClient, handoff: Handoff, person: MakePerson, store: Database
) -> None:
    me = await person("agent", team="support", presence="offline")
    conversation = await handoff("c1")
    assert (conversation["status"], conversation["team"], conversation["assignee_id"]) == ("pending", "support", None)
    page = await (await client.get(f"{API}/inbox?view=unassigned", headers=me.headers)).json()
    assert [item["id"] for item in page["items"]] == [conversation["id"]]
    (event,) = await rows(store, "audit_events", action="handed_off")
    assert event.agent_id is None and event.details["team"] == "support"


async def test_handoffs_go_round_robin_to_online_members_under_their_limit(
    client: TestClient, handoff: Handoff, person: MakePerson
) -> None:
    one = await person("agent", team="support", presence="online", max_chats=1)
    two = await person("agent", team="support", presence="online", max_chats=5)
    away = await person("agent", team="support", presence="away")
    outsider = await person("agent", team="orders", presence="online")
    first, second, third = [await handoff(name) for name in ("c1", "c2", "c3")]
    holders = [c["assignee_id"] for c in (first, second, third)]
    assert holders[0] != holders[1] and set(holders[:2]) == {str(one.id), str(two.id)}
    assert holders[2] == str(two.id)  # one is at its limit of one chat
    assert str(away.id) not in holders and str(outsider.id) not in holders
    assert {c["status"] for c in (first, second, third)} == {"open"}


async def test_an_agent_coming_online_takes_the_oldest_waiting_conversation(
    client: TestClient, handoff: Handoff, person: MakePerson
) -> None:
    me = await person("agent", team="support", presence="offline")
    older = await handoff("c1")
    await handoff("c2")
    response = await client.post(f"{API}/agents/me/presence", json={"presence": "online", "max_chats": 1}, headers=me.headers)
    assert response.status == 200
    mine = await (await client.get(f"{API}/inbox?view=mine", headers=me.headers)).json()
    assert [item["id"] for item in mine["items"]] == [older["id"]]


async def test_two_agents_claiming_at_the_same_moment_exactly_one_wins(
    client: TestClient, handoff: Handoff, person: MakePerson
) -> None:
    alice, bob = await person("agent"), await person("agent")
    conversations = [await handoff(f"race{i}") for i in range(6)]
    for conversation in conversations:
        url = f"{API}/conversations/{conversation['id']}/claim"
        answers = await asyncio.gather(client.post(url, headers=alice.headers), client.post(url, headers=bob.headers))
        assert sorted(a.status for a in answers) == [200, 409]
        winner = next(a for a in answers if a.status == 200)
        loser = next(a for a in answers if a.status == 409)
        assert (await loser.json())["error"]["field"] == "assignee_id"
        holder = (await winner.json())["assignee_id"]
        assert holder in (str(alice.id), str(bob.id))


async def test_claim_reassign_snooze_resolve_reopen_and_hand_back_are_audited(
    client: TestClient, handoff: Handoff, person: MakePerson
) -> None:
    alice, bob = await person("agent"), await person("agent")
    conversation = await handoff("c1")
    base = f"{API}/conversations/{conversation['id']}"
    assert (await client.post(f"{base}/claim", headers=alice.headers)).status == 200
    assigned = await client.post(f"{base}/assign", json={"agent_id": str(bob.id)}, headers=alice.headers)
    assert (await assigned.json())["assignee_id"] == str(bob.id)
    snoozed = await client.post(f"{base}/snooze", json={"until": "2099-01-01T09:00:00+09:00"}, headers=bob.headers)
    assert (await snoozed.json())["status"] == "snoozed"
    resolved = await (await client.post(f"{base}/resolve", headers=bob.headers)).json()
    assert resolved["status"] == "resolved" and resolved["resolved_at"] and resolved["resolution_seconds"] is not None
    reopened = await (await client.post(f"{base}/reopen", headers=bob.headers)).json()
    assert (reopened["status"], reopened["resolved_at"]) == ("open", None)
    back = await (await client.post(f"{base}/hand-back", headers=bob.headers)).json()
    assert (back["status"], back["assignee_id"]) == ("bot", None)
    events = (await (await client.get(f"{base}/events", headers=alice.headers)).json())["items"]
    assert [(e["action"], e["agent_id"]) for e in events] == [
        ("handed_off", None), ("claimed", str(alice.id)), ("assigned", str(alice.id)), ("snoozed", str(bob.id)),
        ("resolved", str(bob.id)), ("reopened", str(bob.id)), ("handed_back", str(bob.id)),
    ]
    assert all(e["created_at"] for e in events)


async def test_a_customer_message_wakes_a_snoozed_conversation(
    client: TestClient, handoff: Handoff, person: MakePerson
) -> None:
    me = await person("agent")
    conversation = await handoff("c1")
    base = f"{API}/conversations/{conversation['id']}"
    await client.post(f"{base}/claim", headers=me.headers)
    await client.post(f"{base}/snooze", json={"until": "2099-01-01T00:00:00Z"}, headers=me.headers)
    await client.post("/webhooks/rest/webhook", json={"sender": "c1", "message": "are you there?"})
    assert (await (await client.get(base, headers=me.headers)).json())["status"] == "open"


async def test_after_a_hand_back_the_bot_answers_again(client: TestClient, handoff: Handoff, person: MakePerson) -> None:
    me = await person("agent")
    conversation = await handoff("c1")
    base = f"{API}/conversations/{conversation['id']}"
    await client.post(f"{base}/claim", headers=me.headers)
    (waiting,) = await (await client.post("/webhooks/rest/webhook", json={"sender": "c1", "message": "hello"})).json()
    assert "in the queue for a person" in waiting["text"]  # held by a person: the bot only says the customer waits
    await client.post(f"{base}/hand-back", headers=me.headers)
    answered = await (await client.post("/webhooks/rest/webhook", json={"sender": "c1", "message": "hello"})).json()
    assert answered and answered[0]["text"]


async def test_a_snooze_that_ran_out_brings_the_conversation_back(
    client: TestClient, handoff: Handoff, person: MakePerson, store: Database
) -> None:
    import datetime as dt
    import uuid

    from sqlalchemy import update

    from crm_store.models import Conversation
    from crm_store.columns import utcnow

    me = await person("agent")
    conversation = await handoff("c1")
    base = f"{API}/conversations/{conversation['id']}"
    await client.post(f"{base}/claim", headers=me.headers)
    await client.post(f"{base}/snooze", json={"until": "2099-01-01T00:00:00Z"}, headers=me.headers)
    table = Conversation.__table__
    async with store.write() as conn:  # the snooze ends a minute ago
        await conn.execute(update(table).where(table.c.id == uuid.UUID(conversation["id"]))
                           .values(snoozed_until=utcnow() - dt.timedelta(minutes=1)))
    mine = (await (await client.get(f"{API}/inbox?view=mine", headers=me.headers)).json())["items"]
    assert [(c["id"], c["status"], c["snoozed_until"]) for c in mine] == [(conversation["id"], "open", None)]


async def test_a_snooze_until_a_time_already_past_is_one_that_ran_out(client: TestClient, handoff: Handoff, person: MakePerson) -> None:
    """The document cannot say "in the future"; a past time (a slip in the date picker) is not refused but ends at once."""
    me = await person("agent")
    conversation = await handoff("c1")
    base = f"{API}/conversations/{conversation['id']}"
    await client.post(f"{base}/claim", headers=me.headers)
    snoozed = await client.post(f"{base}/snooze", json={"until": "2001-01-01T00:00:00Z"}, headers=me.headers)
    assert snoozed.status == 200
    mine = (await (await client.get(f"{API}/inbox?view=mine", headers=me.headers)).json())["items"]
    assert [(c["id"], c["status"], c["snoozed_until"]) for c in mine] == [(conversation["id"], "open", None)]
