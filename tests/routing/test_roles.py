"""Each role against each protected API route: allowed roles get past the check, the others get 403."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient

from bot.api.endpoints import ROUTES
from tests.routing.conftest import API, MakePerson

SOME_ID = "00000000-0000-7000-8000-000000000000"
#: Role checks do not depend on the database kind: SQLite only, to keep the suite quick.
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.mark.parametrize("role", ["admin", "agent", "marketer"])
async def test_every_route_admits_exactly_its_roles(client: TestClient, person: MakePerson, role: str) -> None:
    me = await person(role)
    refused, admitted = [], []
    for spec in ROUTES:
        path = API + re.sub(r"{\w+}", SOME_ID, spec.path)
        response = await client.request(spec.method, path, json={} if spec.body else None, headers=me.headers)
        (admitted if response.status not in (401, 403) else refused).append((spec.method, spec.path))
        if role not in spec.roles:
            assert response.status == 403, (spec.method, spec.path, response.status)
            assert (await response.json())["error"]["code"] == "forbidden"
    assert set(admitted) == {(s.method, s.path) for s in ROUTES if role in s.roles}


async def test_a_marketer_cannot_read_or_act_on_conversations(client: TestClient, person: MakePerson) -> None:
    marketer = await person("marketer")
    for method, path in [("GET", "/inbox"), ("POST", f"/conversations/{SOME_ID}/claim"), ("GET", "/reports/sla")]:
        assert (await client.request(method, API + path, headers=marketer.headers)).status == 403


async def test_an_agent_cannot_manage_accounts_teams_or_sla_targets(client: TestClient, person: MakePerson) -> None:
    agent = await person("agent")
    for method, path in [("POST", "/agents"), ("PATCH", f"/agents/{SOME_ID}"), ("POST", "/teams"), ("PUT", "/sla-policies")]:
        response = await client.request(method, API + path, json={}, headers=agent.headers)
        assert response.status == 403, (method, path)
