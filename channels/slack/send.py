"""OutboundMessage -> chat.postMessage, and slack-sdk's errors -> the worker's.

slack-sdk's own retry handlers are off (the client is built with
``retry_handlers=[]``): the delivery worker owns retries, so a 429 is
reported once with Slack's Retry-After instead of being slept on inside a
worker slot.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from channels.base import PermanentSendError, RecipientBlocked, RetryAfter, SendError, SendResult
from contracts.messages import OutboundMessage

MAX_BUTTON_TITLE = 75
MAX_BUTTON_VALUE = 2000
MAX_SECTION_TEXT = 3000
#: Errors after which the same call will never succeed.
PERMANENT = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "no_text", "invalid_blocks",
    "invalid_blocks_format", "too_many_attachments", "restricted_action", "cannot_reply_to_message",
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "no_permission",
    "missing_scope", "invalid_arguments", "ekm_access_denied", "team_access_not_granted",
})
#: Errors that mean this person can no longer be reached on Slack.
GONE = frozenset({"user_not_found", "user_disabled", "cannot_dm_bot"})


def split_recipient(recipient: str) -> tuple[str, str | None]:
    """``"C123:1700000000.000100"`` -> (channel, thread_ts); a bare channel has no thread."""
    channel, _, thread_ts = recipient.partition(":")
    return channel, thread_ts or None


def blocks_for(message: OutboundMessage) -> list[dict[str, Any]] | None:
    """Block Kit for what plain text cannot carry: buttons, images, files."""
    if not message.buttons and not message.attachments:
        return None
    blocks: list[dict[str, Any]] = []
    if message.text:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": message.text[:MAX_SECTION_TEXT]}})
    for attachment in message.attachments:
        if attachment.type == "image" and attachment.url:
            blocks.append({"type": "image", "image_url": attachment.url, "alt_text": attachment.name or "image"})
        elif attachment.url:
            label = attachment.name or attachment.url
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"<{attachment.url}|{label}>"}})
    if message.buttons:
        elements = []
        for index, button in enumerate(message.buttons[:25]):
            if len(button.payload) > MAX_BUTTON_VALUE:
                raise PermanentSendError(f"button {button.title!r}: payload is longer than Slack's {MAX_BUTTON_VALUE} characters")
            elements.append({
                "type": "button",
                "text": {"type": "plain_text", "text": button.title[:MAX_BUTTON_TITLE], "emoji": True},
                "value": button.payload,
                "action_id": f"dangol_reply_{index}",
            })
        blocks.append({"type": "actions", "block_id": "dangol_quick_replies", "elements": elements})
    return blocks


async def deliver(client: AsyncWebClient, message: OutboundMessage) -> SendResult:
    channel, thread_ts = split_recipient(message.recipient)
    params: dict[str, Any] = {"channel": channel, "text": message.text or _fallback(message)}
    if thread_ts:
        params["thread_ts"] = thread_ts
    blocks = blocks_for(message)
    if blocks:
        params["blocks"] = blocks
    if message.metadata.get("mrkdwn") is False:
        params["mrkdwn"] = False
    try:
        response = await client.chat_postMessage(**params)
    except Exception as exc:  # noqa: BLE001 - translated below
        raise translate(exc) from exc
    return SendResult(external_id=f"{response.get('channel') or channel}:{response.get('ts')}")


def _fallback(message: OutboundMessage) -> str:
    """Notifications and screen readers show ``text`` when a message is only blocks."""
    names = [a.name or a.type for a in message.attachments]
    return ", ".join(names) or " "


def translate(exc: BaseException) -> BaseException:
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        error = (exc.response.data or {}).get("error") if isinstance(exc.response.data, dict) else None
        if status == 429 or error == "ratelimited":
            return RetryAfter(float(exc.response.headers.get("Retry-After", exc.response.headers.get("retry-after", 1)) or 1),
                              "slack: ratelimited")
        if error in GONE:
            return RecipientBlocked(f"slack: {error}")
        if error in PERMANENT:
            return PermanentSendError(f"slack: {error}")
        if status >= 500 or error in ("internal_error", "fatal_error", "service_unavailable", "request_timeout"):
            return SendError(f"slack: HTTP {status} {error or ''}".strip())
        if 400 <= status < 500 and status not in (408,):
            return PermanentSendError(f"slack: HTTP {status} {error or ''}".strip())
        return PermanentSendError(f"slack: {error or 'error'}")
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ClientError, SlackClientError, OSError)):
        return SendError(f"slack: {type(exc).__name__}: {exc}")
    return exc
