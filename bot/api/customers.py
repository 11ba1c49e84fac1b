"""Customers: create, read, list, update, merge."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from bot.api.endpoints import path_uuid, route
from bot.api.errors import store_errors, store_of
from bot.api.schemas import CustomerCreate, CustomerOut, CustomerPage, CustomerQuery, CustomerUpdate, MergeRequest, check_phone
from bot.services import SERVICES
from contracts.http_errors import json_error
from crm_store import customers as store
from crm_store.agents import AgentRecord

WRITERS = ("admin", "agent")


@route("POST", "/customers", summary="Create a customer", roles=WRITERS, body=CustomerCreate, response=CustomerOut, status=201, tag="customers")
async def create_customer(request: web.Request, agent: AgentRecord, body: CustomerCreate) -> dict[str, Any]:
    with store_errors(invalid_status=400):
        return await store.create_customer(store_of(request), body.model_dump(exclude_none=True))


@route("GET", "/customers", summary="List customers, newest first, with filters", query=CustomerQuery, response=CustomerPage, tag="customers")
async def list_customers(request: web.Request, agent: AgentRecord, query: CustomerQuery) -> dict[str, Any]:
    phone = query.phone
    if phone:
        try:
            phone = check_phone(phone, request.app[SERVICES].settings.default_region)
        except ValueError as exc:
            raise json_error(400, "invalid_field", f"phone: {exc}", "phone") from None
    with store_errors(invalid_status=400):
        page = await store.list_customers(
            store_of(request), limit=query.limit, cursor=query.cursor, email=query.email, phone=phone, tag=query.tag,
            lifecycle_stage=query.lifecycle_stage, channel=query.channel, q=query.q,
        )
    return {"items": page.items, "next_cursor": page.next_cursor}


@route("GET", "/customers/{customer_id}", summary="One customer with identities and consents", response=CustomerOut, tag="customers")
async def get_customer(request: web.Request, agent: AgentRecord) -> dict[str, Any]:
    with store_errors(invalid_status=400):
        return await store.get_customer(store_of(request), path_uuid(request, "customer_id"))


@route("PATCH", "/customers/{customer_id}", summary="Update fields, attributes and tags", roles=WRITERS, body=CustomerUpdate,
       response=CustomerOut, tag="customers")
async def update_customer(request: web.Request, agent: AgentRecord, body: CustomerUpdate) -> dict[str, Any]:
    fields = body.model_dump(exclude_unset=True, exclude={"attributes", "tags", "add_tags", "remove_tags"})
    with store_errors(invalid_status=400):
        return await store.update_customer(
            store_of(request), path_uuid(request, "customer_id"), fields=fields, attributes=body.attributes,
            add_tags=body.add_tags, remove_tags=body.remove_tags, tags=body.tags,
        )


@route("POST", "/customers/{customer_id}/merge", summary="Fold another customer into this one", roles=WRITERS,
       body=MergeRequest, response=CustomerOut, tag="customers")
async def merge_customers(request: web.Request, agent: AgentRecord, body: MergeRequest) -> dict[str, Any]:
    try:
        other = uuid.UUID(body.other_id)
    except ValueError:
        raise json_error(422, "invalid_field", "other_id is not a valid id", "other_id") from None
    with store_errors(invalid_status=400):
        return await store.merge_customers(store_of(request), path_uuid(request, "customer_id"), other)
