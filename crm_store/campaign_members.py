"""A run's members as a run sees them: one row each, with what choosing, checking and personalizing their message needs.

One statement reads a chunk of the segment: each member's fields and tags,
and for each of the campaign's channels (in its order) the recipient where
they are reachable there, the consent that stands there for the campaign's
purpose (and Korea's night-time one), and, for a capped campaign, how many
campaign messages of other runs they got in the window.  The database picks
all of it with index probes per member (:func:`crm_store.consents.standing_sql`
is the consent rule as SQL), so Python gets one plain row per member.

The rows are read as the driver returns them (no SQLAlchemy conversion per
value): measured on a campaign run of 200,000 members, reading identities,
consents and caps as separate queries through SQLAlchemy's rows cost 44 µs a
member, most of a run's time.  The few conversions that remain (ids on SQLite,
JSON, SQLite's booleans) are made here, so a :class:`Member` looks the same
on both databases.
"""

from __future__ import annotations

import datetime as dt
import json
import json.scanner
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Text, and_, bindparam, case, cast, func, or_, select, true, type_coerce
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import NullType

from crm_store.consents import NIGHT, standing_sql
from crm_store.insight_tables import SCORE_COLUMNS, CustomerRecommendation, CustomerScores
from crm_store.models import ChannelIdentity, Customer, CustomerTag, OutboxRow

customers_t = Customer.__table__
tags_t = CustomerTag.__table__
identities_t = ChannelIdentity.__table__
outbox_t = OutboxRow.__table__
scores_t = CustomerScores.__table__
recs_t = CustomerRecommendation.__table__

CUSTOMER_COLUMNS = ("id", "name", "first_name", "last_name", "email", "phone", "locale", "timezone", "lifecycle_stage", "attributes")
_FIELDS = len(CUSTOMER_COLUMNS)
#: Before every customer id (the first chunk's cursor).
FIRST = uuid.UUID(int=0)


@dataclass(slots=True)
class Member:
    """A segment member with what choosing, checking and personalizing their message needs."""

    fields: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    #: the campaign's channels in its order: (channel, recipient if reachable there else None, the consent standing there
    #: for the campaign's purpose, the night-time consent standing there); a standing is True (granted), False
    #: (withdrawn) or None (never given), as :func:`crm_store.consents.standing` says
    reach: list[tuple[str, str | None, bool | None, bool | None]] = field(default_factory=list)
    #: campaign messages of other runs within the frequency window
    recent: int = 0
    #: the last scoring run's scores and recommendations (best first), read only for templates that use them
    scores: dict[str, Any] = field(default_factory=dict)
    recommendations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> uuid.UUID:
        return self.fields["id"]


_SCAN = json.scanner.make_scanner(json.JSONDecoder())


def load_json(text: str) -> Any:
    """``json.loads(text)`` for the JSON the database writes (attributes, tag lists), several times faster.

    ``json.loads`` passes through two Python layers and a regular expression (for whitespace) before its C scanner:
    1.9 µs for a small object, against 0.2 µs for the scanner alone, and a run reads one per member.  Text the scanner
    does not take whole (leading or trailing whitespace, not JSON) goes to ``json.loads``, which answers it as ever."""
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def _raw(column: Any) -> Any:
    """``column`` as the driver returns it: SQLAlchemy's per-value conversion is left out (see the module's docstring)."""
    return type_coerce(column, NullType())


def members_query(dialect: str, condition: ColumnElement[bool], *, channels: Sequence[str], purposes: Sequence[str],
                  run_id: uuid.UUID, cap_since: dt.datetime | None, night_language: str | None = None) -> Any:
    """The statement that reads up to ``size`` members after ``after`` (both bound at execution), one row each.

    ``night_language``: the night-time consent is read only for customers whose locale is in this language
    (``ko``, ``ko-KR``, ``ko_KR``: Korea's rules apply to them alone unless a campaign applies them to everyone);
    None: for everyone.  Built once per run (SQLAlchemy caches its compiled form): ``read_chunk`` runs it per chunk."""
    c = customers_t.c
    postgresql = dialect == "postgresql"
    t = tags_t.c
    tags = (select(func.array_agg(t.tag)) if postgresql else select(func.json_group_array(t.tag))).where(t.customer_id == c.id)
    # the attributes as JSON text on both databases (SQLAlchemy's asyncpg codec would decode them in its own way)
    columns: list[Any] = [_raw(cast(c[name], Text) if name == "attributes" else c[name]) for name in CUSTOMER_COLUMNS]
    columns.append(_raw(tags.scalar_subquery()))
    i = identities_t.c
    for channel in channels:
        columns.append(_raw(select(i.external_id).where(i.customer_id == c.id, i.channel == channel, i.reachable.is_(True))
                            .order_by(i.created_at).limit(1).scalar_subquery()))
        columns.append(_raw(standing_sql(c.id, channel, purposes[0])))
        if NIGHT in purposes:
            night = standing_sql(c.id, channel, NIGHT)
            if night_language is not None:
                locale = func.lower(func.replace(c.locale, "_", "-"))
                night = case((or_(locale == night_language, locale.like(f"{night_language}-%")), night))
            columns.append(_raw(night))
    if cap_since is not None:
        o = outbox_t.c
        columns.append(select(func.count()).where(o.customer_id == c.id, o.campaign_run_id.isnot(None), o.campaign_run_id != run_id,
                                                  o.created_at >= cap_since, o.status.notin_(("skipped", "cancelled")))
                       .scalar_subquery())
    # On PostgreSQL the segment's condition is tested as ``(...) IS TRUE``, which keeps its EXISTS subqueries
    # per customer (an index probe each) on the chunk's range of ids: as plain EXISTS the planner turned them
    # into a merge or hash semi join over the whole identities table for every chunk (measured at 300,000
    # customers: 100-300 ms a chunk, growing with the table, against 20 ms), a run quadratic in its size.
    return (select(*columns)
            .where(condition.is_(true()) if postgresql else condition, c.id > bindparam("after", type_=c.id.type))
            .order_by(c.id).limit(bindparam("size")))


#: PostgreSQL settings of a chunk's read, for its transaction only.  A chunk is read by walking the customers' key
#: in order and probing indexes for each member (the segment's EXISTS and the subqueries above), and that is what the
#: planner must do, with statistics or without (a new database, or autovacuum off):
#: - a small ``work_mem``: with the default, it hashed the whole identities table for the segment's EXISTS, every
#:   chunk (measured at 200,000 customers: 55-65 ms a chunk of 5,000, against 8 ms probing);
#: - no bitmap scans: without statistics it ANDed the customer's index with the (channel, external id) one, reading
#:   every identity on the channel for each member (21 s a chunk at 100,000 customers; 0.1 s with plain probes);
#: - no explicit sort where an index gives the order (the customers' key), and no JIT: the statement's estimated cost
#:   passes JIT's threshold, and compiling it took 30 ms a chunk, more than running it.
CHUNK_SETTINGS = ("SELECT set_config('work_mem', '64kB', true), set_config('enable_bitmapscan', 'off', true), "
                  "set_config('enable_sort', 'off', true), set_config('jit', 'off', true)")


def read_chunk(conn: Connection, query: Any, *, channels: Sequence[str], purposes: Sequence[str], after: uuid.UUID | None,
               size: int, capped: bool, reads: Collection[str] = ()) -> list[Member]:
    """The next ``size`` members of ``query`` (:func:`members_query`) after ``after``, with their scores and
    recommendations when ``reads`` names them (what the campaign's templates use)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(CHUNK_SETTINGS)
    result = conn.execute(query, {"after": after or FIRST, "size": size})
    # the driver's own rows (asyncpg's records, sqlite3's tuples): a SQLAlchemy Row made for each and indexed
    # through it was a fifth of reading a chunk (py-spy, 200,000 members)
    rows = result.cursor.fetchall()
    result.close()
    if not rows:
        return []
    sqlite = conn.dialect.name == "sqlite"
    night = NIGHT in purposes
    per_channel = 3 if night else 2
    loads = load_json
    members: list[Member] = []
    for row in rows:
        customer_id, name, first_name, last_name, email, phone, locale, timezone, stage, attributes, tags = row[:_FIELDS + 1]
        if sqlite:
            customer_id = uuid.UUID(customer_id)
            tags = loads(tags) if tags != "[]" else None
        fields = {"id": customer_id, "name": name, "first_name": first_name, "last_name": last_name, "email": email, "phone": phone,
                  "locale": locale, "timezone": timezone, "lifecycle_stage": stage, "attributes": loads(attributes) if attributes else {}}
        reach = []
        at = _FIELDS + 1
        for channel in channels:
            consent, night_consent = row[at + 1], row[at + 2] if night else None
            reach.append((channel, row[at], None if consent is None else bool(consent),
                          None if night_consent is None else bool(night_consent)))
            at += per_channel
        members.append(Member(fields, list(tags) if tags else [], reach, int(row[at]) if capped else 0))
    if "scores" in reads or "recommendations" in reads:
        _read_insights(conn, members, reads)
    return members


def _read_insights(conn: Connection, members: list[Member], reads: Collection[str]) -> None:
    """Scores and recommendations of the chunk's range of ids (customers in the range outside the chunk are dropped)."""
    by_id = {m.id: m for m in members}
    low, high = members[0].id, members[-1].id
    if "scores" in reads:
        for r in conn.execute(select(scores_t).where(scores_t.c.customer_id.between(low, high))).mappings():
            if (member := by_id.get(r["customer_id"])) is not None:
                member.scores = {k: r[k] for k in SCORE_COLUMNS}
    if "recommendations" in reads:
        for r in conn.execute(select(recs_t.c.customer_id, recs_t.c.sku, recs_t.c.name, recs_t.c.score)
                              .where(recs_t.c.customer_id.between(low, high)).order_by(recs_t.c.customer_id, recs_t.c.rank)):
            if (member := by_id.get(r.customer_id)) is not None:
                member.recommendations.append({"sku": r.sku, "name": r.name or r.sku, "score": r.score})


def read_member(conn: Connection, customer_id: uuid.UUID, *, channels: Sequence[str], purposes: Sequence[str],
                reads: Collection[str] = ()) -> Member | None:
    """One customer as a run would see them (for previews); None if there is no such customer."""
    query = members_query(conn.dialect.name, customers_t.c.id == customer_id, channels=channels, purposes=purposes, run_id=FIRST, cap_since=None)
    members = read_chunk(conn, query, channels=channels, purposes=purposes, after=None, size=1, capped=False, reads=reads)
    return members[0] if members else None


def read_members(conn: Connection, customer_ids: Sequence[uuid.UUID], condition: ColumnElement[bool], *, channels: Sequence[str],
                 purposes: Sequence[str], run_id: uuid.UUID, cap_since: dt.datetime | None,
                 reads: Collection[str] = ()) -> list[Member]:
    """Those of the given customers who meet ``condition`` (a segment's), as a run would see them (a triggered campaign's due step)."""
    if not customer_ids:
        return []
    query = members_query(conn.dialect.name, and_(customers_t.c.id.in_(list(customer_ids)), condition), channels=channels, purposes=purposes,
                          run_id=run_id, cap_since=cap_since)
    return read_chunk(conn, query, channels=channels, purposes=purposes, after=None, size=len(customer_ids),
                      capped=cap_since is not None, reads=reads)
