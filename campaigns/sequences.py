"""Triggered sequences: the scheduler's leader writes each enrolled customer's due step into the outbox.

Customers are enrolled where their trigger is written (an event, a tag:
:mod:`crm_store.sequences`), with their first step's due time.  Each tick of
the leading process (:func:`campaigns.service.tick`) takes the due
enrolments of every running triggered campaign a chunk at a time, ends
those whose customer wrote back after a step went out or reached the goal,
and writes the others' step (those in the campaign's segment at that
moment: the segment narrows who gets each step; the others' step is passed
over, not counted) exactly as a broadcast writes a recipient
(:func:`campaigns.runner.plan_member`: the preferred reachable channel,
consent, the frequency cap, quiet hours, Korea's advertising rules, the
template rendered for them or a skip with the reason).  The rows, the skips
and the enrolments' next due times are one transaction, and rows are unique
per (step, customer), so a crash or a second tick sends no step twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from campaigns.runner import RunPlan, plan_member
from campaigns.templates import compile_message
from crm_store import campaign_members as members_store
from crm_store import campaign_runs as runs_store
from crm_store import campaigns as campaign_store
from crm_store import segments as segment_store
from crm_store import sequences as seq_store
from crm_store.consents import MARKETING, NIGHT, SERVICE
from crm_store.database import Database

log = logging.getLogger(__name__)
#: Due enrolments per transaction.
CHUNK = 500


async def send_due_steps(db: Database, now: dt.datetime, *, chunk: int = CHUNK) -> int:
    """Write every due step of every running triggered campaign; how many steps were handled (sent or skipped)."""
    handled = 0
    for campaign_id in await db.run_in_transaction(seq_store.running_campaigns):
        campaign = await campaign_store.get_campaign(db, campaign_id)
        runs = await db.run_in_transaction(seq_store.step_runs, campaign_id)
        templates = [compile_message(step["message"], f"steps[{i}].message") for i, step in enumerate(campaign["steps"])]
        while True:
            due = await db.run_in_transaction(seq_store.due, campaign_id, now, chunk)
            if not due:
                break
            handled += await _write(db, campaign, runs, templates, due, now)
            if len(due) < chunk:
                break
    return handled


async def _write(db: Database, campaign: dict[str, Any], runs: dict[int, uuid.UUID], templates: list[Any],
                 due: list[tuple[uuid.UUID, uuid.UUID, int]], now: dt.datetime) -> int:
    campaign_id = uuid.UUID(campaign["id"])
    purposes = (MARKETING, NIGHT) if campaign["purpose"] == MARKETING else (SERVICE,)
    cap = campaign.get("frequency_cap")
    cap_since = now - dt.timedelta(days=cap["days"]) if cap else None
    segment = await segment_store.get_segment(db, uuid.UUID(campaign["segment_id"]))
    condition = segment_store.members_condition(segment, now)  # the segment narrows who gets each step
    by_step: dict[int, list[tuple[uuid.UUID, uuid.UUID]]] = {}
    for enrolment_id, customer_id, step in due:
        by_step.setdefault(step, []).append((enrolment_id, customer_id))
    writes: list[tuple[uuid.UUID, list[dict[str, Any]], list[dict[str, Any]]]] = []
    written: list[tuple[uuid.UUID, int]] = []
    for step, enrolments in sorted(by_step.items()):
        if step not in runs or step > len(templates):
            log.warning("campaign %s: enrolments at step %d, which it does not have; ended", campaign_id, step)
            written += [(enrolment_id, step) for enrolment_id, _ in enrolments]
            continue
        run_id = runs[step]

        def read(conn: Any, ids: list[uuid.UUID] = [cid for _, cid in enrolments],  # noqa: B006 - bound per step
                 run: uuid.UUID = run_id, reads: set[str] = templates[step - 1].reads) -> list[members_store.Member]:
            return members_store.read_members(conn, ids, condition, channels=campaign["channels"], purposes=purposes, run_id=run,
                                           cap_since=cap_since, reads=reads)

        members = {m.id: m for m in await db.run_in_transaction(read)}
        plan = RunPlan(run_id, {**campaign, "message": campaign["steps"][step - 1]["message"]}, {None: templates[step - 1]}, [], now)
        rows: list[dict[str, Any]] = []
        skips: list[dict[str, Any]] = []
        for enrolment_id, customer_id in enrolments:
            member = members.get(customer_id)
            if member is not None:
                row, skip = plan_member(plan, member)
                if row is not None:
                    rows.append(row)
                elif skip is not None:
                    skips.append(runs_store.skip_row(run_id, customer_id, *skip))
            written.append((enrolment_id, step))
        writes.append((run_id, rows, skips))
    await db.run_in_transaction(seq_store.write_steps, campaign_id, writes, written, now)
    return len(written)
