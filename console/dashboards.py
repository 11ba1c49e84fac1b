"""The console's reports page (charts drawn as inline SVG), the customers CSV download,
and the scores and recommendations shown on a customer's panel."""

from __future__ import annotations

import io
import uuid
from typing import Any

from aiohttp import web

from bot.insights_export import write_customers_csv
from console import charts
from console.auth import ALL_ROLES, db_of, require
from console.render import harden, render
from crm_store import reports
from crm_store.columns import utcnow
from crm_store.database import Database
from crm_store.errors import NotFound
from crm_store.scores import customer_insights

PERIODS = (7, 30, 90, 365)
#: The campaign funnel's stages, as the campaign report counts them.
FUNNEL = ("targeted", "sent", "replied", "converted")


def cell_label(cell: str) -> str:
    """``cant_lose`` -> ``can't lose``: the RFM cells' keys as people read them."""
    return cell.replace("_", " ").replace("cant ", "can't ")


async def panel_insights(db: Database, customer_id: uuid.UUID) -> dict[str, Any]:
    """What the customer panel shows under "Value and prediction"."""
    async with db.read() as conn:
        found = await conn.run_sync(customer_insights, customer_id)
    scores = found["scores"]
    if scores.get("rfm_cell"):
        scores["rfm_label"] = cell_label(scores["rfm_cell"])
    return found


def _days(request: web.Request) -> int:
    try:
        days = int(request.query.get("days", "30"))
    except ValueError:
        days = 30
    return days if days in PERIODS else 30


def _series_by_day(rows: list[dict[str, Any]], key: str, value: str) -> tuple[list[str], dict[str, list[float | None]]]:
    days = sorted({r["day"] for r in rows})
    names = sorted({r[key] for r in rows})
    table = {(r["day"], r[key]): r[value] for r in rows}
    return [d[5:] for d in days], {n: [float(table.get((d, n)) or 0) for d in days] for n in names}


async def reports_page(request: web.Request) -> web.StreamResponse:
    session = await require(request, ALL_ROLES)
    db = db_of(request)
    days = _days(request)
    data = {name: await reports.report(db, name, *reports.window(name, days, utcnow())) for name in reports.REPORTS}
    labels, by_channel = _series_by_day(data["conversations-by-channel"], "channel", "conversations")
    times = data["response-times"]
    minutes = {"first response": [None if r["first_response_seconds"] is None else r["first_response_seconds"] / 60 for r in times],
               "resolution": [None if r["resolution_seconds"] is None else r["resolution_seconds"] / 60 for r in times]}
    containment = data["bot-containment"]
    grid = {(r["rfm_r"], r["rfm_f"]): (r["customers"], r["revenue"]) for r in data["rfm-grid"]}
    clv = data["clv-distribution"]
    country = data["revenue-by-country"]
    cells = data["rfm-cells"]
    funnel = data["campaign-funnel"]
    sizes_days, sizes = _series_by_day(data["segment-sizes"], "segment", "customers")
    chart = {
        "conversations": charts.line_chart(labels, by_channel, "Conversations by channel and day"),
        "times": charts.line_chart([r["day"][5:] for r in times], minutes, "Mean first-response and resolution time (minutes)"),
        "containment": charts.hbar_chart([r["channel"] for r in containment], [100 * (r["containment"] or 0) for r in containment],
                                         "Bot containment (% of resolved conversations no person answered)"),
        "rfm": charts.rfm_heatmap(grid, "RFM grid: customers and revenue"),
        "cells": charts.hbar_chart([cell_label(r["rfm_cell"]) for r in cells], [r["customers"] for r in cells],
                                   "Customers per RFM cell"),
        "clv": charts.bar_chart([r["bin"] for r in clv], [r["customers"] for r in clv], "Customers by predicted 12-month CLV"),
        "country": charts.hbar_chart([r["country"] for r in country], [r["revenue"] for r in country], "Net revenue by country"),
        "funnel": charts.funnel_chart(FUNNEL, [sum(r[k] for r in funnel) for k in FUNNEL], "Campaign funnel: customers at each stage"),
        "segments": charts.line_chart(sizes_days, sizes, "Segment sizes over time (customers)"),
    }
    me = session.agent
    return render("reports.html", chart=chart, days=days, periods=PERIODS, clusters=data["clusters"], containment=containment, funnel=funnel,
                  names=list(reports.REPORTS), me=me, csrf=session.csrf_token, nav="reports")


async def customers_csv(request: web.Request) -> web.StreamResponse:
    """Every customer with scores, or with ``?segment=ID`` that segment's members, as ``dangol export customers`` writes it."""
    await require(request, ("admin", "marketer"))
    segment_id = None
    if "segment" in request.query:
        try:
            segment_id = uuid.UUID(request.query["segment"])
        except ValueError:
            raise web.HTTPNotFound(text="no such segment") from None
    buffer = io.StringIO()
    try:
        await write_customers_csv(db_of(request), buffer, segment_id)
    except NotFound:
        raise web.HTTPNotFound(text="no such segment") from None
    name = f"segment-{segment_id}.csv" if segment_id else "customers.csv"
    response = web.Response(body=buffer.getvalue().encode("utf-8"), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return harden(response)


def setup(app: web.Application) -> None:
    app.router.add_get("/console/reports", reports_page)
    app.router.add_get("/console/customers.csv", customers_csv)
