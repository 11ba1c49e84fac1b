"""The REST API under ``/api/v1``."""

from __future__ import annotations

from aiohttp import web

from bot.api import (  # noqa: F401 - modules register their routes  # noqa: F401 - agents: inbox actions, accounts, teams, SLAs  # noqa: F401 - marketers: consent, segments, campaigns
    consents,
    conversations,
    customers,
    inbox,
    insights,  # noqa: F401 - events in, scores and dashboards' data out
    marketing,
    me,
    team_admin,
)
from bot.api.endpoints import PREFIX, mount, openapi_document


def setup(app: web.Application) -> None:
    mount(app)
    app.router.add_get(PREFIX + "/openapi.json", _openapi)


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())
