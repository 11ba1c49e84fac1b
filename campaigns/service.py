"""What the API, the CLI and the scheduler do with campaigns: create, send, tick, pause, report."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import Any

from campaigns.korean_ads import advertise, korean_rules_apply
from campaigns.runner import RunPlan, materialize, plan_member
from campaigns.scheduling import after_firing, first_fire
from campaigns.sequences import send_due_steps
from campaigns.spec import check_spec
from campaigns.templates import RenderFailed, customer_context
from crm_store import campaign_members as members_store
from crm_store import campaign_runs as runs_store
from crm_store import campaigns as store
from crm_store import segments as segment_store
from crm_store import sequences as seq_store
from crm_store.columns import utcnow
from crm_store.consents import MARKETING, NIGHT, SERVICE
from crm_store.database import Database
from crm_store.errors import Conflict, NotFound

log = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]
SKIP_REASONS = ("opted_out", "no_consent", "unreachable", "capped", "render_error")


async def create(db: Database, body: dict[str, Any], agent_id: uuid.UUID | None) -> dict[str, Any]:
    """A draft campaign; ``SpecError`` or ``NotFound`` of its segment (both 422: the body is wrong) when it cannot be."""
    spec, _ = check_spec(body)
    segment_id = uuid.UUID(str(body["segment_id"]))
    await segment_store.get_segment(db, segment_id)
    return await store.create_campaign(db, name=body["name"], segment_id=segment_id, purpose=body["purpose"], spec=spec,
                                       created_by=agent_id)


async def send(db: Database, campaign_id: uuid.UUID, now: dt.datetime | None = None) -> dict[str, Any]:
    """Start a draft: at once (a run is created; materializing it is the scheduler's next tick) or at its schedule."""
    now = now or utcnow()

    def start(conn: Any) -> dict[str, Any]:
        campaign = store.load(conn, campaign_id)
        if campaign["status"] != "draft":
            raise Conflict(f"campaign is {campaign['status']}; only a draft can be sent", "status")
        schedule = campaign.get("schedule") or {}
        if campaign.get("trigger"):  # triggered: it takes enrolments from now on; the steps are its runs
            seq_store.activate(conn, campaign_id, len(campaign["steps"]), now)
            store.set_status(conn, campaign_id, "running", now=now)
        elif schedule.get("type") in ("at", "cron", "interval"):
            fire = first_fire(schedule, now)
            if fire is None:
                raise Conflict("the schedule has no firing after now", "schedule")
            store.set_status(conn, campaign_id, "scheduled", next_fire_at=fire, now=now)
        else:
            store.start_run(conn, campaign_id, "send", now)
            store.set_status(conn, campaign_id, "running", now=now)
        return store.load(conn, campaign_id)

    return await db.run_in_transaction(start)


async def change(db: Database, campaign_id: uuid.UUID, action: str, now: dt.datetime | None = None) -> dict[str, Any]:
    return await db.run_in_transaction(store.change_status, campaign_id, action, now or utcnow())


async def tick(db: Database, now: dt.datetime | None = None) -> int:
    """One round of the leader's work: fire due schedules, materialize runs, close drained runs, write the
    triggered campaigns' due steps.  Runs done."""
    now = now or utcnow()

    def fire(conn: Any) -> None:
        for campaign in store.due_campaigns(conn, now):
            schedule = campaign["schedule"]
            fired = dt.datetime.fromisoformat(campaign["next_fire_at"])
            runs, nxt = after_firing(schedule, fired, now)
            cid = uuid.UUID(campaign["id"])
            if runs:
                store.start_run(conn, cid, fired.isoformat(), now)
            else:
                log.warning("campaign %s: firing of %s missed by more than its grace; skipped", cid, fired.isoformat())
            store.set_status(conn, cid, "scheduled" if nxt else "running", next_fire_at=nxt, now=now)

    await db.run_in_transaction(fire)
    finished = 0
    for run in await db.run_in_transaction(store.unfinished_runs):
        if run["campaign_status"] in ("paused", "cancelled"):
            continue
        if run["status"] == "materializing":
            await materialize(db, run["id"], now)
        if await db.run_in_transaction(store.finish_if_drained, run["id"], run["campaign_id"], now):
            finished += 1
    await send_due_steps(db, now)
    return finished


async def report(db: Database, campaign_id: uuid.UUID) -> dict[str, Any]:
    """targeted, skipped by reason, queued, sent, failed, replied, converted, revenue and cost; overall and per variant."""
    campaign = await store.get_campaign(db, campaign_id)
    goal = campaign.get("goal") or {}
    window = dt.timedelta(days=float(goal.get("within_days", 7)))

    def read(conn: Any) -> tuple[list[dict[str, Any]], dict[str | None, dict[str, Any]]]:
        runs = runs_store.run_ids(conn, campaign_id)
        return runs_store.counts(conn, runs), runs_store.outcomes(conn, runs, goal.get("event"), window)

    async with db.read() as conn:
        rows, outcome = await conn.run_sync(read)
    costs = campaign.get("message_costs") or {}
    overall = _summed(rows, outcome, costs)
    extra: dict[str, Any] = {}
    if campaign.get("steps"):
        extra = await _steps_report(db, campaign_id, campaign, goal.get("event"), window, costs)
    return {"id": campaign["id"], "name": campaign["name"], "status": campaign["status"], **overall, **extra}


async def _steps_report(db: Database, campaign_id: uuid.UUID, campaign: dict[str, Any], goal_event: str | None,
                        window: dt.timedelta, costs: dict[str, float]) -> dict[str, Any]:
    """A triggered campaign's enrolments by how they stand, and each step's figures as a run's."""
    def read(conn: Any) -> tuple[dict[str, int], list[tuple[int, list[dict[str, Any]], dict[str | None, dict[str, Any]]]]]:
        runs = seq_store.step_runs(conn, campaign_id)
        return seq_store.enrolment_counts(conn, campaign_id), [
            (step, runs_store.counts(conn, [run]), runs_store.outcomes(conn, [run], goal_event, window))
            for step, run in sorted(runs.items())]

    async with db.read() as conn:
        enrolments, per_step = await conn.run_sync(read)
    found = {step: _summed(rows, outcome, costs) for step, rows, outcome in per_step}
    steps = []
    for number, step in enumerate(campaign["steps"], start=1):
        figures = found.get(number) or _summed([], {}, costs)
        figures.pop("variants", None)
        steps.append({"step": number, "delay_seconds": step["delay"], "text": step["message"].get("text"), **figures})
    return {"trigger": campaign["trigger"], "enrolments": enrolments, "steps": steps}


def _summed(rows: list[dict[str, Any]], outcome: dict[str | None, dict[str, Any]], costs: dict[str, float]) -> dict[str, Any]:
    """Counts and outcomes of some runs added up, overall and per variant."""
    overall = _empty()
    variants: dict[str, dict[str, Any]] = {}
    for row in rows:
        for bucket in (overall, variants.setdefault(row["variant"], _empty()) if row["variant"] else None):
            if bucket is not None:
                _add(bucket, row, costs)
    for variant, found in outcome.items():
        for bucket in (overall, variants.setdefault(variant, _empty()) if variant else None):
            if bucket is not None:
                bucket["replied"] += found.get("replied", 0)
                bucket["converted"] += found.get("converted", 0)
                bucket["revenue"] += found.get("revenue", 0.0)
    for bucket in (overall, *variants.values()):
        bucket["cost"] = round(bucket["cost"], 4)
        bucket["return"] = round(bucket["revenue"] - bucket["cost"], 4)
    return {**overall, "variants": variants}


def _empty() -> dict[str, Any]:
    return {"targeted": 0, "skipped": dict.fromkeys(SKIP_REASONS, 0), "queued": 0, "sent": 0, "failed": 0, "cancelled": 0,
            "replied": 0, "converted": 0, "revenue": 0.0, "cost": 0.0, "by_channel": {}}


def _add(bucket: dict[str, Any], row: dict[str, Any], costs: dict[str, float]) -> None:
    n = row["n"]
    bucket["targeted"] += n
    status = row["status"]
    if status == "skipped":
        reason = row["reason"] if row["reason"] in SKIP_REASONS else "opted_out"
        bucket["skipped"][reason] += n
    elif status in ("sent", "failed", "cancelled"):
        bucket[status] += n
    else:  # campaign, queued, sending, held: not out yet
        bucket["queued"] += n
    if row["channel"] and status in ("sent", "failed"):
        channel = bucket["by_channel"].setdefault(row["channel"], {"sent": 0, "failed": 0})
        channel[status] += n
        if status == "sent":
            bucket["cost"] += n * costs.get(row["channel"], 0.0)


REPORT_CSV_FIELDS = ("variant", "targeted", "queued", "sent", "failed", "cancelled", *(f"skipped_{r}" for r in SKIP_REASONS),
                     "replied", "converted", "revenue", "cost", "return")


def report_csv_rows(report_data: dict[str, Any]) -> list[list[Any]]:
    """The report as CSV rows: the whole campaign, then each variant, then each step of a triggered campaign."""
    out: list[list[Any]] = []
    steps = [(f"step-{step['step']}", step) for step in report_data.get("steps", [])]
    for name, bucket in (("all", report_data), *sorted(report_data["variants"].items()), *steps):
        out.append([name, *(bucket[k] if not k.startswith("skipped_") else bucket["skipped"][k.removeprefix("skipped_")]
                            for k in REPORT_CSV_FIELDS[1:])])
    return out


async def preview(db: Database, message: dict[str, Any], customer_id: uuid.UUID, channels: list[str],
                  campaign: dict[str, Any] | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """What one customer would get: the rendered message on the channel a run would pick (or the first asked for),
    and whether a run would send it or skip them, and why.  ``TemplateRefused`` if the message cannot compile."""
    now = now or utcnow()
    body = {"name": "preview", "purpose": "marketing", "channels": channels, "message": message,
            **({k: v for k, v in campaign.items() if k not in ("message",)} if campaign else {})}
    spec, templates = check_spec(body)
    purposes = (MARKETING, NIGHT) if body["purpose"] == MARKETING else (SERVICE,)

    def read(conn: Any) -> members_store.Member | None:
        return members_store.read_member(conn, customer_id, channels=spec["channels"], purposes=purposes,
                                      reads=set().union(*(t.reads for t in templates.values())))

    async with db.read() as conn:
        member = await conn.run_sync(read)
    if member is None:
        raise NotFound(f"customer {customer_id} does not exist", "customer_id")
    plan = RunPlan(uuid.UUID(int=0), {**body, **spec, "name": body["name"], "purpose": body["purpose"]}, templates, [], now)
    row, skip = plan_member(plan, member)
    if row is not None:
        return {"customer_id": str(customer_id), "would_send": True, "channel": row["channel"],
                "send_at": row["next_attempt_at"].isoformat(), "text": row["payload"]["text"], "buttons": row["payload"].get("buttons", [])}
    reason, _, detail = skip or ("unreachable", None, None)
    channel = spec["channels"][0]
    try:
        rendered = templates[None].render(channel, customer_context(member.fields, member.tags, member.scores), member.recommendations)
        locale = member.fields.get("locale")
        if plan.purpose == MARKETING and korean_rules_apply(spec["korean_rules"], locale):
            rendered["text"] = advertise(rendered["text"], spec.get("sender_name") or body["name"], locale)
    except RenderFailed as exc:
        rendered = {"text": None, "error": str(exc)}
    return {"customer_id": str(customer_id), "would_send": False, "skip_reason": reason, "detail": detail, "channel": channel,
            "text": rendered.get("text"), "buttons": rendered.get("buttons", []), "error": rendered.get("error")}
