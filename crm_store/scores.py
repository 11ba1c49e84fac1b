"""Per-customer summaries aggregated in the database, and the scores written back.

Scoring never loads events: one grouped query per kind of fact (purchase
days, returns, items per purchase, messages, conversations, profile fields)
returns one row per customer, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, text, update
from sqlalchemy.sql import ColumnElement

from crm_store.columns import utcnow
from crm_store.events import chunks
from crm_store.insight_tables import (SCORE_COLUMNS, CatalogueItem, CustomerCluster, CustomerKey, CustomerRecommendation,
                                     CustomerScores)
from crm_store.models import Customer, CustomerTag

customers_t = Customer.__table__
scores_t = CustomerScores.__table__
recommendations_t = CustomerRecommendation.__table__
clusters_t = CustomerCluster.__table__
keys_t = CustomerKey.__table__
tags_t = CustomerTag.__table__
catalogue_t = CatalogueItem.__table__

#: Event types that say something about the customer (informational value)
#: and that bring others to the business (growth value); see docs/insights.md.
INFORMING_EVENTS = ("feedback", "survey_answer", "review", "profile_update")
GROWING_EVENTS = ("referral", "review", "community", "share")


def _day(conn: Connection, column: str) -> str:
    """SQL for the UTC day number (days since 1970-01-01) of a timestamp column."""
    if conn.dialect.name == "postgresql":
        return f"((({column}) AT TIME ZONE 'UTC')::date - DATE '1970-01-01')"
    return f"CAST(julianday(date({column})) - 2440587.5 AS INTEGER)"


def _items_count(conn: Connection) -> str:
    if conn.dialect.name == "postgresql":
        return "COALESCE(jsonb_array_length(CASE WHEN jsonb_typeof(items) = 'array' THEN items END), 0)"
    return "COALESCE(json_array_length(items), 0)"


@dataclass(slots=True)
class PurchaseSummary:
    customer_id: uuid.UUID
    days: int  # distinct purchase days
    purchases: int
    first_day: int
    last_day: int
    revenue: float
    first_day_value: float
    items: int  # lines over all purchases
    returns: int
    returned_value: float  # negative or zero


def purchase_summaries(conn: Connection, as_of: dt.datetime) -> list[PurchaseSummary]:
    """One row per customer with a purchase up to ``as_of``: the facts RFM and BG/NBD need."""
    day = _day(conn, "occurred_at")
    bound = as_of if conn.dialect.name == "postgresql" else as_of.astimezone(dt.UTC).replace(tzinfo=None)
    sql = text(f"""
        WITH daily AS (
            SELECT customer_id, {day} AS day, SUM(COALESCE(amount, 0)) AS value, COUNT(*) AS n,
                   SUM({_items_count(conn)}) AS lines
            FROM customer_events WHERE type = 'purchase' AND occurred_at <= :as_of
            GROUP BY customer_id, {day}
        ), per AS (
            SELECT customer_id, COUNT(*) AS days, SUM(n) AS purchases, MIN(day) AS first_day, MAX(day) AS last_day,
                   SUM(value) AS revenue, SUM(lines) AS lines
            FROM daily GROUP BY customer_id
        ), returned AS (
            SELECT customer_id, COUNT(*) AS n, SUM(COALESCE(amount, 0)) AS value
            FROM customer_events WHERE type = 'return' AND occurred_at <= :as_of GROUP BY customer_id
        )
        SELECT per.customer_id, per.days, per.purchases, per.first_day, per.last_day, per.revenue, d.value, per.lines,
               COALESCE(returned.n, 0), COALESCE(returned.value, 0)
        FROM per JOIN daily d ON d.customer_id = per.customer_id AND d.day = per.first_day
        LEFT JOIN returned ON returned.customer_id = per.customer_id
    """)
    out = []
    for row in conn.execute(sql, {"as_of": bound}):
        cid = row[0] if isinstance(row[0], uuid.UUID) else uuid.UUID(str(row[0]))
        out.append(PurchaseSummary(cid, int(row[1]), int(row[2]), int(row[3]), int(row[4]), float(row[5] or 0), float(row[6] or 0),
                                   int(row[7] or 0), int(row[8]), -abs(float(row[9] or 0))))
    return out


@dataclass(slots=True)
class Engagement:
    """What every customer (buyer or not) shows besides purchases."""

    customer_id: uuid.UUID
    profile_fields: int  # of name, email, phone, locale, timezone
    messages: int  # inbound messages ever
    recent_messages: int  # inbound in the last 30 days
    channels: int  # distinct channels written on
    conversations: int
    recent_events: int  # non-purchase events in the last 30 days
    informing: int  # feedback, answers, reviews ...
    growing: int  # referrals, reviews, community ...


def engagement(conn: Connection, as_of: dt.datetime) -> list[Engagement]:
    since = as_of - dt.timedelta(days=30)
    if conn.dialect.name != "postgresql":
        since = since.astimezone(dt.UTC).replace(tzinfo=None)
    informing = ", ".join(f"'{t}'" for t in INFORMING_EVENTS)
    growing = ", ".join(f"'{t}'" for t in GROWING_EVENTS)
    sql = text(f"""
        WITH m AS (
            SELECT customer_id, COUNT(*) AS n, SUM(CASE WHEN created_at >= :since THEN 1 ELSE 0 END) AS recent,
                   COUNT(DISTINCT channel) AS channels
            FROM messages WHERE direction = 'in' GROUP BY customer_id
        ), c AS (
            SELECT customer_id, COUNT(*) AS n FROM conversations GROUP BY customer_id
        ), e AS (
            SELECT customer_id,
                   SUM(CASE WHEN type NOT IN ('purchase', 'return') AND occurred_at >= :since THEN 1 ELSE 0 END) AS recent,
                   SUM(CASE WHEN type IN ({informing}) THEN 1 ELSE 0 END) AS informing,
                   SUM(CASE WHEN type IN ({growing}) THEN 1 ELSE 0 END) AS growing
            FROM customer_events GROUP BY customer_id
        )
        SELECT cu.id,
               (CASE WHEN cu.name IS NOT NULL OR cu.first_name IS NOT NULL THEN 1 ELSE 0 END)
               + (CASE WHEN cu.email IS NOT NULL THEN 1 ELSE 0 END) + (CASE WHEN cu.phone IS NOT NULL THEN 1 ELSE 0 END)
               + (CASE WHEN cu.locale IS NOT NULL THEN 1 ELSE 0 END) + (CASE WHEN cu.timezone IS NOT NULL THEN 1 ELSE 0 END),
               COALESCE(m.n, 0), COALESCE(m.recent, 0), COALESCE(m.channels, 0), COALESCE(c.n, 0),
               COALESCE(e.recent, 0), COALESCE(e.informing, 0), COALESCE(e.growing, 0)
        FROM customers cu LEFT JOIN m ON m.customer_id = cu.id LEFT JOIN c ON c.customer_id = cu.id
        LEFT JOIN e ON e.customer_id = cu.id
    """)
    out = []
    for row in conn.execute(sql, {"since": since}):
        cid = row[0] if isinstance(row[0], uuid.UUID) else uuid.UUID(str(row[0]))
        out.append(Engagement(cid, *(int(v or 0) for v in row[1:])))
    return out


def purchased_items(conn: Connection) -> list[tuple[Any, str]]:
    """Distinct (customer, sku) pairs over every purchase, unnested in the database; fee lines left out."""
    if conn.dialect.name == "postgresql":
        sql = text("""SELECT DISTINCT e.customer_id, i.value ->> 'sku' FROM customer_events e,
                      jsonb_array_elements(CASE WHEN jsonb_typeof(e.items) = 'array' THEN e.items ELSE '[]'::jsonb END) AS i(value)
                      WHERE e.type = 'purchase' AND (i.value ->> 'fee') IS DISTINCT FROM 'true'""")
    else:
        sql = text("""SELECT DISTINCT e.customer_id, json_extract(i.value, '$.sku') FROM customer_events e, json_each(e.items) AS i
                      WHERE e.type = 'purchase' AND e.items IS NOT NULL AND COALESCE(json_extract(i.value, '$.fee'), 0) != 1""")
    # ids stay as the driver gives them (SQLite: hex text): turning 270,000 of them into
    # UUIDs took longer than the model; as_uuid() converts the few that are written back
    return [(cid, str(sku)) for cid, sku in conn.execute(sql) if sku is not None]


def as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def item_names(conn: Connection, skus: Sequence[str]) -> dict[str, str]:
    """A name for each SKU, from the catalogue the imports fill."""
    names: dict[str, str] = {}
    for part in chunks(sorted(set(skus))):
        names.update({sku: name for sku, name in conn.execute(
            select(catalogue_t.c.sku, catalogue_t.c.name).where(catalogue_t.c.sku.in_(part))) if name})
    return names


def replace_scores(conn: Connection, rows: Sequence[dict[str, Any]], clusters: Sequence[dict[str, Any]]) -> None:
    """All scores of one run replace the last run's, in the caller's transaction."""
    now = utcnow()
    conn.execute(delete(scores_t))
    for part in chunks(list(rows)):
        conn.execute(insert(scores_t), [{**{c: r.get(c) for c in SCORE_COLUMNS}, "customer_id": r["customer_id"], "updated_at": now}
                                        for r in part])
    conn.execute(delete(clusters_t))
    if clusters:
        conn.execute(insert(clusters_t), [{**c, "updated_at": now} for c in clusters])


def set_stages(conn: Connection, customer_ids: Sequence[uuid.UUID], stage: str, from_stages: Sequence[str]) -> None:
    now = utcnow()
    for part in chunks(list(customer_ids)):
        conn.execute(update(customers_t).where(customers_t.c.id.in_(part), customers_t.c.lifecycle_stage.in_(from_stages))
                     .values(lifecycle_stage=stage, updated_at=now))


def replace_recommendations(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    conn.execute(delete(recommendations_t))
    for part in chunks(list(rows)):
        conn.execute(insert(recommendations_t), list(part))


def customer_insights(conn: Connection, customer_id: uuid.UUID) -> dict[str, Any]:
    """A customer's scores (empty before the first run) and recommendations, for the API, console and templates."""
    row = conn.execute(select(scores_t).where(scores_t.c.customer_id == customer_id)).mappings().first()
    scores = {k: v for k, v in dict(row).items() if k != "customer_id"} if row else {}
    if row and row["cluster"] is not None:
        cluster = conn.execute(select(clusters_t.c.name, clusters_t.c.description).where(clusters_t.c.id == row["cluster"])).first()
        if cluster is not None:
            scores["cluster_name"], scores["cluster_description"] = cluster
    recommendations = [dict(r) for r in conn.execute(
        select(recommendations_t.c.sku, recommendations_t.c.name, recommendations_t.c.score)
        .where(recommendations_t.c.customer_id == customer_id).order_by(recommendations_t.c.rank)).mappings()]
    return {"scores": scores, "recommendations": recommendations}


EXPORT_FIELDS = ("id", "external_id", "name", "first_name", "last_name", "email", "phone", "locale", "timezone",
                 "lifecycle_stage", "created_at")


def export_customers(conn: Connection, batch: int = 2000, members: ColumnElement[bool] | None = None) -> Iterator[dict[str, Any]]:
    """Every customer (or those meeting ``members``, a segment's condition on ``customers``) with profile, tags,
    attributes and scores, in id order, a page at a time."""
    last: uuid.UUID | None = None
    while True:
        stmt = (select(customers_t, keys_t.c.external_id, *[scores_t.c[c] for c in SCORE_COLUMNS])
                .outerjoin(keys_t, keys_t.c.customer_id == customers_t.c.id)
                .outerjoin(scores_t, scores_t.c.customer_id == customers_t.c.id).order_by(customers_t.c.id).limit(batch))
        if members is not None:
            stmt = stmt.where(members)
        if last is not None:
            stmt = stmt.where(customers_t.c.id > last)
        rows = conn.execute(stmt).mappings().all()
        if not rows:
            return
        ids = [r["id"] for r in rows]
        tags: dict[uuid.UUID, list[str]] = {}
        for cid, tag in conn.execute(select(tags_t.c.customer_id, tags_t.c.tag).where(tags_t.c.customer_id.in_(ids)).order_by(tags_t.c.tag)):
            tags.setdefault(cid, []).append(tag)
        for r in rows:
            if r["id"] == last:
                continue  # a second external key of the same customer
            yield {**{f: r[f] for f in EXPORT_FIELDS}, "tags": ";".join(tags.get(r["id"], [])), "attributes": r["attributes"],
                   **{c: r[c] for c in SCORE_COLUMNS}}
            last = r["id"]


def score_counts(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(scores_t)).scalar_one())
