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
from dataclasses import dataclass, field
from typing import Any

from campaigns.korean_ads import KOREAN, advertise, korean_rules_apply
from campaigns.scheduling import local_send_time
from campaigns.spec import KOREAN_NIGHT, check_spec
from campaigns.templates import MessageTemplate, RenderFailed, customer_context
from crm_store import campaign_members as members_store
from crm_store import campaign_runs as runs_store
from crm_store import campaigns as campaign_store
from crm_store import segments as segment_store
from crm_store.bulk import gc_paused
from crm_store.campaign_runs import PayloadEncoder, campaign_row
from crm_store.campaign_send import quiet_until
from crm_store.columns import new_id, new_ids
from crm_store.consents import MARKETING, NIGHT, SERVICE
from crm_store.database import Database

log = logging.getLogger(__name__)

#: Members per chunk: one read, one write and one cursor move each (a restart redoes at most one chunk).  On SQLite a
#: chunk's write holds the store's write lock, the message path's too, so chunks stay short; PostgreSQL's writers do not
#: wait for each other, and there fewer, larger chunks spare per-chunk round trips (measured at 200,000 members:
#: 4.4 s with 10,000 a chunk, 5.8-6.7 s with 5,000, 7.8 s with 1,000).
CHUNK = 5000
CHUNK_POSTGRESQL = 10_000
#: Members planned between two turns of the event loop (so reading ahead and other tasks are not held up).
YIELD_EVERY = 250


@dataclass(slots=True)
class RunPlan:
    run_id: uuid.UUID
    campaign: dict[str, Any]
    templates: dict[str | None, MessageTemplate]
    weights: list[tuple[str, float]]
    now: dt.datetime
    #: What every member's plan reads of the campaign, looked up once (a broadcast plans a million members).
    cap: dict[str, int] | None = field(init=False)
    quiet: list[list[str]] = field(init=False)
    marketing: bool = field(init=False)
    local_time: dict[str, Any] | None = field(init=False)
    #: Whether Korea's rules apply, per locale met so far.
    _korean: dict[str | None, bool] = field(init=False)
    #: The ``campaign`` part of payloads, one shared object per (time zone, Korean night rule): see ``campaign_part``.
    _parts: dict[tuple[str, bool], dict[str, Any]] = field(init=False)
    encoder: PayloadEncoder = field(init=False)

    def __post_init__(self) -> None:
        campaign = self.campaign
        self.cap = campaign.get("frequency_cap") or None
        hours = campaign.get("quiet_hours")
        self.quiet = [[hours["start"], hours["end"]]] if hours else []
        self.marketing = self.purpose == MARKETING
        schedule = campaign.get("schedule") or {}
        self.local_time = schedule if schedule.get("type") == "local_time" else None
        self._korean = {}
        self._parts = {}
        self.encoder = PayloadEncoder()

    def campaign_part(self, tz: str, night: bool, quiet: list[list[str]]) -> dict[str, Any]:
        """What a payload keeps of its campaign for the claim's checks (purpose, time zone, quiet hours, the Korean
        night rule among them when ``night``), one object per (``tz``, ``night``): never changed once made, so a
        run's payloads share a few and the encoder writes each one's JSON once (crm_store.campaign_runs)."""
        part = self._parts.get((tz, night))
        if part is None:
            part = self._parts[(tz, night)] = {"purpose": self.purpose, "tz": tz, "quiet": quiet}
        return part

    def korean(self, locale: str | None) -> bool:
        """Whether Korea's advertising rules apply to a customer of ``locale`` (campaigns.korean_ads)."""
        applies = self._korean.get(locale)
        if applies is None:
            applies = self._korean[locale] = korean_rules_apply(self.campaign["korean_rules"], locale)
        return applies

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


def _channel(plan: RunPlan, member: members_store.Member) -> tuple[tuple[str, str, bool | None, bool | None] | None, str | None]:
    """((channel, recipient, consent, night consent), None): the first of the campaign's channels where the member is
    reachable and may be messaged; or (None, skip reason)."""
    service = not plan.marketing
    reachable = False
    withdrawn = False
    for reach in member.reach:
        if reach[1] is None:
            continue
        reachable = True
        state = reach[2]
        if state is True or (service and state is None):
            return reach, None  # type: ignore[return-value]
        withdrawn = withdrawn or state is False
    if not reachable:
        return None, "unreachable"
    return None, "opted_out" if withdrawn else "no_consent"


#: What :func:`_plan` gives for a member who gets a message: (channel, recipient, payload, send time, A/B variant).
Planned = tuple[str, str, dict[str, Any], dt.datetime, str | None]
#: What it gives for one who is skipped: (reason, A/B variant, detail).
Skip = tuple[str, str | None, str | None]


def _plan(plan: RunPlan, member: members_store.Member) -> tuple[Planned | None, Skip | None]:
    """The member's message (see :data:`Planned`), or why they are skipped."""
    campaign = plan.campaign
    fields = member.fields
    variant = _variant(plan, fields["id"]) if plan.weights else None
    reach, reason = _channel(plan, member)
    if reach is None:
        return None, (reason or "unreachable", variant, None)
    channel, recipient, _, night_consent = reach
    cap = plan.cap
    if cap and member.recent >= cap["max"]:
        return None, ("capped", variant, f"{member.recent} campaign messages in {cap['days']} days")
    context = customer_context(fields, member.tags, member.scores)
    try:
        payload = plan.templates[variant].render(channel, context, member.recommendations)
    except RenderFailed as exc:
        return None, ("render_error", variant, str(exc))
    tz = fields["timezone"] or campaign["default_timezone"]
    quiet = plan.quiet
    night = False
    if plan.marketing:
        locale = fields["locale"]
        if plan.korean(locale):
            payload["text"] = advertise(payload["text"], campaign.get("sender_name") or campaign["name"], locale)
            if night_consent is not True:
                night = True
                quiet = [*quiet, list(KOREAN_NIGHT)]
    send_at = plan.now
    if (schedule := plan.local_time) is not None:
        send_at = local_send_time(schedule["time"], fields["timezone"], campaign["default_timezone"], plan.now, schedule.get("date"))
    if quiet and (until := quiet_until(send_at, tz, quiet)) is not None:
        send_at = until
    payload["campaign"] = plan.campaign_part(tz, night, quiet)
    return (channel, recipient, payload, send_at, variant), None


def plan_member(plan: RunPlan, member: members_store.Member, row_id: uuid.UUID | None = None
                ) -> tuple[dict[str, Any] | None, Skip | None]:
    """An outbox row for the member (its id ``row_id``, else a new one), or a skip (reason, variant, detail)."""
    planned, skip = _plan(plan, member)
    if planned is None:
        return None, skip
    channel, recipient, payload, send_at, variant = planned
    return {"id": row_id or new_id(), "message_id": None, "conversation_id": None, "customer_id": member.id, "channel": channel,
            "recipient": recipient, "payload": payload, "status": "campaign", "attempts": 0, "next_attempt_at": send_at,
            "claimed_until": None, "claimed_by": None, "last_error": None, "external_id": None, "created_at": plan.now, "sent_at": None,
            "campaign_run_id": plan.run_id, "campaign_variant": variant}, None


def _plan_slice(plan: RunPlan, members: list[members_store.Member], rows: list[tuple[Any, ...]], skips: list[dict[str, Any]]) -> None:
    """Plan ``members`` into ``rows`` (:func:`crm_store.campaign_runs.campaign_row`, as the chunk's write takes them)
    and ``skips``."""
    run_id, now, encode = plan.run_id, plan.now, plan.encoder.encode
    for member, row_id in zip(members, new_ids(len(members)), strict=True):
        planned, skip = _plan(plan, member)
        if planned is not None:
            channel, recipient, payload, send_at, variant = planned
            rows.append(campaign_row(row_id, member.id, channel, recipient, encode(payload), send_at, now, run_id, variant))
        elif skip is not None:
            skips.append(runs_store.skip_row(run_id, member.id, *skip))


def _weights(campaign: dict[str, Any]) -> list[tuple[str, float]]:
    return [(v["name"], float(v.get("weight", 1))) for v in campaign.get("variants_ab") or []]


async def materialize(db: Database, run_id: uuid.UUID, now: dt.datetime, *, chunk: int | None = None) -> int:
    """Write the run's remaining recipients, resuming after its cursor; how many members were handled."""
    chunk = chunk or (CHUNK if db.is_sqlite else CHUNK_POSTGRESQL)
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

    query = members_store.members_query("sqlite" if db.is_sqlite else "postgresql", condition, channels=campaign["channels"],
                                        purposes=purposes, run_id=run_id, cap_since=cap_since,
                                        night_language=None if campaign["korean_rules"] == "everyone" else KOREAN)

    def read_sync(conn: Any, after: uuid.UUID | None) -> list[members_store.Member]:
        return members_store.read_chunk(conn, query, channels=campaign["channels"], purposes=purposes, after=after, size=chunk,
                                        capped=cap_since is not None, reads=plan.reads)

    async def read(after: uuid.UUID | None) -> list[members_store.Member]:
        # a read of its own, not in a write transaction: on SQLite it holds no write lock (the message path's), and
        # its work is done on the reader's thread while this one plans
        async with db.read() as conn:
            return await conn.run_sync(read_sync, after)

    handled = 0
    # Pipelined: the next chunk is read (on SQLite on a reader's thread, taking no write lock), and the last one
    # written (on SQLite on the store's writer thread with the plain driver), each in its own short transaction,
    # while this one is planned, so the database's work and Python's overlap.  Writes stay in chunk order (one at a
    # time), so the cursor only moves forward; at a pause the chunk being written is finished and the one read ahead
    # dropped: the run resumes after the cursor.
    ahead: asyncio.Future[list[members_store.Member]] = asyncio.ensure_future(read(run["cursor"]))
    writing: asyncio.Future[None] | None = None
    writing_members = 0
    # the collector paused for the whole run: see crm_store.bulk.gc_paused
    with gc_paused():
        try:
            while True:
                members = await ahead
                if not members or (await campaign_store.get_campaign(db, run["campaign_id"]))["status"] in ("paused", "cancelled"):
                    break  # paused: resumed (after its cursor) by the tick that follows a resume
                cursor = members[-1].id
                ahead = asyncio.ensure_future(read(cursor))
                rows: list[tuple[Any, ...]] = []
                skips: list[dict[str, Any]] = []
                for start in range(0, len(members), YIELD_EVERY):
                    await asyncio.sleep(0)  # reading ahead and writing (PostgreSQL) advance whenever the loop is free
                    _plan_slice(plan, members[start:start + YIELD_EVERY], rows, skips)
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
