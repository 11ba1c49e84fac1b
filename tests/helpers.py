"""Small helpers the tests share: counting rows, building an engine."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from sqlalchemy import func, select

from bot.bot_loader import load_bot
from bot.config import DEFAULT_BOT
from bot.engine.conversation import ConversationEngine
from crm_store.database import Database
from crm_store.models import Base


async def count(db: Database, table: str, **where: Any) -> int:
    t = Base.metadata.tables[table]
    stmt = select(func.count()).select_from(t)
    for key, value in where.items():
        stmt = stmt.where(t.c[key] == value)
    async with db.read() as conn:
        return int((await conn.execute(stmt)).scalar_one())


async def rows(db: Database, table: str, **where: Any) -> list[Any]:
    t = Base.metadata.tables[table]
    stmt = select(t)
    for key, value in where.items():
        stmt = stmt.where(t.c[key] == value)
    async with db.read() as conn:
        return list((await conn.execute(stmt)).all())


async def total_rows(db: Database) -> int:
    return sum([await count(db, name) for name in Base.metadata.tables])


async def sample_engine(db: Database, inline: set[str] | None = None) -> ConversationEngine:
    decide, parser = await load_bot(DEFAULT_BOT)
    engine = ConversationEngine(db, decide, parser, inline_channels=inline or {"rest"})
    engine.start()
    return engine


async def process_is_gone(pid: int, timeout: float = 5.0) -> bool:
    """Whether process ``pid`` has exited (and been reaped) within ``timeout`` seconds."""
    for _ in range(int(timeout / 0.05)):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        await asyncio.sleep(0.05)
    return False
