"""A run: segment members become outbox rows (or skips with a reason), a chunk at a time.

For each member: the first channel in the campaign's order where they are
reachable and may be messaged; consent (a marketing campaign needs a grant
that no later withdrawal undid; a service one only no withdrawal); the
frequency cap; an A/B variant drawn at random with fixed weights (seeded by
run and customer, so a resumed run draws the same); the message rendered
for them, with Korea's advertising rules where they apply; and the time it
may go out: now, or their own local time, moved out of quiet hours (it
waits, it is not dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from campaigns.korean_ads import advertise, korean_rules_apply
from campaigns.scheduling import local_send_time
from campaigns.spec import KOREAN_NIGHT, check_spec
from campaigns.templates import MessageTemplate, RenderFailed, customer_context
from crm_store import campaign_runs as runs_store
from crm_store import campaigns as campaign_store
from crm_store import segments as segment_store
from crm_store.campaign_send import quiet_until
from crm_store.columns import new_id
from crm_store.consents import MARKETING, NIGHT, SERVICE, standing
from crm_store.database import Database

log = logging.getLogger(__name__)
#: Members per chunk: one read, one write and one cursor move each (a restart redoes at most one chunk).
CHUNK = 5000
#: Members planned between two turns of the event loop (so reading ahead and other tasks are not held up).
YIELD_EVERY = 250


@dataclass(slots=True)
class RunPlan:
    run_id: uuid.UUID
    campaign: dict[str, Any]
    templates: dict[str | None, MessageTemplate]
    weights: list[tuple[str, float]]
    now: dt.datetime

    @property
    def reads(self) -> set[str]:
        """What of a member beyond the profile the templates use (scores, recommendations)."""
        return set().union(*(template.reads for template in self.templates.values()))

    @property
    def purpose(self) -> str:
        return str(self.campaign["purpose"])


def _variant(plan: RunPlan, customer_id: uuid.UUID) -> str | None:
    if not plan.weights:
        return None
    digest = hashlib.blake2b(plan.run_id.bytes + customer_id.bytes, digest_size=8).digest()
    point = int.from_bytes(digest, "big") / 2**64 * sum(w for _, w in plan.weights)
    for name, weight in plan.weights:
        point -= weight
        if point < 0:
            return name
    return plan.weights[-1][0]


def _channel(plan: RunPlan, member: runs_store.Member) -> tuple[str | None, str | None, str | None]:
    """(channel, recipient, None) or (None, None, skip reason)."""
    reachable = [(ch, member.identities[ch][0]) for ch in plan.campaign["channels"]
                 if ch in member.identities and member.identities[ch][1]]
    if not reachable:
        return None, None, "unreachable"
    purpose = MARKETING if plan.purpose == MARKETING else SERVICE
    records = member.consents.get(purpose, [])
    withdrawn = False
    for channel, recipient in reachable:
        state = standing(records, channel)
        if state is True or (purpose == SERVICE and state is None):
            return channel, recipient, None
        withdrawn = withdrawn or state is False
    return None, None, "opted_out" if withdrawn else "no_consent"


def plan_member(plan: RunPlan, member: runs_store.Member) -> tuple[dict[str, Any] | None, tuple[str, str | None, str | None] | None]:
    """An outbox row for the member, or a skip (reason, variant, detail)."""
    campaign = plan.campaign
    variant = _variant(plan, member.id)
    channel, recipient, reason = _channel(plan, member)
    if reason is not None or channel is None or recipient is None:
        return None, (reason or "unreachable", variant, None)
    cap = campaign.get("frequency_cap")
    if cap and member.recent >= cap["max"]:
        return None, ("capped", variant, f"{member.recent} campaign messages in {cap['days']} days")
    context = customer_context(member.fields, member.tags, member.scores)
    try:
        payload = plan.templates[variant].render(channel, context, member.recommendations)
    except RenderFailed as exc:
        return None, ("render_error", variant, str(exc))
    tz = member.fields.get("timezone") or campaign["default_timezone"]
    quiet: list[list[str]] = []
    if campaign.get("quiet_hours"):
        quiet.append([campaign["quiet_hours"]["start"], campaign["quiet_hours"]["end"]])
    locale = member.fields.get("locale")
    if plan.purpose == MARKETING and korean_rules_apply(campaign["korean_rules"], locale):
        payload["text"] = advertise(payload["text"], campaign.get("sender_name") or campaign["name"], locale)
        if standing(member.consents.get(NIGHT, []), channel) is not True:
            quiet.append(list(KOREAN_NIGHT))
    schedule = campaign.get("schedule") or {}
    send_at = plan.now
    if schedule.get("type") == "local_time":
        send_at = local_send_time(schedule["time"], member.fields.get("timezone"), campaign["default_timezone"], plan.now,
                                  schedule.get("date"))
    if quiet and (until := quiet_until(send_at, tz, quiet)) is not None:
        send_at = until
    payload["campaign"] = {"purpose": plan.purpose, "tz": tz, "quiet": quiet}
    return {"id": new_id(), "message_id": None, "conversation_id": None, "customer_id": member.id, "channel": channel,
            "recipient": recipient, "payload": payload, "status": "campaign", "attempts": 0, "next_attempt_at": send_at,
            "claimed_until": None, "claimed_by": None, "last_error": None, "external_id": None, "created_at": plan.now, "sent_at": None,
            "campaign_run_id": plan.run_id, "campaign_variant": variant}, None


def _weights(campaign: dict[str, Any]) -> list[tuple[str, float]]:
    return [(v["name"], float(v.get("weight", 1))) for v in campaign.get("variants_ab") or []]


async def materialize(db: Database, run_id: uuid.UUID, now: dt.datetime, *, chunk: int = CHUNK) -> int:
    """Write the run's remaining recipients, resuming after its cursor; how many members were handled."""
    run = await db.run_in_transaction(runs_store.load_run, run_id)
    if run["status"] != "materializing":
        return 0
    campaign = await campaign_store.get_campaign(db, run["campaign_id"])
    _, templates = check_spec(campaign)
    plan = RunPlan(run_id, campaign, templates, _weights(campaign), now)
    segment = await segment_store.get_segment(db, uuid.UUID(campaign["segment_id"]))
    condition = segment_store.members_condition(segment, now)
    cap = campaign.get("frequency_cap")
    cap_since = now - dt.timedelta(days=cap["days"]) if cap else None
    purposes = (MARKETING, NIGHT) if plan.purpose == MARKETING else (SERVICE,)

    def read(conn: Any, after: uuid.UUID | None) -> list[runs_store.Member]:
        return runs_store.read_chunk(conn, condition, channels=campaign["channels"], purposes=purposes, after=after,
                                     size=chunk, run_id=run_id, cap_since=cap_since, reads=plan.reads)

    handled = 0
    # Pipelined: the next chunk is read, and the last one written, each in its own short transaction (on SQLite
    # on the store's writer thread with the plain driver), while this one is planned, so the database's work and
    # Python's overlap.  Writes stay in chunk order (one at a time), so the cursor only moves forward; at a pause
    # the chunk being written is finished and the one read ahead dropped: the run resumes after the cursor.
    ahead: asyncio.Future[list[runs_store.Member]] = asyncio.ensure_future(db.run_in_transaction(read, run["cursor"]))
    writing: asyncio.Future[None] | None = None
    writing_members = 0
    try:
        while True:
            members = await ahead
            if not members or (await campaign_store.get_campaign(db, run["campaign_id"]))["status"] in ("paused", "cancelled"):
                break  # paused: resumed (after its cursor) by the tick that follows a resume
            cursor = members[-1].id
            ahead = asyncio.ensure_future(db.run_in_transaction(read, cursor))
            rows: list[dict[str, Any]] = []
            skips: list[dict[str, Any]] = []
            for n, member in enumerate(members):
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # reading ahead and writing (PostgreSQL) advance whenever the loop is free
                row, skip = plan_member(plan, member)
                if row is not None:
                    rows.append(row)
                elif skip is not None:
                    skips.append({"run_id": run_id, "customer_id": member.id, "reason": skip[0], "variant": skip[1],
                                  "detail": skip[2]})
            if writing is not None:
                await writing
                handled += writing_members
            writing = asyncio.ensure_future(db.run_in_transaction(runs_store.write_chunk, run_id, rows, skips, cursor))
            writing_members = len(members)
        if writing is not None:
            await writing
            handled += writing_members
        if members:
            return handled
    finally:
        for task in (ahead, writing):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
    await db.run_in_transaction(runs_store.finish_materializing, run_id, now)
    log.info("campaign %s run %s: %d recipients materialized", campaign["id"], run_id, handled)
    return handled
