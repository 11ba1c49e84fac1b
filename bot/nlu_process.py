"""The built-in NLU in a process of its own, so that one ``dangol serve`` uses two cores.

Parsing is pure Python (n-gram lookups), so in the serving process it holds
the GIL that the web server and the store's writer also need: measured on 2
cores with the REST channel, parsing took about half of the serving
process's time.  A child process parses instead (:mod:`bot.child_process`);
texts that arrive while it is busy go over together in one batch (the same
queue the group commit uses).

The model stays loaded here too: it answers while the child is starting and
whenever the child is gone, and a batch the child failed on is parsed here,
so a broken NLU process never stops the message path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bot.child_process import ChildBatches, serve_batches
from crm_store.group_commit import GroupCommitter


def _child_main(conn: Connection, model_path: str) -> None:
    """The NLU process: load the model, then answer batches of texts until the pipe closes."""

    def load() -> Callable[[list[str]], list[dict[str, Any]]]:
        from nlu import load_model

        model = load_model(model_path)
        return lambda texts: [model.parse(text) for text in texts]

    serve_batches(conn, load)


class ProcessParser:
    """``Parser`` over a model saved at ``model_path``, parsed in a child process; ``model`` is the same model, here."""

    def __init__(self, model: Any, model_path: Path, *, max_batch: int = 64) -> None:
        self.model = model
        self.model_path = model_path
        self._child: ChildBatches[str, dict[str, Any]] = ChildBatches(
            "nlu", _child_main, (str(model_path),), self._local, retry_here=True)
        self._child.start()
        self._batcher: GroupCommitter[str, dict[str, Any]] = GroupCommitter(self._child.run, max_batch=max_batch)
        self._started = False

    @property
    def child_pid(self) -> int | None:
        """The NLU process's pid once it answers (for operators and tests)."""
        return self._child.child_pid

    async def parse(self, text: str) -> dict[str, Any]:
        if not self._started:
            self._started = True
            self._batcher.start()
        return await self._batcher.submit(text)

    async def _local(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        return [self.model.parse(text) for text in texts]

    async def close(self) -> None:
        await self._batcher.close()
        await self._child.close()
