"""Routes of ``/api/v1`` declared once, with what OpenAPI needs to describe them.

Each handler is registered with its path, roles, and the pydantic models of
its query, body and answer.  The same declarations do the Bearer check,
validate input into typed objects (a 4xx naming the field otherwise) and
generate ``/api/v1/openapi.json``, so the document cannot drift from the code.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from bot.services import SERVICES
from contracts.http_errors import json_error, read_json_object
from crm_store import segment_rule_schema
from crm_store.agents import AgentRecord, agent_for_token

PREFIX = "/api/v1"
ALL_ROLES = ("admin", "agent", "marketer")

Handler = Callable[..., Awaitable[Any]]


@dataclass(slots=True)
class RouteSpec:
    method: str
    path: str
    handler: Handler
    summary: str
    roles: tuple[str, ...]
    query: type[BaseModel] | None
    body: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    tag: str


ROUTES: list[RouteSpec] = []


def route(method: str, path: str, *, summary: str, roles: tuple[str, ...] = ALL_ROLES, query: type[BaseModel] | None = None,
          body: type[BaseModel] | None = None, response: type[BaseModel] | None = None, status: int = 200,
          tag: str = "default") -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append(RouteSpec(method, path, handler, summary, roles, query, body, response, status, tag))
        return handler

    return register


def validation_error(exc: ValidationError, where: str) -> web.HTTPException:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or where
    message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
    return json_error(422 if where == "body" else 400, "invalid_field", f"{field}: {message}", field)


def path_uuid(request: web.Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise json_error(404, "not_found", f"{name} is not a valid id", name) from None


async def authenticate(request: web.Request) -> AgentRecord:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise json_error(401, "unauthorized", "missing Bearer token in the Authorization header",
                         headers={"WWW-Authenticate": 'Bearer realm="dangol"'})
    db = request.app[SERVICES].db
    if db is None:
        raise json_error(503, "starting", "the service is starting or stopping")
    agent = await agent_for_token(db, token.strip())
    if agent is None:
        raise json_error(401, "unauthorized", "the token is not valid", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return agent


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


def validation_context(request: web.Request) -> dict[str, Any]:
    """What validators may need of the settings (phone numbers are read in ``default_region``)."""
    return {"default_region": request.app[SERVICES].settings.default_region}


def _wrap(spec: RouteSpec) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        agent = await authenticate(request)
        if agent.role not in spec.roles:
            raise json_error(403, "forbidden", f"role {agent.role} may not {spec.method} {spec.path}")
        kwargs: dict[str, Any] = {}
        if spec.query is not None:
            try:
                # ``?channel=`` is a filter left empty (as a form sends it), not a channel named "": absent
                kwargs["query"] = spec.query.model_validate({k: v for k, v in request.query.items() if v != ""})
            except ValidationError as exc:
                raise validation_error(exc, "query") from None
        if spec.body is not None:
            data = await read_json_object(request)
            try:
                kwargs["body"] = spec.body.model_validate(data, context=validation_context(request))
            except ValidationError as exc:
                raise validation_error(exc, "body") from None
        result = await spec.handler(request, agent, **kwargs)
        if isinstance(result, web.StreamResponse):
            return result
        return web.json_response(result, status=spec.status, dumps=_dumps)

    return handler


def mount(app: web.Application) -> None:
    for spec in ROUTES:
        app.router.add_route(spec.method, PREFIX + spec.path, _wrap(spec))


def openapi_document() -> dict[str, Any]:
    models: list[type[BaseModel]] = []
    for spec in ROUTES:
        for model in (spec.body, spec.response):
            if model is not None and model not in models:
                models.append(model)
    _, top = models_json_schema([(m, "validation") for m in models], ref_template="#/components/schemas/{model}")
    schemas = top.get("$defs", {})
    error_schema = {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}},
    }
    schemas["Error"] = error_schema
    schemas.update(segment_rule_schema.components())  # a language of its own, described beside its compiler
    paths: dict[str, Any] = {}
    for spec in ROUTES:
        op: dict[str, Any] = {
            "summary": spec.summary, "tags": [spec.tag],
            "operationId": spec.handler.__name__,
            "description": f"Roles: {', '.join(spec.roles)}.",
            "security": [{"bearer": []}],
            "parameters": [],
            "responses": {
                str(spec.status): {"description": "OK", **({"content": {"application/json": {"schema": {
                    "$ref": f"#/components/schemas/{spec.response.__name__}"}}}} if spec.response else {})},
                "401": _err("Missing or invalid token"), "403": _err("Role not allowed"),
                "400": _err("Invalid input"),
                "404": _err("Not found (an id in the path, or one the body or query refers to)"),
                "503": _err("The store is unavailable or starting; retry after the Retry-After header's seconds"),
            },
        }
        if spec.method != "GET":
            op["responses"]["409"] = _err("Conflicts with the current state (a name taken, a conversation held by someone else)")
        for name in re.findall(r"{(\w+)}", spec.path):
            op["parameters"].append({"name": name, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}})
        if spec.query is not None:
            for name, field in spec.query.model_fields.items():
                schema = spec.query.model_json_schema()["properties"][name]
                op["parameters"].append({"name": name, "in": "query", "required": field.is_required(), "schema": schema,
                                         "description": field.description or ""})
        if spec.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{spec.body.__name__}"}}}}
            op["responses"]["422"] = _err("Invalid body field")
            op["responses"]["413"] = _err("Body or a field too large")
        paths.setdefault(PREFIX + spec.path, {})[spec.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Dangol API", "version": "1"},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def _err(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
