"""POST /webhooks/slack/events and /interactions through bolt: verified, stored once, bots ignored."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from tests.channels.slack.conftest import make_senders, store_of
from tests.fakes.base import eventually
from tests.fakes.slack import BOT_USER_ID, FakeSlack
from tests.helpers import count, rows, total_rows

Send = Callable[..., Awaitable[Any]]


async def inbound(client: TestClient) -> list[Any]:
    return sorted(await rows(store_of(client), "messages", direction="in"), key=lambda r: r.created_at)


async def test_url_verification_is_answered_with_the_challenge(send_event: Send, slack_fixture: Any) -> None:
    body = slack_fixture("url_verification.json")
    response = await send_event(body)
    assert response.status == 200
    assert (await response.json())["challenge"] == body["challenge"]


async def test_a_direct_message_is_stored_and_answered_in_the_dm(
    client: TestClient, send_event: Send, slack_fixture: Any, fake_slack: FakeSlack
) -> None:
    body = slack_fixture("event_message_im.json")
    assert (await send_event(body)).status == 200
    [message] = await inbound(client)
    assert message.text == "Hello hello can you hear me?"
    assert message.external_id == "D024BE91L:1355517523.000005"
    assert message.metadata["event_id"] == "Ev0PV52K21"
    await eventually(lambda: bool(fake_slack.called("chat.postMessage")))
    call = fake_slack.called("chat.postMessage")[0]
    assert call["channel"] == "D024BE91L" and "thread_ts" not in call


async def test_the_same_event_retried_is_stored_once_and_answered_once(
    any_db_client: TestClient, slack_fixture: Any, fake_slack: FakeSlack
) -> None:
    send_event, _ = make_senders(any_db_client)
    body = slack_fixture("event_message_im.json")
    assert (await send_event(body)).status == 200
    for retry in ("1", "2"):
        response = await send_event(body, **{"X-Slack-Retry-Num": retry, "X-Slack-Retry-Reason": "http_timeout"})
        assert response.status == 200
    db = store_of(any_db_client)
    assert await count(db, "messages", direction="in") == 1
    replies = await count(db, "messages", direction="out")
    await eventually(lambda: _settled(db))
    assert len(fake_slack.called("chat.postMessage")) == replies >= 1


async def _settled(db: Any) -> bool:
    statuses = {r.status for r in await rows(db, "outbox")}
    return bool(statuses) and statuses <= {"sent", "failed"}


async def test_a_bad_signature_is_refused_and_nothing_is_stored(client: TestClient, send_event: Send, slack_fixture: Any) -> None:
    before = await total_rows(store_of(client))
    response = await send_event(slack_fixture("event_message_im.json"), secret="not-the-secret")
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"
    assert await total_rows(store_of(client)) == before


async def test_a_request_older_than_five_minutes_is_refused(client: TestClient, send_event: Send, slack_fixture: Any) -> None:
    before = await total_rows(store_of(client))
    response = await send_event(slack_fixture("event_message_im.json"), timestamp=int(time.time()) - 301)
    assert response.status == 401
    assert await total_rows(store_of(client)) == before


async def test_the_official_signing_vector_is_refused_today_because_it_is_stale(client: TestClient, slack_fixture: Any) -> None:
    vector = slack_fixture("signing_vector.json")
    headers = {"X-Slack-Request-Timestamp": str(vector["timestamp"]), "X-Slack-Signature": vector["signature"],
               "Content-Type": "application/x-www-form-urlencoded"}
    response = await client.post("/webhooks/slack/events", data=vector["body"], headers=headers)
    assert response.status == 401


async def test_an_app_mention_is_answered_in_a_thread_under_it(
    client: TestClient, send_event: Send, slack_fixture: Any, fake_slack: FakeSlack
) -> None:
    body = slack_fixture("event_app_mention.json")
    await send_event(body)
    [message] = await inbound(client)
    assert message.text == "Hi there!"
    await eventually(lambda: bool(fake_slack.called("chat.postMessage")))
    call = fake_slack.called("chat.postMessage")[0]
    assert (call["channel"], call["thread_ts"]) == ("C111", "1595926230.009600")


async def test_the_mention_and_the_channel_message_of_one_message_are_one_row(
    client: TestClient, send_event: Send, slack_fixture: Any
) -> None:
    mention = slack_fixture("event_app_mention.json")
    # A mention inside a thread the bot started arrives twice: as app_mention and as message.
    in_thread = {"thread_ts": "1595926000.000100", "parent_user_id": BOT_USER_ID}
    mention["event"].update(in_thread)
    as_message = {**mention, "event_id": "Ev222", "event": {**mention["event"], "type": "message", "channel_type": "channel"}}
    await send_event(mention)
    await send_event(as_message)
    assert len(await inbound(client)) == 1


async def test_messages_from_bots_are_ignored(client: TestClient, send_event: Send, slack_fixture: Any) -> None:
    im = slack_fixture("event_message_im.json")
    assert (await send_event(slack_fixture("event_message_bot_message_subtype.json"))).status == 200
    await send_event({**im, "event_id": "Ev1", "event": {**im["event"], "user": BOT_USER_ID, "ts": "1.1"}})
    await send_event({**im, "event_id": "Ev2", "event": {**im["event"], "bot_id": "B999", "ts": "1.2"}})
    assert await inbound(client) == []


async def test_people_talking_in_a_channel_without_the_bot_are_not_answered(client: TestClient, send_event: Send, slack_fixture: Any) -> None:
    body = slack_fixture("event_message_thread_reply_channel.json")
    assert (await send_event(body)).status == 200
    assert await inbound(client) == []


async def test_a_reply_in_a_thread_the_bot_started_is_answered_in_that_thread(
    client: TestClient, send_event: Send, slack_fixture: Any
) -> None:
    body = slack_fixture("event_message_thread_reply_channel.json")
    body["event"]["parent_user_id"] = BOT_USER_ID
    await send_event(body)
    [message] = await inbound(client)
    assert message.metadata["thread"] == "C111:1726133698.626339"


async def test_an_edit_updates_the_stored_original(client: TestClient, send_event: Send, slack_fixture: Any) -> None:
    changed = slack_fixture("event_message_changed.json")
    previous = changed["event"]["previous_message"]
    original = {**changed, "event_id": "Ev100", "event": {"type": "message", "channel": "C111", "channel_type": "im",
                                                          "user": previous["user"], "text": previous["text"], "ts": previous["ts"]}}
    await send_event(original)
    await send_event(changed)
    await send_event(changed, **{"X-Slack-Retry-Num": "1"})
    [message] = await inbound(client)
    assert message.text == "updated message"
    assert message.external_id == "C111:1665102338.901939"


async def test_a_file_share_keeps_the_files(client: TestClient, send_event: Send, slack_fixture: Any) -> None:
    body = slack_fixture("event_message_file_share.json")
    body["event"]["channel_type"] = "im"
    await send_event(body)
    [message] = await inbound(client)
    [image] = message.attachments
    assert image["type"] == "image" and image["file_id"] == "F111" and image["name"] == "file.png"
    assert image["url"].startswith("https://files.slack.com/")


async def test_events_dangol_does_not_read_are_acknowledged(client: TestClient, send_event: Send, slack_fixture: Any) -> None:
    before = await total_rows(store_of(client))
    assert (await send_event(slack_fixture("event_member_joined_channel.json"))).status == 200
    assert await total_rows(store_of(client)) == before


async def test_a_button_press_is_the_persons_choice(client: TestClient, send_interaction: Send, slack_fixture: Any) -> None:
    body = slack_fixture("interactivity_block_actions.json")
    assert (await send_interaction(body)).status == 200
    assert (await send_interaction(body)).status == 200
    [message] = await inbound(client)
    assert message.metadata["payload"] == "click_me_123"
    assert message.text == "View"
    assert message.metadata["thread"] == "CBR2V3XEX:1548261231.000200"


async def test_a_modal_submission_is_acknowledged_and_ignored(client: TestClient, send_interaction: Send, slack_fixture: Any) -> None:
    before = await total_rows(store_of(client))
    assert (await send_interaction(slack_fixture("interactivity_view_submission.json"))).status == 200
    assert await total_rows(store_of(client)) == before


async def test_while_slack_cannot_confirm_our_identity_events_are_refused_so_slack_retries(
    client: TestClient, send_event: Send, slack_fixture: Any, fake_slack: FakeSlack
) -> None:
    fake_slack.fail("auth.test", 429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "1"})
    body = slack_fixture("event_message_im.json")
    first = await send_event(body)
    assert first.status >= 500
    assert await inbound(client) == []
    assert (await send_event(body, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_error"})).status == 200
    assert len(await inbound(client)) == 1


async def test_app_rate_limited_is_acknowledged_with_200_logged_and_counted(client: TestClient, send_event: Send) -> None:
    # Slack's documented callback when an app exceeds 30,000 events an hour per workspace
    body = {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "type": "app_rate_limited", "team_id": "T123ABC456",
            "minute_rate_limited": 1518467820, "api_app_id": "A123ABC456"}
    response = await send_event(body)
    assert response.status == 200
    metrics = await (await client.get("/metrics")).text()
    assert 'dangol_platform_notices_total{channel="slack",kind="app_rate_limited"} 1.0' in metrics


async def test_an_unsigned_app_rate_limited_is_still_refused(send_event: Send) -> None:
    body = {"type": "app_rate_limited", "team_id": "T1", "minute_rate_limited": 1518467820}
    assert (await send_event(body, secret="not-the-secret")).status == 401
