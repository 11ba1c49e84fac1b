"""The dashboards' numbers, aggregated in the database: each report is a list of flat rows
(the same rows serve the console's charts, ``/api/v1/reports/<name>`` JSON and its CSV)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, func, select, text

from crm_store import campaign_runs
from crm_store.campaign_tables import Campaign, CampaignRun
from crm_store.segment_sizes import sizes_over_time

Rows = list[dict[str, Any]]
#: The campaigns a funnel chart compares at most (the latest started first).
FUNNEL_CAMPAIGNS = 12


def _bound(conn: Connection, moment: dt.datetime) -> Any:
    return moment if conn.dialect.name == "postgresql" else moment.astimezone(dt.UTC).replace(tzinfo=None)


def _date(conn: Connection, column: str) -> str:
    if conn.dialect.name == "postgresql":
        return f"to_char(({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    return f"date({column})"


def conversations_by_channel(conn: Connection, since: dt.datetime, until: dt.datetime) -> Rows:
    """Conversations opened per UTC day and channel."""
    day = _date(conn, "created_at")
    sql = text(f"""SELECT {day} AS day, channel, COUNT(*) AS conversations FROM conversations
                   WHERE created_at >= :since AND created_at < :until GROUP BY {day}, channel ORDER BY 1, 2""")
    return [dict(r) for r in conn.execute(sql, {"since": _bound(conn, since), "until": _bound(conn, until)}).mappings()]


def response_times(conn: Connection, since: dt.datetime, until: dt.datetime) -> Rows:
    """Per UTC day of opening: mean first-response and resolution times in seconds, with how many each mean covers."""
    day = _date(conn, "created_at")
    sql = text(f"""SELECT {day} AS day, AVG(first_response_seconds) AS first_response_seconds, COUNT(first_response_seconds) AS responded,
                          AVG(resolution_seconds) AS resolution_seconds, COUNT(resolution_seconds) AS resolved
                   FROM conversations WHERE created_at >= :since AND created_at < :until GROUP BY {day} ORDER BY 1""")
    rows = []
    for r in conn.execute(sql, {"since": _bound(conn, since), "until": _bound(conn, until)}).mappings():
        rows.append({k: (round(float(v), 1) if k.endswith("seconds") and v is not None else v) for k, v in r.items()})
    return rows


def bot_containment(conn: Connection, since: dt.datetime, until: dt.datetime) -> Rows:
    """Per channel: resolved conversations, and how many of them no person answered (the bot contained them)."""
    sql = text("""SELECT c.channel, COUNT(*) AS resolved,
                         SUM(CASE WHEN NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.sender_kind = 'agent')
                                  THEN 1 ELSE 0 END) AS contained
                  FROM conversations c WHERE c.status = 'resolved' AND c.created_at >= :since AND c.created_at < :until
                  GROUP BY c.channel ORDER BY c.channel""")
    rows = []
    for r in conn.execute(sql, {"since": _bound(conn, since), "until": _bound(conn, until)}).mappings():
        resolved, contained = int(r["resolved"]), int(r["contained"] or 0)
        rows.append({"channel": r["channel"], "resolved": resolved, "contained": contained,
                     "containment": round(contained / resolved, 4) if resolved else None})
    return rows


def rfm_grid(conn: Connection, since: dt.datetime, until: dt.datetime) -> Rows:
    """Customers and their net revenue in each recency x frequency cell of the last scoring run."""
    sql = text("""SELECT rfm_r, rfm_f, COUNT(*) AS customers, SUM(monetary) AS revenue FROM customer_scores
                  WHERE rfm_r IS NOT NULL GROUP BY rfm_r, rfm_f ORDER BY rfm_r, rfm_f""")
    return [{"rfm_r": r["rfm_r"], "rfm_f": r["rfm_f"], "customers": int(r["customers"]), "revenue": round(float(r["revenue"] or 0), 2)}
            for r in conn.execute(sql).mappings()]


def rfm_cells(conn: Connection, since: dt.datetime, until: dt.datetime) -> Rows:
    sql = text("""SELECT rfm_cell, COUNT(*) AS customers, SUM(monetary) AS revenue, AVG(clv) AS mean_clv FROM customer_scores
                  WHERE rfm_cell IS NOT NULL GROUP BY rfm_cell ORDER BY 2 DESC""")
    return [{"rfm_cell": r["rfm_cell"], "customers": int(r["customers"]), "revenue": round(float(r["revenue"] or 0), 2),
             "mean_clv": round(float(r["mean_clv"]), 2) if r["mean_clv"] is not None else None} for r in conn.execute(sql).mappings()]


#: Upper edges of the CLV histogram's bins; the last bin holds everything above.
CLV_EDGES = (0, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


def clv_distribution(conn: Connection, since: dt.datetime, until: dt.datetime) -> Rows:
    """Customers per CLV bin, counted in the database."""
    cases = " ".join(f"WHEN clv < {edge} THEN {i}" for i, edge in enumerate(CLV_EDGES))
    sql = text(f"""SELECT CASE {cases} ELSE {len(CLV_EDGES)} END AS bin, COUNT(*) AS customers, SUM(clv) AS total
                   FROM customer_scores WHERE clv IS NOT NULL GROUP BY 1 ORDER BY 1""")
    rows = []
    for r in conn.execute(sql).mappings():
        i = int(r["bin"])
        low = CLV_EDGES[i - 1] if i > 0 else None
        high = CLV_EDGES[i] if i < len(CLV_EDGES) else None
        label = f"< {high}" if low is None else (f"{low}+" if high is None else f"{low}-{high}")
        rows.append({"bin": label, "from": low, "to": high, "customers": int(r["customers"]), "clv": round(float(r["total"] or 0), 2)})
    return rows


def revenue_by_country(conn: Connection, since: dt.datetime, until: dt.datetime) -> Rows:
    """Net revenue (purchases less returns) in the period by the customer's ``country`` attribute."""
    country = "c.attributes ->> 'country'" if conn.dialect.name == "postgresql" else "json_extract(c.attributes, '$.country')"
    sql = text(f"""SELECT COALESCE({country}, 'unknown') AS country, SUM(COALESCE(e.amount, 0)) AS revenue,
                          COUNT(DISTINCT e.customer_id) AS customers
                   FROM customer_events e JOIN customers c ON c.id = e.customer_id
                   WHERE e.type IN ('purchase', 'return') AND e.occurred_at >= :since AND e.occurred_at < :until
                   GROUP BY 1 ORDER BY 2 DESC""")
    return [{"country": r["country"], "revenue": round(float(r["revenue"] or 0), 2), "customers": int(r["customers"])}
            for r in conn.execute(sql, {"since": _bound(conn, since), "until": _bound(conn, until)}).mappings()]


def clusters(conn: Connection, since: dt.datetime, until: dt.datetime) -> Rows:
    sql = text("SELECT id AS cluster, name, description, size AS customers FROM customer_clusters ORDER BY id")
    return [dict(r) for r in conn.execute(sql).mappings()]


def campaign_funnel(conn: Connection, since: dt.datetime, until: dt.datetime) -> Rows:
    """Per campaign with a run started in the period: targeted, sent, replied and converted customers (and revenue),
    counted as the campaign's report counts them (crm_store.campaign_runs), over all its runs."""
    campaigns_t, runs_t = Campaign.__table__, CampaignRun.__table__
    started = func.min(runs_t.c.started_at)
    found = conn.execute(select(campaigns_t.c.id, campaigns_t.c.name, campaigns_t.c.spec, started.label("started"))
                         .join(runs_t, runs_t.c.campaign_id == campaigns_t.c.id)
                         .where(runs_t.c.started_at >= since, runs_t.c.started_at < until)
                         .group_by(campaigns_t.c.id, campaigns_t.c.name, campaigns_t.c.spec)
                         .order_by(started.desc()).limit(FUNNEL_CAMPAIGNS)).all()
    rows = []
    for campaign in found:
        runs = campaign_runs.run_ids(conn, campaign.id)
        counts = campaign_runs.counts(conn, runs)
        goal = (campaign.spec or {}).get("goal") or {}
        outcomes = campaign_runs.outcomes(conn, runs, goal.get("event"), dt.timedelta(days=float(goal.get("within_days", 7))))
        rows.append({"campaign_id": str(campaign.id), "campaign": campaign.name,
                     "started": campaign.started.isoformat() if campaign.started else None,
                     "targeted": sum(c["n"] for c in counts),
                     "sent": sum(c["n"] for c in counts if c["kind"] == "outbox" and c["status"] == "sent"),
                     "replied": sum(o.get("replied", 0) for o in outcomes.values()),
                     "converted": sum(o.get("converted", 0) for o in outcomes.values()),
                     "revenue": round(sum(o.get("revenue", 0.0) for o in outcomes.values()), 2)})
    return rows


REPORTS: dict[str, Callable[[Connection, dt.datetime, dt.datetime], Rows]] = {
    "conversations-by-channel": conversations_by_channel,
    "response-times": response_times,
    "bot-containment": bot_containment,
    "rfm-grid": rfm_grid,
    "rfm-cells": rfm_cells,
    "clv-distribution": clv_distribution,
    "revenue-by-country": revenue_by_country,
    "clusters": clusters,
    "campaign-funnel": campaign_funnel,
    "segment-sizes": sizes_over_time,
}

#: Reports about support and campaigns count a period (30 days unless asked); the customer-value ones all time (the last scoring run).
PERIOD_REPORTS = ("conversations-by-channel", "response-times", "bot-containment", "campaign-funnel", "segment-sizes")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def window(name: str, days: int, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    return (now - dt.timedelta(days=days) if name in PERIOD_REPORTS else EPOCH), now + dt.timedelta(seconds=1)


async def report(db: Any, name: str, since: dt.datetime, until: dt.datetime) -> Rows:
    async with db.read() as conn:
        return await conn.run_sync(REPORTS[name], since, until)
