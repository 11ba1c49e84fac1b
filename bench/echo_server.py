"""The ceiling: the plainest aiohttp JSON echo, one process, nothing else."""

from __future__ import annotations

import sys

from aiohttp import web


async def echo(request: web.Request) -> web.Response:
    data = await request.json()
    return web.json_response([{"recipient_id": data.get("sender"), "text": data.get("message")}])


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", echo)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
