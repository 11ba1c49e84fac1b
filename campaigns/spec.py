"""A campaign as marketers give it, checked once when it is saved.

Everything that could fail later fails here instead, naming the field: the
templates compile, the channels are names, the schedule builds an
APScheduler trigger, times of day parse, weights are positive.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping
from typing import Any

from campaigns.scheduling import trigger_for
from campaigns.sequence_spec import SequenceError, check_sequence
from campaigns.scheduling import zone as scheduling_zone
from campaigns.templates import MessageTemplate, TemplateRefused, compile_message

CHANNEL = re.compile(r"^[a-z][a-z0-9_\-]{0,31}$")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
SCHEDULE_TYPES = ("now", "at", "cron", "interval", "local_time")
KOREAN_RULES = ("korean_locale", "everyone")
#: Korea's advertising night (article 50): 21:00 to 08:00 needs its own consent.
KOREAN_NIGHT = ("21:00", "08:00")
DEFAULT_MISFIRE_GRACE = 3600


class SpecError(ValueError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def zone(name: Any, field: str) -> zoneinfo.ZoneInfo:
    try:
        return scheduling_zone(name)
    except ValueError as exc:
        raise SpecError(str(exc), field) from None


def _hhmm(value: Any, field: str) -> str:
    if not isinstance(value, str) or not HHMM.match(value):
        raise SpecError("must be a time of day such as 09:00", field)
    return value


def check_schedule(schedule: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The schedule with its defaults, or None for 'when sent'.  Its trigger is built to prove it works."""
    if not schedule:
        return None
    kind = schedule.get("type")
    if kind not in SCHEDULE_TYPES:
        raise SpecError(f"unknown schedule type {kind!r} (known: {', '.join(SCHEDULE_TYPES)})", "schedule.type")
    out = dict(schedule)
    zone(out.setdefault("timezone", "UTC"), "schedule.timezone")
    grace = out.setdefault("misfire_grace_seconds", DEFAULT_MISFIRE_GRACE)
    if isinstance(grace, bool) or not isinstance(grace, int) or grace < 0:
        raise SpecError("must be a whole number of seconds", "schedule.misfire_grace_seconds")
    if kind == "local_time":
        _hhmm(out.get("time"), "schedule.time")
        if out.get("date") is not None:
            try:
                dt.date.fromisoformat(str(out["date"]))
            except ValueError:
                raise SpecError("must be a date such as 2026-12-24", "schedule.date") from None
        return out
    if kind != "now":
        try:
            trigger_for(out)
        except (ValueError, TypeError, KeyError) as exc:
            raise SpecError(str(exc), f"schedule.{ {'at': 'at', 'cron': 'cron', 'interval': 'every_minutes'}[kind] }") from None
    return out


def check_spec(body: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str | None, MessageTemplate]]:
    """The stored spec of a campaign and its compiled templates (one per A/B variant; None: no split).

    A triggered campaign (``trigger`` and ``steps``, :mod:`campaigns.sequence_spec`) needs no ``message``:
    its first step's stands in for it (previews show it)."""
    try:
        sequence = check_sequence(body)
    except SequenceError as exc:
        raise SpecError(str(exc).removeprefix(f"{exc.field}: "), exc.field) from None
    if sequence is not None and not body.get("message"):
        body = {**body, "message": sequence[1][0]["message"]}
    channels = body.get("channels")
    if not isinstance(channels, list) or not channels or not all(isinstance(c, str) and CHANNEL.match(c) for c in channels):
        raise SpecError("must be a non-empty list of channel names, in order of preference", "channels")
    if len(set(channels)) != len(channels):
        raise SpecError("names a channel twice", "channels")
    templates: dict[str | None, MessageTemplate] = {}
    try:
        templates[None] = compile_message(body.get("message") or {}, "message")
    except TemplateRefused as exc:
        raise SpecError(str(exc).removeprefix(f"{exc.field}: "), exc.field) from None
    variants = body.get("variants_ab") or []
    if variants:
        if not isinstance(variants, list) or len(variants) < 2:
            raise SpecError("needs at least two variants, each {name, weight, message?}", "variants_ab")
        for i, variant in enumerate(variants):
            at = f"variants_ab[{i}]"
            if not isinstance(variant, Mapping) or not isinstance(variant.get("name"), str) or not variant["name"]:
                raise SpecError("a variant needs a name", f"{at}.name")
            weight = variant.get("weight", 1)
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
                raise SpecError("must be a positive number", f"{at}.weight")
            try:
                templates[variant["name"]] = compile_message(variant["message"], f"{at}.message") if variant.get("message") \
                    else templates[None]
            except TemplateRefused as exc:
                raise SpecError(str(exc).removeprefix(f"{exc.field}: "), exc.field) from None
        if len({v["name"] for v in variants}) != len(variants):
            raise SpecError("variant names must differ", "variants_ab")
    quiet = body.get("quiet_hours")
    if quiet is not None:
        if not isinstance(quiet, Mapping):
            raise SpecError("must be {start, end} times of day", "quiet_hours")
        quiet = {"start": _hhmm(quiet.get("start"), "quiet_hours.start"), "end": _hhmm(quiet.get("end"), "quiet_hours.end")}
    cap = body.get("frequency_cap")
    if cap is not None:
        if not isinstance(cap, Mapping) or not all(isinstance(cap.get(k), int) and not isinstance(cap.get(k), bool) and cap[k] > 0
                                                   for k in ("max", "days")):
            raise SpecError("must be {max, days}: at most max campaign messages per customer in days", "frequency_cap")
        cap = {"max": cap["max"], "days": cap["days"]}
    goal = body.get("goal") or {}
    if goal and (not isinstance(goal.get("event"), str) or not isinstance(goal.get("within_days", 7), int | float)):
        raise SpecError("must be {event, within_days}", "goal")
    costs = body.get("message_costs") or {}
    if not isinstance(costs, Mapping) or not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
                                                  for v in costs.values()):
        raise SpecError("must map channel names to the cost of one message", "message_costs")
    korean = body.get("korean_rules", "korean_locale")
    if korean not in KOREAN_RULES:
        raise SpecError(f"must be one of {', '.join(KOREAN_RULES)} (the rules are always on for Korean customers)", "korean_rules")
    default_tz = body.get("default_timezone", "UTC")
    zone(default_tz, "default_timezone")
    spec = {"channels": list(channels), "message": dict(body.get("message") or {}), "schedule": check_schedule(body.get("schedule")),
            "quiet_hours": quiet, "frequency_cap": cap, "variants_ab": [dict(v) for v in variants] or None,
            "korean_rules": korean, "sender_name": str(body.get("sender_name") or "")[:60], "default_timezone": default_tz,
            "goal": {"event": goal["event"], "within_days": goal.get("within_days", 7)} if goal else None,
            "message_costs": {str(k): float(v) for k, v in costs.items()}}
    if sequence is not None:
        spec["trigger"], spec["steps"] = sequence[0], sequence[1]
    return spec, templates
