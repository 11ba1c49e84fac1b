"""A loopback Telegram Bot API: ``POST /bot<token>/<method>`` as documented.

Answers sendMessage/sendPhoto/sendDocument with a Message, answerCallbackQuery,
setWebhook, deleteWebhook, getMe and getUpdates (from :meth:`push_update`).
Records every call; :meth:`FakeServer.fail` injects 429/403/400/5xx or a
delay.  With ``per_second`` set it enforces the bot-wide window the way
Telegram does (429 with ``retry_after``) and counts the violations, which is
how the broadcast benchmark proves it stays under the limit.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from aiohttp import web

from tests.fakes.base import Call, FakeServer, read_params

BOT = {"id": 7000001, "is_bot": True, "first_name": "Dangol", "username": "dangol_test_bot"}
SEND_METHODS = ("sendMessage", "sendPhoto", "sendDocument")


def error(code: int, description: str, **parameters: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


class FakeTelegram(FakeServer):
    def __init__(self, token: str = "123:TEST", *, per_second: int | None = None, record: bool = True) -> None:
        super().__init__()
        self.token = token
        self.per_second = per_second
        self.record = record
        self.sent = 0
        self.rejected_429 = 0
        self._window: deque[float] = deque()
        self._message_id = 1000
        self._updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._update_id = 500
        #: Arrival time of every accepted send, kept even with ``record=False`` (for the window check).
        self.send_times: list[float] = []

    @property
    def api_url(self) -> str:
        return self.url

    def build(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self.handle)
        app.router.add_get("/bot{token}/{method}", self.handle)
        app.router.add_get("/_fake/stats", self.stats)
        return app

    async def stats(self, request: web.Request) -> web.Response:
        """What a benchmark in another process needs to know about the run."""
        if request.query.get("reset"):
            self.sent, self.rejected_429, self.send_times = 0, 0, []
            self._window.clear()
        return web.json_response({"sent": self.sent, "rejected_429": self.rejected_429, "max_in_1s": self.max_in_window(1.0)})

    def push_update(self, update: dict[str, Any]) -> None:
        """Queue an update for getUpdates (polling tests)."""
        self._update_id += 1
        self._updates.put_nowait({"update_id": self._update_id, **update})

    def max_in_window(self, seconds: float = 1.0) -> int:
        """Most sends seen in any window of ``seconds`` (sliding over the calls)."""
        times = sorted(self.send_times)
        best, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= seconds:
                start += 1
            best = max(best, end - start + 1)
        return best

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return web.json_response(error(401, "Unauthorized"), status=401)
        params = await read_params(request)
        if self.record:
            self.calls.append(Call(method, params))
        injected = await self._injected(method)
        if injected is not None:
            return injected
        if method in SEND_METHODS and self.per_second is not None and self._over_limit():
            self.rejected_429 += 1
            return web.json_response(error(429, "Too Many Requests: retry after 1", retry_after=1), status=429)
        answer = getattr(self, f"_{method}", None)
        if answer is None:
            return web.json_response(error(404, "Not Found: method not found"), status=404)
        return web.json_response({"ok": True, "result": await answer(params)})

    def _over_limit(self) -> bool:
        now = time.monotonic()
        while self._window and now - self._window[0] >= 1.0:
            self._window.popleft()
        if len(self._window) >= (self.per_second or 0):
            return True
        self._window.append(now)
        return False

    def _message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        self._message_id += 1
        self.sent += 1
        self.send_times.append(time.monotonic())
        chat_id = int(params["chat_id"])
        chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
        if chat_id < 0:
            chat["title"] = "Group"
        else:
            chat["first_name"] = "Customer"
        return {"message_id": self._message_id, "from": BOT, "chat": chat, "date": int(time.time()), **content}

    async def _sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        extra = {"reply_markup": params["reply_markup"]} if "reply_markup" in params else {}
        return self._message(params, text=params.get("text", ""), **extra)

    async def _sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        photo = [{"file_id": "AgAD-photo", "file_unique_id": "u-photo", "width": 90, "height": 90}]
        return self._message(params, photo=photo, **({"caption": params["caption"]} if params.get("caption") else {}))

    async def _sendDocument(self, params: dict[str, Any]) -> dict[str, Any]:
        document = {"file_id": "BQAD-doc", "file_unique_id": "u-doc", "file_name": "file.pdf"}
        return self._message(params, document=document, **({"caption": params["caption"]} if params.get("caption") else {}))

    async def _answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        return True

    async def _setWebhook(self, params: dict[str, Any]) -> bool:
        return True

    async def _deleteWebhook(self, params: dict[str, Any]) -> bool:
        return True

    async def _getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return BOT

    async def _getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        timeout = float(params.get("timeout") or 0)
        offset = int(params.get("offset") or 0)
        got: list[dict[str, Any]] = []
        try:
            first = await asyncio.wait_for(self._updates.get(), timeout=min(timeout, 5.0)) if timeout else self._updates.get_nowait()
            got.append(first)
        except (TimeoutError, asyncio.QueueEmpty):
            return []
        while not self._updates.empty():
            got.append(self._updates.get_nowait())
        return [u for u in got if u["update_id"] >= offset]
