"""When campaigns fire: APScheduler's triggers, firings persisted in the database, one leader.

A campaign's schedule is turned into an APScheduler trigger (``DateTrigger``
for ``at``, ``CronTrigger`` for ``cron``, ``IntervalTrigger`` for
``interval``, each in the schedule's time zone).  The next firing time is
kept on the campaign row (``next_fire_at``), so schedules survive a restart
and every process sees the same plan; an ``AsyncIOScheduler`` job ticks
every few seconds in each process, and only the process holding the
``campaign-scheduler`` leadership (crm_store.leadership) acts on a tick.
A firing creates a run unique per (campaign, firing time): even two leaders
in a split second could not start it twice.

Misfire rule: a firing found late by no more than the schedule's
``misfire_grace_seconds`` (default one hour) runs once; later than that it
is skipped.  Several missed firings coalesce into at most one run, and the
next firing is the trigger's first time after now.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger


def zone(name: Any) -> zoneinfo.ZoneInfo:
    """An IANA zone; ValueError names one that is not."""
    try:
        return zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone such as Asia/Seoul") from None


def trigger_for(schedule: Mapping[str, Any]) -> BaseTrigger:
    """The APScheduler trigger of an ``at``, ``cron`` or ``interval`` schedule; ValueError names what is wrong."""
    tz = zone(schedule.get("timezone", "UTC"))
    kind = schedule["type"]
    if kind == "at":
        raw = schedule.get("at")
        if not isinstance(raw, str):
            raise ValueError("at must be an ISO 8601 time such as 2026-12-24T09:00")
        at = dt.datetime.fromisoformat(raw)
        return DateTrigger(run_date=at if at.tzinfo else at.replace(tzinfo=tz), timezone=tz)
    if kind == "cron":
        expression = schedule.get("cron")
        if not isinstance(expression, str):
            raise ValueError("cron must be a crontab expression such as '0 9 * * mon'")
        return CronTrigger.from_crontab(expression, timezone=tz)
    if kind == "interval":
        minutes = schedule.get("every_minutes")
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes < 1:
            raise ValueError("every_minutes must be at least 1")
        start = schedule.get("start")
        start_at = dt.datetime.fromisoformat(start) if isinstance(start, str) else None
        if start_at is not None and start_at.tzinfo is None:
            start_at = start_at.replace(tzinfo=tz)
        return IntervalTrigger(minutes=minutes, start_date=start_at, timezone=tz)
    raise ValueError(f"schedule type {kind} has no trigger")


def first_fire(schedule: Mapping[str, Any], now: dt.datetime) -> dt.datetime | None:
    """When a newly scheduled campaign fires first (None: never again)."""
    fire = trigger_for(schedule).get_next_fire_time(None, now)
    return fire.astimezone(dt.UTC) if fire else None


def after_firing(schedule: Mapping[str, Any], fired: dt.datetime, now: dt.datetime) -> tuple[bool, dt.datetime | None]:
    """Whether the firing due at ``fired`` still runs (the misfire rule), and the next firing after now."""
    grace = dt.timedelta(seconds=int(schedule.get("misfire_grace_seconds", 3600)))
    runs = now - fired <= grace
    trigger = trigger_for(schedule)
    nxt = trigger.get_next_fire_time(fired, fired)
    while nxt is not None and nxt <= now:  # coalesce the missed ones
        nxt = trigger.get_next_fire_time(nxt, nxt)
    return runs, nxt.astimezone(dt.UTC) if nxt else None


def local_send_time(hhmm: str, tz_name: str | None, default_tz: str, now: dt.datetime, date: str | None = None) -> dt.datetime:
    """``hh:mm`` in the customer's own zone: on ``date``, or the next such time from now (now if it is that minute)."""
    try:
        tz = zone(tz_name or default_tz)
    except ValueError:  # a customer's zone no longer known: the campaign's default
        tz = zone(default_tz)
    at = dt.time.fromisoformat(hhmm)
    local_now = now.astimezone(tz)
    day = dt.date.fromisoformat(date) if date else local_now.date()
    target = dt.datetime.combine(day, at, tzinfo=tz)
    if date is None and target < local_now - dt.timedelta(minutes=1):
        target = dt.datetime.combine(day + dt.timedelta(days=1), at, tzinfo=tz)
    return max(target.astimezone(dt.UTC), now) if date else target.astimezone(dt.UTC)
