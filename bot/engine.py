"""The conversation engine: one entry point for every inbound message.

``handle`` understands the text (NLU runs before the write, outside any
transaction, because it needs no state), then hands the message to the
group committer, which stores it, resolves the customer and conversation,
asks the policy for a decision and writes the replies' outbox rows in one
transaction.  The caller acknowledges its platform when ``handle`` returns.
With ``write_in_child`` those batches are written by a child process
(:mod:`bot.writer_process`), so the writer does not share this process's GIL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from crm_store.database import Database
from crm_store.group_commit import GroupCommitter
from crm_store.inbound import Decider, InboundItem, InboundWriter
from crm_store.records import HandleResult, InboundMessage

if TYPE_CHECKING:
    from bot.writer_process import ProcessWriter, WriterSpec

log = logging.getLogger(__name__)


class Parser(Protocol):
    async def parse(self, text: str) -> dict[str, Any]: ...


class Engine:
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
        write_in_child: WriterSpec | None = None,
    ) -> None:
        self.db = db
        self.parser = parser
        self.writer = InboundWriter(db, decide, inline_channels=inline_channels)
        self.on_outbox = on_outbox
        self.process_writer: ProcessWriter | None = None
        if write_in_child is not None:
            from bot.writer_process import ProcessWriter

            self.process_writer = ProcessWriter(write_in_child, self.writer.inline_channels, self.writer.write_batch)
        # One writer per process: a second one halves the batches and doubles
        # the cost per message (measured: 1,618 msg/s with one on PostgreSQL,
        # 799 with four).  More throughput comes from more processes.
        self.committer: GroupCommitter[InboundItem, HandleResult] = GroupCommitter(self._write, max_batch=max_batch)
        self.on_handled = on_handled

    def start(self) -> None:
        if self.process_writer is not None:
            self.process_writer.start()
        self.committer.start()

    async def close(self) -> None:
        await self.committer.close()
        if self.process_writer is not None:
            await self.process_writer.close()

    async def _write(self, items: Sequence[InboundItem]) -> list[HandleResult | BaseException]:
        """One batch through the writer (here or in its child); the delivery worker hears of new outbox rows."""
        write = self.process_writer.write_batch if self.process_writer is not None else self.writer.write_batch
        results = await write(items)
        if self.on_outbox is not None and any(
            isinstance(r, HandleResult) and not r.duplicate and any(reply.outbox_id for reply in r.replies) for r in results
        ):
            self.on_outbox()
        return results

    async def handle(self, message: InboundMessage) -> HandleResult:
        started = time.perf_counter()
        parse = await self.understand(message)
        result = await self.committer.submit(InboundItem(message, parse))
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
