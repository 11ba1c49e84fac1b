"""Rasa-compatible REST channel.

``POST /webhooks/rest/webhook`` takes ``{"sender": ..., "message": ...}`` and
answers with the bot's replies as ``[{"recipient_id": ..., "text": ...}]``,
as Rasa's ``RestInput`` does, so Rasa clients and test scripts work
unchanged.  An optional ``message_id`` (top level or in ``metadata``) makes
a retried request harmless: it is stored once and answered with the same
replies.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from channels.base import Channel, InboundHandler
from contracts.http_errors import json_error, read_json_object, require_str
from contracts.messages import HandleResult, InboundMessage, OutboundMessage


class RestSettings(BaseModel):
    """``DANGOL_REST_ENABLED``: the REST channel is on unless turned off."""

    rest_enabled: bool = True


class RestChannel(Channel):
    name = "rest"
    inline_replies = True
    Settings = RestSettings

    def __init__(self, max_message_chars: int = 4096) -> None:
        super().__init__()
        self.max_message_chars = max_message_chars

    @classmethod
    def from_settings(cls, settings: Any) -> RestChannel | None:
        return cls(settings.max_message_chars) if settings.rest_enabled else None

    def setup(self, app: web.Application, handle_inbound: InboundHandler) -> None:
        super().setup(app, handle_inbound)
        app.router.add_get("/webhooks/rest/", self.health)
        app.router.add_post("/webhooks/rest/webhook", self.webhook)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def webhook(self, request: web.Request) -> web.Response:
        data = await read_json_object(request)
        sender = require_str(data, "sender", max_length=255)
        text = require_str(data, "message", max_length=self.max_message_chars)
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise json_error(400, "invalid_field", "metadata must be a JSON object", "metadata")
        message_id = data.get("message_id", metadata.get("message_id"))
        if message_id is not None and (not isinstance(message_id, str | int) or len(str(message_id)) > 255):
            raise json_error(400, "invalid_field", "message_id must be a string of at most 255 characters", "message_id")
        inbound = InboundMessage(
            channel=self.name,
            sender_id=sender,
            text=text,
            external_id=str(message_id) if message_id is not None else None,
            payload=text if text.startswith("/") else None,
            metadata={k: v for k, v in metadata.items() if k != "message_id"},
        )
        assert self.handle_inbound is not None
        result = await self.handle_inbound(inbound)
        return web.json_response(rasa_replies(sender, result), dumps=_dumps)


def rasa_replies(sender: str, result: HandleResult) -> list[dict[str, Any]]:
    return [rasa_reply(sender, reply) for reply in result.replies]


def rasa_reply(sender: str, reply: OutboundMessage) -> dict[str, Any]:
    """Rasa's REST output shape: text, buttons, image, attachment keys as present."""
    item: dict[str, Any] = {"recipient_id": sender}
    if reply.text is not None:
        item["text"] = reply.text
    if reply.buttons:
        item["buttons"] = [b.to_dict() for b in reply.buttons]
    for attachment in reply.attachments:
        if attachment.type == "image" and attachment.url:
            item["image"] = attachment.url
        else:
            item["attachment"] = attachment.to_dict()
    return item


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)
