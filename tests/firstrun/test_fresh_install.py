"""A fresh install routes: the bot's teams exist with default SLA targets, and the first admin is in them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sqlalchemy import select

from crm_store.database import Database
from crm_store.models import SlaPolicy, Team, TeamMember
from tests.firstrun.test_accounts import cli


async def read_routing(url: str) -> tuple[list[str], dict[str, tuple[int, int]], dict[str, set[str]]]:
    db = Database(url)
    try:
        async with db.read() as conn:
            teams = {r.id: r.name for r in await conn.execute(select(Team.__table__))}
            policies = {r.priority: (r.first_response_seconds, r.resolution_seconds)
                        for r in await conn.execute(select(SlaPolicy.__table__)) if r.team is None}
            members: dict[str, set[str]] = {}
            for r in await conn.execute(select(TeamMember.__table__)):
                members.setdefault(str(r.agent_id), set()).add(teams[r.team_id])
    finally:
        await db.dispose()
    return sorted(teams.values()), policies, members


def test_db_upgrade_creates_the_sample_bots_teams_with_default_sla_targets_once(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    assert cli("db", "upgrade", url=url)[0] == 0
    teams, policies, _ = asyncio.run(read_routing(url))
    assert teams == ["orders", "support", "vip"]
    assert set(policies) == {"low", "medium", "high", "urgent"}
    first, resolution = policies["medium"]
    assert 0 < first < resolution
    assert cli("db", "upgrade", url=url)[0] == 0
    assert asyncio.run(read_routing(url))[:2] == (teams, policies)


def test_the_first_admin_joins_every_team_and_later_accounts_do_not(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    first = json.loads(cli("agent", "create", "--email", "admin@example.com", "--name", "Admin", "--role", "admin", "--json", url=url)[1])
    second = json.loads(cli("agent", "create", "--email", "boss@example.com", "--name", "Boss", "--role", "admin", "--json", url=url)[1])
    agent = json.loads(cli("agent", "create", "--email", "kim@example.com", "--name", "Kim", "--role", "agent", "--json", url=url)[1])
    _, _, members = asyncio.run(read_routing(url))
    assert members[first["id"]] == {"orders", "support", "vip"}
    assert second["id"] not in members and agent["id"] not in members


def test_teams_an_admin_deleted_do_not_come_back(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    cli("db", "upgrade", url=url)

    async def delete_vip() -> None:
        db = Database(url)
        async with db.write() as conn:
            await conn.execute(Team.__table__.delete().where(Team.__table__.c.name == "vip"))
        await db.dispose()

    asyncio.run(delete_vip())
    cli("db", "upgrade", url=url)
    assert asyncio.run(read_routing(url))[0] == ["orders", "support"]


async def test_the_seed_runs_once_per_database_on_either_store(db: Database) -> None:
    from crm_store import agents
    from crm_store.first_run import seed_routing

    admin, _ = await agents.create_agent(db, email="admin@example.com", name="Admin", role="admin")
    assert await seed_routing(db, ["support", "orders", "support"]) == ["support", "orders"]
    assert await seed_routing(db, ["vip"]) == []
    async with db.read() as conn:
        teams = sorted(r.name for r in await conn.execute(select(Team.__table__)))
        members = {r.team_id for r in await conn.execute(select(TeamMember.__table__).where(TeamMember.__table__.c.agent_id == admin.id))}
        policies = (await conn.execute(select(SlaPolicy.__table__))).all()
    assert teams == ["orders", "support"] and len(members) == 2 and len(policies) == 4
