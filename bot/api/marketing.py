"""Segments and campaigns for marketers (role marketer or admin; an agent gets 403)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, model_validator

from bot.api.routing import path_uuid, route
from bot.api.schemas import Strict
from channels.http import json_error
from crm_store import segments as segment_store
from crm_store.agents import AgentRecord

MARKETERS = ("admin", "marketer")


def _db(request: web.Request) -> Any:
    from bot.app import SERVICES

    return request.app[SERVICES].db


class SegmentIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    rule: dict[str, Any] | None = Field(default=None, description="The rule JSON (see crm_store.segments).")
    csv: str | None = Field(default=None, max_length=10_000_000, description="A static segment: customer ids or e-mails, one a line.")

    @model_validator(mode="after")
    def _one_kind(self) -> SegmentIn:
        if (self.rule is None) == (self.csv is None):
            raise ValueError("give either rule or csv")
        return self


class SegmentOut(BaseModel):
    id: str
    name: str
    kind: str
    rule: dict[str, Any] | None
    count: int


class RuleIn(Strict):
    rule: dict[str, Any]


def rule_error(exc: segment_store.RuleError) -> web.HTTPException:
    return json_error(422, "invalid_rule", str(exc), exc.path)


@route("POST", "/segments", summary="Save a segment (a rule, or a CSV of ids or e-mails)", roles=MARKETERS, body=SegmentIn,
       response=SegmentOut, status=201, tag="segments")
async def create_segment(request: web.Request, agent: AgentRecord, body: SegmentIn) -> dict[str, Any]:
    db = _db(request)
    try:
        if body.rule is not None:
            segment = await segment_store.create_rule_segment(db, body.name, body.rule)
        else:
            segment = await segment_store.create_static_segment(db, body.name, body.csv or "")
    except segment_store.RuleError as exc:
        raise rule_error(exc) from None
    except ValueError as exc:
        raise json_error(422, "invalid_field", f"csv: {exc}", "csv") from None
    segment["count"] = (await segment_store.count_and_sample(db, segment, sample=0))["count"]
    return segment


@route("GET", "/segments", summary="Saved segments, newest first", roles=MARKETERS, tag="segments")
async def list_segments(request: web.Request, agent: AgentRecord) -> dict[str, Any]:
    return {"items": await segment_store.list_segments(_db(request))}


async def _segment(request: web.Request) -> dict[str, Any]:
    try:
        return await segment_store.get_segment(_db(request), path_uuid(request, "segment_id"))
    except segment_store.NotFound as exc:
        raise json_error(404, "not_found", str(exc), "segment_id") from None


@route("GET", "/segments/{segment_id}/preview", summary="The segment's live count and a sample of its members", roles=MARKETERS,
       tag="segments")
async def preview_segment(request: web.Request, agent: AgentRecord) -> dict[str, Any]:
    return await segment_store.count_and_sample(_db(request), await _segment(request))


@route("POST", "/segments/count", summary="The live count of a rule not yet saved (the segment builder)", roles=MARKETERS,
       body=RuleIn, tag="segments")
async def count_rule(request: web.Request, agent: AgentRecord, body: RuleIn) -> dict[str, Any]:
    try:
        return {"count": await segment_store.count_rule(_db(request), body.rule)}
    except segment_store.RuleError as exc:
        raise rule_error(exc) from None
