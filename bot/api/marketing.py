"""Segments and campaigns for marketers (role marketer or admin; an agent gets 403)."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from bot.api.endpoints import path_uuid, route
from bot.api.errors import store_errors, store_of
from bot.api.schemas import ChannelName, Id, Strict, TimeZone, stripped_strings
from bot.services import SERVICES
from campaigns import service
from campaigns.spec import SpecError
from contracts.http_errors import json_error
from crm_store import campaigns as campaign_store
from crm_store import segment_rule_schema as rule_schema
from crm_store import segments as segment_store
from crm_store.agents import AgentRecord

MARKETERS = ("admin", "marketer")


#: A segment rule: described in the document by crm_store.segment_rule_schema, checked by its compiler.
Rule = Annotated[dict[str, Any], WithJsonSchema({"allOf": [{"$ref": f"#/components/schemas/{rule_schema.NAME}"}]})]


def _rule_or_csv(schema: dict[str, Any]) -> None:
    """The document says what the validator below checks: a segment is a rule or a CSV, exactly one."""
    stripped_strings(schema)
    schema["oneOf"] = [{"required": ["rule"], "not": {"required": ["csv"]}},
                       {"required": ["csv"], "not": {"required": ["rule"]}}]
    for name in ("rule", "csv"):  # given, it is a value: null is what leaving it out means
        prop = schema["properties"][name]
        prop["anyOf"] = [b for b in prop["anyOf"] if b.get("type") != "null"]
        prop.pop("default", None)


class SegmentIn(Strict):
    model_config = ConfigDict(json_schema_extra=_rule_or_csv)

    name: str = Field(min_length=1, max_length=200)
    rule: Rule | None = Field(default=None, description="The rule JSON (see crm_store.segments).")
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
    rule: Rule


def rule_error(exc: segment_store.RuleError) -> web.HTTPException:
    return json_error(422, "invalid_rule", str(exc), exc.path)


@route("POST", "/segments", summary="Save a segment (a rule, or a CSV of ids or e-mails)", roles=MARKETERS, body=SegmentIn,
       response=SegmentOut, status=201, tag="segments")
async def create_segment(request: web.Request, agent: AgentRecord, body: SegmentIn) -> dict[str, Any]:
    db = store_of(request)
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
    return {"items": await segment_store.list_segments(store_of(request))}


async def _segment(request: web.Request) -> dict[str, Any]:
    with store_errors():
        return await segment_store.get_segment(store_of(request), path_uuid(request, "segment_id"))


@route("GET", "/segments/{segment_id}/preview", summary="The segment's live count and a sample of its members", roles=MARKETERS,
       tag="segments")
async def preview_segment(request: web.Request, agent: AgentRecord) -> dict[str, Any]:
    return await segment_store.count_and_sample(store_of(request), await _segment(request))


@route("POST", "/segments/count", summary="The live count of a rule not yet saved (the segment builder)", roles=MARKETERS,
       body=RuleIn, tag="segments")
async def count_rule(request: web.Request, agent: AgentRecord, body: RuleIn) -> dict[str, Any]:
    try:
        return {"count": await segment_store.count_rule(store_of(request), body.rule)}
    except segment_store.RuleError as exc:
        raise rule_error(exc) from None


# -- campaigns ----------------------------------------------------------------------


class CampaignIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    segment_id: Id
    purpose: Literal["marketing", "service"]
    channels: list[ChannelName] = Field(min_length=1, max_length=20, description="Channels in order of preference.")
    message: dict[str, Any] | None = Field(default=None, description='{"text", "buttons"?, "variants"?: {channel: {"text", '
                                           '"buttons"?, "metadata"?}}}; a triggered campaign may leave it out (its steps carry theirs)')
    trigger: dict[str, Any] | None = Field(default=None, description='Triggered campaign: {"event": type, "first"?: bool} or '
                                           '{"tag": name}; see campaigns.sequence_spec')
    steps: list[dict[str, Any]] | None = Field(default=None, max_length=20, description='With a trigger: [{"delay": seconds or '
                                               '"P2D", "message": {...}}], each delay after the step before (the first after enrolment)')
    schedule: dict[str, Any] | None = Field(default=None, description="now | at | cron | interval | local_time (see campaigns.spec)")
    quiet_hours: dict[str, Any] | None = None
    frequency_cap: dict[str, Any] | None = None
    variants_ab: list[dict[str, Any]] | None = None
    korean_rules: Literal["korean_locale", "everyone"] = "korean_locale"
    sender_name: str | None = Field(default=None, max_length=60)
    default_timezone: TimeZone = "UTC"
    goal: dict[str, Any] | None = None
    message_costs: dict[str, float] | None = None


class CampaignOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    status: str
    segment_id: str
    purpose: str


class ReportOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str
    targeted: int
    skipped: dict[str, int]
    queued: int
    sent: int
    failed: int
    replied: int
    converted: int
    variants: dict[str, Any]


class ReportQuery(Strict):
    format: Literal["json", "csv"] = "json"


@contextmanager
def campaign_errors() -> Iterator[None]:
    """The store's errors as usual, and a campaign's own: a spec that cannot be used, a segment that is not there (422s)."""
    with store_errors():
        try:
            yield
        except SpecError as exc:
            raise json_error(422, "invalid_field", str(exc), exc.field) from None


def _kick(request: web.Request) -> None:
    scheduler = request.app[SERVICES].campaigns
    if scheduler is not None:
        scheduler.kick()


@route("POST", "/campaigns", summary="Create a draft campaign (templates are compiled: one that cannot be is a 422)",
       roles=MARKETERS, body=CampaignIn, response=CampaignOut, status=201, tag="campaigns")
async def create_campaign(request: web.Request, agent: AgentRecord, body: CampaignIn) -> dict[str, Any]:
    try:
        uuid.UUID(body.segment_id)
    except ValueError:
        raise json_error(422, "invalid_field", "segment_id is not a valid id", "segment_id") from None
    try:
        with campaign_errors():
            return await service.create(store_of(request), body.model_dump(exclude_none=True), agent.id)
    except web.HTTPNotFound:  # the segment named in the body
        raise json_error(422, "invalid_field", f"segment_id: segment {body.segment_id} does not exist", "segment_id") from None


@route("GET", "/campaigns", summary="Campaigns, newest first", roles=MARKETERS, tag="campaigns")
async def list_campaigns(request: web.Request, agent: AgentRecord) -> dict[str, Any]:
    return {"items": await campaign_store.list_campaigns(store_of(request))}


@route("GET", "/campaigns/{campaign_id}", summary="One campaign", roles=MARKETERS, response=CampaignOut, tag="campaigns")
async def get_campaign(request: web.Request, agent: AgentRecord) -> dict[str, Any]:
    with campaign_errors():
        return await campaign_store.get_campaign(store_of(request), path_uuid(request, "campaign_id"))


@route("POST", "/campaigns/{campaign_id}/send", summary="Send a draft now or on its schedule", roles=MARKETERS,
       response=CampaignOut, status=202, tag="campaigns")
async def send_campaign(request: web.Request, agent: AgentRecord) -> dict[str, Any]:
    with campaign_errors():
        campaign = await service.send(store_of(request), path_uuid(request, "campaign_id"))
    _kick(request)
    return campaign


def _action(action: str) -> Any:
    async def handler(request: web.Request, agent: AgentRecord) -> dict[str, Any]:
        with campaign_errors():
            campaign = await service.change(store_of(request), path_uuid(request, "campaign_id"), action)
        if action == "resume":
            _kick(request)
        return campaign

    handler.__name__ = f"{action}_campaign"
    return route("POST", f"/campaigns/{{campaign_id}}/{action}", summary=f"{action.title()} a campaign", roles=MARKETERS,
                 response=CampaignOut, tag="campaigns")(handler)


pause_campaign, resume_campaign, cancel_campaign = (_action(a) for a in ("pause", "resume", "cancel"))


@route("GET", "/campaigns/{campaign_id}/report", summary="What a campaign did: per run total and per A/B variant (JSON or CSV)",
       roles=MARKETERS, query=ReportQuery, response=ReportOut, tag="campaigns")
async def campaign_report(request: web.Request, agent: AgentRecord, query: ReportQuery) -> Any:
    with campaign_errors():
        data = await service.report(store_of(request), path_uuid(request, "campaign_id"))
    if query.format == "json":
        return data
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(service.REPORT_CSV_FIELDS)
    writer.writerows(service.report_csv_rows(data))
    return web.Response(text=buffer.getvalue(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="campaign-{data["id"]}.csv"'})


class PreviewQuery(Strict):
    customer_id: Id


class TemplatePreviewIn(Strict):
    message: dict[str, Any]
    customer_id: Id
    channels: list[ChannelName] = Field(min_length=1, max_length=20)
    purpose: Literal["marketing", "service"] = "marketing"
    sender_name: str | None = Field(default=None, max_length=60)


def _customer_id(value: str, where: Literal["query", "body"]) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise json_error(400 if where == "query" else 422, "invalid_field", "customer_id is not a valid id", "customer_id") from None


@route("GET", "/campaigns/{campaign_id}/preview", summary="The campaign's message for one customer, and whether a run would send it",
       roles=MARKETERS, query=PreviewQuery, tag="campaigns")
async def preview_campaign(request: web.Request, agent: AgentRecord, query: PreviewQuery) -> dict[str, Any]:
    customer_id = _customer_id(query.customer_id, "query")
    with campaign_errors():
        campaign = await campaign_store.get_campaign(store_of(request), path_uuid(request, "campaign_id"))
        return await service.preview(store_of(request), campaign["message"], customer_id, campaign["channels"], campaign)


@route("POST", "/templates/preview", summary="A message not yet saved, rendered for one customer (the template editor)",
       roles=MARKETERS, body=TemplatePreviewIn, tag="campaigns")
async def preview_template(request: web.Request, agent: AgentRecord, body: TemplatePreviewIn) -> dict[str, Any]:
    customer_id = _customer_id(body.customer_id, "body")
    with campaign_errors():
        return await service.preview(store_of(request), body.message, customer_id, body.channels,
                                     {"purpose": body.purpose, "sender_name": body.sender_name or "", "channels": body.channels})
