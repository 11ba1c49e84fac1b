"""The built-in NLU in a process of its own, so that one ``dangol serve`` uses two cores.

Parsing is pure Python (n-gram lookups), so in the serving process it holds
the GIL that the web server and the store's writer also need: measured on 2
cores with the REST channel, parsing took about half of the serving
process's time.  A child process parses instead (:mod:`bot.pipeline.child_process`);
texts that arrive while it is busy go over together in one batch (the same
queue the group commit uses).

The model stays loaded here too: it answers while the child is starting and
whenever the child is gone, and a batch the child failed on is parsed here,
so a broken NLU process never stops the message path.
"""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bot.pipeline.batch_parser import BatchParser
from bot.pipeline.batch_queue import BatchFn
from bot.pipeline.child_process import ChildBatches, serve_batches
from nlu import load_model


def _child_main(conn: Connection, model_path: str) -> None:
    """The NLU process: load the model, then answer batches of texts until the pipe closes."""

    def load() -> Callable[[list[str]], list[dict[str, Any]]]:
        return load_model(model_path).parse_many

    serve_batches(conn, load)


class ChildParser(BatchParser):
    """``BatchParser`` whose batches are parsed in a child process, from the model saved at ``model_path``."""

    def __init__(self, model: Any, model_path: Path) -> None:
        super().__init__(model)
        self.model_path = model_path
        self._child: ChildBatches[str, dict[str, Any]] = ChildBatches(
            "nlu", _child_main, (str(model_path),), self._parse_here, retry_here=True)
        self._child.start()

    @property
    def child_pid(self) -> int | None:
        """The NLU process's pid once it answers (for operators and tests)."""
        return self._child.child_pid

    def _batches(self) -> BatchFn[str, dict[str, Any]]:
        return self._child.run

    async def close(self) -> None:
        await super().close()
        await self._child.close()
