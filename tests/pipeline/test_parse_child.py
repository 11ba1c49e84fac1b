"""The built-in NLU in a child process: same answers, survives its child's death, stops with the service."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

import bot.pipeline.child_process
from bot.bot_loader import load_bot
from bot.config import load_settings
from bot.pipeline.parse_child import ChildParser
from tests.bot.conftest import SAMPLE_BOT
from tests.helpers import process_is_gone

TEXTS = ["hello", "where is my order", "취소", "how long does shipping take", "I want to talk to a person", "asdf qwer"]


async def _child_answers(parser: ChildParser) -> None:
    """Wait until the child has loaded its model (until then the serving process answers)."""
    for _ in range(200):
        await parser.parse("hello")
        if parser.child_pid is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the NLU process did not start within 10 s")


async def test_the_child_answers_as_the_model_does(cache: Path) -> None:
    _, parser = await load_bot(SAMPLE_BOT, parse_in_child=True)
    assert isinstance(parser, ChildParser)
    try:
        await _child_answers(parser)
        answers = await asyncio.gather(*(parser.parse(text) for text in TEXTS))
        assert answers == [parser.model.parse(text) for text in TEXTS]
        assert parser.child_pid not in (None, os.getpid())
    finally:
        await parser.close()


async def test_a_dead_child_is_replaced_and_no_parse_fails_meanwhile(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.pipeline.child_process, "RESTART_AFTER", 0.0)
    _, parser = await load_bot(SAMPLE_BOT, parse_in_child=True)
    assert isinstance(parser, ChildParser)
    try:
        await _child_answers(parser)
        first = parser.child_pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        for text in TEXTS * 5:  # none of these may fail while the child is gone
            assert (await parser.parse(text))["intent"]["name"] == parser.model.parse(text)["intent"]["name"]
        await _child_answers(parser)
        assert parser.child_pid not in (None, first)
    finally:
        await parser.close()


async def test_closing_the_parser_stops_the_child(cache: Path) -> None:
    _, parser = await load_bot(SAMPLE_BOT, parse_in_child=True)
    assert isinstance(parser, ChildParser)
    await _child_answers(parser)
    pid = parser.child_pid
    assert pid is not None
    await parser.close()
    assert await process_is_gone(pid)


def test_one_serve_process_parses_in_a_child_when_it_has_a_core_to_spare_and_the_writer_does_not_take_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DANGOL_OFFLOAD", raising=False)  # the test session turns it off
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert not load_settings().parse_in_child  # on SQLite the spare core writes (bot.pipeline.write_child)
    assert load_settings(database_url="postgresql+asyncpg://x@127.0.0.1/x").parse_in_child
    assert not load_settings(database_url="postgresql+asyncpg://x@127.0.0.1/x", offload="off").parse_in_child
    assert not load_settings(database_url="postgresql+asyncpg://x@127.0.0.1/x", workers=2).parse_in_child
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert not load_settings(database_url="postgresql+asyncpg://x@127.0.0.1/x").parse_in_child