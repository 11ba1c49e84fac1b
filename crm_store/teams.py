"""Teams and their members, agents' presence and chat limits, SLA targets, canned responses.

These are the settings routing reads; changing who is online or in a team
can free capacity, so those writes also drain the queues in the same
transaction and return what was assigned.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from crm_store.assignment import Change, drain_queues, teams_of
from crm_store.columns import new_id, utcnow
from crm_store.database import Database
from crm_store.errors import Conflict, NotFound
from crm_store.models import AGENT_PRESENCE, PRIORITIES, Agent, AgentSettings, CannedResponse, SlaPolicy, Team, TeamMember

teams_t = Team.__table__
members_t = TeamMember.__table__
agents_t = Agent.__table__
settings_t = AgentSettings.__table__
policies_t = SlaPolicy.__table__
canned_t = CannedResponse.__table__

NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
SHORTCUT = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
DEFAULT_MAX_CHATS = 5


def check_name(value: str, field: str = "name") -> str:
    if not NAME.match(value):
        raise ValueError(f"{field} must be 1-64 lower-case letters, digits, - or _")
    return value


# -- teams -------------------------------------------------------------------
async def list_teams(db: Database) -> list[dict[str, Any]]:
    async with db.read() as conn:
        teams = (await conn.execute(select(teams_t).order_by(teams_t.c.name))).all()
        members = (await conn.execute(select(members_t.c.team_id, members_t.c.agent_id))).all()
    by_team: dict[uuid.UUID, list[str]] = {}
    for m in members:
        by_team.setdefault(m.team_id, []).append(str(m.agent_id))
    return [{"id": str(t.id), "name": t.name, "members": sorted(by_team.get(t.id, [])), "created_at": t.created_at.isoformat()}
            for t in teams]


def _team_dict(conn: Connection, team_id: uuid.UUID) -> dict[str, Any]:
    row = conn.execute(select(teams_t).where(teams_t.c.id == team_id)).first()
    if row is None:
        raise NotFound(f"team {team_id} does not exist", "team_id")
    members = sorted(str(r.agent_id) for r in conn.execute(select(members_t.c.agent_id).where(members_t.c.team_id == team_id)))
    return {"id": str(row.id), "name": row.name, "members": members, "created_at": row.created_at.isoformat()}


def _check_agents(conn: Connection, agent_ids: list[uuid.UUID]) -> None:
    found = {r.id for r in conn.execute(select(agents_t.c.id).where(agents_t.c.id.in_(agent_ids)))}
    for agent_id in agent_ids:
        if agent_id not in found:
            raise NotFound(f"agent {agent_id} does not exist", "members")


async def create_team(db: Database, name: str, members: list[uuid.UUID]) -> tuple[dict[str, Any], list[Change]]:
    check_name(name)

    def run(conn: Connection) -> tuple[dict[str, Any], list[Change]]:
        if conn.execute(select(teams_t.c.id).where(teams_t.c.name == name)).first() is not None:
            raise Conflict(f"a team named {name} already exists", "name")
        team_id = new_id()
        conn.execute(insert(teams_t).values(id=team_id, name=name, created_at=utcnow()))
        _set_members(conn, team_id, members)
        return _team_dict(conn, team_id), drain_queues(conn, [name], utcnow())

    return await db.run_in_transaction(run)


def _set_members(conn: Connection, team_id: uuid.UUID, members: list[uuid.UUID]) -> None:
    members = list(dict.fromkeys(members))
    _check_agents(conn, members)
    current = {r.agent_id for r in conn.execute(select(members_t.c.agent_id).where(members_t.c.team_id == team_id))}
    gone = current - set(members)
    if gone:
        conn.execute(delete(members_t).where(members_t.c.team_id == team_id, members_t.c.agent_id.in_(gone)))
    new = [m for m in members if m not in current]
    if new:
        conn.execute(insert(members_t), [{"team_id": team_id, "agent_id": m, "last_assigned_at": None} for m in new])
    for agent_id in new:
        _ensure_settings(conn, agent_id)


async def set_members(db: Database, team_id: uuid.UUID, members: list[uuid.UUID]) -> tuple[dict[str, Any], list[Change]]:
    def run(conn: Connection) -> tuple[dict[str, Any], list[Change]]:
        team = _team_dict(conn, team_id)
        _set_members(conn, team_id, members)
        return _team_dict(conn, team_id), drain_queues(conn, [team["name"]], utcnow())

    return await db.run_in_transaction(run)


async def add_agent_to_teams(db: Database, agent_id: uuid.UUID, names: list[str]) -> None:
    """For ``dangol agent create --team``: a team named for the first time is created."""
    def run(conn: Connection) -> None:
        for name in names:
            check_name(name, "team")
            team_id = conn.execute(select(teams_t.c.id).where(teams_t.c.name == name)).scalar()
            if team_id is None:
                team_id = new_id()
                conn.execute(insert(teams_t).values(id=team_id, name=name, created_at=utcnow()))
            exists = conn.execute(select(members_t.c.agent_id).where(members_t.c.team_id == team_id, members_t.c.agent_id == agent_id)).first()
            if exists is None:
                conn.execute(insert(members_t).values(team_id=team_id, agent_id=agent_id, last_assigned_at=None))
        _ensure_settings(conn, agent_id)

    await db.run_in_transaction(run)


# -- presence and limits -------------------------------------------------------
def _ensure_settings(conn: Connection, agent_id: uuid.UUID) -> None:
    if conn.execute(select(settings_t.c.agent_id).where(settings_t.c.agent_id == agent_id)).first() is None:
        conn.execute(insert(settings_t).values(agent_id=agent_id, presence="offline", max_chats=DEFAULT_MAX_CHATS, updated_at=utcnow()))


async def agent_settings(db: Database, agent_ids: list[uuid.UUID] | None = None) -> dict[uuid.UUID, dict[str, Any]]:
    """Presence, limit and team names of agents (defaults for those never set)."""
    async with db.read() as conn:
        stmt = select(agents_t.c.id, settings_t.c.presence, settings_t.c.max_chats).outerjoin(settings_t, settings_t.c.agent_id == agents_t.c.id)
        if agent_ids is not None:
            stmt = stmt.where(agents_t.c.id.in_(agent_ids))
        rows = (await conn.execute(stmt)).all()
        names = (await conn.execute(select(members_t.c.agent_id, teams_t.c.name).join(teams_t, teams_t.c.id == members_t.c.team_id))).all()
    teams: dict[uuid.UUID, list[str]] = {}
    for row in names:
        teams.setdefault(row.agent_id, []).append(row.name)
    return {r.id: {"presence": r.presence or "offline", "max_chats": r.max_chats if r.max_chats is not None else DEFAULT_MAX_CHATS,
                   "teams": sorted(teams.get(r.id, []))} for r in rows}


async def set_presence(db: Database, agent_id: uuid.UUID, presence: str | None = None,
                       max_chats: int | None = None) -> list[Change]:
    """Coming online (or taking more chats) takes waiting conversations from the agent's teams."""
    if presence is not None and presence not in AGENT_PRESENCE:
        raise ValueError(f"presence must be one of {', '.join(AGENT_PRESENCE)}")
    if max_chats is not None and not 0 <= max_chats <= 100:
        raise ValueError("max_chats must be between 0 and 100")

    def run(conn: Connection) -> list[Change]:
        _ensure_settings(conn, agent_id)
        values: dict[str, Any] = {"updated_at": utcnow()}
        if presence is not None:
            values["presence"] = presence
        if max_chats is not None:
            values["max_chats"] = max_chats
        conn.execute(update(settings_t).where(settings_t.c.agent_id == agent_id).values(**values))
        return drain_queues(conn, teams_of(conn, agent_id), utcnow())

    return await db.run_in_transaction(run)


# -- SLA targets ----------------------------------------------------------------
async def list_sla_policies(db: Database) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = (await conn.execute(select(policies_t).order_by(policies_t.c.team, policies_t.c.priority))).all()
    return [_policy_dict(r) for r in rows]


def _policy_dict(row: Any) -> dict[str, Any]:
    return {"id": str(row.id), "team": row.team, "priority": row.priority,
            "first_response_seconds": row.first_response_seconds, "resolution_seconds": row.resolution_seconds}


async def set_sla_policy(db: Database, *, team: str | None, priority: str, first_response_seconds: int | None,
                         resolution_seconds: int | None) -> dict[str, Any]:
    """One policy per (team, priority): setting it again replaces the targets."""
    if priority not in PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}")
    if team is not None:
        check_name(team, "team")

    def run(conn: Connection) -> dict[str, Any]:
        match = policies_t.c.team.is_(None) if team is None else policies_t.c.team == team
        conn.execute(delete(policies_t).where(match, policies_t.c.priority == priority))
        policy_id = new_id()
        conn.execute(insert(policies_t).values(id=policy_id, team=team, priority=priority,
                                               first_response_seconds=first_response_seconds,
                                               resolution_seconds=resolution_seconds))
        return _policy_dict(conn.execute(select(policies_t).where(policies_t.c.id == policy_id)).one())

    return await db.run_in_transaction(run)


# -- canned responses -------------------------------------------------------------
async def list_canned(db: Database) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = (await conn.execute(select(canned_t).order_by(canned_t.c.shortcut))).all()
    return [{"id": str(r.id), "shortcut": r.shortcut, "text": r.text} for r in rows]


async def create_canned(db: Database, shortcut: str, text: str) -> dict[str, Any]:
    if not SHORTCUT.match(shortcut):
        raise ValueError("shortcut must be 1-64 lower-case letters, digits, - or _ (used as /shortcut)")
    canned_id = new_id()
    try:
        async with db.write() as conn:
            await conn.execute(insert(canned_t).values(id=canned_id, shortcut=shortcut, text=text, created_at=utcnow()))
    except IntegrityError:
        raise Conflict(f"a canned response /{shortcut} already exists", "shortcut") from None
    return {"id": str(canned_id), "shortcut": shortcut, "text": text}


async def delete_canned(db: Database, canned_id: uuid.UUID) -> None:
    async with db.write() as conn:
        if not (await conn.execute(delete(canned_t).where(canned_t.c.id == canned_id))).rowcount:
            raise NotFound(f"canned response {canned_id} does not exist", "canned_id")
