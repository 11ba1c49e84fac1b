"""A triggered campaign as marketers give it: what starts it, its steps with their delays, and its goal.

::

    "trigger": {"event": "signup"} | {"event": "purchase", "first": true} | {"tag": "vip"},
    "steps": [{"delay": "PT0S", "message": {...}}, {"delay": "P2D", "message": {...}}],
    "goal": {"event": "purchase", "within_days": 7}

A delay is seconds or an ISO 8601 duration (``P2D``, ``PT12H``, ``P1DT30M``,
``P1W``; months and years are refused, their length varies); the first step's
counts from enrolment, each next one's from the step before.  Every step's
message compiles now (a template that cannot is a 422 naming the step), and
each step goes out as a broadcast message does: consent, quiet hours,
Korean advertising rules and frequency caps apply to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from campaigns.templates import MessageTemplate, TemplateRefused, compile_message

DURATION = re.compile(r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
                      r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$")
UNIT_SECONDS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")
MAX_STEPS = 20
#: A delay longer than this is a mistake rather than a plan.
MAX_DELAY_SECONDS = 366 * 86400


class SequenceError(ValueError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def delay_seconds(value: Any, field: str) -> float:
    """Seconds, from a number of seconds or an ISO 8601 duration."""
    if isinstance(value, bool):
        raise SequenceError("must be seconds or an ISO 8601 duration such as P2D", field)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := DURATION.match(value.strip().upper())) and value.strip().upper() not in ("P", "PT"):
        seconds = sum(float(n) * UNIT_SECONDS[unit] for unit, n in match.groupdict().items() if n)
    else:
        raise SequenceError("must be seconds or an ISO 8601 duration such as P2D or PT12H (no months or years)", field)
    if not 0 <= seconds <= MAX_DELAY_SECONDS:
        raise SequenceError("must be between 0 and 366 days", field)
    return seconds


def check_sequence(body: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], list[MessageTemplate]] | None:
    """(trigger, steps with their delays in seconds, one compiled template per step), or None for a broadcast."""
    if body.get("trigger") is None and body.get("steps") is None:
        return None
    trigger = body.get("trigger")
    if not isinstance(trigger, Mapping) or len([k for k in ("event", "tag") if trigger.get(k) is not None]) != 1:
        raise SequenceError("must be {\"event\": name} or {\"tag\": name}", "trigger")
    kind = "event" if trigger.get("event") is not None else "tag"
    if not isinstance(trigger[kind], str) or not NAME.match(trigger[kind]):
        raise SequenceError("must be a name of letters, digits, _ . : -", f"trigger.{kind}")
    if unknown := set(trigger) - {"event", "tag", "first", "max_age_hours"}:
        raise SequenceError(f"unknown keys {', '.join(sorted(unknown))}", "trigger")
    first = trigger.get("first", False)
    if not isinstance(first, bool) or (first and kind != "event"):
        raise SequenceError("is true or false, and only for an event", "trigger.first")
    max_age = trigger.get("max_age_hours", 24)
    if isinstance(max_age, bool) or not isinstance(max_age, int) or not 1 <= max_age <= 24 * 366:
        raise SequenceError("must be a whole number of hours (1 to a year)", "trigger.max_age_hours")
    steps = body.get("steps")
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
        raise SequenceError(f"must be a list of 1 to {MAX_STEPS} steps, each {{delay, message}}", "steps")
    checked: list[dict[str, Any]] = []
    templates: list[MessageTemplate] = []
    for i, step in enumerate(steps):
        at = f"steps[{i}]"
        if not isinstance(step, Mapping) or not isinstance(step.get("message"), Mapping):
            raise SequenceError("must be {delay, message}", at)
        try:
            templates.append(compile_message(step["message"], f"{at}.message"))
        except TemplateRefused as exc:
            raise SequenceError(str(exc).removeprefix(f"{exc.field}: "), exc.field) from None
        checked.append({"delay": delay_seconds(step.get("delay", 0), f"{at}.delay"), "message": dict(step["message"])})
    if body.get("variants_ab"):
        raise SequenceError("a triggered campaign has steps, not A/B variants", "variants_ab")
    schedule = body.get("schedule")
    if schedule and (not isinstance(schedule, Mapping) or schedule.get("type") != "now"):
        raise SequenceError("a triggered campaign starts from its trigger, not a schedule", "schedule")
    out = {"first": first, "max_age_hours": max_age, kind: trigger[kind]}
    return out, checked, templates
