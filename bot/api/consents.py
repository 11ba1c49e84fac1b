"""Consent: record a grant or withdrawal, read its history, list consents due for re-confirmation."""

from __future__ import annotations

import re
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field, field_validator

from bot.api.endpoints import path_uuid, route
from bot.api.errors import store_errors, store_of
from bot.api.schemas import Strict
from crm_store import consents as store
from crm_store.agents import AgentRecord

CHANNEL = re.compile(r"^(\*|[a-z][a-z0-9_\-]{0,31})$")


class ConsentIn(Strict):
    channel: str = Field(max_length=32, description="A channel name, or * for every channel.",
                         json_schema_extra={"pattern": CHANNEL.pattern})
    purpose: Literal["marketing", "service", "marketing_night"]
    granted: bool
    source: str = Field(min_length=1, max_length=64, description="Where it was given: a form, a call, an import ...")

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        if not CHANNEL.match(value):
            raise ValueError("must be a channel name (lower case) or *")
        return value


class ConsentsOut(BaseModel):
    customer_id: str
    consents: list[dict[str, Any]]


class ReconfirmQuery(Strict):
    limit: int = Field(default=200, ge=1, le=1000)


@route("PUT", "/customers/{customer_id}/consents", summary="Record a consent grant or withdrawal (audited)", body=ConsentIn,
       response=ConsentsOut, tag="consents")
async def put_consent(request: web.Request, agent: AgentRecord, body: ConsentIn) -> dict[str, Any]:
    change = store.ConsentChange(path_uuid(request, "customer_id"), body.channel, body.purpose, body.granted)
    with store_errors():
        return await store.set_consent(store_of(request), change, source=body.source, agent_id=agent.id)


@route("GET", "/customers/{customer_id}/consents/history", summary="Every grant and withdrawal of a customer, oldest first",
       tag="consents")
async def consent_history(request: web.Request, agent: AgentRecord) -> dict[str, Any]:
    return {"items": await store.history(store_of(request), path_uuid(request, "customer_id"))}


@route("GET", "/consents/reconfirm", summary="Marketing consents older than two years, to confirm again", query=ReconfirmQuery,
       roles=("admin", "marketer"), tag="consents")
async def consents_to_reconfirm(request: web.Request, agent: AgentRecord, query: ReconfirmQuery) -> dict[str, Any]:
    return {"items": await store.due_for_reconfirmation(store_of(request), limit=query.limit)}
