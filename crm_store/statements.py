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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, any_, bindparam, insert
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

    def __init__(self, statement: Any, keys: list[str] | None = None, *, passthrough: Sequence[str] = ()) -> None:
        self.statement = statement
        self.keys = keys
        #: Parameters whose values the caller gives as the driver takes them (a JSON column's text): not bind-processed.
        self.passthrough = frozenset(passthrough)
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
                (key, None if key in self.passthrough else processors.get(key), _GIVEN if compiled.binds[key].required else fixed[key])
                for key in order])
        return plan

    def __call__(self, conn: Connection, rows: Sequence[dict[str, Any]] | Sequence[tuple[Any, ...]]) -> None:
        """Run the statement for ``rows``: dicts by parameter name, or tuples of every parameter in ``keys`` order."""
        if not rows:
            return
        sql, columns = self._plan(conn)
        if isinstance(rows[0], tuple):
            if [key for key, _, _ in columns] != self.keys:
                raise ValueError(f"tuples need the statement's parameters in the order of {self.keys}")
            processes = [process for _, process, _ in columns]
            params = [tuple(_bound(value, process) for value, process in zip(row, processes, strict=True)) for row in rows]
        else:
            params = [tuple(_bound(row[key] if const is _GIVEN else const, process) for key, process, const in columns)
                      for row in rows]  # type: ignore[call-overload]
        conn.exec_driver_sql(sql, params)


_GIVEN = object()


def _bound(value: Any, process: Callable[[Any], Any] | None) -> Any:
    return value if process is None or value is None else process(value)


class BulkInsert(Executemany):
    """``INSERT`` of whole rows of ``table`` (every column given) through :class:`Executemany`."""

    def __init__(self, table: Any) -> None:
        self.table = table
        super().__init__(insert(table), [column.key for column in table.c])


@dataclass(frozen=True)
class Insert:
    """Rows into ``table``: the named ``columns`` (default: every one) given by each row, the rest their defaults."""

    table: Table
    columns: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Update:
    """Each row sets ``columns`` of the ``table`` row whose ``key`` column equals the row's ``param``
    value (default: its ``key`` value); ``fixed_null`` columns are set to NULL."""

    table: Table
    key: str
    columns: tuple[str, ...]
    fixed_null: tuple[str, ...] = ()
    param: str | None = None


class ArrayWrite:
    """Several INSERTs and UPDATEs of many rows as one PostgreSQL statement.

    Each column of each part is one array parameter that the statement
    unnests, and the parts are data-modifying CTEs of one ``WITH``: one
    round trip and one statement however many tables and rows a batch
    writes, atomic on its own (foreign keys are checked at its end, so a
    message may name a conversation inserted beside it).  Measured on the
    message path, every round trip through SQLAlchemy and asyncpg cost the
    serving process 130-250 µs of CPU and PostgreSQL a statement of its own,
    and a batch made seven.

    A batch's statement holds only the parts that have rows: most batches
    write messages and conversation changes alone, and every empty part
    still cost its array parameters' encoding here and, in PostgreSQL, the
    opening of its table and indexes.  The few combinations that occur each
    have their own SQL text, prepared once per connection.
    """

    def __init__(self, parts: dict[str, Insert | Update]) -> None:
        self.parts = parts
        #: Per dialect and per combination of parts with rows: the SQL and each part's parameters.
        self._plans: dict[tuple[str, tuple[str, ...]], tuple[str, list[tuple[str, list[tuple[str, Callable[[Any], Any] | None]]]]]] = {}

    def _plan(self, dialect: Any, names: tuple[str, ...]) -> tuple[str, list[tuple[str, list[tuple[str, Callable[[Any], Any] | None]]]]]:
        plan = self._plans.get((dialect.name, names))
        if plan is not None:
            return plan
        if dialect.name != "postgresql":
            raise NotImplementedError("ArrayWrite is PostgreSQL's (unnest and data-modifying WITH)")
        quote = dialect.identifier_preparer.quote
        ctes: list[str] = []
        params: list[tuple[str, list[tuple[str, Callable[[Any], Any] | None]]]] = []
        number = 0

        def arrays(table: Table, keys: Sequence[str]) -> str:
            nonlocal number
            cast = []
            for key in keys:
                number += 1
                cast.append(f"${number}::{table.c[key].type.compile(dialect=dialect)}[]")
            return f"unnest({', '.join(cast)})"

        for name in names:
            part = self.parts[name]
            table = part.table
            if isinstance(part, Insert):
                keys = list(part.columns or [c.key for c in table.c])
                columns = ", ".join(quote(table.c[k].name) for k in keys)
                ctes.append(f"w_{name} AS (INSERT INTO {quote(table.name)} ({columns}) SELECT * FROM {arrays(table, keys)})")
            else:
                keys = [part.key, *part.columns]
                aliases = [f"c{i}" for i in range(len(keys))]
                sets = [f"{quote(table.c[k].name)} = u.{alias}" for k, alias in zip(part.columns, aliases[1:], strict=True)]
                sets += [f"{quote(table.c[k].name)} = NULL" for k in part.fixed_null]
                ctes.append(f"w_{name} AS (UPDATE {quote(table.name)} AS t SET {', '.join(sets)} FROM {arrays(table, keys)} "
                            f"AS u({', '.join(aliases)}) WHERE t.{quote(table.c[part.key].name)} = u.c0)")
            processors = [table.c[k].type._cached_bind_processor(dialect) for k in keys]  # noqa: SLF001 - SQLAlchemy's own
            given = keys if isinstance(part, Insert) else [part.param or part.key, *part.columns]
            params.append((name, list(zip(given, processors, strict=True))))
        plan = self._plans[(dialect.name, names)] = ("WITH " + ",\n".join(ctes) + "\nSELECT 1", params)
        return plan

    def __call__(self, conn: Connection, rows: dict[str, list[dict[str, Any]]]) -> None:
        """Write ``rows[part]`` for each part; parts without rows are left out, and with none nothing is sent."""
        names = tuple(name for name in self.parts if rows.get(name))
        if not names:
            return
        sql, parts = self._plan(conn.dialect, names)
        params: list[list[Any]] = []
        for name, columns in parts:
            part_rows = rows[name]
            params += [[_bound(row[key], process) for row in part_rows] for key, process in columns]
        conn.exec_driver_sql(sql, tuple(params))
