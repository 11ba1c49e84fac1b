"""The built-in NLU in a process of its own, so that one ``dangol serve`` uses two cores.

Parsing is pure Python (n-gram lookups), so in the serving process it holds
the GIL that the web server and the store's writer also need: measured on 2
cores with the REST channel, parsing took about half of the serving
process's time.  A child process parses instead; texts that arrive while
it is busy go over together in one batch (the same queue the group commit
uses), so the hop costs one pickle round trip per batch, not per message.

The model stays loaded here too: it answers while the child is starting and
if the child dies (a new one is started on the next batch), so a broken NLU
process never stops the message path.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from crm_store.group_commit import GroupCommitter

log = logging.getLogger(__name__)

#: Seconds to parse in the serving process after the child failed, before starting another.
RESTART_AFTER = 30.0
#: The child's model, loaded once by its initializer.
_MODEL: Any = None


def _start_child(model_path: str) -> None:
    from bot.workers import stop_with_parent
    from nlu import load_model

    global _MODEL
    stop_with_parent()
    _MODEL = load_model(model_path)
    gc.collect()
    gc.freeze()  # the model's vocabularies are never garbage: keep full collections short (see bot.app.settle_heap)


def _parse_many(texts: list[str]) -> list[dict[str, Any]]:
    return [_MODEL.parse(text) for text in texts]


def _ready() -> bool:
    return _MODEL is not None


class ProcessParser:
    """``Parser`` over a model saved at ``model_path``, parsed in a child process; ``model`` is the same model, here."""

    def __init__(self, model: Any, model_path: Path, *, max_batch: int = 64) -> None:
        self.model = model
        self.model_path = model_path
        self._batcher: GroupCommitter[str, dict[str, Any]] = GroupCommitter(self._parse_batch, max_batch=max_batch)
        self._pool: ProcessPoolExecutor | None = None
        self._ready: asyncio.Future[bool] | None = None
        self._started = False
        self._restart_at = 0.0

    async def parse(self, text: str) -> dict[str, Any]:
        if not self._started:
            self._started = True
            self._batcher.start()
        return await self._batcher.submit(text)

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_child,
                                             initargs=(str(self.model_path),))
            self._ready = asyncio.wrap_future(self._pool.submit(_ready))
        return self._pool

    async def _parse_batch(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        if time.monotonic() < self._restart_at:
            return [self.model.parse(text) for text in texts]
        pool = self._ensure_pool()
        assert self._ready is not None
        if self._ready.done() and not self._ready.cancelled() and self._ready.exception() is None:
            try:
                return await asyncio.get_running_loop().run_in_executor(pool, _parse_many, list(texts))
            except BrokenProcessPool:
                log.warning("the NLU process died; parsing in the serving process until a new one is up")
                self._discard_pool()
        elif self._ready.done():
            log.warning("the NLU process could not start (%s); parsing in the serving process", self._ready.exception())
            self._discard_pool()
        # starting (or restarting): answer here rather than keep the message waiting
        return [self.model.parse(text) for text in texts]

    def _discard_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        self._ready = None
        self._restart_at = time.monotonic() + RESTART_AFTER

    @property
    def child_pid(self) -> int | None:
        """The NLU process's pid once it runs (for operators and tests)."""
        processes = getattr(self._pool, "_processes", None) or {}
        return next(iter(processes), None)

    async def close(self) -> None:
        await self._batcher.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
