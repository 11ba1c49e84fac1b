"""The decider on its own: languages, channels, placeholders, state, speed."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

from bot.bot_folder import load_bot_folder
from bot.policy import RuleBot, message_language
from bot.engine.turn import Decision, Turn
from crm_store.message_batch import ConversationRecord, CustomerRecord
from contracts.messages import InboundMessage
from tests.bot.conftest import SAMPLE_BOT

BOT = RuleBot(load_bot_folder(SAMPLE_BOT), rng=random.Random(1))


def parse(intent: str, confidence: float = 0.99, entities: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"intent": {"name": intent, "confidence": confidence}, "entities": entities or []}


def turn(text: str, intent: str, *, channel: str = "rest", state: dict[str, Any] | None = None,
         customer: CustomerRecord | None = None, status: str = "bot", **kw: Any) -> Turn:
    customer = customer or CustomerRecord(id=uuid.uuid4())
    conversation = ConversationRecord(id=uuid.uuid4(), customer_id=customer.id, channel=channel, status=status,
                                     bot_state=state or {})
    return Turn(InboundMessage(channel, "u1", text=text), parse(intent, **kw), customer, conversation)


def test_language_follows_the_text_then_the_conversation_then_the_locale() -> None:
    assert message_language("안녕하세요", None) == "ko"
    assert message_language("hi", "ko") == "en"
    assert message_language("kim@example.com", None, previous="ko") == "ko"
    assert message_language("ORD-123456", "ko-KR") == "ko"
    assert message_language("010-1234-5678", None) == "en"
    assert message_language("/human_handoff", None, previous="ko") == "ko"


def test_a_channel_variant_is_used_on_its_channel_only() -> None:
    on_telegram = BOT.decide(turn("hello", "greet", channel="telegram")).replies[0]
    assert "Tap a button" in (on_telegram.text or "") and on_telegram.attachments[0].url
    on_rest = BOT.decide(turn("hello", "greet")).replies[0]
    assert "Tap a button" not in (on_rest.text or "") and not on_rest.attachments
    assert on_rest.buttons and on_rest.buttons[0].payload == "/order_status"


def test_a_variation_with_a_customer_field_is_used_only_when_the_field_is_known() -> None:
    anonymous = {BOT.decide(turn("hello", "greet")).replies[0].text for _ in range(20)}
    assert all(t and "{" not in t for t in anonymous)
    known = CustomerRecord(id=uuid.uuid4(), first_name="Alice")
    named = {BOT.decide(turn("hello", "greet", customer=known)).replies[0].text for _ in range(30)}
    assert any(t and t.startswith("Hello Alice!") for t in named)


def test_a_plain_answer_leaves_the_state_alone() -> None:
    decision = BOT.decide(turn("how long does shipping take", "faq_shipping_time", state={"lang": "en"}))
    assert decision.bot_state is None and decision.handoff is None and decision.intent == "faq_shipping_time"


def test_low_confidence_counts_as_not_understood() -> None:
    decision = BOT.decide(turn("hmm shipping?", "faq_shipping_time", confidence=0.3))
    assert decision.intent == "nlu_fallback" and decision.bot_state and decision.bot_state["fallbacks"] == 1


def test_the_out_of_scope_intent_is_a_fallback() -> None:
    first = BOT.decide(turn("tell me a joke", "oos"))
    assert first.handoff is None and "didn't understand" in (first.replies[0].text or "")
    second = BOT.decide(turn("sing me a song", "oos", state=first.bot_state))
    assert second.handoff is not None and second.handoff.team == "support"


def test_nothing_is_decided_for_a_conversation_a_person_holds() -> None:
    assert BOT.decide(turn("hello", "greet", status="open")) == Decision()


def test_entities_in_one_answer_fill_the_other_slots_too() -> None:
    started = BOT.decide(turn("where is my order", "order_status"))
    state = started.bot_state
    entities = [{"entity": "order_number", "value": "ORD-123456"}, {"entity": "email", "value": "a@b.com"}]
    done = BOT.decide(turn("order ORD-123456, a@b.com", "nlu_fallback", state=state, entities=entities))
    assert done.customer_updates == {"email": "a@b.com"} and done.attributes == {"last_order_number": "ORD-123456"}
    assert done.handoff is not None and done.handoff.team == "orders"


def test_a_valid_value_wins_over_a_misread_intent() -> None:
    state = BOT.decide(turn("where is my order", "order_status")).bot_state
    state = BOT.decide(turn("ORD-123456", "cancel", state=state)).bot_state
    assert state and state["form"]["slots"] == {"order_number": "ORD-123456"}


def test_the_callback_form_is_cancelled_by_the_builtin_cancel() -> None:
    state = BOT.decide(turn("call me back", "callback_request")).bot_state
    decision = BOT.decide(turn("stop", "cancel", state=state))
    assert decision.bot_state is not None and "form" not in decision.bot_state
    assert "Nothing was saved" in (decision.replies[0].text or "")
    assert not decision.customer_updates and not decision.consents


def test_the_sample_nlu_understands_both_languages(sample_bot: tuple[Any, Any]) -> None:
    _, parser = sample_bot
    expected = {
        "hello": "greet", "안녕하세요": "greet",
        "where is my order": "order_status", "주문 조회": "order_status",
        "I want to talk to a person": "human_handoff", "상담원 연결해 주세요": "human_handoff",
        "how long does shipping take": "faq_shipping_time", "배송 얼마나 걸려요": "faq_shipping_time",
        "can I return an item": "faq_return_policy", "반품하고 싶어요": "faq_return_policy",
        "are you open on weekends": "faq_opening_hours", "주말에도 하나요": "faq_opening_hours",
        "do you take paypal": "faq_payment_methods", "카드 결제 되나요": "faq_payment_methods",
        "cancel": "cancel", "취소": "cancel",
        "the item is damaged": "complaint", "call me back": "callback_request",
        "thanks, bye": "goodbye", "감사합니다 안녕히 계세요": "goodbye",
    }
    got = {text: asyncio.run(parser.parse(text))["intent"]["name"] for text in expected}
    assert got == expected
    assert asyncio.run(parser.parse("blorp zzzt"))["intent"]["name"] in ("nlu_fallback", "oos")  # both: not understood


def test_a_vip_is_routed_once_per_conversation() -> None:
    vip = CustomerRecord(id=uuid.uuid4(), tags={"vip"})
    first = BOT.decide(turn("hello", "greet", customer=vip))
    assert first.handoff is not None and (first.handoff.team, first.handoff.priority) == ("vip", "high")
    handed_back = BOT.decide(turn("hello", "greet", customer=vip, state=first.bot_state))
    assert handed_back.handoff is None and "Dangol assistant" in (handed_back.replies[0].text or "")
