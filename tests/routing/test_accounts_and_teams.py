"""Admins manage accounts, teams and targets; `dangol agent create --team` puts an agent in a team."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner

from dangol.cli import main
from crm_store import agents
from crm_store.database import Database
from tests.routing.conftest import API, Handoff, MakePerson

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@sqlite_only
async def test_an_admin_creates_an_agent_in_a_team_who_then_receives_handoffs(
    client: TestClient, person: MakePerson, handoff: Handoff
) -> None:
    admin = await person("admin")
    created = await client.post(f"{API}/agents", json={"email": "Kim@Example.com", "name": "김 상담", "role": "agent",
                                                       "password": "correct horse", "teams": ["support"], "max_chats": 2},
                                headers=admin.headers)
    assert created.status == 201, await created.text()
    body = await created.json()
    assert (body["email"], body["teams"], body["max_chats"], body["presence"]) == ("kim@example.com", ["support"], 2, "offline")
    kim = {"Authorization": f"Bearer {body['token']}"}
    await client.post(f"{API}/agents/me/presence", json={"presence": "online"}, headers=kim)
    assert (await handoff("c1"))["assignee_id"] == body["id"]


@sqlite_only
async def test_a_second_account_with_the_same_email_or_a_bad_field_is_refused(client: TestClient, person: MakePerson) -> None:
    admin = await person("admin")
    ok = {"email": "a@example.com", "name": "A", "role": "agent"}
    assert (await client.post(f"{API}/agents", json=ok, headers=admin.headers)).status == 201
    for body, status, field in [(ok, 409, "email"), ({**ok, "email": "b@example.com", "role": "boss"}, 422, "role"),
                                ({**ok, "email": "not an email"}, 422, "email"),
                                ({**ok, "email": "c@example.com", "password": "short"}, 422, "password"),
                                ({**ok, "email": "d@example.com", "teams": ["Bad Team"]}, 422, "teams")]:
        response = await client.post(f"{API}/agents", json=body, headers=admin.headers)
        assert (response.status, (await response.json())["error"]["field"]) == (status, field), body


@sqlite_only
async def test_a_team_is_created_with_members_and_its_members_replaced(client: TestClient, person: MakePerson) -> None:
    admin, one, two = await person("admin"), await person("agent"), await person("agent")
    team = await (await client.post(f"{API}/teams", json={"name": "vip", "members": [str(one.id)]}, headers=admin.headers)).json()
    assert team["members"] == [str(one.id)]
    replaced = await client.put(f"{API}/teams/{team['id']}/members", json={"members": [str(two.id)]}, headers=admin.headers)
    assert (await replaced.json())["members"] == [str(two.id)]
    again = await client.post(f"{API}/teams", json={"name": "vip"}, headers=admin.headers)
    assert again.status == 409 and (await again.json())["error"]["field"] == "name"


@sqlite_only
async def test_an_admin_cannot_lock_themselves_out(client: TestClient, person: MakePerson) -> None:
    admin = await person("admin")
    response = await client.patch(f"{API}/agents/{admin.id}", json={"role": "agent"}, headers=admin.headers)
    assert response.status == 409


def test_the_cli_creates_an_agent_with_a_password_in_teams(tmp_path, sqlite_url: str) -> None:
    result = CliRunner().invoke(main, ["agent", "create", "--email", "cli@example.com", "--name", "Cli", "--role", "agent",
                                       "--password", "long enough", "--team", "support", "--team", "vip", "--json"],
                                env={"DANGOL_DATABASE_URL": sqlite_url})
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["role"] == "agent"
    bad = CliRunner().invoke(main, ["agent", "create", "--email", "x@example.com", "--name", "X", "--role", "agent",
                                    "--team", "No Spaces"], env={"DANGOL_DATABASE_URL": sqlite_url})
    assert bad.exit_code != 0 and "--team" in bad.output

    async def check() -> None:
        db = Database(sqlite_url)
        try:
            from crm_store.teams import agent_settings

            record = await agents.agent_for_password(db, "cli@example.com", "long enough")
            assert record is not None
            assert (await agent_settings(db, [record.id]))[record.id]["teams"] == ["support", "vip"]
            assert await agents.agent_for_password(db, "x@example.com", "whatever") is None
        finally:
            await db.dispose()

    import asyncio

    asyncio.run(check())
