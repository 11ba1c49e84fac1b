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


class Executemany:
    """A statement run for many parameter sets through the driver's ``executemany`` directly.

    SQLAlchemy's own executemany converts every parameter set through
    generic machinery (per-row dicts, default handling, insertmanyvalues
    batching) that cost as much as the rest of the message writer together,
    and a third of the delivery worker's settling.  This compiles the
    statement once per dialect with that dialect's own bind processors (so
    values are stored exactly as SQLAlchemy stores them and read back by it)
    and sends plain tuples.  Every parameter set must give every parameter:
    nothing here fills in defaults.
    """

    def __init__(self, statement: Any, keys: list[str] | None = None) -> None:
        self.statement = statement
        self.keys = keys
        self._plans: dict[str, tuple[str, list[tuple[str, Callable[[Any], Any] | None, Any]]]] = {}

    def _plan(self, conn: Connection) -> tuple[str, list[tuple[str, Callable[[Any], Any] | None, Any]]]:
        """The SQL and, per positional parameter: its name, its bind processor, and its value when
        the statement fixes it (``values(x=None)``) rather than the caller's rows (``_GIVEN``)."""
        dialect = conn.dialect
        plan = self._plans.get(dialect.name)
        if plan is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self.keys)
            order = compiled.positiontup
            if order is None:  # a named paramstyle: not one this store's drivers use
                raise NotImplementedError(f"Executemany needs a positional paramstyle, {dialect.name} has {dialect.paramstyle}")
            processors = compiled._bind_processors  # noqa: SLF001 - the same processors SQLAlchemy applies itself
            fixed = compiled.construct_params(_check=False)
            plan = self._plans[dialect.name] = (compiled.string, [
                (key, processors.get(key), _GIVEN if compiled.binds[key].required else fixed[key]) for key in order])
        return plan

    def __call__(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        sql, columns = self._plan(conn)
        params = [tuple(_bound(row[key] if const is _GIVEN else const, process) for key, process, const in columns) for row in rows]
        conn.exec_driver_sql(sql, params)


_GIVEN = object()


def _bound(value: Any, process: Callable[[Any], Any] | None) -> Any:
    return value if process is None or value is None else process(value)


class BulkInsert(Executemany):
    """``INSERT`` of whole rows of ``table`` (every column given) through :class:`Executemany`."""

    def __init__(self, table: Any) -> None:
        self.table = table
        super().__init__(insert(table), [column.key for column in table.c])
