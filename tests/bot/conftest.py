"""Fixtures of the bot tests: the sample bot loaded once, an engine on the real store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, update

from bot.bot_loader import load_bot
from bot.engine.conversation import ConversationEngine
from crm_store.conversations import get_conversation
from crm_store.customers import get_customer
from crm_store.database import Database
from crm_store.models import Conversation, CustomerTag
from contracts.messages import HandleResult, InboundMessage

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_BOT = ROOT / "examples" / "support-bot"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A model cache of this test's own, so training and loading are seen from a cold start."""
    path = tmp_path / "cache"
    monkeypatch.setenv("DANGOL_NLU_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def nlu_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nlu-cache")


@pytest.fixture(scope="session")
def sample_bot(nlu_cache: Path) -> tuple[Any, Any]:
    """(decide, parser) of examples/support-bot, trained once for the session."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DANGOL_NLU_CACHE", str(nlu_cache))
    try:
        return asyncio.run(load_bot(SAMPLE_BOT))
    finally:
        mp.undo()


class Chat:
    """One customer talking to the bot through the real engine and store."""

    def __init__(self, engine: ConversationEngine, db: Database, sender: str, channel: str = "rest") -> None:
        self.engine = engine
        self.db = db
        self.sender = sender
        self.channel = channel
        self.last: HandleResult | None = None

    async def say(self, text: str) -> list[str]:
        payload = text if text.startswith("/") else None
        self.last = await self.engine.handle(InboundMessage(channel=self.channel, sender_id=self.sender, text=text, payload=payload))
        return [r.text or "" for r in self.last.replies]

    @property
    def customer_id(self) -> uuid.UUID:
        assert self.last is not None and self.last.customer_id
        return uuid.UUID(self.last.customer_id)

    @property
    def conversation_id(self) -> uuid.UUID:
        assert self.last is not None and self.last.conversation_id
        return uuid.UUID(self.last.conversation_id)

    async def customer(self) -> dict[str, Any]:
        return await get_customer(self.db, self.customer_id)

    async def conversation(self) -> dict[str, Any]:
        return await get_conversation(self.db, self.conversation_id)

    async def tag(self, tag: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(insert(CustomerTag.__table__).values(customer_id=self.customer_id, tag=tag))

    async def agent_takes_over(self) -> None:
        """What the console does when a person opens the conversation."""
        async with self.db.write() as conn:
            await conn.execute(update(Conversation.__table__).where(Conversation.__table__.c.id == self.conversation_id).values(status="open"))


@pytest.fixture
async def chat(db_url: str, sample_bot: tuple[Any, Any]) -> AsyncIterator[Callable[..., Chat]]:
    decide, parser = sample_bot
    db = Database(db_url)
    engine = ConversationEngine(db, decide, parser, inline_channels={"rest"})
    engine.start()
    counter = iter(range(1_000_000))
    yield lambda sender=None, channel="rest": Chat(engine, db, sender or f"customer-{next(counter)}", channel)
    await engine.close()
    await db.dispose()
