"""The store's errors as the API's JSON errors, and the store itself as handlers reach it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from bot.services import SERVICES
from contracts.http_errors import json_error
from crm_store.database import Database
from crm_store.errors import Conflict, NotFound


def store_of(request: web.Request) -> Database:
    """The request's store; 503 while the service starts or stops."""
    db = request.app[SERVICES].db
    if db is None:
        raise json_error(503, "starting", "the service is starting or stopping")
    return db


@contextmanager
def store_errors(field: str | None = None, *, invalid_status: int = 422) -> Iterator[None]:
    """NotFound and Conflict become 404 and 409; a ValueError becomes ``invalid_status`` (400 for what
    came in the query, 422 for a body) naming its field: the one its message starts with
    ("field: message"), else ``field``."""
    try:
        yield
    except NotFound as exc:
        raise json_error(404, "not_found", str(exc), exc.field) from None
    except Conflict as exc:
        raise json_error(409, "conflict", str(exc), exc.field) from None
    except ValueError as exc:
        name, sep, rest = str(exc).partition(": ")
        if sep and name.isidentifier():
            field, message = name, rest
        else:
            message = str(exc).removeprefix(f"{field} ") if field else str(exc)
        raise json_error(invalid_status, "invalid_field", f"{field}: {message}" if field else message, field) from None
