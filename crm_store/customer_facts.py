"""Per-customer facts for scoring, aggregated in the database in one statement, returned as columns.

Scoring never loads events.  Purchases and returns are summarized in one
pass over ``customer_events`` in (customer, time) index order: a window
finds each customer's first purchase day and one streaming group per
customer counts days, purchases, revenue, the first day's value, lines and
returns, so nothing is hashed or spilled however many events there are
(1,000,000 customers with 20,000,000 purchases on PostgreSQL).  Messages,
conversations, other events and profile fields are joined to every
customer, buyer or not.  Rows come back a page at a time and each page is
turned into numpy columns at once (8 bytes a value), never kept as one
Python object per customer and fact.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

#: Event types that say something about the customer (informational value)
#: and that bring others to the business (growth value); see docs/insights.md.
INFORMING_EVENTS = ("feedback", "survey_answer", "review", "profile_update")
GROWING_EVENTS = ("referral", "review", "community", "share")
#: Engagement facts of every customer, then purchase facts (NaN for a customer without a purchase).
ENGAGEMENT = ("profile_fields", "messages", "recent_messages", "channels", "conversations", "recent_events", "informing", "growing")
PURCHASES = ("days", "purchases", "first_day", "last_day", "revenue", "first_day_value", "lines", "returns", "returned_value")
PAGE = 20_000


@dataclass(slots=True)
class CustomerFacts:
    """One entry per customer in every column (float64; NaN where a non-buyer has no purchase fact);
    ``ids`` as the driver returns them, so they are written back without conversion."""

    ids: list[Any]
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.ids)


def _day(conn: Connection, column: str) -> str:
    """SQL for the UTC day number (days since 1970-01-01) of a timestamp column."""
    if conn.dialect.name == "postgresql":
        return f"((({column}) AT TIME ZONE 'UTC')::date - DATE '1970-01-01')"
    return f"CAST(julianday(date({column})) - 2440587.5 AS INTEGER)"


def _items_count(conn: Connection) -> str:
    if conn.dialect.name == "postgresql":
        return "COALESCE(jsonb_array_length(CASE WHEN jsonb_typeof(items) = 'array' THEN items END), 0)"
    return "COALESCE(json_array_length(items), 0)"


def _bound(conn: Connection, moment: dt.datetime) -> Any:
    return moment if conn.dialect.name == "postgresql" else moment.astimezone(dt.UTC).replace(tzinfo=None)


def customer_facts(conn: Connection, as_of: dt.datetime) -> CustomerFacts:
    """Every customer's facts up to ``as_of`` (purchases and returns) and in the 30 days before it (engagement)."""
    informing = ", ".join(f"'{t}'" for t in INFORMING_EVENTS)
    growing = ", ".join(f"'{t}'" for t in GROWING_EVENTS)
    purchase = "type = 'purchase'"
    sql = text(f"""
        WITH ev AS (
            SELECT customer_id, type, {_day(conn, "occurred_at")} AS day, COALESCE(amount, 0) AS value, {_items_count(conn)} AS lines
            FROM customer_events WHERE type IN ('purchase', 'return') AND occurred_at <= :as_of
        ), firsts AS (
            SELECT ev.*, MIN(CASE WHEN {purchase} THEN day END) OVER (PARTITION BY customer_id) AS first_day FROM ev
        ), p AS (
            SELECT customer_id, COUNT(DISTINCT day) FILTER (WHERE {purchase}) AS days, COUNT(*) FILTER (WHERE {purchase}) AS purchases,
                   MIN(first_day) AS first_day, MAX(day) FILTER (WHERE {purchase}) AS last_day,
                   SUM(value) FILTER (WHERE {purchase}) AS revenue, SUM(value) FILTER (WHERE {purchase} AND day = first_day) AS first_value,
                   SUM(lines) FILTER (WHERE {purchase}) AS lines, COUNT(*) FILTER (WHERE type = 'return') AS returns,
                   SUM(value) FILTER (WHERE type = 'return') AS returned
            FROM firsts GROUP BY customer_id HAVING COUNT(*) FILTER (WHERE {purchase}) > 0
        ), m AS (
            SELECT customer_id, COUNT(*) AS n, SUM(CASE WHEN created_at >= :since THEN 1 ELSE 0 END) AS recent,
                   COUNT(DISTINCT channel) AS channels
            FROM messages WHERE direction = 'in' GROUP BY customer_id
        ), c AS (
            SELECT customer_id, COUNT(*) AS n FROM conversations GROUP BY customer_id
        ), e AS (
            SELECT customer_id, SUM(CASE WHEN occurred_at >= :since THEN 1 ELSE 0 END) AS recent,
                   SUM(CASE WHEN type IN ({informing}) THEN 1 ELSE 0 END) AS informing,
                   SUM(CASE WHEN type IN ({growing}) THEN 1 ELSE 0 END) AS growing
            FROM customer_events WHERE type NOT IN ('purchase', 'return') GROUP BY customer_id
        )
        SELECT cu.id,
               (CASE WHEN cu.name IS NOT NULL OR cu.first_name IS NOT NULL THEN 1 ELSE 0 END)
               + (CASE WHEN cu.email IS NOT NULL THEN 1 ELSE 0 END) + (CASE WHEN cu.phone IS NOT NULL THEN 1 ELSE 0 END)
               + (CASE WHEN cu.locale IS NOT NULL THEN 1 ELSE 0 END) + (CASE WHEN cu.timezone IS NOT NULL THEN 1 ELSE 0 END),
               COALESCE(m.n, 0), COALESCE(m.recent, 0), COALESCE(m.channels, 0), COALESCE(c.n, 0),
               COALESCE(e.recent, 0), COALESCE(e.informing, 0), COALESCE(e.growing, 0),
               p.days, p.purchases, p.first_day, p.last_day, p.revenue, p.first_value, p.lines, p.returns, -ABS(COALESCE(p.returned, 0))
        FROM customers cu LEFT JOIN p ON p.customer_id = cu.id LEFT JOIN m ON m.customer_id = cu.id
        LEFT JOIN c ON c.customer_id = cu.id LEFT JOIN e ON e.customer_id = cu.id
    """)
    names = ENGAGEMENT + PURCHASES
    ids: list[Any] = []
    pages: list[list[np.ndarray]] = [[] for _ in names]
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")  # the joins of a million customers stay in memory
    result = conn.execution_options(stream_results=True).execute(
        sql, {"as_of": _bound(conn, as_of), "since": _bound(conn, as_of - dt.timedelta(days=30))})
    while page := result.fetchmany(PAGE):
        columns = list(zip(*page, strict=True))
        ids.extend(columns[0])
        for parts, values in zip(pages, columns[1:], strict=True):
            parts.append(np.array(values, dtype=float))  # None (no purchase) becomes NaN
    return CustomerFacts(ids, {name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in zip(names, pages, strict=True)})
