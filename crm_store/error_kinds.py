"""What a database error means for the caller: their input (4xx, naming the field) or the store's state (503).

A ``NOT NULL`` or ``UNIQUE`` violation is the request's doing and retrying
it will not help; only a store that is busy, unreachable or shutting down
deserves ``503`` with ``Retry-After``.  Both SQLite's and PostgreSQL's
(asyncpg's) errors are read here, where the SQL lives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

Kind = Literal["conflict", "invalid", "unavailable", "internal"]

# SQLSTATE classes: 08 connection, 40 rollback (serialization, deadlock), 53 resources, 57 operator intervention, 55P03 lock
_UNAVAILABLE_STATES = ("08", "40", "53", "57", "55P03")
_SQLITE_COLUMN = re.compile(r"constraint failed: (?:\w+)\.(\w+)")
_PG_KEY = re.compile(r"Key \(([^)]+)\)")


@dataclass(frozen=True, slots=True)
class StoreErrorKind:
    kind: Kind
    field: str | None
    message: str


def classify(exc: DBAPIError) -> StoreErrorKind:
    """The kind of a store error, and the column it names when there is one."""
    orig = exc.orig
    state = str(getattr(orig, "sqlstate", "") or "")
    if exc.connection_invalidated or isinstance(exc, InterfaceError) or state.startswith(_UNAVAILABLE_STATES):
        return StoreErrorKind("unavailable", None, "the message store is unavailable; retry later")
    text = str(orig) if orig is not None else str(exc)
    field = getattr(orig, "column_name", None) or _field_from(text)
    if isinstance(exc, IntegrityError) or state.startswith("23"):
        if "NOT NULL" in text or state == "23502":
            return StoreErrorKind("invalid", field, f"{field or 'a field'} must not be null")
        if "FOREIGN KEY" in text or state == "23503":
            return StoreErrorKind("invalid", field, f"{field or 'a field'} refers to something that does not exist")
        if "CHECK" in text or state == "23514":
            return StoreErrorKind("invalid", field, f"{field or 'a field'} has a value the store does not allow")
        return StoreErrorKind("conflict", field, f"{field or 'a record'} conflicts with an existing record")
    if state.startswith("22") or "DataError" in type(orig).__name__:
        return StoreErrorKind("invalid", field, "a value is not valid for the store (too long, out of range or malformed)")
    if isinstance(exc, OperationalError):
        return StoreErrorKind("unavailable", None, "the message store is unavailable; retry later")
    return StoreErrorKind("internal", None, "internal error; it has been logged")


def _field_from(text: str) -> str | None:
    match = _SQLITE_COLUMN.search(text) or _PG_KEY.search(text)
    return match.group(1).split(",")[0].strip() if match else None
