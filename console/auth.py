"""Console logins: the session cookie, CSRF tokens and role checks of every page.

The session cookie is HttpOnly and SameSite=Lax and scoped to ``/console``;
each session has its own CSRF token that every form carries.  The login
form itself is protected by a double-submit token (cookie and field), since
there is no session yet to hold one.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bot.services import SERVICES
from crm_store import sessions
from crm_store.database import Database
from crm_store.sessions import Session

SESSION_COOKIE = "dgl_session"
LOGIN_COOKIE = "dgl_login"
COOKIE_PATH = "/console"
AGENT_ROLES = ("admin", "agent")
ALL_ROLES = ("admin", "agent", "marketer")
PASSWORD_PATH = "/console/password"
UNLOCKED_PATHS = (PASSWORD_PATH, "/console/logout")
SESSION_KEY: web.AppKey[Any] = web.AppKey("console_session", object)


class Forbidden(Exception):
    """The page exists but the role may not see it (rendered as a 403 page)."""


class BadForm(Exception):
    """A form the console refuses; the message is shown on the page."""

    def __init__(self, message: str, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def db_of(request: web.Request) -> Database:
    db = request.app[SERVICES].db
    if db is None:
        raise web.HTTPServiceUnavailable(text="starting")
    return db


async def current_session(request: web.Request) -> Session | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return await sessions.session_for(db_of(request), token)


async def require(request: web.Request, roles: tuple[str, ...] = ALL_ROLES) -> Session:
    """The logged-in session with one of ``roles``; otherwise off to the login page, or a 403."""
    session = await current_session(request)
    if session is None:
        if request.method == "GET" and not request.headers.get("X-Partial"):
            target = request.path_qs if request.path_qs.startswith("/console") else "/console"
            raise web.HTTPSeeOther(location=f"/console/login?next={quote_path(target)}")
        raise web.HTTPUnauthorized(text="log in again", content_type="text/plain")
    if session.agent.must_change_password and request.path not in UNLOCKED_PATHS:
        # a one-time password opens nothing but the page that replaces it (and logging out)
        if request.method == "GET" and not request.headers.get("X-Partial"):
            raise web.HTTPSeeOther(location=PASSWORD_PATH)
        raise Forbidden("Change your one-time password first (/console/password).")
    if session.agent.role not in roles:
        raise Forbidden(f"The {session.agent.role} role cannot open this page.")
    return session


def check_csrf(session: Session, form: Any) -> None:
    sent = form.get("csrf", "")
    if not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf_token):
        raise BadForm("This form has expired. Reload the page and try again.", 403, "csrf")


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, path=COOKIE_PATH, httponly=True, samesite="Lax", secure=request.secure,
                        max_age=int(sessions.SESSION_LIFETIME.total_seconds()))


def login_token(request: web.Request) -> str:
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)


def remember_login_token(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(LOGIN_COOKIE, token, path=COOKIE_PATH, httponly=True, samesite="Strict", secure=request.secure,
                        max_age=3600)


def check_login_token(request: web.Request, form: Any) -> None:
    cookie, sent = request.cookies.get(LOGIN_COOKIE, ""), form.get("csrf", "")
    if not cookie or not isinstance(sent, str) or not hmac.compare_digest(cookie, sent):
        raise BadForm("The login form expired. Please try again.", 403, "csrf")


def client_address(request: web.Request) -> str:
    return (request.remote or "unknown")[:64]


def safe_next(value: str | None) -> str:
    """Only a console path: a login link must not send anyone to another site."""
    if value and value.startswith("/console") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console"


def quote_path(value: str) -> str:
    """``value`` as one URL component (a ``next`` path, a flash message)."""
    return quote(value, safe="")
