"""The console over HTTP: logins, cookies, CSRF, roles on every page, escaping, form errors, live events."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient

from crm_store import agents, login_throttle
from crm_store.database import Database
from tests.console.conftest import PASSWORD, Handoff, MakePerson, csrf_of, log_in
from tests.helpers import count, total_rows

#: The console's behaviour does not depend on the database kind; its store functions are tested on both.
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


async def email_of(store: Database, agent_id: uuid.UUID) -> str:
    record = await agents.get_agent(store, agent_id)
    assert record is not None
    return record.email


async def test_a_login_sets_an_httponly_samesite_session_cookie(client: TestClient, person: MakePerson, store: Database) -> None:
    me = await person("agent", password=PASSWORD)
    form = await (await client.get("/console/login")).text()
    response = await client.post("/console/login", allow_redirects=False, data={
        "email": await email_of(store, me.id), "password": PASSWORD, "csrf": csrf_of(form)})
    assert response.status == 303 and response.headers["Location"] == "/console/inbox"
    cookie = next(v for v in response.headers.getall("Set-Cookie") if v.startswith("dgl_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie


async def test_pages_need_a_login_and_send_you_back_after_it(client: TestClient, person: MakePerson, store: Database) -> None:
    response = await client.get("/console/customers?q=kim", allow_redirects=False)
    location = urlsplit(response.headers["Location"])
    assert (response.status, location.path, parse_qs(location.query)["next"]) == (303, "/console/login", ["/console/customers?q=kim"])
    me = await person("marketer", password=PASSWORD)
    form = await (await client.get(response.headers["Location"])).text()
    answer = await client.post("/console/login", allow_redirects=False, data={
        "email": await email_of(store, me.id), "password": PASSWORD, "csrf": csrf_of(form), "next": "/console/customers?q=kim"})
    assert answer.headers["Location"] == "/console/customers?q=kim"


async def test_a_login_cannot_redirect_to_another_site(client: TestClient, person: MakePerson, store: Database) -> None:
    me = await person("agent", password=PASSWORD)
    form = await (await client.get("/console/login")).text()
    answer = await client.post("/console/login", allow_redirects=False, data={
        "email": await email_of(store, me.id), "password": PASSWORD, "csrf": csrf_of(form), "next": "//evil.example/console"})
    assert answer.headers["Location"] == "/console/inbox"


async def test_a_wrong_password_is_a_form_message_and_repeated_failures_are_rate_limited(
    client: TestClient, person: MakePerson, store: Database
) -> None:
    me = await person("agent", password=PASSWORD)
    email = await email_of(store, me.id)
    for _ in range(login_throttle.PER_EMAIL_AND_ADDRESS.free):
        form = await (await client.get("/console/login")).text()
        wrong = await client.post("/console/login", data={"email": email, "password": "guess", "csrf": csrf_of(form)})
        assert wrong.status == 401 and "Wrong e-mail or password." in await wrong.text()
    form = await (await client.get("/console/login")).text()
    blocked = await client.post("/console/login", data={"email": email, "password": PASSWORD, "csrf": csrf_of(form)})
    assert blocked.status == 429 and "Too many failed logins" in await blocked.text()
    assert int(blocked.headers["Retry-After"]) > 0
    assert "dgl_session" not in {c.key for c in client.session.cookie_jar}


async def test_a_login_without_its_form_token_is_refused(client: TestClient, person: MakePerson, store: Database) -> None:
    me = await person("agent", password=PASSWORD)
    response = await client.post("/console/login", data={"email": await email_of(store, me.id), "password": PASSWORD, "csrf": "x"})
    assert response.status == 403 and "expired" in await response.text()


ROLE_PAGES = {
    "/console/inbox": ("admin", "agent"),
    "/console/conversations/{conversation}": ("admin", "agent"),
    "/console/customers": ("admin", "agent", "marketer"),
    "/console/customers/{customer}": ("admin", "agent", "marketer"),
    "/console/admin": ("admin",),
}


@pytest.mark.parametrize("role", ["admin", "agent", "marketer"])
async def test_each_role_opens_exactly_its_pages(client: TestClient, person: MakePerson, store: Database, handoff: Handoff,
                                                 role: str) -> None:
    conversation = await handoff("c1")
    me = await person(role, password=PASSWORD)
    await log_in(client, await email_of(store, me.id))
    for template, roles in ROLE_PAGES.items():
        path = template.format(conversation=conversation["id"], customer=conversation["customer_id"])
        response = await client.get(path, allow_redirects=False)
        assert response.status == (200 if role in roles else 403), (role, path)
        assert response.headers["Content-Security-Policy"].startswith("default-src 'self'; script-src 'self';")
    live = await client.get("/console/live", allow_redirects=False)
    assert (live.status == 403) == (role == "marketer")


async def test_a_marketer_cannot_post_conversation_actions(client: TestClient, person: MakePerson, store: Database,
                                                           handoff: Handoff) -> None:
    conversation = await handoff("c1")
    me = await person("marketer", password=PASSWORD)
    csrf = await log_in(client, await email_of(store, me.id))
    response = await client.post(f"/console/conversations/{conversation['id']}", data={"csrf": csrf, "action": "claim"})
    assert response.status == 403
    assert (await (await client.get(f"/api/v1/conversations/{conversation['id']}", headers=me.headers)).json())["error"]


async def test_a_form_without_the_sessions_csrf_token_changes_nothing(
    client: TestClient, person: MakePerson, store: Database, handoff: Handoff
) -> None:
    conversation = await handoff("c1")
    me = await person("agent", password=PASSWORD)
    await log_in(client, await email_of(store, me.id))
    before = await total_rows(store)
    response = await client.post(f"/console/conversations/{conversation['id']}", data={"csrf": "forged", "action": "reply", "text": "hi"})
    assert response.status == 403 and "expired" in await response.text()
    assert await total_rows(store) == before


async def test_customer_written_markup_is_escaped_in_every_page(
    client: TestClient, person: MakePerson, store: Database, handoff: Handoff
) -> None:
    me = await person("agent", password=PASSWORD)
    conversation = await handoff("c1")
    await client.patch(f"/api/v1/customers/{conversation['customer_id']}", headers=me.headers,
                       json={"name": "<img src=x onerror=alert(1)>", "attributes": {"<svg onload=alert(3)>": "<i>x</i>"}})
    await client.post("/webhooks/rest/webhook", json={"sender": "c1", "message": "<script>alert(1)</script>"})
    await log_in(client, await email_of(store, me.id))
    for path in ["/console/inbox", f"/console/conversations/{conversation['id']}", "/console/customers",
                 f"/console/customers/{conversation['customer_id']}", f"/console/conversations/{conversation['id']}?partial=messages"]:
        html = await (await client.get(path)).text()
        assert "<img src=x" not in html and "<script>alert" not in html and "<svg onload" not in html and "<i>x</i>" not in html, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in html or "partial" in path, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in await (await client.get(f"/console/conversations/{conversation['id']}")).text()
    assert not re.search(r"<script(?![^>]*\bsrc=\"/console/static/console\.js\")", await (await client.get("/console/inbox")).text())


async def test_a_bad_reply_is_a_form_message_that_keeps_the_draft_and_writes_nothing(
    client: TestClient, person: MakePerson, store: Database, handoff: Handoff
) -> None:
    conversation = await handoff("c1")
    me = await person("agent", password=PASSWORD)
    csrf = await log_in(client, await email_of(store, me.id))
    url = f"/console/conversations/{conversation['id']}"
    before = await total_rows(store)
    for data, message in [({"action": "reply", "text": "/nosuch thanks"}, "Text: there is no canned response /nosuch."),
                          ({"action": "reply", "text": "see", "attachment_url": "javascript:alert(1)"}, "Attachment: the attachment must be"),
                          ({"action": "note", "text": "  "}, "Text: a note needs text."),
                          ({"action": "snooze", "minutes": "7"}, "Choose how long to snooze.")]:
        response = await client.post(url, data={"csrf": csrf, **data})
        html = await response.text()
        assert response.status == 422 and message in html, (data, html[:200])
        if data.get("text", "").strip():
            assert f">{data['text']}</textarea>" in html
    assert await total_rows(store) == before


async def test_taking_an_already_taken_conversation_says_who_has_it(
    client: TestClient, person: MakePerson, store: Database, handoff: Handoff
) -> None:
    conversation = await handoff("c1")
    other = await person("agent", name="Sora Han")
    await client.post(f"/api/v1/conversations/{conversation['id']}/claim", headers=other.headers)
    me = await person("agent", password=PASSWORD)
    csrf = await log_in(client, await email_of(store, me.id))
    response = await client.post(f"/console/conversations/{conversation['id']}", data={"csrf": csrf, "action": "claim"})
    assert response.status == 409 and "already assigned to Sora Han" in await response.text()


async def test_a_reply_from_the_console_is_queued_for_the_customer(
    client: TestClient, person: MakePerson, store: Database, handoff: Handoff
) -> None:
    conversation = await handoff("c1")
    me = await person("agent", password=PASSWORD)
    csrf = await log_in(client, await email_of(store, me.id))
    response = await client.post(f"/console/conversations/{conversation['id']}", allow_redirects=False,
                                 data={"csrf": csrf, "action": "reply", "text": "On it!"})
    assert response.status == 303
    assert await count(store, "outbox", channel="rest", recipient="c1") == 1


async def test_the_live_socket_pushes_a_customer_message_and_an_assignment_within_a_second(
    client: TestClient, person: MakePerson, store: Database, handoff: Handoff
) -> None:
    conversation = await handoff("c1")
    me = await person("agent", password=PASSWORD)
    await log_in(client, await email_of(store, me.id))
    ws = await client.ws_connect("/console/live")
    assert json.loads((await ws.receive(timeout=2)).data)["type"] == "hello"
    await client.post("/webhooks/rest/webhook", json={"sender": "c1", "message": "still there?"})
    event = json.loads((await ws.receive(timeout=1)).data)
    assert (event["type"], event["conversation_id"]) == ("message", conversation["id"])
    await client.post(f"/api/v1/conversations/{conversation['id']}/claim", headers=me.headers)
    event = json.loads((await ws.receive(timeout=1)).data)
    assert (event["type"], event["action"], event["assignee_id"]) == ("conversation", "claimed", str(me.id))
    await ws.close()


async def test_a_cross_site_page_cannot_open_the_live_socket(client: TestClient, person: MakePerson, store: Database) -> None:
    me = await person("agent", password=PASSWORD)
    await log_in(client, await email_of(store, me.id))
    response = await client.get("/console/live", headers={"Origin": "https://evil.example", "Connection": "Upgrade",
                                                          "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                                          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert response.status == 403


async def test_logging_out_ends_the_session(client: TestClient, person: MakePerson, store: Database) -> None:
    me = await person("agent", password=PASSWORD)
    csrf = await log_in(client, await email_of(store, me.id))
    await client.post("/console/logout", data={"csrf": csrf})
    response = await client.get("/console/inbox", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/console/login")


async def test_an_admin_creates_an_account_from_the_console_and_sees_field_errors(
    client: TestClient, person: MakePerson, store: Database
) -> None:
    me = await person("admin", password=PASSWORD)
    csrf = await log_in(client, await email_of(store, me.id))
    created = await client.post("/console/admin/agents", allow_redirects=False, data={
        "csrf": csrf, "email": "new@example.com", "name": "New Agent", "role": "agent", "password": "long enough", "teams": "support"})
    assert created.status == 303
    assert await agents.agent_for_password(store, "new@example.com", "long enough") is not None
    again = await client.post("/console/admin/agents", data={"csrf": csrf, "email": "new@example.com", "name": "X", "role": "agent"})
    assert again.status == 409 and "already exists" in await again.text()
    bad = await client.post("/console/admin/agents", data={"csrf": csrf, "email": "b@example.com", "name": "X", "role": "agent",
                                                           "teams": "Not Valid"})
    assert bad.status == 422 and "Teams must be 1-64 lower-case letters" in await bad.text()
    assert await agents.agent_for_password(store, "b@example.com", "whatever") is None


async def test_several_agents_get_the_same_event(client: TestClient, person: MakePerson, store: Database, handoff: Handoff) -> None:
    conversation = await handoff("c1")
    sockets = []
    for _ in range(3):
        me = await person("agent", password=PASSWORD)
        client.session.cookie_jar.clear()
        await log_in(client, await email_of(store, me.id))
        sockets.append(await client.ws_connect("/console/live"))
    for ws in sockets:
        await ws.receive(timeout=2)
    await client.post("/webhooks/rest/webhook", json={"sender": "c1", "message": "hello?"})
    got = await asyncio.gather(*(ws.receive(timeout=1) for ws in sockets))
    assert {json.loads(m.data)["conversation_id"] for m in got} == {conversation["id"]}
    for ws in sockets:
        await ws.close()


async def test_an_agent_cannot_use_the_admin_forms(client: TestClient, person: MakePerson, store: Database) -> None:
    me = await person("agent", password=PASSWORD)
    csrf = await log_in(client, await email_of(store, me.id))
    before = await total_rows(store)
    response = await client.post("/console/admin/agents", data={"csrf": csrf, "email": "x@example.com", "name": "X", "role": "admin"})
    assert response.status == 403
    assert await total_rows(store) == before
