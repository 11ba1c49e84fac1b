"""Events in batches, a customer's scores and recommendations, and the dashboards' data.

Scoring on demand (``POST /insights/score``) runs the insights package, which
the bot may not import: dangol/insights_api.py declares it."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import uuid
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.api.endpoints import path_uuid, route
from bot.api.schemas import in_utc
from bot.services import SERVICES
from contracts.http_errors import json_error
from crm_store import customers as profiles
from crm_store import reports
from crm_store.agents import AgentRecord
from crm_store.columns import utcnow
from crm_store.events import EventIn, check_items, store_events
from crm_store.scores import customer_insights

WRITERS = ("admin", "agent", "marketer")
MAX_BATCH = 1000
MAX_PROPERTIES_BYTES = 8192


class EventItem(BaseModel):
    """One event of a batch; ``customer_id`` is Dangol's id, ``customer_key`` your system's (created when new)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_id: str | None = Field(default=None, min_length=1, max_length=255, description="Your id: makes retries harmless.")
    customer_id: uuid.UUID | None = None
    customer_key: str | None = Field(default=None, min_length=1, max_length=255)
    type: str = Field(min_length=1, max_length=64, description="purchase, return, signup, page_view or your own")
    occurred_at: dt.datetime
    amount: float | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    items: list[dict[str, Any]] | None = Field(default=None, description="[{sku, name, quantity, price}]")
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("amount")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and (not math.isfinite(value) or abs(value) >= 1e12):
            raise ValueError("must be a finite number below 10^12")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        return in_utc(value)  # type: ignore[return-value]  # never None for a given value

    @field_validator("items")
    @classmethod
    def _items(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        return None if value is None else check_items(value)

    @field_validator("properties")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value, ensure_ascii=False)) > MAX_PROPERTIES_BYTES:
            raise ValueError(f"must be at most {MAX_PROPERTIES_BYTES} bytes of JSON")
        return value

    def event(self) -> EventIn:
        return EventIn(type=self.type, occurred_at=self.occurred_at, customer_id=self.customer_id, customer_key=self.customer_key,
                       external_id=self.event_id, amount=self.amount, currency=self.currency.upper() if self.currency else None,
                       items=self.items, properties=self.properties)


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[Any] = Field(min_length=1, max_length=MAX_BATCH, description="Each item is an EventItem; a bad one fails alone.")


class ItemError(BaseModel):
    index: int
    field: str | None
    message: str


class BatchAnswer(BaseModel):
    accepted: int
    duplicates: int
    customers_created: int
    errors: list[ItemError]


def _db(request: web.Request) -> Any:
    return request.app[SERVICES].db


def _check(index: int, raw: Any) -> tuple[EventIn | None, dict[str, Any] | None]:
    if not isinstance(raw, dict):
        return None, {"index": index, "field": None, "message": "must be a JSON object"}
    try:
        item = EventItem.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        return None, {"index": index, "field": field, "message": "unknown field" if err["type"] == "extra_forbidden"
                      else err["msg"].removeprefix("Value error, ")}
    if (item.customer_id is None) == (item.customer_key is None):
        return None, {"index": index, "field": "customer_id", "message": "give exactly one of customer_id and customer_key"}
    return item.event(), None


@route("POST", "/events", summary="Record customer events in a batch (bad items are reported, the rest stored)", roles=WRITERS,
       body=EventBatch, response=BatchAnswer, tag="insights")
async def post_events(request: web.Request, agent: AgentRecord, body: EventBatch) -> dict[str, Any]:
    errors: list[dict[str, Any]] = []
    good: list[EventIn] = []
    positions: list[int] = []
    for index, raw in enumerate(body.events):
        event, error = _check(index, raw)
        if error is not None:
            errors.append(error)
        else:
            good.append(event)  # type: ignore[arg-type]
            positions.append(index)
    result = await _db(request).run_in_transaction(store_events, good) if good else None
    if result is not None:
        errors.extend({"index": positions[i], "field": "customer_id", "message": why} for i, why in result.rejected.items())
    errors.sort(key=lambda e: e["index"])
    return {"accepted": result.inserted if result else 0, "duplicates": result.duplicates if result else 0,
            "customers_created": result.customers_created if result else 0, "errors": errors}


@route("GET", "/customers/{customer_id}/insights", summary="A customer's scores and recommendations", tag="insights")
async def get_customer_insights(request: web.Request, agent: AgentRecord) -> dict[str, Any]:
    customer = path_uuid(request, "customer_id")
    try:
        await profiles.get_customer(_db(request), customer)
    except profiles.NotFound as exc:
        raise json_error(404, "not_found", str(exc), "customer_id") from None
    async with _db(request).read() as conn:
        return await conn.run_sync(customer_insights, customer)


class ReportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: dt.datetime | None = Field(default=None, description="Start (ISO 8601); support and campaign reports default to 30 days ago, others to all time.")
    until: dt.datetime | None = Field(default=None, description="End (ISO 8601), default now.")
    format: Literal["json", "csv"] = "json"

    _aware = field_validator("since", "until")(classmethod(lambda cls, v: in_utc(v)))


def _csv(rows: list[dict[str, Any]], name: str) -> web.Response:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return web.Response(body=out.getvalue().encode("utf-8"), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


def _report_route(name: str) -> None:
    async def handler(request: web.Request, agent: AgentRecord, query: ReportQuery) -> Any:
        since, until = reports.window(name, 30, utcnow())
        since, until = query.since or since, query.until or until
        since = min(since, until)  # a window that ends before it starts is empty (the document cannot say one must precede the other)
        rows = await reports.report(_db(request), name, since, until)
        return _csv(rows, name) if query.format == "csv" else {"report": name, "since": since.isoformat(), "until": until.isoformat(),
                                                               "rows": rows}

    handler.__name__ = "report_" + name.replace("-", "_")
    route("GET", f"/reports/{name}", summary=f"Dashboard data: {name.replace('-', ' ')} (JSON or CSV)", query=ReportQuery,
          tag="reports")(handler)


for _name in reports.REPORTS:
    _report_route(_name)
