"""Every path of the sample bot, through the real engine and store (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable

from tests.bot.conftest import Chat

Chats = Callable[..., Chat]


async def test_a_greeting_and_an_faq_are_answered_in_the_customers_language(chat: Chats) -> None:
    alice = chat()
    assert "I'm the Dangol assistant" in (await alice.say("hello"))[0]
    (answer,) = await alice.say("how long does shipping take?")
    assert "2–3 working days" in answer
    (answer,) = await alice.say("what is your return policy")
    assert "14 days" in answer
    assert "9 am to 6 pm" in (await alice.say("what are your opening hours"))[0]
    assert "PayPal" in (await alice.say("can I pay with a credit card?"))[0]
    minsu = chat()
    assert "단골 도우미" in (await minsu.say("안녕하세요"))[0]
    assert "영업일 기준 2~3일" in (await minsu.say("배송 얼마나 걸려요?"))[0]
    assert "14일 이내" in (await minsu.say("환불 정책 알려주세요"))[0]
    conversation = await minsu.conversation()
    assert conversation["status"] == "bot" and conversation["team"] is None


async def test_the_order_form_rejects_a_bad_email_then_stores_the_good_one_with_consent(chat: Chats) -> None:
    bob = chat()
    replies = await bob.say("where is my order?")
    assert replies[-1].startswith("What is the order number?")
    assert (await bob.say("ORD-204518")) == [
        "What e-mail address did you order with? We only use it to contact you about this request."
    ]
    bad = await bob.say("bob at example dot com")
    assert "doesn't look like an e-mail address" in bad[0] and "bob at example dot com" in bad[0]
    assert bad[1].startswith("What e-mail address")
    customer = await bob.customer()
    assert customer["email"] is None and customer["consents"] == []
    done = await bob.say("Bob@Example.com")
    assert "ORD-204518" in done[0] and "bob@example.com" in done[0]
    customer = await bob.customer()
    assert customer["email"] == "bob@example.com"
    assert customer["attributes"]["last_order_number"] == "ORD-204518"
    assert [(c["channel"], c["purpose"], c["granted"]) for c in customer["consents"]] == [("email", "support_contact", True)]
    conversation = await bob.conversation()
    assert (conversation["status"], conversation["team"], conversation["priority"]) == ("pending", "orders", "medium")


async def test_the_order_form_takes_an_order_number_given_with_the_request(chat: Chats) -> None:
    carol = chat()
    replies = await carol.say("can you check order #ORD-998877")
    assert replies[-1].startswith("What e-mail address")


async def test_a_korean_order_form_fills_in_korean(chat: Chats) -> None:
    minji = chat()
    assert "주문번호를 알려주세요" in (await minji.say("주문 조회 해주세요"))[-1]
    assert "이메일 주소" in (await minji.say("123456"))[0]
    (done,) = await minji.say("minji@example.kr")
    assert "123456" in done and "minji@example.kr" in done and "전달했어요" in done


async def test_cancel_ends_the_form_politely_and_writes_nothing(chat: Chats) -> None:
    dave = chat()
    await dave.say("track my order")
    await dave.say("ORD-555555")
    (cancelled,) = await dave.say("cancel")
    assert "Nothing was saved" in cancelled
    customer = await dave.customer()
    assert customer["email"] is None and customer["attributes"].get("last_order_number") is None
    assert customer["consents"] == []
    assert (await dave.conversation())["status"] == "bot"
    assert "2–3 working days" in (await dave.say("how long does delivery take"))[0]  # the form is gone
    eun = chat()
    await eun.say("주문 조회")
    assert "취소했어요" in (await eun.say("취소"))[0]
    frank = chat()
    await frank.say("where is my order")
    assert "Nothing was saved" in (await frank.say("/cancel"))[0]  # the Cancel button


async def test_a_question_in_the_middle_of_a_form_is_answered_and_the_form_goes_on(chat: Chats) -> None:
    gina = chat()
    await gina.say("where is my order")
    replies = await gina.say("what are your opening hours?")
    assert "9 am to 6 pm" in replies[0] and replies[1].startswith("What is the order number?")
    assert (await gina.say("ORD-123456"))[0].startswith("What e-mail address")


async def test_two_messages_not_understood_in_a_row_go_to_a_person(chat: Chats) -> None:
    hank = chat()
    (first,) = await hank.say("blorp zzzt")
    assert "didn't understand" in first
    assert (await hank.conversation())["status"] == "bot"
    (second,) = await hank.say("qwertyuiop asdf")
    assert "passing you to a person" in second
    conversation = await hank.conversation()
    assert (conversation["status"], conversation["team"], conversation["priority"]) == ("pending", "support", "medium")


async def test_an_understood_message_resets_the_fallback_count(chat: Chats) -> None:
    ivy = chat()
    await ivy.say("blorp zzzt")
    await ivy.say("hello")
    (again,) = await ivy.say("qwertyuiop asdf")
    assert "didn't understand" in again
    assert (await ivy.conversation())["status"] == "bot"


async def test_asking_for_a_person_hands_off_and_the_bot_says_so(chat: Chats) -> None:
    jack = chat()
    (said,) = await jack.say("I want to talk to a person")
    assert "passing this to a person" in said
    conversation = await jack.conversation()
    assert (conversation["status"], conversation["team"], conversation["priority"]) == ("pending", "support", "medium")
    kyle = chat()
    await kyle.say("where is my order")
    (said,) = await kyle.say("/human_handoff")  # the button, in the middle of a form
    assert "passing this to a person" in said
    assert (await kyle.conversation())["status"] == "pending"
    mina = chat()
    assert "상담원에게 전달했어요" in (await mina.say("상담원 연결해 주세요"))[0]


async def test_a_complaint_goes_to_support_with_high_priority(chat: Chats) -> None:
    lee = chat()
    (said,) = await lee.say("the product arrived broken")
    assert "as a priority" in said
    conversation = await lee.conversation()
    assert (conversation["status"], conversation["team"], conversation["priority"]) == ("pending", "support", "high")


async def test_a_vip_customer_goes_straight_to_the_vip_team(chat: Chats) -> None:
    vera = chat()
    await vera.say("hello")
    assert (await vera.conversation())["status"] == "bot"
    await vera.tag("vip")
    (said,) = await vera.say("how long does shipping take?")
    assert "dedicated team" in said
    conversation = await vera.conversation()
    assert (conversation["status"], conversation["team"], conversation["priority"]) == ("pending", "vip", "high")


async def test_the_bot_only_acknowledges_while_an_agent_holds_the_conversation(chat: Chats) -> None:
    nora = chat()
    await nora.say("hello")
    await nora.agent_takes_over()
    (waiting,) = await nora.say("hello?")
    assert "in the queue for a person" in waiting
    assert await nora.say("blorp zzzt") == []  # one acknowledgement per few minutes
    (again,) = await nora.say("I want to talk to a person")  # but a new request for a person is answered
    assert "in the queue for a person" in again
    conversation = await nora.conversation()
    assert conversation["status"] == "open"


async def test_after_its_own_handoff_the_bot_only_says_the_customer_waits(chat: Chats) -> None:
    omar = chat()
    await omar.say("I want to talk to a person")
    (waiting,) = await omar.say("hello? anyone?")
    assert "in the queue for a person" in waiting
    assert (await omar.conversation())["status"] == "pending"


async def test_a_callback_request_stores_a_korean_mobile_number_in_e164(chat: Chats) -> None:
    pia = chat()
    assert "전화" in (await pia.say("전화 주세요"))[0]
    bad = await pia.say("010-12")
    assert "전화번호로 인식되지 않아요" in bad[0]
    (done,) = await pia.say("010-1234-5678")
    assert "+821012345678" in done
    customer = await pia.customer()
    assert customer["phone"] == "+821012345678"
    assert [(c["channel"], c["purpose"]) for c in customer["consents"]] == [("phone", "support_contact")]
    assert (await pia.conversation())["team"] == "support"


async def test_three_wrong_answers_hand_the_form_to_a_person(chat: Chats) -> None:
    quinn = chat()
    await quinn.say("where is my order")
    await quinn.say("no idea")
    await quinn.say("still no idea")
    (said,) = await quinn.say("whatever")
    assert "passing you to a person" in said
    conversation = await quinn.conversation()
    assert (conversation["status"], conversation["team"]) == ("pending", "orders")
    assert (await quinn.customer())["attributes"].get("last_order_number") is None
