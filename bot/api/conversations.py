"""Conversations and their messages (agents and admins; marketers do not read conversations)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from bot.api.endpoints import path_uuid, route
from bot.api.errors import store_errors, store_of
from bot.api.schemas import ConversationOut, ConversationPage, ConversationQuery, MessagePage, MessageQuery
from contracts.http_errors import json_error
from crm_store import conversations as store
from crm_store.agents import AgentRecord

READERS = ("admin", "agent")


@route("GET", "/conversations", summary="List conversations, newest first, by status, channel, customer or team",
       roles=READERS, query=ConversationQuery, response=ConversationPage, tag="conversations")
async def list_conversations(request: web.Request, agent: AgentRecord, query: ConversationQuery) -> dict[str, Any]:
    customer_id = None
    if query.customer_id:
        try:
            customer_id = uuid.UUID(query.customer_id)
        except ValueError:
            raise json_error(400, "invalid_field", "customer_id is not a valid id", "customer_id") from None
    with store_errors(invalid_status=400):
        page = await store.list_conversations(store_of(request), limit=query.limit, cursor=query.cursor, status=query.status,
                                              channel=query.channel, customer_id=customer_id, team=query.team)
    return {"items": page.items, "next_cursor": page.next_cursor}


@route("GET", "/conversations/{conversation_id}", summary="One conversation", roles=READERS, response=ConversationOut,
       tag="conversations")
async def get_conversation(request: web.Request, agent: AgentRecord) -> dict[str, Any]:
    with store_errors(invalid_status=400):
        return await store.get_conversation(store_of(request), path_uuid(request, "conversation_id"))


@route("GET", "/conversations/{conversation_id}/messages", summary="A conversation's messages, oldest first",
       roles=READERS, query=MessageQuery, response=MessagePage, tag="conversations")
async def list_messages(request: web.Request, agent: AgentRecord, query: MessageQuery) -> dict[str, Any]:
    with store_errors(invalid_status=400):
        page = await store.list_messages(store_of(request), path_uuid(request, "conversation_id"), limit=query.limit, cursor=query.cursor)
    return {"items": page.items, "next_cursor": page.next_cursor}
