"""The message path through the engine and the store: dedupe, identity, conversation, replies, outbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest
from sqlalchemy import event, update

from crm_store.database import Database
from crm_store.models import Conversation
from contracts.messages import InboundMessage, Profile
from tests.helpers import count, rows, sample_engine

T = TypeVar("T")


def msg(text: str, sender: str = "alice", ext: str | None = None, channel: str = "webchat", **kw: object) -> InboundMessage:
    return InboundMessage(channel=channel, sender_id=sender, text=text, external_id=ext, **kw)  # type: ignore[arg-type]


async def test_the_same_message_twice_is_stored_once_and_answered_once(db: Database) -> None:
    engine = await sample_engine(db)
    first = await engine.handle(msg("hello", ext="m-1"))
    second = await engine.handle(msg("hello", ext="m-1"))
    await engine.close()
    assert not first.duplicate and second.duplicate
    assert second.message_id == first.message_id
    assert await count(db, "messages", direction="in") == 1
    assert await count(db, "outbox") == 1


async def test_concurrent_copies_of_one_message_in_one_batch_are_stored_once(db: Database) -> None:
    engine = await sample_engine(db)
    results = await asyncio.gather(*(engine.handle(msg("hello", ext="same")) for _ in range(5)))
    await engine.close()
    assert sum(not r.duplicate for r in results) == 1
    assert await count(db, "messages", direction="in") == 1
    assert await count(db, "outbox") == 1


async def test_a_sender_keeps_one_customer_and_one_open_conversation(db: Database) -> None:
    engine = await sample_engine(db)
    a = await engine.handle(msg("hello", ext="1"))
    b = await engine.handle(msg("help", ext="2"))
    await engine.close()
    assert a.customer_id == b.customer_id
    assert a.conversation_id == b.conversation_id
    assert await count(db, "customers") == 1
    assert await count(db, "channel_identities") == 1


async def test_many_concurrent_senders_are_all_stored_with_replies(db: Database) -> None:
    engine = await sample_engine(db)
    results = await asyncio.gather(*(engine.handle(msg("hi", sender=f"s{i % 40}", ext=f"e{i}")) for i in range(300)))
    await engine.close()
    assert all(len(r.replies) == 1 for r in results)
    assert await count(db, "messages", direction="in") == 300
    assert await count(db, "customers") == 40
    assert await count(db, "conversations") == 40
    assert await count(db, "outbox", status="queued") == 300


async def test_replies_are_outbox_rows_except_on_inline_channels(db: Database) -> None:
    engine = await sample_engine(db)
    web = await engine.handle(msg("hello", ext="w"))
    rest = await engine.handle(msg("hello", ext="r", channel="rest"))
    await engine.close()
    assert web.replies[0].outbox_id is not None
    assert rest.replies[0].outbox_id is None
    sent = await rows(db, "messages", direction="out", channel="rest")
    assert [r.status for r in sent] == ["sent"]
    assert await count(db, "outbox") == 1


async def test_a_resolved_conversation_is_not_reused(db: Database) -> None:
    engine = await sample_engine(db)
    first = await engine.handle(msg("hello", ext="1"))
    async with db.write() as conn:
        await conn.execute(update(Conversation.__table__).values(status="resolved"))
    second = await engine.handle(msg("hello again", ext="2"))
    await engine.close()
    assert first.conversation_id != second.conversation_id
    assert await count(db, "conversations") == 2


async def test_a_snoozed_conversation_wakes_to_the_agents_when_the_customer_writes(db: Database) -> None:
    engine = await sample_engine(db)
    first = await engine.handle(msg("hello", ext="1"))
    async with db.write() as conn:
        await conn.execute(update(Conversation.__table__).values(status="snoozed"))
    second = await engine.handle(msg("are you there?", ext="2"))
    await engine.close()
    assert second.conversation_id == first.conversation_id
    assert [r.text for r in second.replies] == ["Thanks, you're in the queue for a person on our team. They'll reply here as soon as they can."]
    (conv,) = await rows(db, "conversations")
    assert conv.status == "pending"


async def test_the_bot_only_says_the_customer_waits_while_a_person_holds_the_conversation(db: Database) -> None:
    engine = await sample_engine(db)
    await engine.handle(msg("hello", ext="1"))
    async with db.write() as conn:
        await conn.execute(update(Conversation.__table__).values(status="open"))
    held = await engine.handle(msg("hello", ext="2"))
    again = await engine.handle(msg("hello??", ext="3"))
    await engine.close()
    assert [r.text for r in held.replies] == ["Thanks, you're in the queue for a person on our team. They'll reply here as soon as they can."]
    assert again.replies == []
    assert await count(db, "messages", direction="in") == 3
    assert await count(db, "outbox") == 2


async def test_an_edit_changes_the_stored_original_and_keeps_the_old_text(db: Database) -> None:
    engine = await sample_engine(db)
    original = await engine.handle(msg("helo", ext="1"))
    edit = await engine.handle(msg("hello", ext=None, kind="edit", edit_of="1"))
    await engine.close()
    assert edit.message_id == original.message_id and edit.replies == []
    (row,) = await rows(db, "messages", direction="in")
    assert row.text == "hello"
    assert row.edited_at is not None
    assert row.metadata["edits"][0]["text"] == "helo"


async def test_a_verified_email_joins_the_customer_who_already_has_it(db: Database) -> None:
    engine = await sample_engine(db)
    first = await engine.handle(msg("hi", sender="tg-1", ext="a", channel="telegram",
                                    profile=Profile(email="Kim@Example.com", verified=True)))
    second = await engine.handle(msg("hi", sender="U123", ext="b", channel="slack",
                                     profile=Profile(email="kim@example.com", verified=True)))
    unverified = await engine.handle(msg("hi", sender="v-9", ext="c", channel="webchat",
                                         profile=Profile(email="kim@example.com", verified=False)))
    await engine.close()
    assert first.customer_id == second.customer_id
    assert unverified.customer_id != first.customer_id
    assert await count(db, "channel_identities", customer_id=uuid.UUID(first.customer_id)) == 2


async def test_the_profile_fills_a_new_customer_record(db: Database) -> None:
    engine = await sample_engine(db)
    result = await engine.handle(msg("안녕하세요", ext="1", profile=Profile(first_name="민수", last_name="김", language="ko", username="minsu")))
    await engine.close()
    (customer,) = await rows(db, "customers")
    assert str(customer.id) == result.customer_id
    assert (customer.first_name, customer.last_name, customer.locale) == ("민수", "김", "ko")
    assert customer.attributes["username"] == "minsu"
    assert result.replies[0].text and "안녕하세요" in result.replies[0].text


async def test_a_customer_who_writes_again_after_blocking_us_is_reachable_again(db: Database) -> None:
    from crm_store.models import ChannelIdentity

    engine = await sample_engine(db)
    await engine.handle(msg("hello", ext="1"))
    async with db.write() as conn:
        await conn.execute(update(ChannelIdentity.__table__).values(reachable=False))
    await engine.handle(msg("hello again", ext="2"))
    await engine.close()
    (identity,) = await rows(db, "channel_identities")
    assert identity.reachable is True


async def test_a_deep_link_start_parameter_is_kept_on_the_customer(db: Database) -> None:
    engine = await sample_engine(db)
    await engine.handle(msg("/start", ext="1", metadata={"start_param": "spring-sale"}))
    await engine.handle(msg("/start", ext="2", metadata={"start_param": "friend-42"}))
    await engine.close()
    (customer,) = await rows(db, "customers")
    assert customer.attributes["start_param"] == "spring-sale"
    assert customer.attributes["last_start_param"] == "friend-42"



async def statements_during(db: Database, work: Awaitable[T]) -> tuple[list[str], T]:
    """The SQL the store's writer sent while ``work`` ran, and what ``work`` returned."""
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(db.writer.sync_engine, "before_cursor_execute", seen)
    try:
        return statements, await work
    finally:
        event.remove(db.writer.sync_engine, "before_cursor_execute", seen)


async def test_a_batch_of_new_messages_on_postgresql_is_one_read_and_one_write(db: Database) -> None:
    """Each round trip costs the serving process and PostgreSQL: a batch makes two, however many messages it holds."""
    if db.is_sqlite:
        pytest.skip("on SQLite a statement is a function call, not a round trip")
    engine = await sample_engine(db)
    await engine.handle(msg("hello", sender="warm-up", ext="w"))  # the store's connections and statements are ready
    statements, results = await statements_during(db, asyncio.gather(
        *(engine.handle(msg("hello", sender=f"new-{i}", ext=f"n{i}")) for i in range(8))))
    await engine.close()
    assert all(len(r.replies) == 1 and not r.duplicate for r in results)
    assert await count(db, "outbox") == 9
    assert len(statements) == 2 * engine.queue.batches - 2, statements  # the warm-up's batch came before the listener
    assert [s.split()[0] for s in statements[:2]] == ["SELECT", "WITH"]


async def test_a_known_customers_message_writes_only_its_message_parts_on_postgresql(db: Database) -> None:
    """Parts of the batch's write without rows (new customers, identities ...) are left out of its statement."""
    if db.is_sqlite:
        pytest.skip("PostgreSQL's one-statement write")
    engine = await sample_engine(db)
    await engine.handle(msg("hello", sender="known", ext="k1"))
    statements, _ = await statements_during(db, engine.handle(msg("hello again", sender="known", ext="k2")))
    await engine.close()
    (write,) = [s for s in statements if s.startswith("WITH")]
    assert "INSERT INTO messages" in write and "UPDATE conversations" in write
    assert "INSERT INTO customers" not in write and "INSERT INTO channel_identities" not in write
    assert await count(db, "messages", direction="in") == 2


async def test_the_stores_postgresql_sessions_cost_random_pages_as_cached_data(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("a PostgreSQL planner setting")
    async with db.read() as conn:
        assert (await conn.exec_driver_sql("SHOW random_page_cost")).scalar() == "1.1"


async def test_a_batch_whose_rare_write_fails_leaves_nothing_behind(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A handoff's routing is written with the batch, in one transaction: its failure takes the messages with it."""
    import crm_store.message_batch.plan

    def broken(*args: Any) -> None:
        raise RuntimeError("routing broke")

    monkeypatch.setattr(crm_store.message_batch.plan, "route_handoffs", broken)
    engine = await sample_engine(db)
    with pytest.raises(RuntimeError, match="routing broke"):
        await engine.handle(msg("/human_handoff", ext="h1", payload="/human_handoff"))
    await engine.close()
    assert await count(db, "messages") == 0 and await count(db, "customers") == 0 and await count(db, "conversations") == 0
