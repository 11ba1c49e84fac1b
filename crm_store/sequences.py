"""Triggered sequences' SQL: enrol on an event or a tag, find due steps, end an enrolment on a goal or a reply.

Enrolment happens where the trigger is written, in the same transaction
(:func:`on_events` from :func:`crm_store.events.store_events`, :func:`on_tags`
from the customers API's tag writes and from a batch of messages whose bot
added a tag): it costs those paths one read of the
running triggered campaigns, and a customer is enrolled at most once per
campaign (a unique constraint; a second trigger changes nothing).  A goal
event ends the customer's enrolments at once, in the same way.  The steps
themselves are written to the outbox by the scheduler's leader
(:mod:`campaigns.sequences`), which also ends, before each step, the
enrolments whose customer wrote back after a step went out or reached the
goal by a path without this hook.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from crm_store.campaign_tables import Campaign, CampaignRun, CampaignSkip
from crm_store.columns import new_id
from crm_store.models import CustomerEvent, Message, OutboxRow
from crm_store.sequence_tables import CampaignSequence, SequenceEnrolment

sequences_t = CampaignSequence.__table__
enrolments_t = SequenceEnrolment.__table__
campaigns_t = Campaign.__table__
runs_t = CampaignRun.__table__
skips_t = CampaignSkip.__table__
events_t = CustomerEvent.__table__
messages_t = Message.__table__
outbox_t = OutboxRow.__table__

#: The status of a step's run while its campaign takes enrolments (never finished by the broadcast tick).
STEP_RUN_STATUS = "sequence"
#: Event = (customer id, type, occurred at).
Event = tuple[uuid.UUID, str, dt.datetime]


def step_key(step: int) -> str:
    return f"step-{step}"


def define(conn: Connection, campaign_id: uuid.UUID, trigger: dict[str, Any], goal_event: str | None,
           delays: Sequence[float]) -> None:
    """Record a new triggered campaign's trigger, goal and step delays (it enrols no one until it is sent)."""
    kind = "tag" if trigger.get("tag") else "event"
    conn.execute(insert(sequences_t).values(
        campaign_id=campaign_id, trigger_kind=kind, trigger_value=trigger[kind], first_only=bool(trigger.get("first")),
        max_age_hours=int(trigger.get("max_age_hours", 24)), goal_event=goal_event, delays=[float(d) for d in delays]))


def activate(conn: Connection, campaign_id: uuid.UUID, steps: int, now: dt.datetime) -> None:
    """One run per step (``step-1`` …), kept open while the campaign takes enrolments."""
    for step in range(1, steps + 1):
        conn.execute(_insert_ignoring(conn, runs_t).values(id=new_id(), campaign_id=campaign_id, fire_key=step_key(step),
                                                           status=STEP_RUN_STATUS, cursor=None, started_at=now))


def step_runs(conn: Connection, campaign_id: uuid.UUID) -> dict[int, uuid.UUID]:
    rows = conn.execute(select(runs_t.c.id, runs_t.c.fire_key).where(runs_t.c.campaign_id == campaign_id,
                                                                      runs_t.c.fire_key.like("step-%")))
    return {int(r.fire_key.removeprefix("step-")): r.id for r in rows}


def _running(conn: Connection) -> list[Any]:
    return list(conn.execute(select(sequences_t).join(campaigns_t, campaigns_t.c.id == sequences_t.c.campaign_id)
                             .where(campaigns_t.c.status == "running")))


def on_events(conn: Connection, events: Sequence[Event], now: dt.datetime) -> int:
    """Enrol the customers whose events trigger a running campaign, and end the enrolments whose goal they reach;
    how many were enrolled."""
    if not events:
        return 0
    running = _running(conn)
    if not running:
        return 0
    types = {kind for _, kind, _ in events}
    for seq in running:
        if seq.goal_event in types:
            end(conn, seq.campaign_id, sorted({cid for cid, kind, _ in events if kind == seq.goal_event}), "converted", now)
    enrolled = 0
    for seq in running:
        if seq.trigger_kind != "event" or seq.trigger_value not in types:
            continue
        oldest = now - dt.timedelta(hours=seq.max_age_hours)
        who = sorted({cid for cid, kind, at in events if kind == seq.trigger_value and at >= oldest})
        if seq.first_only and who:
            stored = dict(conn.execute(select(events_t.c.customer_id, func.count()).where(
                events_t.c.customer_id.in_(who), events_t.c.type == seq.trigger_value).group_by(events_t.c.customer_id)).all())
            batch: dict[uuid.UUID, int] = {}
            for cid, kind, _ in events:
                if kind == seq.trigger_value:
                    batch[cid] = batch.get(cid, 0) + 1
            who = [cid for cid in who if stored.get(cid, 0) <= batch[cid]]  # none of that type before this batch
        enrolled += enrol(conn, seq, who, f"event:{seq.trigger_value}", now)
    return enrolled


def on_tags(conn: Connection, added: Sequence[tuple[uuid.UUID, str]], now: dt.datetime) -> int:
    """Enrol the customers given a tag that triggers a running campaign; how many were enrolled."""
    if not added:
        return 0
    enrolled = 0
    for seq in _running(conn):
        if seq.trigger_kind == "tag":
            who = sorted({cid for cid, tag in added if tag == seq.trigger_value})
            enrolled += enrol(conn, seq, who, f"tag:{seq.trigger_value}", now)
    return enrolled


def enrol(conn: Connection, seq: Any, customers: Sequence[uuid.UUID], source: str, now: dt.datetime) -> int:
    """Enrol ``customers`` in ``seq``'s campaign (those enrolled now or before are left as they are); how many were new."""
    if not customers:
        return 0
    known = {r[0] for r in conn.execute(select(enrolments_t.c.customer_id).where(
        enrolments_t.c.campaign_id == seq.campaign_id, enrolments_t.c.customer_id.in_(list(customers))))}
    new = [cid for cid in customers if cid not in known]
    if new:  # a concurrent enrolment of the same customer is ignored by the unique constraint
        due = now + dt.timedelta(seconds=seq.delays[0])
        conn.execute(_insert_ignoring(conn, enrolments_t), [
            {"id": new_id(), "campaign_id": seq.campaign_id, "customer_id": cid, "status": "active", "step": 1, "due_at": due,
             "source": source[:120], "enrolled_at": now, "ended_at": None} for cid in new])
    return len(new)


def end(conn: Connection, campaign_id: uuid.UUID, customers: Sequence[uuid.UUID], status: str, now: dt.datetime) -> None:
    if customers:
        conn.execute(update(enrolments_t).where(enrolments_t.c.campaign_id == campaign_id, enrolments_t.c.status == "active",
                                                enrolments_t.c.customer_id.in_(list(customers)))
                     .values(status=status, due_at=None, ended_at=now))


def cancel(conn: Connection, campaign_id: uuid.UUID, now: dt.datetime) -> None:
    conn.execute(update(enrolments_t).where(enrolments_t.c.campaign_id == campaign_id, enrolments_t.c.status == "active")
                 .values(status="cancelled", due_at=None, ended_at=now))


def due(conn: Connection, campaign_id: uuid.UUID, now: dt.datetime, limit: int) -> list[tuple[uuid.UUID, uuid.UUID, int]]:
    """Up to ``limit`` enrolments whose next step is due, as (enrolment, customer, step), after ending those
    whose customer wrote back after one of the campaign's steps went out or reached the goal since enrolling."""
    rows = conn.execute(select(enrolments_t.c.id, enrolments_t.c.customer_id, enrolments_t.c.step, enrolments_t.c.enrolled_at)
                        .where(enrolments_t.c.campaign_id == campaign_id, enrolments_t.c.status == "active",
                                enrolments_t.c.due_at <= now)
                        .order_by(enrolments_t.c.due_at).limit(limit)).all()
    if not rows:
        return []
    ids = [r.customer_id for r in rows]
    runs = list(step_runs(conn, campaign_id).values())
    first_sent = (select(outbox_t.c.customer_id, func.min(outbox_t.c.sent_at).label("at"))
                  .where(outbox_t.c.campaign_run_id.in_(runs), outbox_t.c.customer_id.in_(ids), outbox_t.c.status == "sent")
                  .group_by(outbox_t.c.customer_id).subquery())
    replied = {r[0] for r in conn.execute(
        select(first_sent.c.customer_id).where(select(messages_t.c.id).where(and_(
            messages_t.c.customer_id == first_sent.c.customer_id, messages_t.c.direction == "in",
            messages_t.c.created_at > first_sent.c.at)).exists()))}
    end(conn, campaign_id, sorted(replied), "replied", now)
    goal = conn.execute(select(sequences_t.c.goal_event).where(sequences_t.c.campaign_id == campaign_id)).scalar()
    converted: set[uuid.UUID] = set()
    if goal:
        since = {r.customer_id: r.enrolled_at for r in rows}
        for cid, at in conn.execute(select(events_t.c.customer_id, func.max(events_t.c.occurred_at))
                                    .where(events_t.c.customer_id.in_(ids), events_t.c.type == goal).group_by(events_t.c.customer_id)):
            if at is not None and at >= since[cid]:
                converted.add(cid)
        end(conn, campaign_id, sorted(converted - replied), "converted", now)
    return [(r.id, r.customer_id, r.step) for r in rows if r.customer_id not in replied and r.customer_id not in converted]


def advance(conn: Connection, campaign_id: uuid.UUID, written: Sequence[tuple[uuid.UUID, int]], now: dt.datetime) -> None:
    """Each (enrolment, step just written) moves on to the next step, due its delay from now, or ends after
    the last; once only, so a step written twice (two ticks) cannot skip the next."""
    delays = conn.execute(select(sequences_t.c.delays).where(sequences_t.c.campaign_id == campaign_id)).scalar_one()
    for enrolment_id, step in written:
        values: dict[str, Any] = {"step": step + 1}
        if step < len(delays):
            values["due_at"] = now + dt.timedelta(seconds=delays[step])
        else:
            values.update(status="done", due_at=None, ended_at=now)
        conn.execute(update(enrolments_t).where(enrolments_t.c.id == enrolment_id, enrolments_t.c.step == step,
                                                enrolments_t.c.status == "active").values(**values))


def enrolment_counts(conn: Connection, campaign_id: uuid.UUID) -> dict[str, int]:
    counts = dict.fromkeys(("active", "done", "converted", "replied", "cancelled"), 0)
    for status, n in conn.execute(select(enrolments_t.c.status, func.count()).where(enrolments_t.c.campaign_id == campaign_id)
                                  .group_by(enrolments_t.c.status)):
        counts[status] = int(n)
    return {"enrolled": sum(counts.values()), **counts}


def _insert_ignoring(conn: Connection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def write_steps(conn: Connection, campaign_id: uuid.UUID, steps: Sequence[tuple[uuid.UUID, list[dict[str, Any]], list[dict[str, Any]]]],
                written: Sequence[tuple[uuid.UUID, int]], now: dt.datetime) -> None:
    """Due steps' outbox rows and skips (per step run: unique per step and customer, a duplicate ignored,
    never sent) and the enrolments moved on, in one transaction: a crash writes all of it or none."""
    for _, rows, skips in steps:
        if rows:
            conn.execute(_insert_ignoring(conn, outbox_t), rows)
        if skips:
            conn.execute(_insert_ignoring(conn, skips_t), skips)
    advance(conn, campaign_id, written, now)


def running_campaigns(conn: Connection) -> list[uuid.UUID]:
    """Triggered campaigns that are running (their due steps go out)."""
    return [r[0] for r in conn.execute(select(sequences_t.c.campaign_id).join(campaigns_t, campaigns_t.c.id == sequences_t.c.campaign_id)
                                       .where(campaigns_t.c.status == "running"))]
