"""A snooze that runs out brings the conversation back without anyone looking."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import update

from bot.app import _wake_snoozed_forever
from crm_store.database import Database
from crm_store.live import LiveHub
from crm_store.models import Conversation
from contracts.messages import InboundMessage
from crm_store.columns import utcnow
from tests.helpers import rows, sample_engine


async def test_an_expired_snooze_returns_to_the_queue_on_its_own(db: Database, db_url: str) -> None:
    engine = await sample_engine(db)
    await engine.handle(InboundMessage(channel="webchat", sender_id="v1", text="hello", external_id="m1"))
    await engine.close()
    async with db.write() as conn:
        await conn.execute(update(Conversation.__table__).values(status="snoozed", snoozed_until=utcnow() - dt.timedelta(seconds=1)))
    live = LiveHub(db_url)
    await live.start()
    waker = asyncio.create_task(_wake_snoozed_forever(db, live, every=0.05))
    try:
        for _ in range(40):
            (conversation,) = await rows(db, "conversations")
            if conversation.status != "snoozed":
                break
            await asyncio.sleep(0.05)
    finally:
        waker.cancel()
        await asyncio.gather(waker, return_exceptions=True)
        await live.close()
    assert conversation.status == "pending"
    assert conversation.snoozed_until is None
