"""The message path's writes in a process of their own, so that the web server and the writer stop sharing one GIL.

On SQLite one ``dangol serve`` process takes every message (SQLite has one
writer), and its writer thread ran beside the event loop.  Every statement
the writer sent released the GIL around SQLite's C code, and getting it
back waited for the busy event loop to yield: measured on the REST channel,
a batch of 15 messages took about 8 ms on the writer although its own work
was about 3 ms (most of the rest was waiting for the GIL), and the writer
was the stage every message queued for.  A child process writes instead:
the batch (messages and their NLU parses) goes over the pipe, the child
runs :class:`bot.engine.batch.BatchHandler` with the same bot rules on a
connection of its own, and the results come back once the transaction is
durable.  The serving process keeps its own handler for when the child is
starting or gone (:mod:`bot.pipeline.child_process`).

A batch the child fails on may have committed before the child died, so
only its messages with an external id are written again here (the
retry is deduplicated by that id like any platform retry: stored once,
answered as the first time); the others' callers get
:class:`crm_store.database.StoreUnavailable` (503, retry).
"""

from __future__ import annotations

import asyncio
import pickle
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from bot.bot_folder import load_bot_folder
from bot.engine.batch import BatchHandler
from bot.engine.opt_out import OptOutCatcher
from bot.engine.turn import InboundItem
from bot.event_loop import new_event_loop
from bot.pipeline.child_process import ChildBatches, ChildFailed, serve_batches
from bot.policy import RuleBot
from contracts.messages import HandleResult
from crm_store.database import Database, StoreUnavailable

Results = list[HandleResult | BaseException]


@dataclass(frozen=True)
class WriteChildSpec:
    """What the child needs to write as the serving process would: the store and the bot's rules."""

    database_url: str
    sqlite_synchronous: str
    bot_path: Path
    event_loop: str = "auto"


def _child_main(conn: Connection, spec: WriteChildSpec, inline_channels: frozenset[str]) -> None:
    """The writer process: open the store, load the bot's rules, write batches until the pipe closes.

    It ignores SIGTERM and SIGINT: a terminal's Ctrl-C or a service
    manager's stop reaches the whole process group, and the serving process
    still has batches to finish.  It ends when the serving process closes
    the pipe, or dies.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loop = new_event_loop(spec.event_loop)
    asyncio.set_event_loop(loop)
    opened: list[Database] = []

    def load() -> Callable[[list[InboundItem]], Results]:
        # the serving process's store runs the WAL checkpoints: one thread per file is enough
        db = Database(spec.database_url, pool_size=1, sqlite_synchronous=spec.sqlite_synchronous, checkpoints=False)
        opened.append(db)
        loop.run_until_complete(db.check_current())
        handler = BatchHandler(db, RuleBot(load_bot_folder(spec.bot_path)).decide, inline_channels,
                               opt_out=OptOutCatcher.for_bot(spec.bot_path), own_thread=True)
        return lambda items: [_sendable(result) for result in loop.run_until_complete(handler.handle(items))]

    try:
        serve_batches(conn, load)
    finally:
        for db in opened:
            loop.run_until_complete(db.dispose())
        loop.close()


def _sendable(result: HandleResult | BaseException) -> HandleResult | BaseException:
    """A result as it can cross the pipe: an error that does not pickle goes over as its message."""
    if isinstance(result, HandleResult):
        return result
    try:
        pickle.dumps(result)
    except Exception:  # noqa: BLE001 - any unpicklable error
        return StoreUnavailable(f"{type(result).__name__}: {result}")
    return result


class WriteChild:
    """``write_batch`` through the child; ``local`` is the serving process's own handler."""

    def __init__(self, spec: WriteChildSpec, inline_channels: frozenset[str],
                 local: Callable[[Sequence[InboundItem]], Awaitable[Results]]) -> None:
        self._child: ChildBatches[InboundItem, HandleResult | BaseException] = ChildBatches(
            "writer", _child_main, (spec, inline_channels), local, retry_here=False,
            retry_safe=lambda item: item.message.external_id is not None)

    def start(self) -> None:
        self._child.start()

    @property
    def child_pid(self) -> int | None:
        return self._child.child_pid

    def health(self) -> tuple[bool, str]:
        """Whether the write child keeps up, with its age (see :meth:`ChildBatches.health`)."""
        return self._child.health()

    async def write_batch(self, items: Sequence[InboundItem]) -> Results:
        try:
            results = await self._child.run(items)
        except ChildFailed as exc:
            raise StoreUnavailable(str(exc)) from None
        return [StoreUnavailable(str(r)) if isinstance(r, ChildFailed) else r for r in results]

    async def close(self) -> None:
        await self._child.close()
