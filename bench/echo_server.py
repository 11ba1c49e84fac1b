"""The ceiling: the plainest aiohttp JSON echo, one process, nothing else (on the service's event loop)."""

from __future__ import annotations

import sys

from aiohttp import web

from bot.event_loop import new_event_loop


async def echo(request: web.Request) -> web.Response:
    data = await request.json()
    return web.json_response([{"recipient_id": data.get("sender"), "text": data.get("message")}])


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", echo)
    # the same loop as the service, so the ratio compares like with like
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, loop=new_event_loop())
