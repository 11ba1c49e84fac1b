"""One error shape for every HTTP answer that is not a success.

``{"error": {"code": ..., "message": ..., "field": ...}}`` with a 4xx status:
clients of the API, the webhooks and the widget all parse the same thing.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from contracts.untrusted import Untrusted, loads_checked

_STATUS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    405: web.HTTPMethodNotAllowed,
    409: web.HTTPConflict,
    413: web.HTTPRequestEntityTooLarge,
    415: web.HTTPUnsupportedMediaType,
    422: web.HTTPUnprocessableEntity,
    429: web.HTTPTooManyRequests,
    500: web.HTTPInternalServerError,
    503: web.HTTPServiceUnavailable,
}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


def json_error(status: int, code: str, message: str, field: str | None = None, **kwargs: Any) -> web.HTTPException:
    """An exception to ``raise`` that answers with the shared JSON error body."""
    cls = _STATUS.get(status, web.HTTPBadRequest)
    text = json.dumps(error_body(code, message, field), ensure_ascii=False)
    if cls is web.HTTPMethodNotAllowed:
        return web.HTTPMethodNotAllowed(kwargs.get("method", ""), kwargs.get("allowed", ()), text=text, content_type="application/json")
    if cls is web.HTTPRequestEntityTooLarge:
        return web.HTTPRequestEntityTooLarge(
            max_size=kwargs.get("max_size", 0), actual_size=kwargs.get("actual_size", 0), text=text, content_type="application/json"
        )
    return cls(text=text, content_type="application/json", headers=kwargs.get("headers"))


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 4xx naming what is wrong."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise json_error(413, "body_too_large", f"request body exceeds {request.app._client_max_size} bytes",  # noqa: SLF001
                         max_size=request.app._client_max_size, actual_size=request.content_length or 0) from None  # noqa: SLF001
    if not raw:
        raise json_error(400, "invalid_json", "request body is empty; expected a JSON object")
    try:
        data = loads_checked(raw)
    except Untrusted as exc:
        raise json_error(400, exc.code, f"request body refused: {exc}", exc.field) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise json_error(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise json_error(400, "invalid_json", "request body must be a JSON object")
    return data


def require_str(data: dict[str, Any], field: str, *, max_length: int, allow_empty: bool = False) -> str:
    value = data.get(field)
    if value is None:
        raise json_error(400, "missing_field", f"{field} is required", field)
    if not isinstance(value, str):
        raise json_error(400, "invalid_field", f"{field} must be a string", field)
    if not allow_empty and not value.strip():
        raise json_error(400, "invalid_field", f"{field} must not be empty", field)
    if len(value) > max_length:
        raise json_error(413 if max_length > 1000 else 400, "field_too_long", f"{field} is longer than {max_length} characters", field,
                         max_size=max_length, actual_size=len(value))
    return value
