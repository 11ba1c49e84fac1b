"""Accounts, teams, presence, SLA targets and canned responses.

Managing accounts, teams and SLA targets is for admins; agents read the
team list (to reassign) and set their own presence, which may hand them
waiting conversations at once.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from bot.api.endpoints import path_uuid, route
from bot.api.errors import store_errors, store_of
from bot.api.inbox import AGENTS, publish
from bot.api.schemas import Name, Strict
from contracts.http_errors import json_error
from crm_store import agents as accounts
from crm_store import teams as store
from crm_store.agents import AgentRecord

ADMIN = ("admin",)
Role = Literal["admin", "agent", "marketer"]
Presence = Literal["online", "away", "offline"]
Priority = Literal["low", "medium", "high", "urgent"]


class AgentDetail(BaseModel):
    id: str
    email: str
    name: str
    role: Role
    active: bool
    created_at: str
    presence: Presence
    max_chats: int
    teams: list[str]


class AgentList(BaseModel):
    items: list[AgentDetail]


class AgentCreate(Strict):
    email: str = Field(max_length=320, json_schema_extra={"format": "email"})
    name: str = Field(min_length=1, max_length=200)
    role: Role
    password: str | None = Field(default=None, min_length=8, max_length=200)
    teams: list[Name] = Field(default_factory=list, max_length=20)
    max_chats: int | None = Field(default=None, ge=0, le=100)


class AgentCreated(AgentDetail):
    token: str = Field(description="The API token, shown once.")


class AgentUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    active: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=200)
    max_chats: int | None = Field(default=None, ge=0, le=100)


class PresenceBody(Strict):
    presence: Presence | None = None
    max_chats: int | None = Field(default=None, ge=0, le=100)


class TeamOut(BaseModel):
    id: str
    name: str
    members: list[str]
    created_at: str


class TeamList(BaseModel):
    items: list[TeamOut]


class TeamCreate(Strict):
    name: Name = Field(min_length=1, max_length=64)
    members: list[uuid.UUID] = Field(default_factory=list, max_length=500)


class TeamMembers(Strict):
    members: list[uuid.UUID] = Field(max_length=500)


class SlaPolicyIn(Strict):
    team: Name | None = Field(default=None, max_length=64, description="Null: the default for teams without their own.")
    priority: Priority
    first_response_seconds: int | None = Field(default=None, ge=1, le=90 * 86400)
    resolution_seconds: int | None = Field(default=None, ge=1, le=365 * 86400)


class SlaPolicyOut(BaseModel):
    id: str
    team: str | None
    priority: Priority
    first_response_seconds: int | None
    resolution_seconds: int | None


class SlaPolicyList(BaseModel):
    items: list[SlaPolicyOut]


class CannedIn(Strict):
    shortcut: Name = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=4096)


class CannedOut(BaseModel):
    id: str
    shortcut: str
    text: str


class CannedList(BaseModel):
    items: list[CannedOut]


async def _detail(request: web.Request, agent: AgentRecord) -> dict[str, Any]:
    settings = (await store.agent_settings(store_of(request), [agent.id])).get(agent.id, {})
    return {**agent.to_dict(), "presence": settings.get("presence", "offline"),
            "max_chats": settings.get("max_chats", store.DEFAULT_MAX_CHATS), "teams": settings.get("teams", [])}


# -- accounts --------------------------------------------------------------------
@route("GET", "/agents", summary="Every account with presence, chat limit and teams", roles=AGENTS, response=AgentList,
       tag="agents")
async def list_agents(request: web.Request, agent: AgentRecord) -> dict[str, Any]:
    db = store_of(request)
    settings = await store.agent_settings(db)
    items = []
    for record in await accounts.list_agents(db):
        extra = settings.get(record.id, {"presence": "offline", "max_chats": store.DEFAULT_MAX_CHATS, "teams": []})
        items.append({**record.to_dict(), **extra})
    return {"items": items}


@route("POST", "/agents", summary="Create an account (its API token is shown once)", roles=ADMIN, body=AgentCreate,
       response=AgentCreated, status=201, tag="agents")
async def create_agent(request: web.Request, agent: AgentRecord, body: AgentCreate) -> dict[str, Any]:
    db = store_of(request)
    for name in body.teams:
        with store_errors("teams"):
            store.check_name(name, "teams")
    try:
        record, token = await accounts.create_agent(db, email=body.email, name=body.name, role=body.role, password=body.password)
    except accounts.AgentError as exc:
        status = 409 if "already exists" in str(exc) else 422
        raise json_error(status, "conflict" if status == 409 else "invalid_field", str(exc), exc.field) from None
    await store.add_agent_to_teams(db, record.id, body.teams)
    if body.max_chats is not None:
        await store.set_presence(db, record.id, max_chats=body.max_chats)
    return {**await _detail(request, record), "token": token}


@route("PATCH", "/agents/{agent_id}", summary="Change an account's name, role, password, limit or deactivate it",
       roles=ADMIN, body=AgentUpdate, response=AgentDetail, tag="agents")
async def update_agent(request: web.Request, agent: AgentRecord, body: AgentUpdate) -> dict[str, Any]:
    db = store_of(request)
    agent_id = path_uuid(request, "agent_id")
    if await accounts.get_agent(db, agent_id) is None:
        raise json_error(404, "not_found", f"agent {agent_id} does not exist", "agent_id")
    if agent_id == agent.id and (body.active is False or (body.role is not None and body.role != "admin")):
        raise json_error(409, "conflict", "an admin cannot demote or deactivate their own account", "role")
    try:
        record = await accounts.update_agent(db, agent_id, name=body.name, role=body.role, active=body.active,
                                             password=body.password)
    except accounts.AgentError as exc:
        raise json_error(422, "invalid_field", str(exc), exc.field) from None
    if body.max_chats is not None:
        publish(request, await store.set_presence(db, agent_id, max_chats=body.max_chats))
    return await _detail(request, record)


@route("POST", "/agents/me/presence", summary="Go online, away or offline; set how many chats you take at once",
       roles=AGENTS, body=PresenceBody, response=AgentDetail, tag="agents")
async def set_presence(request: web.Request, agent: AgentRecord, body: PresenceBody) -> dict[str, Any]:
    with store_errors("presence"):
        changes = await store.set_presence(store_of(request), agent.id, body.presence, body.max_chats)
    publish(request, changes)
    return await _detail(request, agent)


# -- teams -----------------------------------------------------------------------
@route("GET", "/teams", summary="Teams and their members", roles=AGENTS, response=TeamList, tag="teams")
async def list_teams(request: web.Request, agent: AgentRecord) -> dict[str, Any]:
    return {"items": await store.list_teams(store_of(request))}


@route("POST", "/teams", summary="Create a team (its name is what the bot's handoffs name)", roles=ADMIN, body=TeamCreate,
       response=TeamOut, status=201, tag="teams")
async def create_team(request: web.Request, agent: AgentRecord, body: TeamCreate) -> dict[str, Any]:
    with store_errors("name"):
        team, changes = await store.create_team(store_of(request), body.name, body.members)
    publish(request, changes)
    return team


@route("PUT", "/teams/{team_id}/members", summary="Replace a team's members", roles=ADMIN, body=TeamMembers,
       response=TeamOut, tag="teams")
async def set_team_members(request: web.Request, agent: AgentRecord, body: TeamMembers) -> dict[str, Any]:
    with store_errors("members"):
        team, changes = await store.set_members(store_of(request), path_uuid(request, "team_id"), body.members)
    publish(request, changes)
    return team


# -- SLA targets --------------------------------------------------------------------
@route("GET", "/sla-policies", summary="First-response and resolution targets per team and priority", roles=AGENTS,
       response=SlaPolicyList, tag="reports")
async def list_sla_policies(request: web.Request, agent: AgentRecord) -> dict[str, Any]:
    return {"items": await store.list_sla_policies(store_of(request))}


@route("PUT", "/sla-policies", summary="Set the targets of one team and priority", roles=ADMIN, body=SlaPolicyIn,
       response=SlaPolicyOut, tag="reports")
async def set_sla_policy(request: web.Request, agent: AgentRecord, body: SlaPolicyIn) -> dict[str, Any]:
    with store_errors("team"):
        return await store.set_sla_policy(store_of(request), team=body.team, priority=body.priority,
                                          first_response_seconds=body.first_response_seconds,
                                          resolution_seconds=body.resolution_seconds)


# -- canned responses -----------------------------------------------------------------
@route("GET", "/canned-responses", summary="Canned responses, used as /shortcut in a reply", roles=AGENTS,
       response=CannedList, tag="inbox")
async def list_canned(request: web.Request, agent: AgentRecord) -> dict[str, Any]:
    return {"items": await store.list_canned(store_of(request))}


@route("POST", "/canned-responses", summary="Add a canned response", roles=AGENTS, body=CannedIn, response=CannedOut,
       status=201, tag="inbox")
async def create_canned(request: web.Request, agent: AgentRecord, body: CannedIn) -> dict[str, Any]:
    with store_errors("shortcut"):
        return await store.create_canned(store_of(request), body.shortcut, body.text)


@route("DELETE", "/canned-responses/{canned_id}", summary="Remove a canned response", roles=ADMIN, status=204,
       tag="inbox")
async def delete_canned(request: web.Request, agent: AgentRecord) -> web.StreamResponse:
    with store_errors():
        await store.delete_canned(store_of(request), path_uuid(request, "canned_id"))
    return web.Response(status=204)
