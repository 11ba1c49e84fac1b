"""Who the token belongs to."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.api.endpoints import route
from bot.api.schemas import AgentOut
from crm_store.agents import AgentRecord


@route("GET", "/agents/me", summary="The account this token belongs to", response=AgentOut, tag="agents")
async def get_me(request: web.Request, agent: AgentRecord) -> dict[str, Any]:
    return agent.to_dict()
