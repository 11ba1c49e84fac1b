"""Many rows into one table, the fastest way each database offers, in the caller's transaction.

PostgreSQL: ``COPY ... FROM STDIN`` (binary) through asyncpg's
``copy_records_to_table``, reached from the synchronous connection through
SQLAlchemy's greenlet bridge: a scoring run's million rows go in without a
statement or a parameter list per row (measured ten times faster than
SQLAlchemy's multi-row INSERT).  SQLite: one prepared INSERT run by the
driver's ``executemany``, values passed through each column's own bind
conversion (UUIDs as the hex SQLAlchemy stores, UTC times naive), so rows
written here read back as any other.

COPY has no ``ON CONFLICT``: rows that may meet a unique key already
stored (an event sent twice) are copied into a temporary table of the same
shape first and inserted from there, skipping the duplicates.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Table, Uuid
from sqlalchemy.engine import Connection
from sqlalchemy.util import await_only

#: Rows handed to the driver at a time (bounded memory whatever the total).
PAGE = 50_000


#: How many stretches of code hold the collector paused now, and whether it was on before the first of them.
_pauses = 0
_was_enabled = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while bulk work makes and drops many objects that are in no reference cycle.

    A campaign run reads, plans and writes a million members, some fifteen dicts, lists and ids each, all freed by
    counting references as soon as their chunk is written.  While they live (a chunk is read ahead, planned, then
    written) their number sets off collections that walk them, again and again as they age, and every older object
    with them: measured on a run of 200,000 members, 3.9 of its 6.3 s of Python time.  Paused for the whole run,
    the collector never sees them (what is freed is uncounted again), and the garbage in cycles that other tasks
    make meanwhile waits for the end of the run.  Nested and concurrent pauses are counted: the collector comes
    back on when the last ends (and only if it was on at the first)."""
    global _pauses, _was_enabled
    if _pauses == 0:
        _was_enabled = gc.isenabled()
        gc.disable()
    _pauses += 1
    try:
        yield
    finally:
        _pauses -= 1
        if _pauses == 0 and _was_enabled:
            gc.enable()


def _pages(rows: Iterable[tuple[Any, ...]]) -> Iterable[list[tuple[Any, ...]]]:
    page: list[tuple[Any, ...]] = []
    for row in rows:
        page.append(row)
        if len(page) >= PAGE:
            yield page
            page = []
    if page:
        yield page


def insert_rows(conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]], *,
                skip_conflicts_on: Sequence[str] = ()) -> int:
    """Insert ``rows`` (tuples in ``columns`` order, Python values) into ``table``; how many were handed over.

    ``skip_conflicts_on``: a unique key whose duplicates are skipped, as ``ON CONFLICT DO NOTHING`` does (on
    PostgreSQL the rows are copied into a temporary table of the same shape, then inserted from it in one statement).
    """
    written = 0
    binds = [_bind(table, name, conn) for name in columns]
    converting = [(i, bind) for i, bind in enumerate(binds) if bind is not None]
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "asyncpg":
        target = table.name
        if skip_conflicts_on:
            target = f"bulk_{table.name}"  # the session's own; emptied after use and at commit
            conn.exec_driver_sql(f"CREATE TEMPORARY TABLE IF NOT EXISTS {target} (LIKE {table.name}) ON COMMIT DELETE ROWS")
        else:
            conn.exec_driver_sql("SELECT 1")  # the transaction is begun on the connection before COPY joins it
        raw = conn.connection.driver_connection
        for page in _pages(rows):
            records = [_converted(row, converting) for row in page] if converting else page
            await_only(raw.copy_records_to_table(target, records=records, columns=list(columns)))  # type: ignore[union-attr]
            written += len(page)
        if skip_conflicts_on:
            conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {target} "
                                 f"ON CONFLICT ({', '.join(skip_conflicts_on)}) DO NOTHING")
            conn.exec_driver_sql(f"TRUNCATE {target}")
        return written
    statement = f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(columns))})"
    if skip_conflicts_on:
        statement += f" ON CONFLICT ({', '.join(skip_conflicts_on)}) DO NOTHING"
    for page in _pages(rows):
        if converting:
            page = [_converted(row, converting) for row in page]
        conn.exec_driver_sql(statement, page)
        written += len(page)
    return written


def _bind(table: Table, name: str, conn: Connection) -> Callable[[Any], Any] | None:
    """The column's conversion to what the driver takes (JSON as text, UTC times as each database keeps them); an id
    read back from SQLite (already hex text) passes as it is."""
    bind = table.c[name].type._cached_bind_processor(conn.dialect)
    if bind is None or not isinstance(table.c[name].type, Uuid):
        return bind
    return lambda value: value if value is None or isinstance(value, str) else bind(value)


def _converted(row: tuple[Any, ...], converting: list[tuple[int, Callable[[Any], Any]]]) -> tuple[Any, ...]:
    values = list(row)
    for i, bind in converting:
        values[i] = bind(values[i])
    return tuple(values)
