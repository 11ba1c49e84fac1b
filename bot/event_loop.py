"""The event loop a ``dangol`` process serves on.

uvloop (libuv) where it is installed: the web server, the websocket
relay and the database drivers all run on the loop, and uvloop's transports
cost markedly less per request than the standard selector loop (see
bench/inbound.py, whose echo ceiling runs on the same loop as the service so
that the ratio compares like with like).  The standard loop remains for
platforms uvloop does not support and on request (``DANGOL_EVENT_LOOP=asyncio``).
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


def new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """A new loop of ``kind`` ("auto", "uvloop" or "asyncio"); ``uvloop`` insists, ``auto`` falls back quietly."""
    if kind != "asyncio":
        try:
            import uvloop  # optional: not installed on Windows, and DANGOL_EVENT_LOOP=asyncio never needs it
        except ImportError:
            if kind == "uvloop":
                raise RuntimeError("DANGOL_EVENT_LOOP=uvloop but uvloop is not installed (pip install uvloop)") from None
            log.debug("uvloop not installed; using the standard event loop")
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()
