"""The built-in model behind the engine: texts asked for together are parsed in one batch, each answered as alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nlu
from bot.bot_loader import load_bot
from bot.pipeline.batch_parser import BatchParser
from tests.bot.conftest import SAMPLE_BOT

TEXTS = ["hello", "where is my order", "취소", "how long does shipping take", "", "I want to talk to a person"]


class CountingModel:
    """The real model, with the size of every batch it was asked to parse."""

    def __init__(self, model: nlu.Model) -> None:
        self.model = model
        self.batches: list[int] = []

    def parse_many(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        self.batches.append(len(texts))
        return self.model.parse_many(texts)


async def test_texts_asked_for_together_are_one_batch_and_each_gets_its_own_answer(cache: Path) -> None:
    _, built = await load_bot(SAMPLE_BOT)
    assert isinstance(built, BatchParser) and isinstance(built, nlu.Parser)
    counting = CountingModel(built.model)
    parser = BatchParser(counting)
    try:
        answers = await asyncio.gather(*(parser.parse(text) for text in TEXTS))
        alone = await parser.parse(TEXTS[0])
    finally:
        await parser.close()
    assert answers == [built.model.parse(text) for text in TEXTS]
    assert alone == answers[0]
    assert counting.batches == [len(TEXTS), 1]
