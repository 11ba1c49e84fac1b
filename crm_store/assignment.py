"""Who holds a conversation: the team queue, round-robin, and agents' actions on it.

Every function here is synchronous code over one ``Connection`` so that the
same logic runs inside the message path's batch transaction
(:func:`crm_store.message_batch.write_plan` calls :func:`route_handoffs` there) and through
``Database.run_in_transaction`` for the API and the console.  Each change
that matters writes an audit event in the same transaction, and every race
between agents is settled by a conditional ``UPDATE`` (``... WHERE
assignee_id IS NULL``), never by reading first and writing after.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, case, delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from crm_store.columns import new_id
from crm_store.errors import Conflict, NotFound
from crm_store.models import (
    Agent,
    AgentSettings,
    AuditEvent,
    Conversation,
    ConversationSla,
    SlaPolicy,
    Team,
    TeamMember,
)
from crm_store.statements import Prebuilt

conversations_t = Conversation.__table__
agents_t = Agent.__table__
settings_t = AgentSettings.__table__
teams_t = Team.__table__
members_t = TeamMember.__table__
audit_t = AuditEvent.__table__
sla_t = ConversationSla.__table__
policies_t = SlaPolicy.__table__

#: Roles that answer customers and may hold conversations.
HOLDER_ROLES = ("admin", "agent")
#: Statuses from which a conversation may be claimed.
CLAIMABLE = ("bot", "pending", "open", "snoozed")

# Statements of the message path's handoffs, built once (see crm_store.message_batch).
HANDED_OFF = Prebuilt(lambda in_list: select(conversations_t).where(in_list(conversations_t.c.id, "ids")))
SLA_POLICIES = Prebuilt(lambda in_list: select(policies_t).where(in_list(policies_t.c.priority, "priorities")))
DELETE_SLAS = Prebuilt(lambda in_list: delete(sla_t).where(in_list(sla_t.c.conversation_id, "ids")))
INSERT_SLAS = insert(sla_t)
INSERT_AUDIT = insert(audit_t)
_LOAD = (
    select(func.count()).select_from(conversations_t)
    .where(conversations_t.c.assignee_id == members_t.c.agent_id, conversations_t.c.status == "open")
    .scalar_subquery()
)
CANDIDATES = (
    select(members_t.c.team_id, members_t.c.agent_id, settings_t.c.max_chats, _LOAD.label("load"))
    .join(teams_t, teams_t.c.id == members_t.c.team_id)
    .join(agents_t, agents_t.c.id == members_t.c.agent_id)
    .join(settings_t, settings_t.c.agent_id == members_t.c.agent_id)
    .where(teams_t.c.name == bindparam("team"), agents_t.c.active.is_(True), agents_t.c.role.in_(HOLDER_ROLES),
           settings_t.c.presence == "online")
    .order_by(members_t.c.last_assigned_at.asc().nulls_first(), members_t.c.agent_id)
)


@dataclass(slots=True)
class Change:
    """One conversation changed: enough for the live feed and the caller's answer."""

    conversation_id: uuid.UUID
    action: str
    status: str
    assignee_id: uuid.UUID | None
    team: str | None
    agent_id: uuid.UUID | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def event(self) -> dict[str, Any]:
        return {"type": "conversation", "action": self.action, "conversation_id": str(self.conversation_id),
                "status": self.status, "assignee_id": str(self.assignee_id) if self.assignee_id else None,
                "team": self.team, "by": str(self.agent_id) if self.agent_id else None}


def audit(conn: Connection, conversation_id: uuid.UUID | None, agent_id: uuid.UUID | None, action: str,
          now: dt.datetime, **details: Any) -> None:
    conn.execute(INSERT_AUDIT, [_audit_row(conversation_id, agent_id, action, now, details)])


def _audit_row(conversation_id: uuid.UUID | None, agent_id: uuid.UUID | None, action: str, now: dt.datetime,
               details: dict[str, Any]) -> dict[str, Any]:
    return {"id": new_id(), "conversation_id": conversation_id, "agent_id": agent_id, "action": action,
            "details": {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in details.items()}, "created_at": now}


def load(conn: Connection, conversation_id: uuid.UUID) -> Any:
    row = conn.execute(select(conversations_t).where(conversations_t.c.id == conversation_id)).first()
    if row is None:
        raise NotFound(f"conversation {conversation_id} does not exist", "conversation_id")
    return row


def _change(conn: Connection, conversation_id: uuid.UUID, action: str, agent_id: uuid.UUID | None, **details: Any) -> Change:
    row = load(conn, conversation_id)
    return Change(row.id, action, row.status, row.assignee_id, row.team, agent_id, details)


# -- SLA clock -------------------------------------------------------------
def sla_targets(conn: Connection, team: str | None, priority: str) -> tuple[int | None, int | None]:
    """The team's own policy for this priority, else the default one (no team)."""
    return _sla_targets_for(conn, [(team, priority)])[(team, priority)]


def _sla_targets_for(conn: Connection, keys: list[tuple[str | None, str]]) -> dict[tuple[str | None, str], tuple[int | None, int | None]]:
    """sla_targets of several (team, priority) pairs in one query."""
    rows = conn.execute(SLA_POLICIES(conn), {"priorities": sorted({priority for _, priority in keys})}).all()
    targets: dict[tuple[str | None, str], tuple[int | None, int | None]] = {}
    for team, priority in keys:
        own = [r for r in rows if r.priority == priority and r.team == team]
        default = [r for r in rows if r.priority == priority and r.team is None]
        chosen = (own or default or [None])[0]
        targets[(team, priority)] = (chosen.first_response_seconds, chosen.resolution_seconds) if chosen else (None, None)
    return targets


def start_sla(conn: Connection, conversation_id: uuid.UUID, team: str | None, priority: str, now: dt.datetime) -> None:
    """People became responsible now: the clocks start (again, after a hand-back)."""
    _start_slas(conn, [(conversation_id, team, priority)], now)


def _start_slas(conn: Connection, conversations: list[tuple[uuid.UUID, str | None, str]], now: dt.datetime) -> None:
    targets = _sla_targets_for(conn, [(team, priority) for _, team, priority in conversations])
    conn.execute(DELETE_SLAS(conn), {"ids": [cid for cid, _, _ in conversations]})
    rows = []
    for cid, team, priority in conversations:
        first, resolution = targets[(team, priority)]
        rows.append({"conversation_id": cid, "handed_off_at": now,
                     "first_response_due_at": now + dt.timedelta(seconds=first) if first else None,
                     "resolution_due_at": now + dt.timedelta(seconds=resolution) if resolution else None})
    conn.execute(INSERT_SLAS, rows)


def _ensure_sla(conn: Connection, row: Any, now: dt.datetime) -> None:
    exists = conn.execute(select(sla_t.c.conversation_id).where(sla_t.c.conversation_id == row.id)).first()
    if exists is None:
        start_sla(conn, row.id, row.team, row.priority, now)


def handed_off_at(conn: Connection, row: Any) -> dt.datetime:
    started = conn.execute(select(sla_t.c.handed_off_at).where(sla_t.c.conversation_id == row.id)).scalar()
    return started or row.created_at


# -- the queue and round-robin --------------------------------------------
def route_handoffs(conn: Connection, conversation_ids: list[uuid.UUID], now: dt.datetime) -> list[Change]:
    """Called by the message path for the conversations a batch handed off, in its transaction.

    The whole batch shares each statement (SLA clocks, audit events); only
    an actual assignment costs statements of its own, and a team found
    without a free agent is not asked again within the batch.
    """
    rows = conn.execute(HANDED_OFF(conn), {"ids": conversation_ids}).all()
    if not rows:
        return []
    _start_slas(conn, [(row.id, row.team, row.priority) for row in rows], now)
    conn.execute(INSERT_AUDIT, [_audit_row(row.id, None, "handed_off", now, {"team": row.team, "priority": row.priority})
                                for row in rows])
    changes: list[Change] = []
    full: set[str] = set()
    for row in rows:
        changes.append(Change(row.id, "handed_off", row.status, row.assignee_id, row.team))
        if row.assignee_id is None and row.status == "pending" and row.team and row.team not in full:
            assigned = _auto_assign(conn, row.id, row.team, now)
            if assigned is not None:
                changes.append(assigned)
            else:
                full.add(row.team)
    return changes


def _candidates(conn: Connection, team: str) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(team id, agent id) of online members under their limit, longest since their last assignment first."""
    return [(r.team_id, r.agent_id) for r in conn.execute(CANDIDATES, {"team": team}) if r.load < r.max_chats]


def _has_room(conn: Connection, agent_id: uuid.UUID) -> bool:
    """PostgreSQL: lock the agent's settings row, then count their open chats again.

    Under READ COMMITTED two transactions would both read a load under the
    limit and both assign.  The row lock orders them; the count, a new
    statement after the lock, sees what the first committed.  (SQLite's one
    writer already orders them: the candidates' loads are current.)
    """
    if conn.dialect.name != "postgresql":
        return True
    limit = conn.execute(select(settings_t.c.max_chats).where(settings_t.c.agent_id == agent_id).with_for_update()).scalar()
    load = conn.execute(select(func.count()).select_from(conversations_t)
                        .where(conversations_t.c.assignee_id == agent_id, conversations_t.c.status == "open")).scalar_one()
    return limit is not None and load < limit


def _auto_assign(conn: Connection, conversation_id: uuid.UUID, team: str, now: dt.datetime) -> Change | None:
    for team_id, agent_id in _candidates(conn, team):
        if not _has_room(conn, agent_id):
            continue
        won = conn.execute(
            update(conversations_t)
            .where(conversations_t.c.id == conversation_id, conversations_t.c.assignee_id.is_(None),
                   conversations_t.c.status == "pending")
            .values(assignee_id=agent_id, status="open", updated_at=now)
        ).rowcount
        if not won:
            return None
        conn.execute(update(members_t).where(members_t.c.team_id == team_id, members_t.c.agent_id == agent_id)
                     .values(last_assigned_at=now))
        audit(conn, conversation_id, None, "assigned", now, to=agent_id, by="round_robin")
        return Change(conversation_id, "assigned", "open", agent_id, team, None, {"by": "round_robin"})
    return None


def drain_queues(conn: Connection, teams: list[str] | None, now: dt.datetime, limit: int = 200) -> list[Change]:
    """Hand waiting conversations to agents who became free (came online, resolved a chat)."""
    stmt = (
        select(conversations_t.c.id, conversations_t.c.team)
        .where(conversations_t.c.status == "pending", conversations_t.c.assignee_id.is_(None),
               conversations_t.c.team.is_not(None))
        .order_by(conversations_t.c.updated_at, conversations_t.c.id)
        .limit(limit)
    )
    if teams is not None:
        if not teams:
            return []
        stmt = stmt.where(conversations_t.c.team.in_(teams))
    changes: list[Change] = []
    full: set[str] = set()
    for row in conn.execute(stmt).all():
        if row.team in full:
            continue
        change = _auto_assign(conn, row.id, row.team, now)
        if change is None:
            full.add(row.team)
        else:
            changes.append(change)
    return changes


def teams_of(conn: Connection, agent_id: uuid.UUID) -> list[str]:
    return [r.name for r in conn.execute(
        select(teams_t.c.name).join(members_t, members_t.c.team_id == teams_t.c.id).where(members_t.c.agent_id == agent_id))]


# -- agents' actions -------------------------------------------------------
def claim(conn: Connection, conversation_id: uuid.UUID, agent_id: uuid.UUID, now: dt.datetime) -> Change:
    """Take an unassigned conversation; of two agents claiming at once exactly one wins."""
    won = conn.execute(
        update(conversations_t)
        .where(conversations_t.c.id == conversation_id, conversations_t.c.assignee_id.is_(None),
               conversations_t.c.status.in_(CLAIMABLE))
        .values(assignee_id=agent_id, status="open", snoozed_until=None, updated_at=now)
    ).rowcount
    if not won:
        row = load(conn, conversation_id)
        if row.status == "resolved":
            raise Conflict("the conversation is resolved; reopen it first", "status")
        holder = conn.execute(select(agents_t.c.name).where(agents_t.c.id == row.assignee_id)).scalar()
        raise Conflict(f"the conversation is already assigned to {holder or row.assignee_id}", "assignee_id")
    row = load(conn, conversation_id)
    _ensure_sla(conn, row, now)
    audit(conn, conversation_id, agent_id, "claimed", now)
    return Change(row.id, "claimed", row.status, row.assignee_id, row.team, agent_id)


def assign(conn: Connection, conversation_id: uuid.UUID, actor_id: uuid.UUID, to_agent: uuid.UUID | None,
           now: dt.datetime) -> Change:
    """Give the conversation to ``to_agent``, or with ``None`` put it back in its team's queue."""
    row = load(conn, conversation_id)
    if row.status == "resolved":
        raise Conflict("the conversation is resolved; reopen it first", "status")
    if to_agent is not None:
        target = conn.execute(select(agents_t.c.active, agents_t.c.role).where(agents_t.c.id == to_agent)).first()
        if target is None:
            raise NotFound(f"agent {to_agent} does not exist", "agent_id")
        if not target.active or target.role not in HOLDER_ROLES:
            raise Conflict(f"agent {to_agent} cannot hold conversations (inactive or role {target.role})", "agent_id")
        status = case((conversations_t.c.status.in_(("bot", "pending")), "open"), else_=conversations_t.c.status)
    else:
        status = case((conversations_t.c.status == "open", "pending"), else_=conversations_t.c.status)
    conn.execute(update(conversations_t).where(conversations_t.c.id == conversation_id, conversations_t.c.status != "resolved")
                 .values(assignee_id=to_agent, status=status, updated_at=now))
    _ensure_sla(conn, row, now)
    audit(conn, conversation_id, actor_id, "assigned" if to_agent else "unassigned", now, to=to_agent, previous=row.assignee_id)
    return _change(conn, conversation_id, "assigned" if to_agent else "unassigned", actor_id, previous=row.assignee_id)


def hand_back(conn: Connection, conversation_id: uuid.UUID, actor_id: uuid.UUID, now: dt.datetime) -> Change:
    """The bot answers again, from a fresh state (an old form or fallback count would hand it straight back)."""
    row = load(conn, conversation_id)
    if row.status in ("resolved", "bot"):
        raise Conflict(f"the conversation is {row.status}; only one held by people can go back to the bot", "status")
    conn.execute(update(conversations_t).where(conversations_t.c.id == conversation_id)
                 .values(status="bot", assignee_id=None, snoozed_until=None, bot_state={}, updated_at=now))
    audit(conn, conversation_id, actor_id, "handed_back", now, previous=row.assignee_id)
    return _change(conn, conversation_id, "handed_back", actor_id, previous=row.assignee_id)


def snooze(conn: Connection, conversation_id: uuid.UUID, actor_id: uuid.UUID, until: dt.datetime, now: dt.datetime) -> Change:
    """Snoozed until ``until``; a time already past is a snooze that has run out: the next wake round brings it back."""
    row = load(conn, conversation_id)
    if row.status not in ("pending", "open", "snoozed"):
        raise Conflict(f"the conversation is {row.status}; only one held by people can be snoozed", "status")
    conn.execute(update(conversations_t).where(conversations_t.c.id == conversation_id)
                 .values(status="snoozed", snoozed_until=until, updated_at=now))
    audit(conn, conversation_id, actor_id, "snoozed", now, until=until.isoformat())
    return _change(conn, conversation_id, "snoozed", actor_id, until=until.isoformat())


def wake_snoozed(conn: Connection, now: dt.datetime) -> list[Change]:
    """Snoozes that ran out come back (a customer's message wakes one earlier, in the message path)."""
    ids = [r.id for r in conn.execute(select(conversations_t.c.id).where(
        conversations_t.c.status == "snoozed", conversations_t.c.snoozed_until <= now))]
    changes = []
    for conversation_id in ids:
        won = conn.execute(
            update(conversations_t).where(conversations_t.c.id == conversation_id, conversations_t.c.status == "snoozed")
            .values(status=case((conversations_t.c.assignee_id.is_(None), "pending"), else_="open"), snoozed_until=None,
                    updated_at=now)
        ).rowcount
        if won:
            audit(conn, conversation_id, None, "woke", now)
            changes.append(_change(conn, conversation_id, "woke", None))
    return changes


def resolve(conn: Connection, conversation_id: uuid.UUID, actor_id: uuid.UUID, now: dt.datetime) -> Change:
    row = load(conn, conversation_id)
    if row.status == "resolved":
        raise Conflict("the conversation is already resolved", "status")
    seconds = round((now - handed_off_at(conn, row)).total_seconds(), 3)
    won = conn.execute(
        update(conversations_t).where(conversations_t.c.id == conversation_id, conversations_t.c.status != "resolved")
        .values(status="resolved", resolved_at=now, resolution_seconds=seconds, snoozed_until=None, updated_at=now)
    ).rowcount
    if not won:
        raise Conflict("the conversation is already resolved", "status")
    audit(conn, conversation_id, actor_id, "resolved", now, seconds=seconds)
    return _change(conn, conversation_id, "resolved", actor_id)


def reopen(conn: Connection, conversation_id: uuid.UUID, actor_id: uuid.UUID, now: dt.datetime) -> Change:
    row = load(conn, conversation_id)
    if row.status != "resolved":
        raise Conflict(f"the conversation is {row.status}, not resolved", "status")
    try:
        with conn.begin_nested():
            conn.execute(
                update(conversations_t).where(conversations_t.c.id == conversation_id, conversations_t.c.status == "resolved")
                .values(status=case((conversations_t.c.assignee_id.is_(None), "pending"), else_="open"),
                        resolved_at=None, resolution_seconds=None, updated_at=now)
            )
    except IntegrityError:
        raise Conflict("the customer has a newer open conversation on this channel; continue there", "status") from None
    audit(conn, conversation_id, actor_id, "reopened", now)
    return _change(conn, conversation_id, "reopened", actor_id)


def take_over_for_reply(conn: Connection, row: Any, agent_id: uuid.UUID, now: dt.datetime) -> Change | None:
    """An agent answering a conversation nobody holds takes it (a bot conversation stops the bot)."""
    if row.assignee_id is not None or row.status == "resolved":
        return None
    won = conn.execute(
        update(conversations_t).where(conversations_t.c.id == row.id, conversations_t.c.assignee_id.is_(None),
                                      conversations_t.c.status.in_(CLAIMABLE))
        .values(assignee_id=agent_id, status="open", snoozed_until=None, updated_at=now)
    ).rowcount
    if not won:
        return None
    _ensure_sla(conn, row, now)
    audit(conn, row.id, agent_id, "claimed", now, by="reply")
    return _change(conn, row.id, "claimed", agent_id)


__all__ = [
    "Change", "assign", "audit", "claim", "drain_queues", "hand_back", "reopen", "resolve", "route_handoffs",
    "snooze", "start_sla", "take_over_for_reply", "teams_of", "wake_snoozed",
]
