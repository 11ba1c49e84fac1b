"""The Rasa-compatible REST channel and how it refuses bad input."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.exc import OperationalError

from bot.app import error_middleware

from crm_store.database import Database
from tests.helpers import count, total_rows

WEBHOOK = "/webhooks/rest/webhook"


async def test_a_greeting_gets_the_sample_bots_reply_in_rasas_shape(client: TestClient) -> None:
    response = await client.post(WEBHOOK, json={"sender": "u1", "message": "hello"})
    assert response.status == 200
    replies = await response.json()
    assert replies and all(r["recipient_id"] == "u1" for r in replies)
    assert all(set(r) <= {"recipient_id", "text", "buttons", "image", "attachment"} for r in replies)
    assert "hello" in replies[0]["text"].lower()


async def test_buttons_come_back_as_rasa_buttons(client: TestClient) -> None:
    replies = await (await client.post(WEBHOOK, json={"sender": "u1", "message": "help"})).json()
    assert any(r.get("buttons") for r in replies)
    assert all({"title", "payload"} <= set(b) for r in replies for b in r.get("buttons", []))


async def test_korean_text_is_answered_in_korean(client: TestClient) -> None:
    replies = await (await client.post(WEBHOOK, json={"sender": "u2", "message": "안녕하세요"})).json()
    assert any("\uac00" <= ch <= "\ud7a3" for ch in replies[0]["text"])


async def test_a_repeated_message_id_is_stored_once_and_answered_with_the_same_replies(client: TestClient, store: Database) -> None:
    body = {"sender": "u1", "message": "hello", "message_id": "abc-1"}
    first = await (await client.post(WEBHOOK, json=body)).json()
    second = await (await client.post(WEBHOOK, json=body)).json()
    assert first == second
    assert await count(store, "messages", direction="in") == 1
    assert await count(store, "messages", direction="out") == 1


async def test_the_health_endpoint_of_rasas_rest_channel_answers(client: TestClient) -> None:
    assert (await (await client.get("/webhooks/rest/")).json()) == {"status": "ok"}


async def _refused(client: TestClient, store: Database, status: int, code: str, **request: object) -> dict:
    before = await total_rows(store)
    response = await client.request(request.pop("method", "POST"), request.pop("path", WEBHOOK), **request)  # type: ignore[arg-type]
    assert response.status == status
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert await total_rows(store) == before
    return body


async def test_malformed_json_is_refused_and_nothing_is_written(client: TestClient, store: Database) -> None:
    await _refused(client, store, 400, "invalid_json", data=b'{"sender": "u1", "message": ', headers={"Content-Type": "application/json"})


async def test_a_json_array_is_refused(client: TestClient, store: Database) -> None:
    await _refused(client, store, 400, "invalid_json", json=[{"sender": "u1"}])


async def test_a_missing_field_is_named(client: TestClient, store: Database) -> None:
    body = await _refused(client, store, 400, "missing_field", json={"sender": "u1"})
    assert body["error"]["field"] == "message"


async def test_a_field_of_the_wrong_type_is_named(client: TestClient, store: Database) -> None:
    body = await _refused(client, store, 400, "invalid_field", json={"sender": 12, "message": "hi"})
    assert body["error"]["field"] == "sender"


async def test_a_one_megabyte_message_is_refused(client: TestClient, store: Database) -> None:
    await _refused(client, store, 413, "body_too_large", json={"sender": "u1", "message": "x" * 1_000_000})


async def test_a_message_longer_than_the_limit_is_refused_by_field(client: TestClient, store: Database) -> None:
    body = await _refused(client, store, 413, "field_too_long", json={"sender": "u1", "message": "가" * 5000})
    assert body["error"]["field"] == "message"


async def test_an_unknown_route_is_a_json_404(client: TestClient, store: Database) -> None:
    await _refused(client, store, 404, "not_found", method="GET", path="/webhooks/nope")


async def test_a_wrong_method_is_a_json_405(client: TestClient, store: Database) -> None:
    await _refused(client, store, 405, "method_not_allowed", method="GET", path=WEBHOOK)



async def test_an_unreachable_store_is_a_503_to_retry_not_a_500(aiohttp_client: Any) -> None:
    async def store_down(request: web.Request) -> web.Response:
        raise OperationalError("INSERT ...", {}, ConnectionRefusedError("database is down"))

    app = web.Application(middlewares=[error_middleware])
    app.router.add_post(WEBHOOK, store_down)
    client = await aiohttp_client(app)
    response = await client.post(WEBHOOK, json={"sender": "u1", "message": "hello"})
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert (await response.json())["error"]["code"] == "store_unavailable"


async def test_the_same_message_id_from_two_senders_is_two_messages_each_answered_for_its_sender(
        client: TestClient, store: Database) -> None:
    alice = await (await client.post(WEBHOOK, json={"sender": "victim-alice", "message": "where is my order", "message_id": "42"})).json()
    mallory = await (await client.post(WEBHOOK, json={"sender": "mallory", "message": "hi", "message_id": "42"})).json()
    assert all(r["recipient_id"] == "mallory" for r in mallory) and mallory != alice
    assert await count(store, "messages", direction="in") == 2


async def test_a_message_id_of_255_characters_is_accepted(client: TestClient) -> None:
    response = await client.post(WEBHOOK, json={"sender": "u9", "message": "hello", "message_id": "x" * 255})
    assert response.status == 200
