"""The agents' inbox and what they do to a conversation: claim, assign, hand back, snooze,
resolve, reopen, reply, note, labels; and the SLA report.

Each action is one store transaction; what it changed is then published to
the live feed and, for a reply, the delivery worker is woken so the message
leaves at once instead of at the worker's next poll.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, Field, field_validator

from bot.api.endpoints import path_uuid, route
from bot.api.errors import store_errors, store_of
from bot.api.schemas import ConversationOut, MessageOut, Status, Strict, Tag, in_utc
from bot.services import SERVICES
from contracts.http_errors import json_error
from contracts.messages import Attachment
from crm_store import assignment
from crm_store import inbox as store
from crm_store.agents import AgentRecord
from crm_store.assignment import Change
from crm_store.columns import utcnow
from crm_store.database import Database

AGENTS = ("admin", "agent")
ATTACHMENT_TYPES = ("image", "document", "audio", "video", "file")


# -- models --------------------------------------------------------------------
class TargetOut(BaseModel):
    due_at: str
    done_at: str | None
    seconds_left: int | None = Field(description="Negative once the target is missed; null when done.")
    breached: bool


class SlaOut(BaseModel):
    handed_off_at: str | None
    first_response: TargetOut | None
    resolution: TargetOut | None


class InboxItem(ConversationOut):
    customer_name: str | None
    customer_email: str | None
    customer_display_name: str = Field(description="The name, else the e-mail, phone, platform username, else \"Visitor #\" and a short id.")
    assignee_name: str | None
    labels: list[str]
    last_text: str | None
    sla: SlaOut


class InboxPage(BaseModel):
    items: list[InboxItem]


class InboxQuery(Strict):
    view: Literal["mine", "team", "unassigned", "all"] = "all"
    channel: str | None = Field(default=None, max_length=32)
    status: Status | None = None
    label: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=100_000)


class AssignBody(Strict):
    agent_id: uuid.UUID | None = Field(description="The agent to hold it; null puts it back in its team's queue.")


class SnoozeBody(Strict):
    until: AwareDatetime = Field(description="When it comes back, with a time zone (ISO 8601); a time already past ends it at once.")

    _utc = field_validator("until")(classmethod(lambda cls, v: in_utc(v)))


class AttachmentIn(Strict):
    url: AnyHttpUrl
    type: Literal["image", "document", "audio", "video", "file"] = "file"
    name: str | None = Field(default=None, max_length=200)


class ReplyBody(Strict):
    text: str | None = Field(default=None, max_length=4096,
                             description="`/shortcut` at the start inserts a canned response; {first_name} and other customer fields are filled in.")
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=10)

    @field_validator("text")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return value if value and value.strip() else None


class NoteBody(Strict):
    text: str = Field(min_length=1, max_length=4096)


class LabelsBody(Strict):
    add: list[Tag] = Field(default_factory=list, max_length=50)
    remove: list[Tag] = Field(default_factory=list, max_length=50)


class LabelsOut(BaseModel):
    labels: list[str]


class ReplyOut(BaseModel):
    message: MessageOut
    conversation: InboxItem


class AuditOut(BaseModel):
    id: str
    conversation_id: str
    action: str
    agent_id: str | None
    agent_name: str | None
    details: dict[str, Any]
    created_at: str


class AuditPage(BaseModel):
    items: list[AuditOut]


class SlaReportQuery(Strict):
    since: AwareDatetime | None = Field(default=None, description="Default: 7 days ago.")
    until: AwareDatetime | None = Field(default=None, description="Default: now.")
    team: str | None = Field(default=None, max_length=64)

    _utc = field_validator("since", "until")(classmethod(lambda cls, v: in_utc(v)))


class SlaGroup(BaseModel):
    team: str | None
    priority: str
    conversations: int
    responded: int
    resolved: int
    first_response_breached: int
    resolution_breached: int
    average_first_response_seconds: float | None


class SlaBreach(BaseModel):
    conversation_id: str
    team: str | None
    priority: str
    target: Literal["first_response", "resolution"]
    due_at: str
    done_at: str | None


class SlaReport(BaseModel):
    since: str
    until: str
    groups: list[SlaGroup]
    breaches: list[SlaBreach]


# -- helpers shared with the console ------------------------------------------
def publish(request: web.Request, changes: list[Change], extra: list[dict[str, Any]] | None = None) -> None:
    live = request.app[SERVICES].live
    if live is not None:
        live.publish(*[c.event() for c in changes], *(extra or []))


def wake_delivery(request: web.Request) -> None:
    delivery = request.app[SERVICES].delivery
    if delivery is not None:
        delivery.wake()


async def act(request: web.Request, db: Database, action: str, conversation_id: uuid.UUID, agent: AgentRecord,
              **kwargs: Any) -> Change:
    """Run one routing action in a transaction; drain the queue when it freed a seat."""
    fn = {"claim": assignment.claim, "assign": assignment.assign, "hand_back": assignment.hand_back, "snooze": assignment.snooze,
          "resolve": assignment.resolve, "reopen": assignment.reopen}[action]

    def run(conn: Any) -> list[Change]:
        now = utcnow()
        args = [conn, conversation_id, agent.id]
        if action == "assign":
            args.append(kwargs["to_agent"])
        if action == "snooze":
            args.append(kwargs["until"])
        change = fn(*args, now)
        changes = [change]
        if action in ("assign", "hand_back", "resolve", "snooze"):
            changes += assignment.drain_queues(conn, None if action != "assign" else [change.team] if change.team else [], now)
        return changes

    changes = await db.run_in_transaction(run)
    publish(request, changes)
    return changes[0]


async def send_reply(request: web.Request, db: Database, conversation_id: uuid.UUID, agent: AgentRecord, text: str | None,
                     attachments: list[Attachment]) -> store.Written:
    written = await store.reply(db, conversation_id, agent.id, text, [a.to_dict() for a in attachments])
    channel = request.app[SERVICES].channels.get(written.message["channel"])
    if channel is not None:
        channel.note_queued()
    wake_delivery(request)
    publish(request, written.changes, [_message_event(written.message)])
    return written


async def add_note(request: web.Request, db: Database, conversation_id: uuid.UUID, agent: AgentRecord, text: str) -> store.Written:
    written = await store.add_note(db, conversation_id, agent.id, text)
    publish(request, [], [_message_event(written.message)])
    return written


def _message_event(message: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "conversation_id": message["conversation_id"], "customer_id": message["customer_id"],
            "message_id": message["id"], "channel": message["channel"]}


# -- routes ---------------------------------------------------------------------
@route("GET", "/inbox", summary="The agent's inbox: mine, my teams', unassigned or all, with SLA time left",
       roles=AGENTS, query=InboxQuery, response=InboxPage, tag="inbox")
async def get_inbox(request: web.Request, agent: AgentRecord, query: InboxQuery) -> dict[str, Any]:
    db = store_of(request)
    publish(request, await db.run_in_transaction(assignment.wake_snoozed, utcnow()))
    with store_errors():
        items = await store.inbox(db, agent.id, view=query.view, channel=query.channel, status=query.status,
                                  label=query.label, limit=query.limit, offset=query.offset)
    return {"items": items}


async def _answer(request: web.Request, conversation_id: uuid.UUID) -> dict[str, Any]:
    with store_errors():
        return await store.conversation_detail(store_of(request), conversation_id)


@dataclass(frozen=True, slots=True)
class InboxAction:
    """One of the agents' actions on a conversation, as an endpoint: ``POST /conversations/{id}/<path>``."""

    name: str
    path: str
    summary: str
    body: type[BaseModel] | None = None
    #: The field a refused action names.
    field: str | None = None
    #: The routing call's extra arguments, from the body.
    arguments: Callable[[Any], dict[str, Any]] = lambda body: {}


INBOX_ACTIONS = (
    InboxAction("claim", "claim", "Take an unassigned conversation (one of two racing agents wins)"),
    InboxAction("assign", "assign", "Give the conversation to an agent, or back to its queue", AssignBody,
                arguments=lambda body: {"to_agent": body.agent_id}),
    InboxAction("hand_back", "hand-back", "Let the bot answer again"),
    InboxAction("snooze", "snooze", "Hide it until a time (a customer message wakes it earlier)", SnoozeBody, "until",
                lambda body: {"until": body.until.astimezone(dt.UTC)}),
    InboxAction("resolve", "resolve", "Mark it resolved (sets resolution time)"),
    InboxAction("reopen", "reopen", "Reopen a resolved conversation"),
)


def _action_endpoint(action: InboxAction) -> None:
    async def run_action(request: web.Request, agent: AgentRecord, body: BaseModel | None = None) -> dict[str, Any]:
        conversation_id = path_uuid(request, "conversation_id")
        with store_errors(action.field):
            await act(request, store_of(request), action.name, conversation_id, agent,
                      **(action.arguments(body) if body is not None else {}))
        return await _answer(request, conversation_id)

    run_action.__name__ = f"{action.name}_conversation"
    route("POST", f"/conversations/{{conversation_id}}/{action.path}", summary=action.summary, roles=AGENTS,
          body=action.body, response=InboxItem, tag="inbox")(run_action)


for _action in INBOX_ACTIONS:
    _action_endpoint(_action)


@route("POST", "/conversations/{conversation_id}/reply", summary="Answer the customer on the conversation's channel",
       roles=AGENTS, body=ReplyBody, response=ReplyOut, status=201, tag="inbox")
async def reply_to_conversation(request: web.Request, agent: AgentRecord, body: ReplyBody) -> dict[str, Any]:
    conversation_id = path_uuid(request, "conversation_id")
    attachments = [Attachment(type=a.type, url=str(a.url), name=a.name) for a in body.attachments]
    with store_errors("text"):
        written = await send_reply(request, store_of(request), conversation_id, agent, body.text, attachments)
    return {"message": written.message, "conversation": await _answer(request, conversation_id)}


@route("POST", "/conversations/{conversation_id}/notes", summary="An internal note (never sent to the customer)",
       roles=AGENTS, body=NoteBody, response=MessageOut, status=201, tag="inbox")
async def add_conversation_note(request: web.Request, agent: AgentRecord, body: NoteBody) -> dict[str, Any]:
    with store_errors():
        written = await add_note(request, store_of(request), path_uuid(request, "conversation_id"), agent, body.text)
    return written.message


@route("POST", "/conversations/{conversation_id}/labels", summary="Add and remove labels", roles=AGENTS, body=LabelsBody,
       response=LabelsOut, tag="inbox")
async def change_conversation_labels(request: web.Request, agent: AgentRecord, body: LabelsBody) -> dict[str, Any]:
    conversation_id = path_uuid(request, "conversation_id")
    with store_errors("labels"):
        labels = await store.change_labels(store_of(request), conversation_id, agent.id, body.add, body.remove)
    publish(request, [], [{"type": "conversation", "action": "labels", "conversation_id": str(conversation_id),
                           "labels": labels, "by": str(agent.id)}])
    return {"labels": labels}


@route("GET", "/conversations/{conversation_id}/events", summary="Audit trail: who changed what and when", roles=AGENTS,
       response=AuditPage, tag="inbox")
async def list_conversation_events(request: web.Request, agent: AgentRecord) -> dict[str, Any]:
    conversation_id = path_uuid(request, "conversation_id")
    with store_errors():
        await store.conversation_detail(store_of(request), conversation_id)
    return {"items": await store.audit_events(store_of(request), conversation_id)}


@route("GET", "/reports/sla", summary="First-response and resolution targets met and missed, by team and priority",
       roles=AGENTS, query=SlaReportQuery, response=SlaReport, tag="reports")
async def sla_report(request: web.Request, agent: AgentRecord, query: SlaReportQuery) -> dict[str, Any]:
    until = query.until or utcnow()
    since = query.since or until - dt.timedelta(days=7)
    since = min(since, until)  # a window that ends before it starts is empty (the document cannot say one must precede the other)
    return await store.sla_report(store_of(request), since=since, until=until, team=query.team)
