"""The web console for agents, marketers and admins, mounted at ``/console``."""

from __future__ import annotations

from aiohttp import web

from console import campaign_pages, dashboards, pages, password
from console.live_socket import live
from console.render import STATIC


async def favicon(request: web.Request) -> web.FileResponse:
    """Browsers ask every site for /favicon.ico; an SVG answers them all (and the console links it)."""
    return web.FileResponse(STATIC / "favicon.svg", headers={"Content-Type": "image/svg+xml", "Cache-Control": "max-age=86400"})


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/console", pages.home)
    r.add_get("/console/", pages.home)
    r.add_get("/console/login", pages.login_form)
    r.add_post("/console/login", pages.login_submit)
    r.add_post("/console/logout", pages.logout)
    r.add_get("/console/password", password.password_form)
    r.add_post("/console/password", password.password_submit)
    r.add_get("/console/inbox", pages.inbox_page)
    r.add_post("/console/presence", pages.presence)
    r.add_get("/console/conversations/{conversation_id}", pages.conversation_page)
    r.add_post("/console/conversations/{conversation_id}", pages.conversation_action)
    r.add_get("/console/customers", pages.customers_page)
    r.add_get("/console/customers/{customer_id}", pages.customer_page)
    r.add_get("/console/admin", pages.admin_page)
    r.add_post("/console/admin/{what}", pages.admin_action)
    dashboards.setup(app)
    r.add_get("/console/live", live)
    campaign_pages.setup(r)
    r.add_static("/console/static", STATIC)
    r.add_get("/favicon.ico", favicon)
