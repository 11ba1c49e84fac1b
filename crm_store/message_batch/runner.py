"""Runs one batch's unit of work (load, decide, write) in one transaction, and again when another process got in the way.

Two processes may create the same identity or conversation at once (a
unique-key conflict or, on PostgreSQL, a deadlock): the retry reads what the
other committed.  A batch that still fails, or fails with anything that is
not the store's (a value SQLite cannot encode, a bug in a rule), is run item
by item, so the others are not lost with the one bad item; a store that stays busy
or unreachable fails them all at once (every item would wait the same).

On SQLite the unit runs in one transaction on the writer (statements cost no
round trip there).  On PostgreSQL each round trip costs, so the unit runs on
an autocommit connection and :func:`~crm_store.message_batch.plan.write_plan`
makes its write one statement; its first try may also skip the look for
duplicates (``look_for_duplicates=False``): a message seen before then fails
on the unique key, and the retry, at once, answers it as a duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from crm_store.database import Database, pause_before_retry

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
#: ``unit(connection, items, look_for_duplicates)`` -> (one result per item, work to do once it is committed).
Unit = Callable[[Connection, Sequence[T], bool], tuple[list[R | BaseException], list[Any]]]
ATTEMPTS = 3


async def run_batch(db: Database, items: Sequence[T], unit: Unit[T, R], *,
                    own_thread: bool = False) -> tuple[list[R | BaseException], list[Any]]:
    """Results of ``items`` in order (an exception for an item that failed), and the after-commit work of the tries that committed.

    ``own_thread`` (SQLite): run on the calling thread while no other writer
    holds the lock, for a process that does nothing else (the write child);
    in a serving process the event loop must not wait on the store, and the
    writer thread runs it.
    """
    optimistic = not db.is_sqlite
    last: Exception | None = None
    for attempt in range(ATTEMPTS):
        try:
            if db.is_sqlite:
                return await db.run_in_transaction(unit, items, True, inline=own_thread)
            return await db.run_autocommit(unit, items, not (optimistic and attempt == 0))
        except DBAPIError as exc:
            last = exc
            log.info("batch of %d conflicted (%s); retrying", len(items), type(exc.orig).__name__ if exc.orig else exc)
            if attempt or not optimistic:
                await pause_before_retry(attempt)
        except Exception as exc:  # noqa: BLE001 - one item's bad value (a UnicodeEncodeError, a bug) must not fail the others
            last = exc
            log.warning("batch of %d failed (%s: %s); trying its items one by one", len(items), type(exc).__name__, exc)
            break
    assert last is not None
    if len(items) == 1 or (isinstance(last, DBAPIError) and _store_down(last)):
        return [last] * len(items), []
    results: list[R | BaseException] = []
    after: list[Any] = []
    for item in items:
        one, more = await run_batch(db, [item], unit, own_thread=own_thread)
        results.extend(one)
        after.extend(more)
    return results, after



def _store_down(exc: DBAPIError) -> bool:
    """The store is busy or gone (a lock held, a connection lost): every item would fail the same, so none is tried alone.

    Anything else (a unique key, a value the database refuses) may be one item's doing.
    """
    return bool(exc.connection_invalidated) or isinstance(exc, OperationalError | InterfaceError)
