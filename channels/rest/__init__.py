"""Rasa-compatible REST channel.

``POST /webhooks/rest/webhook`` takes ``{"sender": ..., "message": ...}`` and
answers with the bot's replies as ``[{"recipient_id": ..., "text": ...}]``,
as Rasa's ``RestInput`` does, so Rasa clients and test scripts work
unchanged.  An optional ``message_id`` (top level or in ``metadata``) makes
a retried request harmless: it is stored once and answered with the same
replies.

The bot answers inline; a person answers later, when the customer's request
is long gone.  Such replies wait in the outbox and are handed over, before
the bot's own answers, in the answer to the customer's next request; with
``rest_callback_url`` set (as Rasa's callback channel) the delivery worker
posts each one there at once instead, as one Rasa-shaped JSON object.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import BaseModel, SecretStr, field_validator

from channels.base import Channel, InboundHandler, PermanentSendError, SendError, SendResult
from contracts.http_errors import json_error, read_json_object, require_str
from contracts.messages import HandleResult, InboundMessage, OutboundMessage

log = logging.getLogger(__name__)


class RestSettings(BaseModel):
    """``DANGOL_REST_ENABLED``: the REST channel is on unless turned off; ``DANGOL_REST_CALLBACK_URL``:
    where people's replies are posted (else they wait for the customer's next request).

    ``DANGOL_REST_TOKEN``: when set, every webhook call must carry it as
    ``Authorization: Bearer <token>``.  Without one, anybody who reaches the
    port can write as any sender and read the bot's answers about them, so
    the channel then only runs on a loopback address (the local "Try it").
    """

    rest_enabled: bool = True
    rest_token: SecretStr | None = None
    rest_callback_url: str | None = None

    @field_validator("rest_callback_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value or None


#: Seconds between reads of who has a person's reply waiting (see RestChannel._waiting_replies).
WAITING_RECHECK = 1.0


class RestChannel(Channel):
    name = "rest"
    inline_replies = True
    Settings = RestSettings

    def __init__(self, max_message_chars: int = 4096, token: str | None = None, callback_url: str | None = None,
                 timeout: float = 10.0) -> None:
        super().__init__()
        self.max_message_chars = max_message_chars
        self._token = token.encode("utf-8") if token else None
        self.callback_url = callback_url
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        #: Who has a person's reply waiting, as last read, and when to read it again (see _waiting_replies).
        self._waiting_for: set[str] = set()
        self._recheck_at = 0.0

    @classmethod
    def from_settings(cls, settings: Any) -> RestChannel | None:
        if not settings.rest_enabled:
            return None
        token = settings.rest_token.get_secret_value() if settings.rest_token is not None else None
        if not token and not _is_loopback(getattr(settings, "host", "127.0.0.1")):
            log.warning("the REST channel is off: the service listens on %s, not only on loopback, and no rest_token is set "
                        "(set DANGOL_REST_TOKEN to require it as a Bearer token, or DANGOL_REST_ENABLED=false to silence this)",
                        settings.host)
            return None
        return cls(settings.max_message_chars, token or None, settings.rest_callback_url)

    @property
    def sends_outbox(self) -> bool:
        return self.callback_url is not None

    def describe_delivery(self) -> str:
        if self.callback_url:
            return "the bot answers in the HTTP response; people's replies are posted to the callback URL at once"
        return "the bot answers in the HTTP response; people's replies wait for the customer's next message"

    async def start(self) -> None:
        if self.callback_url:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, message: OutboundMessage) -> SendResult:
        """Post one reply to the callback URL, as Rasa's CallbackOutput does."""
        if self._session is None or self.callback_url is None:
            raise PermanentSendError("no rest_callback_url is configured")
        try:
            async with self._session.post(self.callback_url, data=_dumps(rasa_reply(message.recipient, message)),
                                          headers={"Content-Type": "application/json"}) as response:
                if response.status >= 500 or response.status == 429:
                    raise SendError(f"callback answered HTTP {response.status}")
                if response.status >= 400:
                    raise PermanentSendError(f"callback refused the message: HTTP {response.status}")
        except aiohttp.ClientError as exc:
            raise SendError(f"callback unreachable: {type(exc).__name__}: {exc}") from None
        return SendResult()

    def setup(self, app: web.Application, handle_inbound: InboundHandler) -> None:
        super().setup(app, handle_inbound)
        app.router.add_get("/webhooks/rest/", self.health)
        app.router.add_post("/webhooks/rest/webhook", self.webhook)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def _authorize(self, request: web.Request) -> None:
        if self._token is None:
            return
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), self._token):
            raise json_error(401, "unauthorized", "the REST channel needs its token as 'Authorization: Bearer <token>'",
                             headers={"WWW-Authenticate": 'Bearer realm="dangol-rest"'})

    async def webhook(self, request: web.Request) -> web.Response:
        self._authorize(request)
        data = await read_json_object(request)
        sender = require_str(data, "sender", max_length=255)
        text = require_str(data, "message", max_length=self.max_message_chars)
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise json_error(400, "invalid_field", "metadata must be a JSON object", "metadata")
        message_id = data.get("message_id", metadata.get("message_id"))
        if message_id is not None and (not isinstance(message_id, str | int) or len(str(message_id)) > 255):
            raise json_error(400, "invalid_field", "message_id must be a string of at most 255 characters", "message_id")
        extra = {k: v for k, v in metadata.items() if k != "message_id"}
        if message_id is not None:
            extra["message_id"] = str(message_id)
        inbound = InboundMessage(
            channel=self.name,
            sender_id=sender,
            text=text,
            external_id=sender_scoped_id(sender, str(message_id)) if message_id is not None else None,
            payload=text if text.startswith("/") else None,
            metadata=extra,
        )
        assert self.handle_inbound is not None
        waiting = await self._waiting_replies(sender)
        result = await self.handle_inbound(inbound)
        return web.json_response([rasa_reply(sender, reply) for reply in waiting] + rasa_replies(sender, result), dumps=_dumps)

    async def _waiting_replies(self, sender: str) -> list[OutboundMessage]:
        """People's replies that waited for this call (none when a callback URL delivers them)."""
        if self.callback_url is not None or self.services is None or self.services.take_queued is None:
            return []
        if self.services.queued_recipients is not None:
            # One read a second for all callers instead of one per call (a read on every request cost the
            # message path five times its CPU: 404 against 2,265 msg/s on SQLite); a reply queued by this
            # process is seen at once (note_queued), one queued by another within WAITING_RECHECK seconds.
            now = time.monotonic()
            if now >= self._recheck_at:
                self._recheck_at = now + WAITING_RECHECK
                self._waiting_for = await self.services.queued_recipients(self.name)
            if sender not in self._waiting_for:
                return []
            self._waiting_for.discard(sender)
        return await self.services.take_queued(self.name, sender)

    def note_queued(self) -> None:
        self._recheck_at = 0.0  # the next call reads who waits again


def sender_scoped_id(sender: str, message_id: str) -> str:
    """The stored external id of a REST message: the client's id within its sender's.

    A client picks its own ids, so two senders may both send ``"42"``; the
    store keeps ``(channel, external_id)`` unique, and without the sender in
    it the second would be answered as a duplicate of the first, with the
    first sender's replies.  A hash of the sender keeps the id short and of
    fixed size whatever the sender; the client's own id stays in the
    message's metadata.
    """
    digest = hashlib.blake2b(sender.encode("utf-8"), digest_size=8).hexdigest()
    scoped = f"{digest}:{message_id}"
    if len(scoped) > 255:  # the column's size: a long id is kept by its hash
        scoped = f"{digest}:#{hashlib.blake2b(message_id.encode('utf-8'), digest_size=16).hexdigest()}"
    return scoped


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
