"""The marketers' pages: segments (builder with live count), campaigns (template editor with preview,
schedule, send/pause/resume/cancel) and results as charts.

Every action goes through the same functions as ``/api/v1`` (campaigns.service,
crm_store.segments), so the console and the API cannot disagree.  The live
count and the preview are small JSON answers the page's script asks for as
the marketer types, checked against the session's CSRF token like a form.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from bot.services import SERVICES
from campaigns import service
from campaigns.spec import SpecError
from console.auth import BadForm, check_csrf, db_of, require
from console.pages import _base, _uuid, page
from console.render import render
from crm_store import campaigns as campaign_store
from crm_store import segments as segment_store
from crm_store.errors import Conflict, NotFound

MARKETERS = ("admin", "marketer")
EXAMPLE_RULE = {"all": [{"field": "locale", "op": "eq", "value": "ko-KR"}, {"event": "purchase", "within_days": 90}]}
BAR_COLOURS = {"sent": "#2b8a3e", "failed": "#c92a2a", "queued": "#868e96", "opted_out": "#e67700", "no_consent": "#f08c00",
               "unreachable": "#5c7cfa", "capped": "#845ef7", "render_error": "#d6336c"}


def setup(router: web.UrlDispatcher) -> None:
    router.add_get("/console/segments", segments_page)
    router.add_post("/console/segments", segment_create)
    router.add_post("/console/segments/count", segment_count)
    router.add_get("/console/segments/{segment_id}/sample", segment_sample)
    router.add_get("/console/campaigns", campaigns_page)
    router.add_post("/console/campaigns", campaign_create)
    router.add_post("/console/campaigns/preview", template_preview)
    router.add_get("/console/campaigns/{campaign_id}", campaign_page)
    router.add_post("/console/campaigns/{campaign_id}", campaign_action)


def _json_error(message: str, field: str | None, status: int = 422) -> web.Response:
    return web.json_response({"error": {"code": "invalid_field", "message": message, "field": field}}, status=status)


async def _json_body(request: web.Request) -> tuple[Any, dict[str, Any]]:
    session = await require(request, MARKETERS)
    check_csrf(session, {"csrf": request.headers.get("X-CSRF-Token", "")})
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise BadForm("The request was not JSON.", 400, "body") from None
    if not isinstance(data, dict):
        raise BadForm("The request was not a JSON object.", 400, "body")
    return session, data


# -- segments -------------------------------------------------------------------------


@page
async def segments_page(request: web.Request, *, error: str | None = None, typed: dict[str, str] | None = None,
                        status: int = 200) -> web.StreamResponse:
    session = await require(request, MARKETERS)
    db = db_of(request)
    items = await segment_store.list_segments(db)
    for item in items[:50]:
        item["count"] = (await segment_store.count_and_sample(db, item, sample=0))["count"]
    return render("segments.html", status, items=items[:50], error=error, typed=typed or {"rule": json.dumps(EXAMPLE_RULE, indent=2)},
                  **_base(session, "segments"))


@page
async def segment_create(request: web.Request) -> web.StreamResponse:
    session = await require(request, MARKETERS)
    form = await request.post()
    check_csrf(session, form)
    name, rule_text = str(form.get("name", "")).strip(), str(form.get("rule", ""))
    try:
        if not name:
            raise segment_store.RuleError("a segment needs a name", "name")
        try:
            rule = json.loads(rule_text)
        except ValueError as exc:
            raise segment_store.RuleError(f"not valid JSON ({exc})", "rule") from None
        await segment_store.create_rule_segment(db_of(request), name[:200], rule)
    except segment_store.RuleError as exc:
        return await segments_page(request, error=str(exc), typed={"name": name, "rule": rule_text}, status=422)
    raise web.HTTPSeeOther(location="/console/segments")


async def segment_count(request: web.Request) -> web.StreamResponse:
    """The live count of the rule being typed."""
    _, data = await _json_body(request)
    try:
        return web.json_response({"count": await segment_store.count_rule(db_of(request), data.get("rule"))})
    except segment_store.RuleError as exc:
        return _json_error(str(exc), exc.path)


async def segment_sample(request: web.Request) -> web.StreamResponse:
    """Members to preview a message for (the template editor's customer picker)."""
    await require(request, MARKETERS)
    try:
        segment = await segment_store.get_segment(db_of(request), _uuid(request.match_info["segment_id"]))
    except NotFound as exc:
        return _json_error(str(exc), "segment_id", 404)
    return web.json_response(await segment_store.count_and_sample(db_of(request), segment, sample=25))


# -- campaigns ------------------------------------------------------------------------


@page
async def campaigns_page(request: web.Request, *, error: str | None = None, typed: dict[str, Any] | None = None,
                         status: int = 200) -> web.StreamResponse:
    session = await require(request, MARKETERS)
    db = db_of(request)
    return render("campaigns.html", status, items=await campaign_store.list_campaigns(db), segments=await segment_store.list_segments(db),
                  channels=_sending_channels(request), error=error, typed=typed or {}, **_base(session, "campaigns"))


def _sending_channels(request: web.Request) -> list[str]:
    """The channels this service sends on (those that answer inline, inside a request, cannot carry a campaign)."""
    return sorted(name for name, ch in request.app[SERVICES].channels.items() if not ch.inline_replies)


def _campaign_body(form: Any) -> dict[str, Any]:
    """The create form as the API's body: the console and the API share one check (campaigns.spec)."""
    body: dict[str, Any] = {"name": str(form.get("name", "")).strip()[:200], "segment_id": str(form.get("segment_id", "")),
                            "purpose": str(form.get("purpose", "marketing")), "channels": form.getall("channels", []),
                            "message": {"text": str(form.get("text", ""))}, "sender_name": str(form.get("sender_name", "")).strip()}
    kind = str(form.get("schedule_type", "now"))
    if kind == "at":
        body["schedule"] = {"type": "at", "at": str(form.get("at", "")), "timezone": str(form.get("timezone", "UTC"))}
    elif kind == "cron":
        body["schedule"] = {"type": "cron", "cron": str(form.get("cron", "")), "timezone": str(form.get("timezone", "UTC"))}
    elif kind == "local_time":
        body["schedule"] = {"type": "local_time", "time": str(form.get("local_time", "09:00"))}
    goal = str(form.get("goal_event", "")).strip()
    if goal:
        body["goal"] = {"event": goal[:64], "within_days": 7}
    return body


@page
async def campaign_create(request: web.Request) -> web.StreamResponse:
    session = await require(request, MARKETERS)
    form = await request.post()
    check_csrf(session, form)
    body = _campaign_body(form)
    try:
        if not body["name"]:
            raise SpecError("a campaign needs a name", "name")
        if body["purpose"] not in ("marketing", "service"):
            raise SpecError("must be marketing or service", "purpose")
        try:
            uuid.UUID(body["segment_id"])
        except ValueError:
            raise SpecError("choose a segment", "segment_id") from None
        created = await service.create(db_of(request), body, session.agent.id)
    except (SpecError, NotFound) as exc:
        return await campaigns_page(request, error=str(exc), typed={**body, "text": body["message"]["text"]}, status=422)
    raise web.HTTPSeeOther(location=f"/console/campaigns/{created['id']}")


async def template_preview(request: web.Request) -> web.StreamResponse:
    """The message being typed, rendered for the customer picked (or why it cannot be)."""
    _, data = await _json_body(request)
    try:
        customer_id = uuid.UUID(str(data.get("customer_id", "")))
    except ValueError:
        return _json_error("pick a customer by id", "customer_id")
    channels = [c for c in data.get("channels") or [] if isinstance(c, str)] or _sending_channels(request)[:1]
    if not channels:
        return _json_error("no channel to preview on", "channels")
    try:
        shown = await service.preview(db_of(request), {"text": str(data.get("text", ""))}, customer_id, channels,
                                      {"purpose": str(data.get("purpose", "marketing")), "sender_name": str(data.get("sender_name", ""))})
    except SpecError as exc:
        return _json_error(str(exc), exc.field)
    except NotFound as exc:
        return _json_error(str(exc), "customer_id", 404)
    return web.json_response(shown)


def _bars(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Horizontal bars of where the targeted customers ended, widths as a share of targeted (drawn as SVG)."""
    total = max(report["targeted"], 1)
    parts = [("sent", report["sent"]), ("failed", report["failed"]), ("queued", report["queued"]),
             *((reason, n) for reason, n in report["skipped"].items())]
    return [{"label": label.replace("_", " "), "n": n, "width": round(100 * n / total, 2), "colour": BAR_COLOURS[label]}
            for label, n in parts]


def after_label(seconds: float) -> str:
    """A step's delay as a marketer reads it: "at once", "2 days", "1 day 12 hours", "30 minutes"."""
    left = int(seconds)
    if left <= 0:
        return "at once"
    parts = []
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if left >= size:
            n, left = divmod(left, size)
            parts.append(f"{n} {name}{'s' if n != 1 else ''}")
    return " ".join(parts[:2])


@page
async def campaign_page(request: web.Request, *, error: str | None = None) -> web.StreamResponse:
    session = await require(request, MARKETERS)
    db = db_of(request)
    campaign_id = _uuid(request.match_info["campaign_id"])
    campaign = await campaign_store.get_campaign(db, campaign_id)
    report = await service.report(db, campaign_id)
    segment = await segment_store.get_segment(db, uuid.UUID(campaign["segment_id"]))
    sample = (await segment_store.count_and_sample(db, segment, sample=20))["sample"]
    variants = [{"name": name, "bars": _bars(v), **v} for name, v in sorted(report["variants"].items())]
    steps = [{**step, "after": after_label(step["delay_seconds"]), "skipped_total": sum(step["skipped"].values())}
             for step in report.get("steps", [])]
    return render("campaign.html", campaign=campaign, report=report, bars=_bars(report), variants=variants, segment=segment,
                  sample=sample, steps=steps, error=error, **_base(session, "campaigns"))


@page
async def campaign_action(request: web.Request) -> web.StreamResponse:
    session = await require(request, MARKETERS)
    form = await request.post()
    check_csrf(session, form)
    campaign_id = _uuid(request.match_info["campaign_id"])
    action = str(form.get("action", ""))
    if action not in ("send", "pause", "resume", "cancel"):
        raise BadForm(f"Unknown action {action!r}.", 400, "action")
    try:
        if action == "send":
            await service.send(db_of(request), campaign_id)
        else:
            await service.change(db_of(request), campaign_id, action)
    except Conflict as exc:
        return await campaign_page(request, error=str(exc))
    scheduler = request.app[SERVICES].campaigns
    if scheduler is not None and action in ("send", "resume"):
        scheduler.kick()
    raise web.HTTPSeeOther(location=f"/console/campaigns/{campaign_id}")
