"""POST /webhooks/telegram: what is stored from each kind of update, and what is refused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from tests.channels.telegram.conftest import as_update, eventually, make_poster, own_fixture, store_of
from tests.fakes.telegram import FakeTelegram
from tests.helpers import count, rows, total_rows

Post = Callable[..., Awaitable[Any]]


async def inbound(client: TestClient) -> list[Any]:
    return sorted(await rows(store_of(client), "messages", direction="in"), key=lambda r: r.created_at)


async def test_a_private_text_is_stored_with_telegrams_ids(client: TestClient, post_update: Post, tg_fixture: Any) -> None:
    update = tg_fixture("update_message_text_private.json")
    response = await post_update(update)
    assert response.status == 200
    [message] = await inbound(client)
    chat = update["message"]["chat"]["id"]
    assert message.external_id == f"{chat}:{update['message']['message_id']}"
    assert message.text == update["message"]["text"]
    [identity] = await rows(store_of(client), "channel_identities")
    assert identity.channel == "telegram" and identity.external_id == str(update["message"]["from"]["id"])


async def test_the_same_update_twice_is_stored_once_and_answered_once(
    any_db_client: TestClient, fake_telegram: FakeTelegram, tg_fixture: Any
) -> None:
    post = make_poster(any_db_client)
    update = tg_fixture("update_message_text_private.json")
    assert (await post(update)).status == 200
    assert (await post(update)).status == 200
    db = store_of(any_db_client)
    assert await count(db, "messages", direction="in") == 1
    replies = await count(db, "messages", direction="out")
    assert replies >= 1
    await eventually(lambda: len(fake_telegram.called("sendMessage")) >= replies)
    await eventually(lambda: _all_sent(db))
    assert len(fake_telegram.called("sendMessage")) == replies
    assert {int(c["chat_id"]) for c in fake_telegram.called("sendMessage")} == {update["message"]["chat"]["id"]}


async def _all_sent(db: Any) -> bool:
    return await count(db, "outbox", status="queued") == 0 and await count(db, "outbox", status="sending") == 0


async def test_a_wrong_secret_is_refused_with_a_json_401_and_nothing_is_stored(client: TestClient, post_update: Post, tg_fixture: Any) -> None:
    before = await total_rows(store_of(client))
    for secret in ("wrong", None, ""):
        response = await post_update(tg_fixture("update_message_text_private.json"), secret=secret)
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"
    assert await total_rows(store_of(client)) == before


async def test_a_body_that_is_not_an_update_is_a_json_400(client: TestClient, post_update: Post) -> None:
    response = await post_update({"update_id": 1, "message": {"message_id": "x"}})
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_update"


async def test_the_profile_fills_the_customer_on_first_contact(client: TestClient, post_update: Post, tg_fixture: Any) -> None:
    await post_update(tg_fixture("update_message_start_deeplink.json"))
    [customer] = await rows(store_of(client), "customers")
    assert customer.first_name == "Bijoy"
    assert customer.locale == "en"
    assert customer.attributes.get("username") == "bijoyvbabu123"


async def test_start_with_a_deep_link_keeps_the_payload(client: TestClient, post_update: Post, tg_fixture: Any) -> None:
    await post_update(tg_fixture("update_message_start_deeplink.json"))
    [message] = await inbound(client)
    assert message.metadata["start_param"] == "YnZiMTIzbWlzY0BnbWFpbC5jb20="


async def test_an_official_docs_example_without_is_bot_is_accepted(client: TestClient, post_update: Post, tg_fixture: Any) -> None:
    response = await post_update(tg_fixture("update_message_entities.json"))
    assert response.status == 200
    [message] = await inbound(client)
    assert message.text == "Bold and italics"


async def test_an_edit_updates_the_stored_original(client: TestClient, post_update: Post, tg_fixture: Any) -> None:
    edit = tg_fixture("update_edited_message.json")
    original = {"update_id": 9999, "message": {k: v for k, v in edit["edited_message"].items() if k != "edit_date"} | {"text": "Original"}}
    await post_update(original)
    await post_update(edit)
    await post_update(edit)  # Telegram's retry of the same edit
    [message] = await inbound(client)
    assert message.text == "Edited text"
    assert message.external_id == "1111111:1365"


async def test_a_voice_message_keeps_its_file_id(client: TestClient, post_update: Post, tg_fixture: Any) -> None:
    update = tg_fixture("update_message_voice.json")  # predates is_bot and file_unique_id
    assert (await post_update(update)).status == 200
    [message] = await inbound(client)
    [voice] = message.attachments
    assert voice["type"] == "voice" and voice["file_id"] == update["message"]["voice"]["file_id"]


async def test_a_photo_keeps_the_largest_size_and_its_caption(client: TestClient, post_update: Post, tg_fixture: Any) -> None:
    body = tg_fixture("message_photo_caption_entities.json")
    await post_update(as_update(body))
    [message] = await inbound(client)
    largest = max(body["photo"], key=lambda p: p["width"] * p["height"])
    assert message.attachments[0]["type"] == "image" and message.attachments[0]["file_id"] == largest["file_id"]
    assert message.text == body["caption"]


async def test_a_sticker_and_a_location_are_attachments(client: TestClient, post_update: Post, tg_fixture: Any) -> None:
    await post_update(as_update(tg_fixture("message_sticker_animated.json"), 1))
    location = tg_fixture("message_location.json")
    location["from"]["is_bot"] = False  # the published capture marks its sender as a bot, whom we ignore
    await post_update(as_update(location, 2))
    kinds = {a["type"]: a for m in await inbound(client) for a in m.attachments}
    assert kinds["sticker"]["file_id"]
    assert kinds["location"]["extra"] == {"latitude": 26.090577, "longitude": 127.479471}


async def test_a_message_from_a_bot_is_ignored(client: TestClient, post_update: Post, tg_fixture: Any) -> None:
    response = await post_update(as_update(tg_fixture("message_location.json")))
    assert response.status == 200
    assert await inbound(client) == []


async def test_non_latin_text_and_emoji_are_kept_as_sent(client: TestClient, post_update: Post, tg_fixture: Any) -> None:
    await post_update(as_update(tg_fixture("message_text_cyrillic_emoji.json")))
    [message] = await inbound(client)
    assert message.text == "Лол кек 😂"


async def test_a_document_is_an_attachment_with_name_and_type(client: TestClient, post_update: Post) -> None:
    await post_update(as_update(own_fixture("message_document.json")))
    [message] = await inbound(client)
    assert message.attachments[0] | {} == {"type": "document", "file_id": "BQACAgIAAxkBAAIBXWVk", "name": "receipt.pdf",
                                           "mime_type": "application/pdf", "extra": {"file_unique_id": "AgADXW"}}
    assert message.text == "my receipt"


async def test_a_shared_own_contact_is_a_verified_phone(client: TestClient, post_update: Post) -> None:
    await post_update(as_update(own_fixture("message_contact_own.json")))
    [customer] = await rows(store_of(client), "customers")
    assert customer.phone == "+821012345678"


async def test_someone_elses_contact_is_kept_but_not_trusted(client: TestClient, post_update: Post) -> None:
    body = own_fixture("message_contact_own.json")
    body["contact"]["user_id"] = 99
    await post_update(as_update(body))
    [customer] = await rows(store_of(client), "customers")
    assert customer.phone is None
    [message] = await inbound(client)
    assert message.attachments[0]["extra"]["phone_number"] == "821012345678"


async def test_group_messages_are_threaded_by_chat_and_attributed_to_the_sender(client: TestClient, post_update: Post, tg_fixture: Any) -> None:
    update = tg_fixture("update_message_supergroup_command_reply.json")
    await post_update(update)
    await post_update(own_fixture("update_group_text.json"))
    conversations = {c.thread for c in await rows(store_of(client), "conversations")}
    assert conversations == {"-1001293752024", "-4012345678"}
    identities = {i.external_id for i in await rows(store_of(client), "channel_identities")}
    assert identities == {"5964236329", "515151"}


async def test_a_button_press_is_the_customers_choice_and_is_answered(
    client: TestClient, post_update: Post, tg_fixture: Any, fake_telegram: FakeTelegram
) -> None:
    update = tg_fixture("update_callback_query_inline_keyboard.json")
    await post_update(update)
    await post_update(update)
    [message] = await inbound(client)
    assert message.text == "Button 2"
    assert message.metadata["payload"] == "button2_bijoy"
    assert {c["callback_query_id"] for c in fake_telegram.called("answerCallbackQuery")} == {update["callback_query"]["id"]}


async def test_a_user_who_blocks_the_bot_becomes_unreachable(client: TestClient, post_update: Post, tg_fixture: Any) -> None:
    kicked = tg_fixture("update_my_chat_member_kicked_private.json")
    hello = {"update_id": 1, "message": {"message_id": 5, "date": 1644677700, "text": "hi",
                                         "chat": kicked["my_chat_member"]["chat"], "from": kicked["my_chat_member"]["from"]}}
    await post_update(hello)
    assert (await post_update(kicked)).status == 200
    [identity] = await rows(store_of(client), "channel_identities")
    assert identity.reachable is False


async def test_updates_dangol_does_not_read_are_acknowledged_and_ignored(client: TestClient, post_update: Post) -> None:
    poll = {"update_id": 5, "poll": {"id": "1", "question": "?", "options": [], "total_voter_count": 0, "is_closed": True,
                                     "is_anonymous": True, "type": "regular", "allows_multiple_answers": False}}
    before = await total_rows(store_of(client))
    assert (await post_update(poll)).status == 200
    assert await total_rows(store_of(client)) == before
