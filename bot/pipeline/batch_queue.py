"""A queue that hands concurrent callers' items over in batches: group commit, and parsing together.

Its first use is group commit: a commit costs a disk flush (SQLite) or a round trip and WAL flush
(PostgreSQL) whatever its size, so the message path's throughput is set by
how many messages each commit carries.  Callers await their own future; a
writer task takes everything queued while the previous transaction was
committing and writes it as one batch.  Nobody is answered before the
transaction holding their write is durable.  The same queue batches texts
for the NLU (:mod:`bot.pipeline.batch_parser`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Closed(Exception):
    """The queue is shutting down and takes no new work."""


@dataclass(slots=True)
class Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


BatchFn = Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]


class BatchQueue(Generic[T, R]):
    """Runs ``process(batch)`` on up to ``max_batch`` items at a time, in arrival order."""

    def __init__(self, process: BatchFn[T, R], *, max_batch: int = 128, linger: float = 0.0) -> None:
        self._process = process
        self._max_batch = max_batch
        #: Seconds to wait for company after the first item (for callers nobody waits on).
        self._linger = linger
        self._queue: asyncio.Queue[Pending[T, R]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0
        self.items = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(self._queue), name="batch-queue")

    async def submit(self, item: T) -> R:
        if self._closed:
            raise Closed("shutting down")
        pending: Pending[T, R] = Pending(item)
        self._queue.put_nowait(pending)
        return await pending.future

    async def close(self) -> None:
        """Stop taking work, finish what is queued, then stop the writer."""
        self._closed = True
        await self._queue.join()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self, queue: asyncio.Queue[Pending[T, R]]) -> None:
        while True:
            batch = [await queue.get()]
            if self._linger and queue.qsize() < self._max_batch - 1:
                await asyncio.sleep(self._linger)
            while len(batch) < self._max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                results = await self._process([p.item for p in batch])
            except BaseException as exc:  # noqa: BLE001 - every caller must hear of it
                results = [exc] * len(batch)
                if isinstance(exc, asyncio.CancelledError):
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(Closed("cancelled"))
                        queue.task_done()
                    raise
            self.batches += 1
            self.items += len(batch)
            for pending, result in zip(batch, results, strict=True):
                if not pending.future.done():
                    if isinstance(result, BaseException):
                        pending.future.set_exception(result)
                    else:
                        pending.future.set_result(result)
                queue.task_done()


