"""The message path's writes in a child process: same rows and replies, survives its child's death, stops with the engine."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import pytest

import bot.pipeline.child_process
from bot.bot_loader import load_bot
from bot.config import DEFAULT_BOT, load_settings
from bot.engine.conversation import ConversationEngine
from bot.pipeline.write_child import WriteChildSpec
from crm_store.database import Database, StoreUnavailable
from contracts.messages import InboundMessage
from tests.helpers import count, process_is_gone

TEXTS = ["hello", "where is my order", "취소", "I want to talk to a person", "asdf qwer"]


def msg(text: str, sender: str, ext: str, channel: str = "webchat") -> InboundMessage:
    return InboundMessage(channel=channel, sender_id=sender, text=text, external_id=ext)


async def child_engine(db: Database) -> ConversationEngine:
    decide, parser = await load_bot(DEFAULT_BOT)
    engine = ConversationEngine(db, decide, parser, inline_channels={"rest"}, write_child=WriteChildSpec(db.url, "FULL", DEFAULT_BOT))
    engine.start()
    return engine


async def child_writes(engine: ConversationEngine, sender: str = "warm-up") -> int:
    """Wait until the child has started (until then the serving process writes); its pid."""
    assert engine.write_child is not None
    for attempt in range(300):
        await engine.handle(msg("hello", sender, f"{sender}-{attempt}"))
        pid = engine.write_child.child_pid
        if pid is not None:
            return pid
        await asyncio.sleep(0.05)
    raise AssertionError("the writer process did not start within 15 s")


async def test_the_child_stores_what_the_serving_process_would(db: Database) -> None:
    engine = await child_engine(db)
    try:
        pid = await child_writes(engine)
        assert pid != os.getpid()
        before = await count(db, "messages", direction="in")
        results = await asyncio.gather(*(engine.handle(msg(t, f"c{i % 3}", f"m-{i}")) for i, t in enumerate(TEXTS * 4)))
        again = await engine.handle(msg(TEXTS[0], "c0", "m-0"))
    finally:
        await engine.close()
    assert engine.write_child is not None and engine.write_child.child_pid is None
    assert all(not r.duplicate and r.message_id for r in results)
    assert again.duplicate and again.message_id == results[0].message_id
    assert await count(db, "messages", direction="in") == before + len(TEXTS) * 4
    greeting = results[0].replies
    assert greeting and greeting[0].text and greeting[0].outbox_id  # a web chat reply is queued for delivery
    assert await count(db, "outbox", message_id=uuid.UUID(greeting[0].message_id)) == 1


async def test_a_dead_child_fails_only_its_batch_and_is_replaced(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.pipeline.child_process, "RESTART_AFTER", 0.0)
    engine = await child_engine(db)
    try:
        first = await child_writes(engine)
        os.kill(first, signal.SIGKILL)
        await asyncio.sleep(0.2)
        outcomes = []
        for i in range(10):
            try:
                outcomes.append(await engine.handle(msg("hello", "after", f"after-{i}")))
            except StoreUnavailable:
                outcomes.append(None)  # the batch the child died on: unknown, so not acknowledged
        assert outcomes.count(None) <= 1 and outcomes[-1] is not None
        second = await child_writes(engine, "again")
        assert second != first
    finally:
        await engine.close()
    stored = await count(db, "messages", direction="in", sender_kind="customer")
    assert stored >= 9


async def test_closing_the_engine_stops_the_child(db: Database) -> None:
    engine = await child_engine(db)
    pid = await child_writes(engine)
    await engine.close()
    assert await process_is_gone(pid)


def test_one_sqlite_serve_process_writes_in_a_child_when_it_has_cores_to_spare(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DANGOL_OFFLOAD", raising=False)  # the test session turns it off
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert load_settings().write_in_child
    assert not load_settings(offload="off").write_in_child
    assert not load_settings(database_url="postgresql+asyncpg://x@127.0.0.1/x").write_in_child
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert not load_settings().write_in_child