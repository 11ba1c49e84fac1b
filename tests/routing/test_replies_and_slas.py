"""Replies leave through the customer's channel via the outbox; notes never do; SLAs are measured."""

from __future__ import annotations

import datetime as dt

from aiohttp.test_utils import TestClient
from sqlalchemy import update

from crm_store.database import Database
from crm_store.models import ConversationSla
from crm_store.columns import utcnow
from tests.helpers import count, rows, total_rows
from tests.routing.conftest import API, Handoff, MakePerson


async def test_a_reply_is_a_message_and_an_outbox_row_to_the_conversations_channel_and_thread(
    client: TestClient, handoff: Handoff, person: MakePerson, store: Database
) -> None:
    me = await person("agent")
    conversation = await handoff("c1")
    response = await client.post(f"{API}/conversations/{conversation['id']}/reply",
                                 json={"text": "Hi, I'm here", "attachments": [{"url": "https://example.com/a.pdf", "type": "document"}]},
                                 headers=me.headers)
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["message"]["sender_kind"] == "agent" and body["message"]["sender_agent_id"] == str(me.id)
    (outbox,) = await rows(store, "outbox", message_id=__import__("uuid").UUID(body["message"]["id"]))
    assert (outbox.channel, outbox.recipient) == ("rest", "c1")
    assert outbox.payload["text"] == "Hi, I'm here"
    assert outbox.payload["attachments"] == [{"type": "document", "url": "https://example.com/a.pdf"}]
    conv = body["conversation"]
    assert conv["assignee_id"] == str(me.id) and conv["status"] == "open"  # answering an unheld chat takes it
    assert conv["first_response_at"] and conv["first_response_seconds"] >= 0


async def test_only_the_first_reply_sets_the_first_response_time(
    client: TestClient, handoff: Handoff, person: MakePerson
) -> None:
    me = await person("agent")
    conversation = await handoff("c1")
    url = f"{API}/conversations/{conversation['id']}/reply"
    first = (await (await client.post(url, json={"text": "one"}, headers=me.headers)).json())["conversation"]
    second = (await (await client.post(url, json={"text": "two"}, headers=me.headers)).json())["conversation"]
    assert first["first_response_at"] == second["first_response_at"]


async def test_a_note_is_stored_but_never_queued_for_the_customer(
    client: TestClient, handoff: Handoff, person: MakePerson, store: Database
) -> None:
    me = await person("agent")
    conversation = await handoff("c1")
    before = await count(store, "outbox")
    response = await client.post(f"{API}/conversations/{conversation['id']}/notes", json={"text": "VIP, be nice"}, headers=me.headers)
    assert response.status == 201
    note = await response.json()
    assert (note["direction"], note["sender_kind"]) == ("sys", "agent")
    assert await count(store, "outbox") == before
    detail = await (await client.get(f"{API}/conversations/{conversation['id']}", headers=me.headers)).json()
    assert detail["first_response_at"] is None


async def test_a_canned_response_fills_in_the_customers_fields(
    client: TestClient, handoff: Handoff, person: MakePerson, store: Database
) -> None:
    me = await person("agent")
    conversation = await handoff("c1")
    await client.patch(f"{API}/customers/{conversation['customer_id']}", json={"first_name": "Minji"}, headers=me.headers)
    created = await client.post(f"{API}/canned-responses", json={"shortcut": "hello", "text": "Hello {first_name}, {unknown} stays."},
                                headers=me.headers)
    assert created.status == 201
    body = await (await client.post(f"{API}/conversations/{conversation['id']}/reply", json={"text": "/hello How can I help?"},
                                    headers=me.headers)).json()
    assert body["message"]["text"] == "Hello Minji, {unknown} stays. How can I help?"


async def test_labels_are_added_removed_and_filter_the_inbox(client: TestClient, handoff: Handoff, person: MakePerson) -> None:
    me = await person("agent")
    billing, other = await handoff("c1"), await handoff("c2")
    url = f"{API}/conversations/{billing['id']}/labels"
    assert (await (await client.post(url, json={"add": ["billing", "urgent"]}, headers=me.headers)).json())["labels"] == ["billing", "urgent"]
    assert (await (await client.post(url, json={"remove": ["urgent"]}, headers=me.headers)).json())["labels"] == ["billing"]
    page = await (await client.get(f"{API}/inbox?label=billing", headers=me.headers)).json()
    assert [i["id"] for i in page["items"]] == [billing["id"]] and other["id"] not in str(page)


async def test_the_inbox_shows_sla_time_left_and_the_report_counts_breaches(
    client: TestClient, handoff: Handoff, person: MakePerson, store: Database
) -> None:
    admin = await person("admin")
    policy = await client.put(f"{API}/sla-policies", json={"team": "support", "priority": "medium", "first_response_seconds": 300,
                                                           "resolution_seconds": 3600}, headers=admin.headers)
    assert policy.status == 200, await policy.text()
    late, on_time = await handoff("late"), await handoff("fine")
    item = next(i for i in (await (await client.get(f"{API}/inbox", headers=admin.headers)).json())["items"] if i["id"] == on_time["id"])
    assert 290 <= item["sla"]["first_response"]["seconds_left"] <= 300 and not item["sla"]["first_response"]["breached"]
    sla = ConversationSla.__table__
    async with store.write() as conn:  # the late one was handed off ten minutes ago
        await conn.execute(update(sla).where(sla.c.conversation_id == __import__("uuid").UUID(late["id"]))
                           .values(handed_off_at=utcnow() - dt.timedelta(minutes=10),
                                   first_response_due_at=utcnow() - dt.timedelta(minutes=5)))
    await client.post(f"{API}/conversations/{on_time['id']}/reply", json={"text": "hi"}, headers=admin.headers)
    report = await (await client.get(f"{API}/reports/sla", headers=admin.headers)).json()
    (group,) = report["groups"]
    assert (group["team"], group["conversations"], group["first_response_breached"], group["responded"]) == ("support", 2, 1, 1)
    assert [b["conversation_id"] for b in report["breaches"]] == [late["id"]]


async def test_bad_input_is_a_4xx_naming_the_field_and_writes_nothing(
    client: TestClient, handoff: Handoff, person: MakePerson, store: Database
) -> None:
    me = await person("agent")
    conversation = await handoff("c1")
    base = f"{API}/conversations/{conversation['id']}"
    before = await total_rows(store)
    cases = [
        ("reply", {"text": "   "}, 422, "text"),
        ("reply", {"text": "/nosuchshortcut"}, 422, "text"),
        ("reply", {"text": "hi", "attachments": [{"url": "javascript:alert(1)"}]}, 422, "attachments.0.url"),
        ("reply", {"text": "hi", "colour": "red"}, 422, "colour"),
        ("notes", {"text": ""}, 422, "text"),
        ("snooze", {"until": "tomorrow"}, 422, "until"),
        ("snooze", {"until": "2099-01-01T00:00:00"}, 422, "until"),
        ("assign", {"agent_id": "00000000-0000-7000-8000-000000000000"}, 404, "agent_id"),
        ("assign", {"agent_id": "nope"}, 422, "agent_id"),
        ("labels", {"add": ["has space"]}, 422, "labels"),
    ]
    for action, body, status, field in cases:
        response = await client.post(f"{base}/{action}", json=body, headers=me.headers)
        assert response.status == status, (action, body, await response.text())
        assert (await response.json())["error"]["field"] == field, (action, body)
    missing = await client.post(f"{API}/conversations/00000000-0000-7000-8000-000000000000/claim", headers=me.headers)
    assert missing.status == 404 and (await missing.json())["error"]["field"] == "conversation_id"
    assert await total_rows(store) == before


async def test_replying_to_a_resolved_conversation_is_refused(client: TestClient, handoff: Handoff, person: MakePerson) -> None:
    me = await person("agent")
    conversation = await handoff("c1")
    base = f"{API}/conversations/{conversation['id']}"
    await client.post(f"{base}/resolve", headers=me.headers)
    response = await client.post(f"{base}/reply", json={"text": "hi"}, headers=me.headers)
    assert response.status == 409 and (await response.json())["error"]["field"] == "status"
