"""A reply sent by another process's delivery worker still reaches the visitor's socket."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.services import SERVICES
from bot.config import load_settings
from dangol.app import build_app
from contracts.messages import OutboundMessage


async def test_a_reply_sent_from_another_process_is_relayed_to_the_visitors_socket(aiohttp_client: Any, pg_database: str) -> None:
    from tests.conftest import _truncate

    await _truncate(pg_database)
    holding = await aiohttp_client(build_app(load_settings(database_url=pg_database)))
    other = await aiohttp_client(build_app(load_settings(database_url=pg_database, delivery_enabled=False)))
    ws = await holding.ws_connect("/webchat/ws")
    await ws.send_json({"type": "hello"})
    await ws.send_json({"type": "message", "client_id": "c1", "text": "hello"})
    visitor = ""
    reply_id = None
    while reply_id is None:
        frame = await asyncio.wait_for(ws.receive_json(), 5)
        if frame["type"] == "welcome":
            visitor = frame["visitor"].split(".")[0]
        elif frame["type"] == "message" and frame["direction"] == "out":
            reply_id = frame["id"]
    channel = other.app[SERVICES].channels["webchat"]
    await asyncio.sleep(0.3)  # both processes are listening
    await channel.send(OutboundMessage(channel="webchat", recipient=visitor, text="ignored: the stored text is sent",
                                       message_id=reply_id))
    relayed = await asyncio.wait_for(ws.receive_json(), 5)
    assert relayed["type"] == "message" and relayed["id"] == reply_id and relayed["text"]
    await ws.close()
