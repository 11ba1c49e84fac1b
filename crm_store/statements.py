"""Statements of the hot paths, built once per SQL dialect.

A statement object remembers its cache key, so reusing one skips building
the expression and hashing it on every batch (measured: a third of the
message writer's time went there).  Lists of ids are the one part that
differs by dialect: an expanding ``IN (...)`` renders a different SQL string
for every list length, which PostgreSQL's drivers prepare anew each time (a
round trip and a plan: measured 3.5 ms for the first query of each batch),
so on PostgreSQL a list is one array parameter, ``= ANY($1)``, and the
statement is prepared once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

#: ``in_list(column, name)``: "column is one of the list bound as ``name``".
InList = Callable[[ColumnElement[Any], str], ColumnElement[bool]]


def _expanding(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    return column.in_(bindparam(name, expanding=True))


def _any_array(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    return column == any_(bindparam(name, type_=ARRAY(column.type)))


class Prebuilt:
    """``build(in_list)`` once per dialect; ``stmt(conn)`` is the statement for ``conn``."""

    def __init__(self, build: Callable[[InList], Any]) -> None:
        self._build = build
        self._built: dict[str, Any] = {}

    def __call__(self, conn: Connection) -> Any:
        dialect = conn.dialect.name
        statement = self._built.get(dialect)
        if statement is None:
            statement = self._built[dialect] = self._build(_any_array if dialect == "postgresql" else _expanding)
        return statement
