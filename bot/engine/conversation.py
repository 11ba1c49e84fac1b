"""The conversation engine: the one entry point of every inbound message.

:meth:`ConversationEngine.handle` understands the text (NLU runs before the
write, outside any transaction, because it needs no state), then queues the
message for the next batch (:class:`bot.pipeline.batch_queue.BatchQueue`,
group commit): a batch is decided and stored in one transaction by
:class:`bot.engine.batch.BatchHandler`, here or, with ``write_child``, in a
child process (:mod:`bot.pipeline.write_child`) so the writer does not share
this process's GIL.  The caller acknowledges its platform when ``handle``
returns: by then the message, the bot's replies and their outbox rows are
durable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from bot.engine.batch import BatchHandler
from bot.engine.opt_out import OptOutCatcher
from bot.engine.turn import Decider, InboundItem
from bot.pipeline.batch_queue import BatchQueue
from bot.pipeline.write_child import WriteChild, WriteChildSpec
from contracts.messages import HandleResult, InboundMessage
from crm_store.database import Database
from nlu import Parser


class ConversationEngine:
    def __init__(
        self,
        db: Database,
        decide: Decider,
        parser: Parser | None,
        *,
        inline_channels: set[str] | frozenset[str] = frozenset(),
        on_outbox: Callable[[], None] | None = None,
        max_batch: int = 128,
        on_handled: Callable[[InboundMessage, HandleResult, float], None] | None = None,
        write_child: WriteChildSpec | None = None,
        opt_out: OptOutCatcher | None = None,
    ) -> None:
        self.db = db
        self.parser = parser
        self.handler = BatchHandler(db, decide, frozenset(inline_channels), opt_out=opt_out)
        self.on_outbox = on_outbox
        self.write_child: WriteChild | None = None
        if write_child is not None:
            self.write_child = WriteChild(write_child, self.handler.inline_channels, self.handler.handle)
        # One batch queue per process: a second one halves the batches and doubles
        # the cost per message (measured: 1,618 msg/s with one on PostgreSQL,
        # 799 with four).  More throughput comes from more processes.
        self.queue: BatchQueue[InboundItem, HandleResult] = BatchQueue(self._write, max_batch=max_batch)
        self.on_handled = on_handled

    def start(self) -> None:
        if self.write_child is not None:
            self.write_child.start()
        self.queue.start()

    async def close(self) -> None:
        await self.queue.close()
        if self.write_child is not None:
            await self.write_child.close()

    async def _write(self, items: Sequence[InboundItem]) -> list[HandleResult | BaseException]:
        """One batch through the handler (here or in the write child); the delivery worker hears of new outbox rows."""
        write = self.write_child.write_batch if self.write_child is not None else self.handler.handle
        results = await write(items)
        if self.on_outbox is not None and any(
            isinstance(r, HandleResult) and not r.duplicate and any(reply.outbox_id for reply in r.replies) for r in results
        ):
            self.on_outbox()
        return results

    async def handle(self, message: InboundMessage) -> HandleResult:
        started = time.perf_counter()
        parse = await self.understand(message)
        result = await self.queue.submit(InboundItem(message, parse))
        if self.on_handled:
            self.on_handled(message, result, time.perf_counter() - started)
        return result

    async def understand(self, message: InboundMessage) -> dict[str, Any] | None:
        """A button's ``/intent`` payload is taken as said; free text goes to the NLU."""
        if message.payload and message.payload.startswith("/"):
            name = message.payload[1:].split("{", 1)[0].strip()
            return {"text": message.payload, "intent": {"name": name, "confidence": 1.0},
                    "intent_ranking": [{"name": name, "confidence": 1.0}], "entities": []}
        text = message.text or message.payload
        if not text or self.parser is None or message.kind == "edit":
            return None
        return await self.parser.parse(text)
