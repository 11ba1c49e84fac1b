"""The change-password page.

An account made with a generated one-time password (``dangol agent create``
without ``--password``) is sent here after logging in, and every other page
redirects here until the password is changed (see :func:`console.auth.require`).
"""

from __future__ import annotations

from aiohttp import web

from console.auth import BadForm, check_csrf, db_of, require
from console.render import render
from crm_store import agents as accounts
from crm_store.sessions import Session


def _form(session: Session, *, error: str | None = None, field: str | None = None, status: int = 200) -> web.Response:
    return render("password.html", status, me=session.agent, csrf=session.csrf_token, nav="", error=error, field=field,
                  forced=session.agent.must_change_password)


async def password_form(request: web.Request) -> web.StreamResponse:
    session = await require(request)
    return _form(session)


async def password_submit(request: web.Request) -> web.StreamResponse:
    session = await require(request)
    form = await request.post()
    try:
        check_csrf(session, form)
    except BadForm as exc:
        return _form(session, error=str(exc), status=exc.status)
    current, new, again = (str(form.get(k, "")) for k in ("current_password", "new_password", "confirm_password"))
    if new != again:
        return _form(session, error="The two new passwords differ.", field="confirm_password", status=400)
    try:
        await accounts.change_own_password(db_of(request), session.agent.id, current, new)
    except accounts.AgentError as exc:
        message = str(exc)
        return _form(session, error=message[0].upper() + message[1:] + ".", field=exc.field, status=400)
    home = "/console/customers" if session.agent.role == "marketer" else "/console/inbox"
    raise web.HTTPSeeOther(location=home)
