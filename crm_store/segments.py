"""Segments: a JSON rule compiled to one SQL condition on ``customers``, or a static list.

The grammar (composable)::

    {"all": [RULE, ...]}  {"any": [RULE, ...]}  {"not": RULE}
    {"tag": "vip"}        {"channel": "<name>"}          (reachable there)
    {"field": F, "op": OP, "value": V}
        F:  timezone | locale | lifecycle_stage | email | last_seen_at | created_at
            | attributes.<key> | scores.<name>
        OP: eq ne lt lte gt gte in contains exists within_days before_days
    {"event": "purchase", "min_count": 2, "within_days": 90, "min_total": 100}
    {"no_event": "purchase", "within_days": 60}

Nothing is evaluated in Python: members are selected, counted and sampled
by the database.  A rule naming an unknown field or operator raises
``RuleError`` with the path of the offending part.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import operator
import re
import uuid
from typing import Any

from sqlalchemy import String, and_, delete, exists, func, insert, not_, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, Select

from crm_store.campaign_tables import Segment, SegmentMember
from crm_store.columns import new_id, utcnow
from crm_store.database import Database
from crm_store.errors import NotFound
from crm_store.insight_tables import SCORE_COLUMNS, CustomerScores
from crm_store.models import ChannelIdentity, Customer, CustomerEvent, CustomerTag

customers_t = Customer.__table__
tags_t = CustomerTag.__table__
identities_t = ChannelIdentity.__table__
events_t = CustomerEvent.__table__
segments_t = Segment.__table__
members_t = SegmentMember.__table__
scores_t = CustomerScores.__table__

PLAIN_FIELDS = ("timezone", "locale", "lifecycle_stage", "email")
TIME_FIELDS = ("last_seen_at", "created_at")
OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "exists", "within_days", "before_days")
KEY = re.compile(r"^[\w\-]{1,64}$", re.UNICODE)
MAX_DEPTH = 16
#: Bounds of ``within_days``/``before_days`` (a century: further back than year 1 fails date arithmetic) and ``min_count``
#: (a count the databases' integers hold).
MAX_DAYS = 36_500
MAX_COUNT = 1_000_000_000
SAMPLE_SIZE = 10


class RuleError(ValueError):
    """A rule that cannot be compiled; ``path`` names the part (``rule.all[1].op``)."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def compile_rule(rule: Any, now: dt.datetime | None = None) -> ColumnElement[bool]:
    """A condition on ``customers`` (correlated subqueries for tags, channels and events)."""
    return _compile(rule, "rule", now or utcnow(), 0)


def _compile(rule: Any, path: str, now: dt.datetime, depth: int) -> ColumnElement[bool]:
    if depth > MAX_DEPTH:
        raise RuleError(f"nested deeper than {MAX_DEPTH}", path)
    if not isinstance(rule, dict) or not rule:
        raise RuleError("a rule must be a JSON object such as {\"tag\": \"vip\"}", path)
    if "all" in rule or "any" in rule:
        key = "all" if "all" in rule else "any"
        _only(rule, {key}, path)
        parts = rule[key]
        if not isinstance(parts, list) or not parts:
            raise RuleError(f"{key} takes a non-empty list of rules", f"{path}.{key}")
        compiled = [_compile(part, f"{path}.{key}[{i}]", now, depth + 1) for i, part in enumerate(parts)]
        return and_(*compiled) if key == "all" else or_(*compiled)
    if "not" in rule:
        _only(rule, {"not"}, path)
        return not_(_compile(rule["not"], f"{path}.not", now, depth + 1))
    if "tag" in rule:
        _only(rule, {"tag"}, path)
        tag = _text(rule["tag"], f"{path}.tag")
        return exists().where(tags_t.c.customer_id == customers_t.c.id, tags_t.c.tag == tag)
    if "channel" in rule:
        _only(rule, {"channel"}, path)
        channel = _text(rule["channel"], f"{path}.channel")
        return exists().where(identities_t.c.customer_id == customers_t.c.id, identities_t.c.channel == channel,
                              identities_t.c.reachable.is_(True))
    if "field" in rule:
        _only(rule, {"field", "op", "value"}, path)
        return _field(rule, path, now)
    if "event" in rule:
        _only(rule, {"event", "min_count", "within_days", "min_total"}, path)
        return _event(rule, path, now)
    if "no_event" in rule:
        _only(rule, {"no_event", "within_days"}, path)
        kind = _text(rule["no_event"], f"{path}.no_event")
        conds = [events_t.c.customer_id == customers_t.c.id, events_t.c.type == kind]
        if "within_days" in rule:
            conds.append(events_t.c.occurred_at >= now - dt.timedelta(days=_days(rule["within_days"], f"{path}.within_days")))
        return not_(exists().where(*conds))
    raise RuleError(f"unknown rule {', '.join(sorted(map(str, rule)))} (known: all, any, not, tag, channel, field, event, no_event)",
                    f"{path}.{next(iter(rule))}")


def _only(rule: dict[str, Any], allowed: set[str], path: str) -> None:
    extra = set(rule) - allowed
    if extra:
        name = sorted(map(str, extra))[0]
        raise RuleError(f"unknown key {name} here (allowed: {', '.join(sorted(allowed))})", f"{path}.{name}")


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 255:
        raise RuleError("must be a non-empty string of at most 255 characters", path)
    return value


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise RuleError("must be a number of at least 0", path)
    return float(value)


def _days(value: Any, path: str) -> float:
    days = _number(value, path)
    if days > MAX_DAYS:
        raise RuleError(f"must be at most {MAX_DAYS} days", path)
    return days


def _event(rule: dict[str, Any], path: str, now: dt.datetime) -> ColumnElement[bool]:
    kind = _text(rule["event"], f"{path}.event")
    conds = [events_t.c.type == kind]
    if "within_days" in rule:
        conds.append(events_t.c.occurred_at >= now - dt.timedelta(days=_days(rule["within_days"], f"{path}.within_days")))
    min_count = int(_number(rule.get("min_count", 1), f"{path}.min_count"))
    if min_count > MAX_COUNT:
        raise RuleError(f"must be at most {MAX_COUNT}", f"{path}.min_count")
    having = [func.count() >= max(min_count, 1)]
    if "min_total" in rule:
        having.append(func.coalesce(func.sum(events_t.c.amount), 0) >= _number(rule["min_total"], f"{path}.min_total"))
    matching = select(events_t.c.customer_id).where(*conds).group_by(events_t.c.customer_id).having(and_(*having))
    return customers_t.c.id.in_(matching)


def _score(name: str, path: str) -> tuple[ColumnElement[Any], bool]:
    """``scores.<name>``: the customer's column of ``customer_scores`` (NULL before the first scoring run or for
    a score the customer has none of) as a correlated scalar subquery; numeric unless it is a text column."""
    if name not in SCORE_COLUMNS:
        raise RuleError(f"unknown field scores.{name} (known scores: {', '.join(SCORE_COLUMNS)})", path)
    column = scores_t.c[name]
    value = select(column).where(scores_t.c.customer_id == customers_t.c.id).correlate_except(scores_t).scalar_subquery()
    return value, not isinstance(column.type, String)


def _field(rule: dict[str, Any], path: str, now: dt.datetime) -> ColumnElement[bool]:
    name = rule["field"]
    op = rule.get("op")
    if not isinstance(name, str):
        raise RuleError("must be a field name", f"{path}.field")
    if op not in OPS:
        raise RuleError(f"unknown operator {op!r} (known: {', '.join(OPS)})", f"{path}.op")
    value = rule.get("value")
    vpath = f"{path}.value"
    if name.startswith("attributes."):
        key = name.removeprefix("attributes.")
        if not KEY.match(key):
            raise RuleError("attribute keys are 1-64 letters, digits, - or _", f"{path}.field")
        return _json_compare(customers_t.c.attributes[key], op, value, vpath, now)
    if name.startswith("scores."):
        column, numeric = _score(name.removeprefix("scores."), f"{path}.field")
        return _compare(column, op, value, vpath, now, numeric=numeric)
    if name in TIME_FIELDS:
        return _compare(customers_t.c[name], op, value, vpath, now, time=True)
    if name in PLAIN_FIELDS:
        return _compare(customers_t.c[name], op, value, vpath, now, text=True)
    raise RuleError(f"unknown field {name} (known: {', '.join(PLAIN_FIELDS + TIME_FIELDS)}, attributes.<key>, scores.<name>)",
                    f"{path}.field")


def _json_compare(element: Any, op: str, value: Any, path: str, now: dt.datetime) -> ColumnElement[bool]:
    """Attributes are typed by the value compared with: numbers as numbers, true/false as booleans, else text."""
    if op == "exists":
        present = element.as_string().isnot(None) | element.as_float().isnot(None)
        return present if value in (None, True) else not_(present)
    sample = value[0] if op == "in" and isinstance(value, list) and value else value
    if isinstance(sample, bool):
        return _compare(element.as_boolean(), op, value, path, now)
    if isinstance(sample, int | float):
        return _compare(element.as_float(), op, value, path, now, numeric=True)
    return _compare(element.as_string(), op, value, path, now)


def _compare(column: Any, op: str, value: Any, path: str, now: dt.datetime, *, time: bool = False,
             numeric: bool = False, text: bool = False) -> ColumnElement[bool]:
    """``text``: a text column, compared with text only (PostgreSQL refuses a number or true against it)."""
    if op == "exists":
        if value not in (None, True, False):
            raise RuleError("exists takes true or false", path)
        return column.isnot(None) if value in (None, True) else column.is_(None)
    if op in ("within_days", "before_days"):
        if not time:
            raise RuleError(f"{op} applies to last_seen_at and created_at only", path.removesuffix(".value") + ".op")
        cutoff = now - dt.timedelta(days=_days(value, path))
        return column >= cutoff if op == "within_days" else column < cutoff
    if op == "in":
        if not isinstance(value, list) or not value or len(value) > 1000:
            raise RuleError("in takes a list of 1 to 1000 values", path)
        return column.in_([_scalar(v, path, time, numeric, text) for v in value])
    if op == "contains":
        if time or numeric:
            raise RuleError("contains applies to text only", path.removesuffix(".value") + ".op")
        text = _text(value, path).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return func.lower(column).like(f"%{text.lower()}%", escape="\\")
    scalar = _scalar(value, path, time, numeric, text)
    if op == "eq":
        return column == scalar
    if op == "ne":
        return or_(column != scalar, column.is_(None))
    if isinstance(scalar, bool):
        raise RuleError("true and false compare with eq or ne only", path.removesuffix(".value") + ".op")
    return {"lt": operator.lt, "lte": operator.le, "gt": operator.gt, "gte": operator.ge}[op](column, scalar)


def _scalar(value: Any, path: str, time: bool, numeric: bool, text: bool = False) -> Any:
    if time:
        if not isinstance(value, str):
            raise RuleError("must be an ISO 8601 date or time", path)
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise RuleError("must be an ISO 8601 date or time", path) from None
        if not parsed.tzinfo:
            return parsed.replace(tzinfo=dt.UTC)
        try:
            return parsed.astimezone(dt.UTC)
        except OverflowError:  # an offset past year 1 or 9999: that edge
            return (dt.datetime.min if parsed.year == 1 else dt.datetime.max).replace(tzinfo=dt.UTC)
    if numeric:
        return _number(value, path) if not (isinstance(value, int | float) and value < 0) else float(value)
    if text and not isinstance(value, str):
        raise RuleError("must be a string", path)
    if isinstance(value, bool | int | float | str) and not (isinstance(value, str) and len(value) > 1000):
        return value
    raise RuleError("must be a string, number or boolean", path)


# -- stored segments ------------------------------------------------------------


def members(segment: dict[str, Any], now: dt.datetime | None = None) -> Select[Any]:
    """A SELECT of member customer ids (a subquery for counting, sampling or materializing)."""
    if segment["kind"] == "static":
        return select(members_t.c.customer_id.label("id")).where(members_t.c.segment_id == uuid.UUID(segment["id"]))
    return select(customers_t.c.id).where(compile_rule(segment["rule"], now))


def members_condition(segment: dict[str, Any], now: dt.datetime | None = None) -> ColumnElement[bool]:
    """The segment as a condition on ``customers`` (what materialization joins its chunks with)."""
    if segment["kind"] == "static":
        return customers_t.c.id.in_(members(segment))
    return compile_rule(segment["rule"], now)


async def create_rule_segment(db: Database, name: str, rule: Any) -> dict[str, Any]:
    compile_rule(rule)  # refuse before writing
    segment = {"id": str(new_id()), "name": name, "kind": "rule", "rule": rule}
    async with db.write() as conn:
        await conn.execute(insert(segments_t).values(id=uuid.UUID(segment["id"]), name=name, kind="rule", rule=rule, created_at=utcnow()))
    return segment


def parse_member_csv(text: str) -> tuple[list[uuid.UUID], list[str]]:
    """Ids and e-mails from a CSV (first column; a header line is allowed)."""
    ids: list[uuid.UUID] = []
    emails: list[str] = []
    for row in csv.reader(io.StringIO(text)):
        if not row or not row[0].strip():
            continue
        cell = row[0].strip()
        try:
            ids.append(uuid.UUID(cell))
        except ValueError:
            if "@" in cell:
                emails.append(cell.lower())
            elif ids or emails:
                raise ValueError(f"{cell!r} is neither a customer id nor an e-mail address") from None
    return ids, emails


async def create_static_segment(db: Database, name: str, csv_text: str) -> dict[str, Any]:
    """Members from a CSV of customer ids or e-mails; what matched nobody is returned as ``unmatched``."""
    ids, emails = parse_member_csv(csv_text)
    segment_id = new_id()

    def write(conn: Connection) -> list[str]:
        found: set[uuid.UUID] = set()
        unmatched: list[str] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            got = {r.id for r in conn.execute(select(customers_t.c.id).where(customers_t.c.id.in_(chunk)))}
            unmatched += [str(i) for i in chunk if i not in got]
            found |= got
        for start in range(0, len(emails), 500):
            chunk = emails[start:start + 500]
            got = {r.email: r.id for r in conn.execute(select(customers_t.c.id, customers_t.c.email).where(customers_t.c.email.in_(chunk)))}
            unmatched += [e for e in chunk if e not in got]
            found |= set(got.values())
        conn.execute(insert(segments_t).values(id=segment_id, name=name, kind="static", rule=None, created_at=utcnow()))
        if found:
            conn.execute(insert(members_t), [{"segment_id": segment_id, "customer_id": c} for c in sorted(found)])
        return unmatched

    unmatched = await db.run_in_transaction(write)
    return {"id": str(segment_id), "name": name, "kind": "static", "rule": None, "unmatched": unmatched[:100],
            "unmatched_count": len(unmatched)}


async def get_segment(db: Database, segment_id: uuid.UUID) -> dict[str, Any]:
    async with db.read() as conn:
        row = (await conn.execute(select(segments_t).where(segments_t.c.id == segment_id))).first()
    if row is None:
        raise NotFound(f"segment {segment_id} does not exist", "segment_id")
    return {"id": str(row.id), "name": row.name, "kind": row.kind, "rule": row.rule, "created_at": row.created_at.isoformat()}


async def list_segments(db: Database) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = (await conn.execute(select(segments_t).order_by(segments_t.c.created_at.desc()).limit(500))).all()
    return [{"id": str(r.id), "name": r.name, "kind": r.kind, "rule": r.rule, "created_at": r.created_at.isoformat()} for r in rows]


async def delete_segment(db: Database, segment_id: uuid.UUID) -> None:
    async with db.write() as conn:
        await conn.execute(delete(segments_t).where(segments_t.c.id == segment_id))


async def count_and_sample(db: Database, segment: dict[str, Any], sample: int = SAMPLE_SIZE) -> dict[str, Any]:
    """How many customers the segment holds now, and the first few of them."""
    condition = members_condition(segment)
    async with db.read() as conn:
        total = (await conn.execute(select(func.count()).select_from(customers_t).where(condition))).scalar_one()
        rows = (await conn.execute(
            select(customers_t.c.id, customers_t.c.name, customers_t.c.email, customers_t.c.locale, customers_t.c.timezone,
                   customers_t.c.lifecycle_stage).where(condition).order_by(customers_t.c.id).limit(sample))).all()
    return {"count": int(total), "sample": [{"id": str(r.id), "name": r.name, "email": r.email, "locale": r.locale,
                                             "timezone": r.timezone, "lifecycle_stage": r.lifecycle_stage} for r in rows]}


async def count_rule(db: Database, rule: Any) -> int:
    """A rule's live count without saving it (the console's segment builder asks as the marketer types)."""
    condition = compile_rule(rule)
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(customers_t).where(condition))).scalar_one())


__all__ = ["RuleError", "NotFound", "compile_rule", "members", "members_condition", "count_and_sample", "count_rule",
           "create_rule_segment", "create_static_segment", "get_segment", "list_segments"]
