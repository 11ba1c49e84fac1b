"""What a fresh database needs to route its first handoff: teams, SLA targets, an admin in them.

A new install hands off to the teams its bot names; without them (and
without SLA targets) the inbox has no SLA column and nobody is ever
auto-assigned.  The seed runs once per database (a marker in
``app_settings``), so teams an admin later deletes stay deleted.
"""

from __future__ import annotations

import uuid

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from crm_store.columns import new_id, utcnow
from crm_store.database import Database
from crm_store.models import Agent, AppSetting, SlaPolicy, Team, TeamMember
from crm_store.teams import _ensure_settings as ensure_agent_settings

teams_t = Team.__table__
members_t = TeamMember.__table__
policies_t = SlaPolicy.__table__
settings_t = AppSetting.__table__
agents_t = Agent.__table__

SEEDED_KEY = "first_run_seeded"
#: (first response, resolution) in seconds by priority, for every team without its own policy;
#: the usual help-desk defaults (Zendesk's and Freshdesk's starting points are close to these).
DEFAULT_SLA_TARGETS: dict[str, tuple[int, int]] = {
    "urgent": (15 * 60, 4 * 3600),
    "high": (60 * 60, 8 * 3600),
    "medium": (4 * 3600, 24 * 3600),
    "low": (8 * 3600, 72 * 3600),
}


def _seed(conn: Connection, team_names: list[str]) -> list[str]:
    if conn.execute(select(settings_t.c.key).where(settings_t.c.key == SEEDED_KEY)).first() is not None:
        return []
    conn.execute(insert(settings_t).values(key=SEEDED_KEY, value=utcnow().isoformat()))
    existing = set(conn.execute(select(teams_t.c.name)).scalars())
    created = [name for name in dict.fromkeys(team_names) if name not in existing]
    now = utcnow()
    for name in created:
        conn.execute(insert(teams_t).values(id=new_id(), name=name, created_at=now))
    have = {(r.team, r.priority) for r in conn.execute(select(policies_t.c.team, policies_t.c.priority))}
    for priority, (first, resolution) in DEFAULT_SLA_TARGETS.items():
        if (None, priority) not in have:
            conn.execute(insert(policies_t).values(id=new_id(), team=None, priority=priority, first_response_seconds=first,
                                                   resolution_seconds=resolution))
    first_admin = conn.execute(select(agents_t.c.id).where(agents_t.c.role == "admin")
                               .order_by(agents_t.c.created_at, agents_t.c.id).limit(1)).scalar()
    if first_admin is not None:
        _join_all_teams(conn, first_admin)
    return created


async def seed_routing(db: Database, team_names: list[str]) -> list[str]:
    """Once per database: create ``team_names`` that are missing, default SLA targets, and put
    the first admin in every team.  Returns the teams created (none after the first time)."""
    try:
        return await db.run_in_transaction(_seed, team_names)
    except IntegrityError:
        return []  # another process seeded at the same moment


def _join_all_teams(conn: Connection, agent_id: uuid.UUID) -> None:
    member_of = set(conn.execute(select(members_t.c.team_id).where(members_t.c.agent_id == agent_id)).scalars())
    for team_id in conn.execute(select(teams_t.c.id)).scalars().all():
        if team_id not in member_of:
            conn.execute(insert(members_t).values(team_id=team_id, agent_id=agent_id, last_assigned_at=None))
    ensure_agent_settings(conn, agent_id)


async def admit_first_admin(db: Database, agent_id: uuid.UUID) -> bool:
    """The install's first admin joins every team, so a handoff on day one reaches someone.
    Returns whether ``agent_id`` was the first (only) admin."""
    def run(conn: Connection) -> bool:
        admins = conn.execute(select(agents_t.c.id).where(agents_t.c.role == "admin").limit(2)).scalars().all()
        if admins != [agent_id]:
            return False
        _join_all_teams(conn, agent_id)
        return True

    return await db.run_in_transaction(run)
