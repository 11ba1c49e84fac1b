"""Scoring on demand through the API: ``POST /api/v1/insights/score``.

Declared here, where the whole service is assembled, because it runs the
insights package and the bot's API may not import it (docs/architecture.md).
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from bot.api.endpoints import route
from bot.services import SERVICES
from crm_store.agents import AgentRecord
from insights.scoring import score_customers


class ScoreQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recommendations: Literal["true", "false"] = "true"


@route("POST", "/insights/score", summary="Recompute every customer's scores now", roles=("admin", "marketer"), query=ScoreQuery,
       tag="insights")
async def post_score(request: web.Request, agent: AgentRecord, query: ScoreQuery) -> dict[str, Any]:
    run = await score_customers(request.app[SERVICES].db, recommendations=10 if query.recommendations == "true" else 0)
    return run.as_json()


