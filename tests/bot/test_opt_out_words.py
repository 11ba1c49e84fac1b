"""Opt-out words are the engine's: caught before the bot's rules, on any channel, whoever holds the conversation."""

from __future__ import annotations

from collections.abc import Callable

from tests.bot.conftest import Chat
from tests.helpers import count, rows


async def test_stop_to_the_bot_withdraws_marketing_and_is_confirmed_in_english(chat: Callable[..., Chat]) -> None:
    ann = chat(channel="telegram")
    await ann.say("hello")
    (reply,) = await ann.say("STOP")
    assert "unsubscribed" in reply
    (consent,) = await rows(ann.db, "consents", customer_id=ann.customer_id, purpose="marketing")
    assert consent.granted is False


async def test_수신거부_while_a_person_holds_the_conversation_is_confirmed_in_korean(chat: Callable[..., Chat]) -> None:
    kim = chat()
    await kim.say("안녕하세요")
    await kim.agent_takes_over()
    (reply,) = await kim.say("수신거부")
    assert "수신거부 처리되었습니다" in reply
    assert (await kim.conversation())["status"] == "open"
    (again,) = await kim.say("수신동의")
    assert "수신동의 처리되었습니다" in again
    (consent,) = await rows(kim.db, "consents", customer_id=kim.customer_id, purpose="marketing")
    assert consent.granted is True


async def test_stop_in_a_running_form_cancels_the_form_and_touches_no_consent(chat: Callable[..., Chat]) -> None:
    ann = chat()
    await ann.say("call me back")  # the callback form asks for a phone number
    (reply,) = await ann.say("stop")
    assert "Nothing was saved" in reply
    assert await count(ann.db, "consent_events", customer_id=ann.customer_id) == 0


async def test_a_sentence_that_mentions_stop_goes_to_the_rules(chat: Callable[..., Chat]) -> None:
    ann = chat()
    replies = await ann.say("please don't stop sending me news")
    assert not any("unsubscribed" in r for r in replies)
    assert await count(ann.db, "consent_events", customer_id=ann.customer_id) == 0
