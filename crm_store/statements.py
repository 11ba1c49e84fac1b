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

from sqlalchemy import any_, bindparam, insert
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


class BulkInsert:
    """``INSERT`` of whole rows of ``table``, handed to the driver's ``executemany`` directly.

    SQLAlchemy's own executemany converts every row through generic
    machinery (per-row parameter dicts, default handling, insertmanyvalues
    batching) that cost as much as the rest of the message writer together.
    This compiles the statement once per dialect with that dialect's own
    bind processors (so values are stored exactly as SQLAlchemy stores them
    and read back by it) and sends plain tuples.  Every row must give every
    column: nothing here fills in column defaults.
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self.keys = [column.key for column in table.c]
        self._plans: dict[str, tuple[str, list[tuple[str, Callable[[Any], Any] | None]]]] = {}

    def _plan(self, conn: Connection) -> tuple[str, list[tuple[str, Callable[[Any], Any] | None]]]:
        dialect = conn.dialect
        plan = self._plans.get(dialect.name)
        if plan is None:
            compiled = insert(self.table).compile(dialect=dialect, column_keys=self.keys)
            order = compiled.positiontup
            if order is None:  # a named paramstyle: not one this store's drivers use
                raise NotImplementedError(f"BulkInsert needs a positional paramstyle, {dialect.name} has {dialect.paramstyle}")
            processors = compiled._bind_processors  # noqa: SLF001 - the same processors SQLAlchemy applies itself
            plan = self._plans[dialect.name] = (compiled.string, [(key, processors.get(key)) for key in order])
        return plan

    def __call__(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        sql, columns = self._plan(conn)
        params = [tuple(row[key] if process is None or row[key] is None else process(row[key]) for key, process in columns)
                  for row in rows]
        conn.exec_driver_sql(sql, params)
