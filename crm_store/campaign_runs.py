"""A run's recipients: write their outbox rows and skips a chunk at a time (crm_store.campaign_members reads them), report.

Materialization walks the segment in customer id order.  Each chunk's
outbox rows, its skips and the run's cursor (the last id done) are written
in one transaction, and both kinds of row are unique per (run, customer):
a process killed mid-run resumes after the last chunk it committed, and no
customer gets two rows, so no one is messaged twice.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy import Interval, and_, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.util import await_only

from crm_store.campaign_tables import CampaignRun, CampaignSkip
from crm_store.models import CustomerEvent, Message, OutboxRow
from crm_store.statements import Executemany

runs_t = CampaignRun.__table__
skips_t = CampaignSkip.__table__
outbox_t = OutboxRow.__table__

OUTBOX_COLUMNS = [c.key for c in outbox_t.c]
#: Duplicates ignored, rows sent as plain tuples with SQLAlchemy's own bind processing (statements.Executemany).
_OUTBOX_VALUES = operator.itemgetter(*OUTBOX_COLUMNS)
_PAYLOAD = OUTBOX_COLUMNS.index("payload")
_JSON = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":"))
INSERT_OUTBOX = {name: Executemany(d.insert(outbox_t).on_conflict_do_nothing(), OUTBOX_COLUMNS)
                 for name, d in (("postgresql", postgresql), ("sqlite", sqlite))}
INSERT_SKIPS = {name: Executemany(d.insert(skips_t).on_conflict_do_nothing(), [c.key for c in skips_t.c])
                for name, d in (("postgresql", postgresql), ("sqlite", sqlite))}


def write_chunk(conn: Connection, run_id: uuid.UUID, outbox_rows: list[dict[str, Any]], skips: list[dict[str, Any]],
                cursor: uuid.UUID) -> None:
    """One chunk's rows and the run's new cursor, in the caller's transaction (a duplicate is ignored, never sent).

    On PostgreSQL the rows go in by COPY (measured: INSERT ... ON CONFLICT through SQLAlchemy's executemany
    was a third of a run's time, COPY a tenth of that); a row the unique (run, customer) index already
    holds fails the COPY, which is then undone to its savepoint and the chunk inserted ignoring duplicates."""
    dialect = conn.dialect.name
    conn.execute(update(runs_t).where(runs_t.c.id == run_id).values(cursor=cursor))  # also opens the driver's transaction
    if outbox_rows and not (dialect == "postgresql" and _copy_outbox(conn, outbox_rows)):
        INSERT_OUTBOX[dialect](conn, outbox_rows)
    if skips:
        INSERT_SKIPS[dialect](conn, skips)


def _copy_outbox(conn: Connection, rows: list[dict[str, Any]]) -> bool:
    """COPY ``rows`` into the outbox under a savepoint; False (and nothing written) when one is already there."""
    raw = conn.connection.dbapi_connection
    driver = raw.driver_connection if raw is not None else None
    if not isinstance(driver, asyncpg.Connection):
        return False
    records = []
    for row in rows:
        values = _OUTBOX_VALUES(row)
        records.append((*values[:_PAYLOAD], _JSON.encode(values[_PAYLOAD]), *values[_PAYLOAD + 1:]))
    savepoint = conn.begin_nested()
    try:
        await_only(driver.copy_records_to_table(outbox_t.name, records=records, columns=OUTBOX_COLUMNS))
    except asyncpg.UniqueViolationError:
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def load_run(conn: Connection, run_id: uuid.UUID) -> dict[str, Any]:
    row = conn.execute(select(runs_t).where(runs_t.c.id == run_id)).one()
    return {"id": row.id, "campaign_id": row.campaign_id, "status": row.status, "cursor": row.cursor, "fire_key": row.fire_key,
            "started_at": row.started_at}


def finish_materializing(conn: Connection, run_id: uuid.UUID, now: dt.datetime) -> None:
    conn.execute(update(runs_t).where(runs_t.c.id == run_id, runs_t.c.status == "materializing")
                 .values(status="sending", materialized_at=now))


# -- the report -----------------------------------------------------------------


def run_ids(conn: Connection, campaign_id: uuid.UUID) -> list[uuid.UUID]:
    return [r.id for r in conn.execute(select(runs_t.c.id).where(runs_t.c.campaign_id == campaign_id))]


def counts(conn: Connection, runs: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    """Per (variant, kind, reason/status, channel): how many; kinds are ``outbox`` and ``skip``."""
    if not runs:
        return []
    out: list[dict[str, Any]] = []
    for r in conn.execute(select(outbox_t.c.campaign_variant, outbox_t.c.status, outbox_t.c.last_error, outbox_t.c.channel, func.count())
                          .where(outbox_t.c.campaign_run_id.in_(list(runs)))
                          .group_by(outbox_t.c.campaign_variant, outbox_t.c.status, outbox_t.c.last_error, outbox_t.c.channel)):
        reason = r.last_error if r.status == "skipped" else None
        out.append({"variant": r[0], "kind": "outbox", "status": r.status, "reason": reason, "channel": r.channel, "n": int(r[4])})
    for r in conn.execute(select(skips_t.c.variant, skips_t.c.reason, func.count()).where(skips_t.c.run_id.in_(list(runs)))
                          .group_by(skips_t.c.variant, skips_t.c.reason)):
        out.append({"variant": r[0], "kind": "skip", "status": "skipped", "reason": r.reason, "channel": None, "n": int(r[2])})
    return out


def outcomes(conn: Connection, runs: Sequence[uuid.UUID], goal_event: str | None, window: dt.timedelta) -> dict[str | None, dict[str, Any]]:
    """Per variant: customers who wrote back, and who reached the goal (and its revenue), within ``window`` of their message."""
    messages_t, events_t = Message.__table__, CustomerEvent.__table__
    result: dict[str | None, dict[str, Any]] = {}
    if not runs:
        return result
    sent = (select(outbox_t.c.customer_id, outbox_t.c.campaign_variant, outbox_t.c.sent_at)
            .where(outbox_t.c.campaign_run_id.in_(list(runs)), outbox_t.c.status == "sent").subquery())
    replied = conn.execute(
        select(sent.c.campaign_variant, func.count(func.distinct(sent.c.customer_id)))
        .where(select(messages_t.c.id).where(and_(messages_t.c.customer_id == sent.c.customer_id, messages_t.c.direction == "in",
                                                  messages_t.c.created_at > sent.c.sent_at)).exists())
        .group_by(sent.c.campaign_variant))
    for variant, n in replied:
        result.setdefault(variant, {})["replied"] = int(n)
    if goal_event:
        # the interval bound as one (left to itself it took the column's timestamp type, which PostgreSQL refused)
        deadline = sent.c.sent_at + literal(window, Interval()) if conn.dialect.name == "postgresql" else None
        conds = [events_t.c.customer_id == sent.c.customer_id, events_t.c.type == goal_event, events_t.c.occurred_at >= sent.c.sent_at]
        if deadline is not None:
            conds.append(events_t.c.occurred_at <= deadline)
        else:
            conds.append(func.julianday(events_t.c.occurred_at) <= func.julianday(sent.c.sent_at) + window.total_seconds() / 86400)
        rows = conn.execute(select(sent.c.campaign_variant, func.count(func.distinct(sent.c.customer_id)),
                                   func.coalesce(func.sum(events_t.c.amount), 0))
                            .join(events_t, and_(*conds)).group_by(sent.c.campaign_variant))
        for variant, n, revenue in rows:
            result.setdefault(variant, {}).update(converted=int(n), revenue=float(revenue))
    return result


def skip_rows(run_id: uuid.UUID, skips: list[tuple[uuid.UUID, str, str | None, str | None]]) -> list[dict[str, Any]]:
    return [{"run_id": run_id, "customer_id": cid, "reason": reason, "variant": variant, "detail": detail}
            for cid, reason, variant, detail in skips]

