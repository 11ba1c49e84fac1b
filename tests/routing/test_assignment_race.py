"""Concurrent handoffs, each in its own transaction, never give an agent more open chats than ``max_chats``."""

from __future__ import annotations

import asyncio
import uuid

from aiohttp.test_utils import TestClient
from sqlalchemy import update

from crm_store import assignment
from crm_store.columns import utcnow
from crm_store.database import Database
from crm_store.models import AgentSettings
from tests.helpers import count
from tests.routing.conftest import Handoff, MakePerson


async def test_concurrent_handoffs_never_exceed_max_chats(
        client: TestClient, handoff: Handoff, person: MakePerson, store: Database) -> None:
    agent = await person("agent", team="support", presence="offline", max_chats=2)
    waiting = [uuid.UUID((await handoff(f"race-{i}"))["id"]) for i in range(12)]  # nobody online: all wait in the queue
    async with store.write() as conn:  # online now, without draining the queue: the handoffs below race for the agent
        await conn.execute(update(AgentSettings.__table__).where(AgentSettings.__table__.c.agent_id == agent.id)
                           .values(presence="online"))
    stores = [Database(store.url) for _ in range(4)]
    try:
        await asyncio.gather(*(stores[i % 4].run_in_transaction(assignment.route_handoffs, [cid], utcnow())
                               for i, cid in enumerate(waiting)), return_exceptions=True)
    finally:
        for other in stores:
            await other.dispose()
    assert await count(store, "conversations", assignee_id=agent.id, status="open") == 2
