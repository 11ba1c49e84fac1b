"""A loopback Slack Web API: ``POST /api/<method>`` as documented.

Answers auth.test, chat.postMessage and users.info (from :attr:`users`),
and apps.connections.open with a websocket on the same server for Socket
Mode.  Method errors come back as Slack sends them: HTTP 200 with
``{"ok": false, "error": ...}``; :meth:`FakeServer.fail` injects those, 429
with Retry-After, 5xx or delays.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.base import Call, FakeServer, read_params

BOT_USER_ID = "UBOTDANGOL"
BOT_ID = "BDANGOL01"


class FakeSlack(FakeServer):
    def __init__(self, token: str = "xoxb-test-token", *, record: bool = True) -> None:
        super().__init__()
        self.token = token
        self.record = record
        self.users: dict[str, dict[str, Any]] = {}
        self.sent = 0
        self._ts = 0
        #: Socket Mode: envelopes to push, and the acks the client sent back.
        self.socket_acks: list[dict[str, Any]] = []
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_ready = asyncio.Event()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def build(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/{method}", self.handle)
        app.router.add_get("/api/{method}", self.handle)
        app.router.add_get("/socket", self.socket)
        app.router.add_get("/_fake/stats", self.stats)
        return app

    def method_error(self, method: str, error: str, *, times: int = 1) -> None:
        self.fail(method, 200, {"ok": False, "error": error}, times=times)

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await read_params(request)
        if self.record:
            self.calls.append(Call(method, params))
        injected = await self._injected(method)
        if injected is not None:
            return injected
        auth = request.headers.get("Authorization", "")
        if method != "apps.connections.open" and auth != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        answer = getattr(self, "_" + method.replace(".", "_"), None)
        if answer is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response({"ok": True, **await answer(params, request)})

    async def stats(self, request: web.Request) -> web.Response:
        if request.query.get("reset"):
            self.sent = 0
        return web.json_response({"sent": self.sent})

    async def _auth_test(self, params: dict[str, Any], request: web.Request) -> dict[str, Any]:
        return {"url": "https://dangol.slack.com/", "team": "Dangol", "user": "dangol", "team_id": "T111",
                "user_id": BOT_USER_ID, "bot_id": BOT_ID}

    async def _chat_postMessage(self, params: dict[str, Any], request: web.Request) -> dict[str, Any]:
        self._ts += 1
        self.sent += 1
        ts = f"{int(time.time())}.{self._ts:06d}"
        message = {"type": "message", "text": params.get("text"), "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": ts}
        return {"channel": params.get("channel"), "ts": ts, "message": message}

    async def _users_info(self, params: dict[str, Any], request: web.Request) -> dict[str, Any]:
        user = self.users.get(str(params.get("user")))
        if user is None:
            raise web.HTTPOk(text=json.dumps({"ok": False, "error": "user_not_found"}), content_type="application/json")
        return {"user": user}

    async def _apps_connections_open(self, params: dict[str, Any], request: web.Request) -> dict[str, Any]:
        return {"url": f"ws://127.0.0.1:{self.port}/socket"}

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "num_connections": 1, "debug_info": {}, "connection_info": {"app_id": "A111"}})
        self._sockets.append(ws)
        self._socket_ready.set()
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.socket_acks.append(json.loads(msg.data))
        return ws

    async def push_envelope(self, envelope: dict[str, Any]) -> None:
        await asyncio.wait_for(self._socket_ready.wait(), 5)
        await self._sockets[-1].send_json(envelope)

    async def close(self) -> None:
        for ws in self._sockets:
            await ws.close()
        await super().close()
