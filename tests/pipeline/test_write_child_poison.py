"""One item that breaks the write child, or the store, costs only itself: the others of its batch are written."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

import bot.pipeline.child_process
from contracts.messages import HandleResult, InboundMessage
from crm_store.database import Database, StoreUnavailable
from tests.helpers import count
from tests.pipeline.test_write_child import child_engine, child_writes, msg


class KillsTheChild:
    """A value that unpickles as ``os._exit(1)``: the write child dies reading the batch that holds it."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os._exit, (1,))


async def test_an_item_the_store_cannot_encode_fails_alone_in_the_child(db: Database) -> None:
    engine = await child_engine(db)
    try:
        pid = await child_writes(engine)
        before = await count(db, "messages", direction="in")
        good = [msg("where is my order", f"c{i % 4}", f"good-{i}") for i in range(30)]
        bad = [msg("hi \ud800", "mallory", f"bad-{i}") for i in range(3)]
        results = await asyncio.gather(*(engine.handle(m) for m in good[:10] + bad[:1] + good[10:20] + bad[1:] + good[20:]),
                                       return_exceptions=True)
        assert engine.write_child is not None and engine.write_child.child_pid == pid  # the child lived
    finally:
        await engine.close()
    ok = [r for r in results if isinstance(r, HandleResult)]
    assert len(ok) == 30
    assert sum(isinstance(r, BaseException) for r in results) == 3
    assert await count(db, "messages", direction="in") == before + 30


async def test_a_child_that_dies_mid_batch_is_replaced_and_its_items_with_ids_are_written_once(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.pipeline.child_process, "RESTART_AFTER", 0.0)
    engine = await child_engine(db)
    try:
        first = await child_writes(engine)
        before = await count(db, "messages", direction="in")
        items = [msg("hello", f"d{i}", f"dies-{i}") for i in range(12)]
        items[5] = InboundMessage(channel="webchat", sender_id="d5", text="hello", external_id="dies-5",
                                  metadata={"x": KillsTheChild()})
        results = await asyncio.gather(*(engine.handle(m) for m in items), return_exceptions=True)
        stored = await count(db, "messages", direction="in")
        assert engine.write_child is not None
        healthy, said = engine.write_child.health()
        assert healthy and said.startswith("failed") and "s ago" in said
        second = await child_writes(engine, "again")
    finally:
        await engine.close()
    assert second != first
    # the poisoned item cannot be stored here either (its metadata is no JSON): it fails alone
    assert isinstance(results[5], BaseException)
    others = results[:5] + results[6:]
    assert all(isinstance(r, HandleResult) for r in others), [r for r in others if not isinstance(r, HandleResult)]
    assert len({r.message_id for r in others if isinstance(r, HandleResult)}) == 11
    assert stored == before + 11


async def test_a_message_without_an_id_in_a_batch_the_child_died_on_is_not_written_twice(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = await child_engine(db)
    try:
        await child_writes(engine)
        before = await count(db, "messages", direction="in")
        items = [InboundMessage(channel="webchat", sender_id="n1", text="hello", metadata={"x": KillsTheChild()}),
                 InboundMessage(channel="webchat", sender_id="n2", text="hello", external_id="with-id")]
        results = await asyncio.gather(*(engine.handle(m) for m in items), return_exceptions=True)
    finally:
        await engine.close()
    assert isinstance(results[0], StoreUnavailable)
    assert isinstance(results[1], HandleResult)
    assert await count(db, "messages", direction="in") == before + 1
