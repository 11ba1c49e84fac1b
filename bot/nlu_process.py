"""The built-in NLU in a process of its own, so that one ``dangol serve`` uses two cores.

Parsing is pure Python (n-gram lookups), so in the serving process it holds
the GIL that the web server and the store's writer also need: measured on 2
cores with the REST channel, parsing took about half of the serving
process's time.  A child process parses instead; texts that arrive while
it is busy go over together in one batch (the same queue the group commit
uses), so the hop costs one pickle round trip per batch, not per message.
The child's answers are awaited on the event loop itself (the pipe's file
descriptor), with no helper thread competing for the GIL.

The model stays loaded here too: it answers while the child is starting and
whenever the child is gone (it is started again after ``RESTART_AFTER``), so
a broken NLU process never stops the message path.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from crm_store.group_commit import GroupCommitter

log = logging.getLogger(__name__)

#: Seconds to parse in the serving process after the child failed, before starting another.
RESTART_AFTER = 30.0
#: A batch the child has not answered in this long is parsed here and the child replaced.
ANSWER_TIMEOUT = 10.0
READY = "ready"


def _child_main(conn: Connection, model_path: str) -> None:
    """The NLU process: load the model, then answer batches of texts until the pipe closes."""
    from bot.workers import stop_with_parent
    from nlu import load_model

    stop_with_parent()
    try:
        model = load_model(model_path)
    except Exception as exc:  # noqa: BLE001 - the parent hears why and parses itself
        conn.send(f"cannot load {model_path}: {exc}")
        return
    gc.collect()
    gc.freeze()  # the model's vocabularies are never garbage: keep full collections short (see bot.app.settle_heap)
    conn.send(READY)
    while True:
        try:
            texts = conn.recv()
        except (EOFError, OSError):
            return
        conn.send([model.parse(text) for text in texts])


class ProcessParser:
    """``Parser`` over a model saved at ``model_path``, parsed in a child process; ``model`` is the same model, here."""

    def __init__(self, model: Any, model_path: Path, *, max_batch: int = 64) -> None:
        self.model = model
        self.model_path = model_path
        self._batcher: GroupCommitter[str, dict[str, Any]] = GroupCommitter(self._parse_batch, max_batch=max_batch)
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._ready = False
        self._started = False
        self._restart_at = 0.0

    @property
    def child_pid(self) -> int | None:
        """The NLU process's pid once it answers (for operators and tests)."""
        return self._process.pid if self._process is not None and self._ready else None

    async def parse(self, text: str) -> dict[str, Any]:
        if not self._started:
            self._started = True
            self._batcher.start()
        return await self._batcher.submit(text)

    def _local(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        return [self.model.parse(text) for text in texts]

    async def _parse_batch(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        if self._conn is None:
            if time.monotonic() < self._restart_at:
                return self._local(texts)
            self._spawn()
        assert self._conn is not None
        try:
            if not self._ready:
                if not self._conn.poll():
                    return self._local(texts)  # still starting: answer here rather than keep the message waiting
                hello = self._conn.recv()
                if hello != READY:
                    raise ChildFailed(str(hello))
                self._ready = True
                log.info("NLU process %s answers", self._process.pid if self._process else "?")
            self._conn.send(list(texts))
            return await asyncio.wait_for(self._answer(self._conn, len(texts)), ANSWER_TIMEOUT)
        except (EOFError, OSError, ChildFailed, asyncio.TimeoutError) as exc:
            log.warning("the NLU process failed (%s); parsing in the serving process for %.0f s", exc or type(exc).__name__,
                        RESTART_AFTER)
            self._stop_child()
            self._restart_at = time.monotonic() + RESTART_AFTER
            return self._local(texts)

    async def _answer(self, conn: Connection, expected: int) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()
        fd = conn.fileno()
        loop.add_reader(fd, lambda: readable.done() or readable.set_result(None))
        try:
            await readable
        finally:
            loop.remove_reader(fd)
        answers = conn.recv()
        if not isinstance(answers, list) or len(answers) != expected:
            raise ChildFailed(f"expected {expected} answers, got {type(answers).__name__} of {len(answers) if isinstance(answers, list) else '?'}")
        return answers

    def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe()
        process = context.Process(target=_child_main, args=(child_end, str(self.model_path)), name="dangol-nlu", daemon=True)
        process.start()
        child_end.close()
        self._process, self._conn, self._ready = process, parent_end, False

    def _stop_child(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            self._process.terminate()
            self._process.join(2)
        self._process, self._conn, self._ready = None, None, False

    async def close(self) -> None:
        await self._batcher.close()
        if self._process is not None:
            await asyncio.to_thread(self._stop_child)


class ChildFailed(Exception):
    """The NLU process said something other than an answer."""
