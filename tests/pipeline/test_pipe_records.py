"""The message records cross a pipe to the writer process: a pickled record comes back equal, whatever it holds."""

from __future__ import annotations

import datetime as dt
import pickle

from bot.engine.turn import InboundItem
from contracts.messages import Attachment, Button, HandleResult, InboundMessage, OutboundMessage, Profile


def test_an_inbound_item_with_every_field_set_comes_back_equal() -> None:
    message = InboundMessage(
        channel="telegram", sender_id="42", text="주문 #A-1001 어디 있나요?", external_id="update-7", thread="t-1",
        kind="edit", edit_of="update-6", payload="/order_status", attachments=[Attachment(type="image", url="https://x/y.png")],
        profile=Profile(first_name="민지", last_name="Kim", language="ko"), metadata={"chat": {"id": 42}},
        sent_at=dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=9))),
    )
    item = InboundItem(message, {"intent": {"name": "order_status", "confidence": 0.9}, "entities": []})
    assert pickle.loads(pickle.dumps(item)) == item


def test_a_result_with_replies_comes_back_equal() -> None:
    reply = OutboundMessage.from_payload("rest", "a", {"text": "hi", "buttons": [{"title": "Talk to a person", "payload": "/human"}]},
                                         message_id="m", conversation_id="c", customer_id="u")
    result = HandleResult(False, "m-in", "c", "u", [reply])
    back = pickle.loads(pickle.dumps(result))
    assert back == result and isinstance(back.replies[0].buttons[0], Button)
