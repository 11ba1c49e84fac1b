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
import json.encoder
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

#: The outbox columns a campaign row gives, in the table's order: the others (a reply's message and conversation, a
#: claim's lease, a send's result) start empty, and COPY and the INSERT leave them out (NULL: none has a default).
CAMPAIGN_COLUMNS = ["id", "customer_id", "channel", "recipient", "payload", "status", "attempts", "next_attempt_at", "created_at",
                    "campaign_run_id", "campaign_variant"]
if [c.key for c in outbox_t.c if c.key in CAMPAIGN_COLUMNS] != CAMPAIGN_COLUMNS or any(
        outbox_t.c[c.key].default is not None or outbox_t.c[c.key].server_default is not None or not outbox_t.c[c.key].nullable
        for c in outbox_t.c if c.key not in CAMPAIGN_COLUMNS):
    raise RuntimeError("crm_store.campaign_runs.CAMPAIGN_COLUMNS is out of step with the outbox's columns")
#: Duplicates ignored, rows sent as plain tuples with SQLAlchemy's own bind processing but for the payload, which
#: :func:`campaign_row` holds as JSON text already (statements.Executemany).
INSERT_OUTBOX = {name: Executemany(d.insert(outbox_t).on_conflict_do_nothing(), CAMPAIGN_COLUMNS, passthrough=("payload",))
                 for name, d in (("postgresql", postgresql), ("sqlite", sqlite))}
INSERT_SKIPS = {name: Executemany(d.insert(skips_t).on_conflict_do_nothing(), [c.key for c in skips_t.c])
                for name, d in (("postgresql", postgresql), ("sqlite", sqlite))}


def campaign_row(row_id: uuid.UUID, customer_id: uuid.UUID, channel: str, recipient: str, payload_json: str, send_at: dt.datetime,
                 created_at: dt.datetime, run_id: uuid.UUID, variant: str | None) -> tuple[Any, ...]:
    """A recipient's outbox row as :func:`write_chunk` takes it: the values of :data:`CAMPAIGN_COLUMNS`, the payload as
    JSON text (:class:`PayloadEncoder`).  A tuple, not a dict: a broadcast makes a million of them, and COPY and the
    drivers' executemany take tuples."""
    return (row_id, customer_id, channel, recipient, payload_json, "campaign", 0, send_at, created_at, run_id, variant)


class PayloadEncoder:
    """Campaign payloads as JSON text, the common ``{"text", "campaign"}`` without walking the campaign part each time.

    A run's payloads share a few campaign parts (purpose, time zone, quiet hours: one object per time zone and rule,
    kept by the run's plan), and encoding every payload whole with the ``json`` module cost 2-5 µs a member, a fifth
    of a run's Python time on PostgreSQL.  Here a payload of just a text and a campaign part is its text escaped by
    the ``json`` module's own C function beside the campaign part's JSON, encoded once per part object; anything else
    is encoded whole.  A part is recognised by identity (the cache holds it, so its ``id`` cannot be reused) and
    must not change after its first payload is encoded: the plan never changes one."""

    __slots__ = ("_parts",)
    #: Campaign parts remembered at most (a run has one per time zone and rule; more only if a caller makes a new one
    #: per payload, which then costs a whole encoding each).
    LIMIT = 1024

    def __init__(self) -> None:
        self._parts: dict[int, tuple[Any, str]] = {}

    def encode(self, payload: dict[str, Any]) -> str:
        campaign = payload.get("campaign")
        text = payload.get("text")
        if len(payload) != 2 or type(text) is not str or type(campaign) is not dict:
            return _JSON.encode(payload)
        known = self._parts.get(id(campaign))
        if known is None or known[0] is not campaign:
            if len(self._parts) >= self.LIMIT:
                self._parts.clear()
            known = self._parts[id(campaign)] = (campaign, _JSON.encode(campaign))
        return '{"text":' + _ENCODE_STRING(text) + ',"campaign":' + known[1] + "}"


_JSON = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":"))
#: A str as a JSON string, non-ASCII kept: what ``_JSON`` does with one (the C function behind ``ensure_ascii=False``).
_ENCODE_STRING = json.encoder.encode_basestring


def write_chunk(conn: Connection, run_id: uuid.UUID, outbox_rows: list[tuple[Any, ...]], skips: list[dict[str, Any]],
                cursor: uuid.UUID | None) -> None:
    """One chunk's rows (:func:`campaign_row`) and the run's new cursor, in the caller's transaction (a duplicate is
    ignored, never sent).

    On PostgreSQL the rows go in by COPY (measured: INSERT ... ON CONFLICT through SQLAlchemy's executemany
    was a third of a run's time, COPY a tenth of that); a row the unique (run, customer) index already
    holds fails the COPY, which is then undone to its savepoint and the chunk inserted ignoring duplicates."""
    dialect = conn.dialect.name
    conn.execute(update(runs_t).where(runs_t.c.id == run_id).values(cursor=cursor))  # also opens the driver's transaction
    if outbox_rows and not (dialect == "postgresql" and _copy_outbox(conn, outbox_rows)):
        INSERT_OUTBOX[dialect](conn, outbox_rows)
    if skips:
        INSERT_SKIPS[dialect](conn, skips)


def _copy_outbox(conn: Connection, rows: list[tuple[Any, ...]]) -> bool:
    """COPY ``rows`` into the outbox under a savepoint; False (and nothing written) when one is already there."""
    raw = conn.connection.dbapi_connection
    driver = raw.driver_connection if raw is not None else None
    if not isinstance(driver, asyncpg.Connection):
        return False
    savepoint = conn.begin_nested()
    try:
        await_only(driver.copy_records_to_table(outbox_t.name, records=rows, columns=CAMPAIGN_COLUMNS))
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


def skip_row(run_id: uuid.UUID, customer_id: uuid.UUID, reason: str, variant: str | None, detail: str | None) -> dict[str, Any]:
    """A member a run skips, as :func:`write_chunk` takes it (campaign_skips' columns)."""
    return {"run_id": run_id, "customer_id": customer_id, "reason": reason, "variant": variant, "detail": detail}

