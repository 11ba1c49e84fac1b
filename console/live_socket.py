"""The console's websocket: every event an agent should see, within a second of its commit.

Events carry ids only; the page fetches the fresh server-rendered fragment,
so nothing a customer wrote is ever put into the page by script.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from bot.services import SERVICES
from console.auth import AGENT_ROLES, current_session

HEARTBEAT = 25.0


async def live(request: web.Request) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    if origin and urlsplit(origin).netloc != request.host:
        raise web.HTTPForbidden(text="cross-site websocket refused")
    session = await current_session(request)
    if session is None:
        raise web.HTTPUnauthorized(text="log in first")
    if session.agent.role not in AGENT_ROLES:
        raise web.HTTPForbidden(text=f"the {session.agent.role} role receives no conversation events")
    hub = request.app[SERVICES].live
    if hub is None:
        raise web.HTTPServiceUnavailable(text="starting")
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=4096)
    await ws.prepare(request)
    queue = hub.subscribe()

    async def forward() -> None:
        while True:
            event = await queue.get()
            await ws.send_str(json.dumps(event, ensure_ascii=False, default=str))

    sender = asyncio.create_task(forward())
    try:
        await ws.send_str(json.dumps({"type": "hello", "agent_id": str(session.agent.id), "cross_process": hub.cross_process}))
        async for frame in ws:  # the page sends nothing but pings; reading keeps the close handshake working
            if frame.type == WSMsgType.ERROR:
                break
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
        hub.unsubscribe(queue)
    return ws
