"""The web chat: an embeddable widget talking to Dangol over a websocket.

A visitor is identified by a signed id kept in the browser, so a page
reload or a new tab is the same customer and nobody can claim another
visitor's id.  The visitor's mailbox is the stored history: a reply is
pushed to every open socket of the visitor (through the live-event hub when
the socket is held by another ``dangol serve`` process), and one written
while nobody was connected is shown from the history at the next
connection.  Messages carry a client id; a message re-sent after a
reconnect is the same (channel, external id) and is stored once.  On every
(re)connect the visitor gives the last message id it has shown and receives
everything after it from the store, so a reply written while it was away is
neither lost nor shown twice.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import secrets
import uuid
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Annotated, Any

from aiohttp import WSMsgType, web
from pydantic import BaseModel, field_validator
from pydantic_settings import NoDecode

from channels.base import Channel, InboundHandler, SendResult
from contracts.http_errors import error_body
from contracts.messages import InboundMessage, OutboundMessage
from contracts.untrusted import Untrusted, loads_checked

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
MAX_FRAME = 64 * 1024
PUSHED_MEMORY = 10_000
#: Live-event type asking the process that holds a visitor's socket to push a reply.
RELAY = "private.webchat.relay"


class WebChatSettings(BaseModel):
    """``DANGOL_WEBCHAT_ENABLED``: the web chat is on unless turned off.

    ``DANGOL_WEBCHAT_ALLOWED_ORIGINS``: the sites (``https://shop.example``,
    comma-separated) that may show the web chat page in a frame; by default
    only the service itself.  The widget script embedded on a site is not
    concerned: it is the page at ``/webchat`` that a frame would show.
    """

    webchat_enabled: bool = True
    webchat_allowed_origins: Annotated[list[str], NoDecode] = []

    @field_validator("webchat_allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        items = [v for v in re.split(r"[,\s]+", value) if v] if isinstance(value, str) else value
        if isinstance(items, list):
            for origin in items:
                if not isinstance(origin, str) or not _ORIGIN.fullmatch(origin):
                    raise ValueError(f"{origin!r} is not an origin such as https://shop.example or https://shop.example:8443")
        return items


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\*\.[A-Za-z0-9.-]+")


def page_policy(inline_script: str, frame_origins: list[str]) -> str:
    """The web chat page's Content-Security-Policy: its own script and the one inline script (by hash), sockets to
    itself, and frames only on itself and the allowed origins."""
    digest = base64.b64encode(hashlib.sha256(inline_script.encode("utf-8")).digest()).decode("ascii")
    return "; ".join([
        "default-src 'none'",
        f"script-src 'self' 'sha256-{digest}'",
        "style-src 'self' 'unsafe-inline'",  # the widget styles itself with one <style> element
        "img-src 'self' https: data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors " + " ".join(["'self'", *frame_origins]),
    ])


class WebChatChannel(Channel):
    name = "webchat"
    Settings = WebChatSettings
    delivery_note = "pushed at once to the visitor's open chat window; shown in the history when they come back"

    def __init__(self, max_message_chars: int = 4096, secret: str | None = None, allowed_origins: list[str] | None = None) -> None:
        super().__init__()
        page = (STATIC / "page.html").read_text(encoding="utf-8")
        inline = re.search(r"<script>(.*?)</script>", page, re.S)
        self._page = page
        self._page_headers = {
            "Content-Security-Policy": page_policy(inline.group(1) if inline else "", list(allowed_origins or [])),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "strict-origin-when-cross-origin",
        }
        self.max_message_chars = max_message_chars
        self._secret = secret.encode() if secret else None
        self.sockets: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
        #: Replies already pushed straight after their message was stored
        #: (bounded: in a multi-process deployment another process settles them).
        self._pushed: OrderedDict[str, None] = OrderedDict()
        self._events: asyncio.Queue[dict[str, Any]] | None = None
        self._relay: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> WebChatChannel | None:
        if not settings.webchat_enabled:
            return None
        secret = settings.secret_key.get_secret_value() if settings.secret_key else None
        return cls(settings.max_message_chars, secret, settings.webchat_allowed_origins)

    def setup(self, app: web.Application, handle_inbound: InboundHandler) -> None:
        super().setup(app, handle_inbound)
        app.router.add_get("/webchat", self.page)
        app.router.add_get("/webchat/widget.js", self.script)
        app.router.add_get("/webchat/ws", self.websocket)

    async def start(self) -> None:
        services = self.services
        if self._secret is None and services is not None:
            self._secret = (await services.secret("webchat_visitor_key")).encode()
        if services is not None and services.events is not None and services.events.cross_process:
            self._events = services.events.subscribe(frozenset({RELAY}))
            self._relay = asyncio.create_task(self._relay_pushes(self._events), name="webchat-relay")

    async def _relay_pushes(self, events: asyncio.Queue[dict[str, Any]]) -> None:
        """Push replies that another process's delivery worker sent to visitors connected here."""
        while True:
            event = await events.get()
            if event.get("type") != RELAY or event.get("visitor") not in self.sockets or self.services is None:
                continue
            try:
                message = await self.services.message(uuid.UUID(str(event["message_id"])))
            except (ValueError, KeyError):
                continue
            except Exception:  # noqa: BLE001 - the history still has it; keep relaying others
                log.exception("web chat relay failed")
                continue
            if message is not None:
                await self._send_frame(event["visitor"], _frame(message["id"], "out", message["text"], message["buttons"],
                                                                message["attachments"], message["created_at"],
                                                                sender_name=message.get("sender_name")))

    async def stop(self) -> None:
        if self._relay is not None:
            self._relay.cancel()
            await asyncio.gather(self._relay, return_exceptions=True)
        if self.services is not None and self.services.events is not None and self._events is not None:
            self.services.events.unsubscribe(self._events)
        for sockets in list(self.sockets.values()):
            for ws in list(sockets):
                await ws.close(code=1001, message=b"server shutting down")

    # -- identity -------------------------------------------------------
    def sign(self, visitor_id: str) -> str:
        assert self._secret is not None
        mac = hmac.new(self._secret, visitor_id.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{visitor_id}.{mac}"

    def verify(self, token: Any) -> str | None:
        if not isinstance(token, str) or token.count(".") != 1:
            return None
        visitor_id = token.split(".", 1)[0]
        return visitor_id if hmac.compare_digest(self.sign(visitor_id), token) else None

    # -- HTTP -----------------------------------------------------------
    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=self._page, content_type="text/html", charset="utf-8", headers=self._page_headers)

    async def script(self, request: web.Request) -> web.Response:
        return web.Response(
            text=(STATIC / "widget.js").read_text(encoding="utf-8"), content_type="application/javascript", charset="utf-8",
            headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
        )

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_FRAME)
        await ws.prepare(request)
        visitor: str | None = None
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    if frame.type == WSMsgType.ERROR:
                        break
                    continue
                try:
                    data = loads_checked(frame.data)
                    if not isinstance(data, dict):
                        raise ValueError("frame must be a JSON object")
                except Untrusted as exc:
                    await self._error(ws, exc.code, f"frame refused: {exc}", exc.field)
                    continue
                except ValueError as exc:
                    await self._error(ws, "invalid_json", f"frame is not a JSON object: {exc}")
                    continue
                kind = data.get("type")
                if kind == "hello":
                    if visitor is not None:
                        self.sockets[visitor].discard(ws)
                    visitor = await self._hello(ws, data)
                elif visitor is None:
                    await self._error(ws, "hello_first", "send a hello frame before messages", "type")
                elif kind in ("message", "postback"):
                    await self._inbound(ws, visitor, data)
                elif kind == "ping":
                    await ws.send_json({"type": "pong"})
                else:
                    await self._error(ws, "invalid_field", f"unknown frame type {kind!r}", "type")
        finally:
            if visitor is not None:
                self.sockets[visitor].discard(ws)
                if not self.sockets[visitor]:
                    self.sockets.pop(visitor, None)
        return ws

    async def _hello(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> str:
        visitor = self.verify(data.get("visitor"))
        if visitor is None:
            visitor = "v_" + secrets.token_urlsafe(16)
        await ws.send_json({"type": "welcome", "visitor": self.sign(visitor)})
        after = None
        if isinstance(data.get("after"), str):
            try:
                after = uuid.UUID(data["after"])
            except ValueError:
                after = None
        assert self.services is not None
        for message in await self.services.history(self.name, visitor, after):
            await ws.send_json(_frame(message["id"], message["direction"], message["text"], message["buttons"],
                                      message["attachments"], message["created_at"], history=True,
                                      sender_name=message.get("sender_name")))
        self.sockets[visitor].add(ws)
        await ws.send_json({"type": "ready"})
        return visitor

    async def _inbound(self, ws: web.WebSocketResponse, visitor: str, data: dict[str, Any]) -> None:
        client_id = data.get("client_id")
        if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64:
            await self._error(ws, "invalid_field", "client_id must be a string of 1-64 characters", "client_id")
            return
        field = "payload" if data["type"] == "postback" else "text"
        text = data.get(field)
        if not isinstance(text, str) or not text.strip():
            await self._error(ws, "missing_field", f"{field} is required", field, client_id)
            return
        if len(text) > self.max_message_chars:
            await self._error(ws, "field_too_long", f"{field} is longer than {self.max_message_chars} characters", field, client_id)
            return
        title = data.get("title") if isinstance(data.get("title"), str) else None
        inbound = InboundMessage(
            channel=self.name, sender_id=visitor, thread=visitor, external_id=f"{visitor}:{client_id}",
            text=title or text if field == "payload" else text, payload=text if field == "payload" else None,
            kind="postback" if field == "payload" else "message",
        )
        assert self.handle_inbound is not None
        try:
            result = await self.handle_inbound(inbound)
        except web.HTTPException as exc:
            await self._error(ws, "unavailable", exc.reason, None, client_id)
            return
        await ws.send_json({"type": "ack", "client_id": client_id, "id": result.message_id, "duplicate": result.duplicate})
        if not result.duplicate:
            # Push the replies from the process that holds the socket; the
            # outbox row still settles through the delivery worker, which
            # skips what was pushed here (and, in another process, finds no
            # socket and leaves it to the history).
            for reply in result.replies:
                self._pushed[reply.message_id or ""] = None
                if len(self._pushed) > PUSHED_MEMORY:
                    self._pushed.popitem(last=False)
                await self._push(visitor, reply)

    async def _error(self, ws: web.WebSocketResponse, code: str, message: str, field: str | None = None,
                     client_id: str | None = None) -> None:
        frame: dict[str, Any] = {"type": "error", **error_body(code, message, field)}
        if client_id:
            frame["client_id"] = client_id
        await ws.send_json(frame)

    # -- delivery -------------------------------------------------------
    async def send(self, message: OutboundMessage) -> SendResult:
        if message.message_id in self._pushed:
            del self._pushed[message.message_id]
        else:
            await self._push(message.recipient, message)
        return SendResult(external_id=message.message_id)

    async def _push(self, visitor: str, message: OutboundMessage) -> None:
        events = self.services.events if self.services is not None else None
        if visitor not in self.sockets and events is not None and events.cross_process and message.message_id:
            events.publish({"type": RELAY, "visitor": visitor, "message_id": message.message_id})
            return
        frame = _frame(message.message_id, "out", message.text, [b.to_dict() for b in message.buttons],
                       [a.to_dict() for a in message.attachments], None, sender_name=message.metadata.get("sender_name"))
        await self._send_frame(visitor, frame)

    async def _send_frame(self, visitor: str, frame: dict[str, Any]) -> None:
        sockets = [ws for ws in self.sockets.get(visitor, ()) if not ws.closed]
        # a socket that fails mid-send is a visitor gone away: the history still holds the reply
        await asyncio.gather(*(ws.send_json(frame) for ws in sockets), return_exceptions=True)


def _frame(message_id: str | None, direction: str, text: str | None, buttons: list[dict[str, Any]],
           attachments: list[dict[str, Any]], created_at: str | None, history: bool = False,
           sender_name: str | None = None) -> dict[str, Any]:
    """One message for the widget; ``sender`` names the person who wrote a reply (the bot's have none)."""
    frame = {"type": "message", "id": message_id, "direction": direction, "text": text, "buttons": buttons,
             "attachments": attachments, "created_at": created_at, "history": history}
    if sender_name:
        frame["sender"] = {"name": sender_name}
    return frame


__all__ = ["WebChatChannel"]
