"""Campaign records: create, read, list, status changes and the scheduler's due list.

What a campaign sends and when is kept as given (``spec``); checking it is
the campaigns package's work, storing and moving it through its statuses is
this module's.  Pausing, resuming and cancelling move the run's waiting
outbox rows in the same transaction as the status, so the delivery worker
sees one or the other, never half.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from crm_store import sequences
from crm_store.campaign_tables import Campaign, CampaignRun
from crm_store.columns import new_id, utcnow
from crm_store.database import Database
from crm_store.errors import Conflict, NotFound
from crm_store.models import OutboxRow

campaigns_t = Campaign.__table__
runs_t = CampaignRun.__table__
outbox_t = OutboxRow.__table__

#: Outbox statuses of a run's rows that have not gone out yet.
WAITING = ("campaign", "queued")


def _out(row: Any) -> dict[str, Any]:
    return {"id": str(row.id), "name": row.name, "segment_id": str(row.segment_id), "purpose": row.purpose, "status": row.status,
            **row.spec, "next_fire_at": row.next_fire_at.isoformat() if row.next_fire_at else None,
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}


async def create_campaign(db: Database, *, name: str, segment_id: uuid.UUID, purpose: str, spec: dict[str, Any],
                          created_by: uuid.UUID | None) -> dict[str, Any]:
    """A draft; a triggered one (``spec["trigger"]``) with its trigger, goal and step delays in the same transaction."""
    now = utcnow()
    cid = new_id()
    async with db.write() as conn:
        await conn.execute(insert(campaigns_t).values(id=cid, name=name, segment_id=segment_id, purpose=purpose, status="draft",
                                                      spec=spec, created_by=created_by, created_at=now, updated_at=now))
        if spec.get("trigger"):
            await conn.run_sync(sequences.define, cid, spec["trigger"], (spec.get("goal") or {}).get("event"),
                                [step["delay"] for step in spec["steps"]])
        row = (await conn.execute(select(campaigns_t).where(campaigns_t.c.id == cid))).one()
    return _out(row)


def load(conn: Connection, campaign_id: uuid.UUID) -> dict[str, Any]:
    row = conn.execute(select(campaigns_t).where(campaigns_t.c.id == campaign_id)).first()
    if row is None:
        raise NotFound(f"campaign {campaign_id} does not exist", "campaign_id")
    return _out(row)


async def get_campaign(db: Database, campaign_id: uuid.UUID) -> dict[str, Any]:
    return await db.run_in_transaction(load, campaign_id)


async def list_campaigns(db: Database, limit: int = 200) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = (await conn.execute(select(campaigns_t).order_by(campaigns_t.c.created_at.desc()).limit(limit))).all()
    return [_out(r) for r in rows]


def start_run(conn: Connection, campaign_id: uuid.UUID, fire_key: str, now: dt.datetime) -> uuid.UUID | None:
    """A new run for this firing, or None when another process already started it (unique per firing)."""
    run_id = new_id()
    try:
        with conn.begin_nested():
            conn.execute(insert(runs_t).values(id=run_id, campaign_id=campaign_id, fire_key=fire_key, status="materializing",
                                               cursor=None, started_at=now))
    except IntegrityError:
        return None
    return run_id


def set_status(conn: Connection, campaign_id: uuid.UUID, status: str, *, next_fire_at: dt.datetime | None = None,
               keep_fire: bool = False, now: dt.datetime | None = None) -> None:
    values: dict[str, Any] = {"status": status, "updated_at": now or utcnow()}
    if not keep_fire:
        values["next_fire_at"] = next_fire_at
    conn.execute(update(campaigns_t).where(campaigns_t.c.id == campaign_id).values(**values))


def move_rows(conn: Connection, campaign_id: uuid.UUID, from_statuses: tuple[str, ...], to_status: str) -> int:
    """The waiting outbox rows of every run of the campaign change status (pause, resume, cancel)."""
    runs = select(runs_t.c.id).where(runs_t.c.campaign_id == campaign_id)
    result = conn.execute(update(outbox_t).where(and_(outbox_t.c.campaign_run_id.in_(runs), outbox_t.c.status.in_(from_statuses)))
                          .values(status=to_status))
    return int(result.rowcount or 0)


def change_status(conn: Connection, campaign_id: uuid.UUID, action: str, now: dt.datetime) -> dict[str, Any]:
    """pause | resume | cancel, with the rows waiting to go out."""
    campaign = load(conn, campaign_id)
    status = campaign["status"]
    allowed = {"pause": ("running", "scheduled"), "resume": ("paused",), "cancel": ("draft", "scheduled", "running", "paused")}[action]
    if status not in allowed:
        raise Conflict(f"campaign is {status}; {action} needs it {' or '.join(allowed)}", "status")
    if action == "pause":
        move_rows(conn, campaign_id, WAITING, "held")
        conn.execute(update(campaigns_t).where(campaigns_t.c.id == campaign_id)
                     .values(status="paused", updated_at=now, spec={**_spec(conn, campaign_id), "paused_from": status}))
    elif action == "resume":
        move_rows(conn, campaign_id, ("held",), "campaign")
        spec = _spec(conn, campaign_id)
        back = spec.pop("paused_from", "running")
        conn.execute(update(campaigns_t).where(campaigns_t.c.id == campaign_id).values(status=back, updated_at=now, spec=spec))
    else:
        move_rows(conn, campaign_id, (*WAITING, "held"), "cancelled")
        sequences.cancel(conn, campaign_id, now)
        conn.execute(update(runs_t).where(runs_t.c.campaign_id == campaign_id, runs_t.c.finished_at.is_(None))
                     .values(status="cancelled", finished_at=now))
        set_status(conn, campaign_id, "cancelled", now=now)
    return load(conn, campaign_id)


def _spec(conn: Connection, campaign_id: uuid.UUID) -> dict[str, Any]:
    return dict(conn.execute(select(campaigns_t.c.spec).where(campaigns_t.c.id == campaign_id)).scalar_one())


def due_campaigns(conn: Connection, now: dt.datetime) -> list[dict[str, Any]]:
    """Scheduled campaigns whose next firing has come, oldest first."""
    rows = conn.execute(select(campaigns_t).where(campaigns_t.c.status == "scheduled", campaigns_t.c.next_fire_at <= now)
                        .order_by(campaigns_t.c.next_fire_at).limit(100)).all()
    return [_out(r) for r in rows]


def unfinished_runs(conn: Connection) -> list[dict[str, Any]]:
    """Runs still materializing (a restart resumes them) or sending (done when nothing of theirs waits)."""
    rows = conn.execute(select(runs_t.c.id, runs_t.c.campaign_id, runs_t.c.status, campaigns_t.c.status.label("campaign_status"))
                        .join(campaigns_t, campaigns_t.c.id == runs_t.c.campaign_id)
                        .where(runs_t.c.status.in_(("materializing", "sending")))).all()
    return [{"id": r.id, "campaign_id": r.campaign_id, "status": r.status, "campaign_status": r.campaign_status} for r in rows]


def finish_if_drained(conn: Connection, run_id: uuid.UUID, campaign_id: uuid.UUID, now: dt.datetime) -> bool:
    """A sending run with nothing left waiting is done; a one-off campaign with it."""
    pending = conn.execute(select(outbox_t.c.id).where(outbox_t.c.campaign_run_id == run_id,
                                                       outbox_t.c.status.in_(("campaign", "queued", "sending", "held"))).limit(1)).first()
    if pending is not None:
        return False
    conn.execute(update(runs_t).where(runs_t.c.id == run_id, runs_t.c.status == "sending").values(status="done", finished_at=now))
    conn.execute(update(campaigns_t).where(campaigns_t.c.id == campaign_id, campaigns_t.c.status == "running")
                 .values(status="done", updated_at=now))
    return True
