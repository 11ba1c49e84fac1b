"""The console's pages: login, inbox, conversation, customers, admin.

Plain server-rendered HTML; forms post back and redirect (so a reload never
re-sends), and a failed form re-renders its page with the message and what
was typed.  The actions go through the same functions as ``/api/v1``, so the
console and the API cannot disagree about what an action does.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.api.inbox import act, add_note, publish, send_reply
from bot.services import SERVICES
from console.auth import (
    AGENT_ROLES,
    ALL_ROLES,
    COOKIE_PATH,
    SESSION_COOKIE,
    BadForm,
    Forbidden,
    check_csrf,
    check_login_token,
    client_address,
    current_session,
    db_of,
    login_token,
    quote_path,
    remember_login_token,
    require,
    safe_next,
    set_session_cookie,
)
from console.dashboards import panel_insights
from console.render import render
from contracts.messages import Attachment
from crm_store import agents as accounts
from crm_store import assignment, customers, inbox, login_throttle, sessions, teams
from crm_store.columns import utcnow
from crm_store.errors import Conflict, NotFound
from crm_store.models import CONVERSATION_STATUSES, PRIORITIES
from crm_store.sessions import Session

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SNOOZE_CHOICES = {"60": "1 hour", "240": "4 hours", "1440": "Tomorrow", "10080": "1 week"}
VIEW_TITLES = {"mine": "Mine", "team": "My teams", "unassigned": "Unassigned", "all": "All"}


def page(handler: Handler) -> Handler:
    """Role refusals and unknown records become pages, never a traceback or a JSON body."""
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Forbidden as exc:
            session = await current_session(request)
            return render("error.html", 403, title="Not allowed", message=str(exc), **_base(session, ""))
        except NotFound as exc:
            session = await current_session(request)
            return render("error.html", 404, title="Not found", message=str(exc), **_base(session, ""))
        except BadForm as exc:
            session = await current_session(request)
            return render("error.html", exc.status, title="Form refused", message=str(exc), **_base(session, ""))

    return wrapped


def _base(session: Session | None, nav: str) -> dict[str, Any]:
    return {"me": session.agent if session else None, "csrf": session.csrf_token if session else "", "nav": nav}


def _uuid(value: str | None) -> uuid.UUID:
    try:
        return uuid.UUID(value or "")
    except ValueError:
        raise NotFound("There is no such record.") from None


# -- login ---------------------------------------------------------------------
@page
async def login_form(request: web.Request) -> web.StreamResponse:
    if await current_session(request) is not None:
        raise web.HTTPSeeOther(location=safe_next(request.query.get("next")))
    return _login(request, safe_next(request.query.get("next")))


def _login(request: web.Request, target: str, error: str | None = None, email: str = "", status: int = 200) -> web.Response:
    token = login_token(request)
    response = render("login.html", status, next=target, error=error, email=email, csrf=token, me=None, nav="")
    remember_login_token(request, response, token)
    return response


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    email = str(form.get("email", "")).strip().lower()[:320]
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))
    db = db_of(request)

    def again(message: str, status: int) -> web.StreamResponse:
        return _login(request, target, message, email, status)

    try:
        check_login_token(request, form)
    except BadForm as exc:
        return again(str(exc), 403)
    if not email or not password:
        return again("Enter your e-mail and password.", 400)
    wait = await login_throttle.take_attempt(db, email, client_address(request))  # counted before the password is checked
    if wait:
        response = again(f"Too many failed logins. Try again in {max(1, round(wait / 60))} minute(s).", 429)
        response.headers["Retry-After"] = str(wait)
        return response
    agent = await accounts.agent_for_password(db, email, password)
    if agent is None:
        return again("Wrong e-mail or password.", 401)
    await login_throttle.clear_attempts(db, email, client_address(request))
    token, _csrf = await sessions.create_session(db, agent.id)
    home = target if target != "/console" else ("/console/customers" if agent.role == "marketer" else "/console/inbox")
    response = web.HTTPSeeOther(location=home)
    set_session_cookie(request, response, token)
    response.del_cookie("dgl_login", path=COOKIE_PATH)
    raise response


@page
async def logout(request: web.Request) -> web.StreamResponse:
    session = await require(request)
    check_csrf(session, await request.post())
    await sessions.end_session(db_of(request), request.cookies.get(SESSION_COOKIE, ""))
    response = web.HTTPSeeOther(location="/console/login")
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    raise response


@page
async def home(request: web.Request) -> web.StreamResponse:
    session = await require(request)
    raise web.HTTPSeeOther(location="/console/customers" if session.agent.role == "marketer" else "/console/inbox")


# -- inbox ---------------------------------------------------------------------
@page
async def inbox_page(request: web.Request) -> web.StreamResponse:
    session = await require(request, AGENT_ROLES)
    db = db_of(request)
    query = request.query
    view = query.get("view", "all") if query.get("view", "all") in VIEW_TITLES else "all"
    status = query.get("status") or None
    notice = None
    if status and status not in CONVERSATION_STATUSES:
        notice, status = f"Unknown status {status!r}; showing every open conversation.", None
    channel = (query.get("channel") or "").strip()[:32] or None
    label = (query.get("label") or "").strip()[:64] or None
    publish(request, await db.run_in_transaction(assignment.wake_snoozed, utcnow()))
    items = await inbox.inbox(db, session.agent.id, view=view, channel=channel, status=status, label=label, limit=100)
    context = {"items": items, "view": view, "status": status, "channel": channel, "label": label, "notice": notice,
               "view_titles": VIEW_TITLES, "statuses": CONVERSATION_STATUSES, "channels": _channels(request),
               "now": utcnow(), **_base(session, "inbox")}
    if query.get("partial") == "list":
        return render("_inbox_list.html", **context)
    settings = (await teams.agent_settings(db, [session.agent.id])).get(session.agent.id, {})
    return render("inbox.html", presence=settings.get("presence", "offline"), my_teams=settings.get("teams", []), **context)


def _channels(request: web.Request) -> list[str]:
    return sorted(request.app[SERVICES].channels)


@page
async def presence(request: web.Request) -> web.StreamResponse:
    session = await require(request, AGENT_ROLES)
    form = await request.post()
    check_csrf(session, form)
    value = str(form.get("presence", ""))
    if value not in ("online", "away", "offline"):
        raise BadForm("Presence must be online, away or offline.", 422, "presence")
    publish(request, await teams.set_presence(db_of(request), session.agent.id, value))
    raise web.HTTPSeeOther(location=safe_next(str(form.get("next", ""))) if form.get("next") else "/console/inbox")


# -- conversation ------------------------------------------------------------------
@page
async def conversation_page(request: web.Request) -> web.StreamResponse:
    session = await require(request, AGENT_ROLES)
    conversation_id = _uuid(request.match_info["conversation_id"])
    partial = request.query.get("partial")
    return await _conversation(request, session, conversation_id, partial=partial)


async def _conversation(request: web.Request, session: Session, conversation_id: uuid.UUID, *, partial: str | None = None,
                        error: str | None = None, status: int = 200, draft: str = "") -> web.Response:
    db = db_of(request)
    conversation = await inbox.conversation_detail(db, conversation_id)
    customer_id = uuid.UUID(conversation["customer_id"])
    history = await inbox.customer_history(db, customer_id)
    context = {"c": conversation, "history": history, "now": utcnow(), **_base(session, "inbox")}
    if partial == "messages":
        return render("_messages.html", **context)
    holders = [a for a in await accounts.list_agents(db) if a.active and a.role in AGENT_ROLES]
    channel = request.app[SERVICES].channels.get(conversation["channel"])
    context.update(holders=holders, snooze_choices=SNOOZE_CHOICES,
                   delivery=channel.describe_delivery() if channel is not None else "this channel is not configured: replies stay queued")
    if partial == "header":
        return render("_conv_header.html", **context)
    customer = await customers.get_customer(db, customer_id)
    panel = await inbox.customer_panel(db, customer_id)
    panel["insights"] = await panel_insights(db, customer_id)
    events = await inbox.audit_events(db, conversation_id)
    canned = await teams.list_canned(db)
    return render("conversation.html", status, customer=customer, panel=panel, events=events, canned=canned, error=error,
                  draft=draft, **context)


@page
async def conversation_action(request: web.Request) -> web.StreamResponse:
    session = await require(request, AGENT_ROLES)
    conversation_id = _uuid(request.match_info["conversation_id"])
    form = await request.post()
    check_csrf(session, form)
    action = str(form.get("action", ""))
    db = db_of(request)
    agent = session.agent
    text = str(form.get("text", ""))[:4096]
    anchor = ""
    try:
        if action in ("claim", "hand_back", "resolve", "reopen"):
            await act(request, db, action, conversation_id, agent)
        elif action == "assign":
            target = str(form.get("agent_id", ""))
            await act(request, db, "assign", conversation_id, agent, to_agent=_uuid(target) if target else None)
        elif action == "snooze":
            minutes = str(form.get("minutes", ""))
            if minutes not in SNOOZE_CHOICES:
                raise ValueError("Choose how long to snooze.")
            await act(request, db, "snooze", conversation_id, agent, until=utcnow() + dt.timedelta(minutes=int(minutes)))
        elif action in ("reply", "note"):
            anchor = "#composer"
            if action == "note":
                await add_note(request, db, conversation_id, agent, text)
            else:
                await send_reply(request, db, conversation_id, agent, text.strip() or None, _attachments(form))
        elif action in ("label_add", "label_remove"):
            label = str(form.get("label", "")).strip()
            add, remove = ([label], []) if action == "label_add" else ([], [label])
            labels = await inbox.change_labels(db, conversation_id, agent.id, add, remove)
            publish(request, [], [{"type": "conversation", "action": "labels", "conversation_id": str(conversation_id),
                                   "labels": labels, "by": str(agent.id)}])
        else:
            raise ValueError("Unknown action.")
    except Conflict as exc:
        return await _conversation(request, session, conversation_id, error=_sentence(str(exc)), status=409, draft=text)
    except ValueError as exc:
        return await _conversation(request, session, conversation_id, error=_sentence(str(exc)), status=422, draft=text)
    raise web.HTTPSeeOther(location=f"/console/conversations/{conversation_id}{anchor}")


def _attachments(form: Any) -> list[Attachment]:
    url = str(form.get("attachment_url", "")).strip()
    if not url:
        return []
    if not url.lower().startswith(("https://", "http://")) or len(url) > 2000 or any(c.isspace() for c in url):
        raise ValueError("attachment: the attachment must be a web address starting with https://")
    return [Attachment(type="file", url=url, name=url.rsplit("/", 1)[-1][:200] or None)]


def _sentence(message: str) -> str:
    """``text: a reply needs text`` reads as "Text: a reply needs text." on a page."""
    field, sep, rest = message.partition(": ")
    if sep and field.isidentifier():
        message = f"{field.replace('_', ' ').capitalize()}: {rest}"
    message = message[0].upper() + message[1:] if message else message
    return message if message.endswith(".") else message + "."


# -- customers -------------------------------------------------------------------
@page
async def customers_page(request: web.Request) -> web.StreamResponse:
    session = await require(request, ALL_ROLES)
    q = (request.query.get("q") or "").strip()[:200]
    listing = await customers.list_customers(db_of(request), limit=100, q=q or None)
    return render("customers.html", items=listing.items, q=q, **_base(session, "customers"))


@page
async def customer_page(request: web.Request) -> web.StreamResponse:
    session = await require(request, ALL_ROLES)
    db = db_of(request)
    customer_id = _uuid(request.match_info["customer_id"])
    try:
        customer = await customers.get_customer(db, customer_id)
    except NotFound:
        raise NotFound("There is no such customer.") from None
    panel = await inbox.customer_panel(db, customer_id)
    panel["insights"] = await panel_insights(db, customer_id)
    if session.agent.role == "marketer":
        panel["conversations"] = []  # marketers do not read conversations
    return render("customer.html", customer=customer, panel=panel, now=utcnow(), **_base(session, "customers"))


# -- admin ------------------------------------------------------------------------
@page
async def admin_page(request: web.Request) -> web.StreamResponse:
    session = await require(request, ("admin",))
    return await _admin(request, session)


async def _admin(request: web.Request, session: Session, error: str | None = None, status: int = 200,
                 done: str | None = None) -> web.Response:
    db = db_of(request)
    settings = await teams.agent_settings(db)
    people = [{**a.to_dict(), **settings.get(a.id, {"presence": "offline", "max_chats": 5, "teams": []})}
              for a in await accounts.list_agents(db)]
    return render("admin.html", status, people=people, teams=await teams.list_teams(db), canned=await teams.list_canned(db),
                  policies=await teams.list_sla_policies(db), priorities=PRIORITIES, error=error,
                  done=done or request.query.get("done"), **_base(session, "admin"))


@page
async def admin_action(request: web.Request) -> web.StreamResponse:
    session = await require(request, ("admin",))
    form = await request.post()
    check_csrf(session, form)
    what = request.match_info["what"]
    db = db_of(request)
    try:
        if what == "agents":
            team_names = [t.strip() for t in str(form.get("teams", "")).split(",") if t.strip()]
            for name in team_names:
                teams.check_name(name, "teams")
            record, _token = await accounts.create_agent(db, email=str(form.get("email", "")), name=str(form.get("name", "")),
                                                         role=str(form.get("role", "")), password=str(form.get("password", "")) or None)
            await teams.add_agent_to_teams(db, record.id, team_names)
            done = f"Created {record.email}. They can log in with the password you set."
        elif what == "teams":
            team, changes = await teams.create_team(db, str(form.get("name", "")).strip(), [])
            publish(request, changes)
            done = f"Created team {team['name']}."
        elif what == "canned":
            canned = await teams.create_canned(db, str(form.get("shortcut", "")).strip().lstrip("/"), str(form.get("text", "")).strip()
                                               or _raise("text: the response needs text"))
            done = f"Added /{canned['shortcut']}."
        elif what == "sla":
            team = str(form.get("team", "")).strip() or None
            first = _minutes(form.get("first_response_minutes"), "first response")
            resolution = _minutes(form.get("resolution_minutes"), "resolution")
            await teams.set_sla_policy(db, team=team, priority=str(form.get("priority", "")), first_response_seconds=first,
                                       resolution_seconds=resolution)
            done = "Saved the SLA targets."
        else:
            raise NotFound("There is no such admin form.")
    except (accounts.AgentError, ValueError, Conflict) as exc:
        return await _admin(request, session, error=_sentence(str(exc)), status=409 if isinstance(exc, Conflict) or "already exists" in str(exc) else 422)
    raise web.HTTPSeeOther(location=f"/console/admin?done={quote_path(done)}")


def _raise(message: str) -> str:
    raise ValueError(message)


def _minutes(value: Any, what: str) -> int | None:
    text = str(value or "").strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 525600:
        raise ValueError(f"{what} target must be a whole number of minutes")
    return int(text) * 60


