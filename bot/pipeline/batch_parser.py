"""The built-in model behind the engine's async ``Parser``, with texts that arrive together parsed together.

Parsing one text is a few dozen numpy calls whose overhead, not their
arithmetic, is most of the cost; :meth:`nlu.Model.parse_many` pays it once
for a batch.  Texts asked for in the same turn of the event loop (requests
that came in together) form one batch, through the same queue the group
commit uses; nobody waits for company.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from bot.pipeline.batch_queue import BatchFn, BatchQueue

#: Texts parsed in one go at most.
MAX_BATCH = 64


class BatchParser:
    """``Parser`` over ``model`` (an :class:`nlu.Model`); subclasses send the batches elsewhere (``_batches``)."""

    def __init__(self, model: Any, *, max_batch: int = MAX_BATCH) -> None:
        self.model = model
        self._max_batch = max_batch
        self._batcher: BatchQueue[str, dict[str, Any]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def parse(self, text: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        if self._batcher is None or self._loop is not loop:  # started lazily, on the loop that serves
            self._batcher = BatchQueue(self._batches(), max_batch=self._max_batch)
            self._batcher.start()
            self._loop = loop
        return await self._batcher.submit(text)

    def _batches(self) -> BatchFn[str, dict[str, Any]]:
        return self._parse_here

    async def _parse_here(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        return self.model.parse_many(texts)  # type: ignore[no-any-return]

    async def close(self) -> None:
        if self._batcher is not None:
            await self._batcher.close()
