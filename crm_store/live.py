"""Live events for the console: what changed, pushed to every process's open sockets.

Subscribers are asyncio queues in this process.  On PostgreSQL, events also
travel through ``LISTEN``/``NOTIFY`` on one dedicated asyncpg connection, so
an agent connected to one ``dangol serve`` process sees a message that
arrived at another.  On SQLite there is only ever one serving process, and
the in-process fan-out is all there is.

Events are published after the transaction that made them committed, and
what is published within ``FLUSH_LINGER`` is coalesced into one ``NOTIFY``,
so that a burst of inbound messages costs a few round trips, not one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)
CHANNEL = "dangol_live"
#: PostgreSQL's NOTIFY payload limit is 8000 bytes; stay under it with room to spare.
MAX_PAYLOAD = 7000
QUEUE_SIZE = 1000
#: Seconds a published event waits for others before the NOTIFY that carries them all.  A
#: NOTIFY is a round trip, and each serving process sends one event per inbound message: sent
#: as they came, the round trips took about 5% of a serving process's time on the REST channel
#: (PostgreSQL, 2 processes).  A person watching the console does not see 20 ms.
FLUSH_LINGER = 0.02
#: Events whose type starts so go only to subscribers that name their type: a
#: component's messages to itself in other processes, not news for the console.
PRIVATE_PREFIX = "private."


class LiveHub:
    def __init__(self, database_url: str | None = None) -> None:
        url = make_url(database_url) if database_url else None
        self._pg_dsn = (
            url.set(drivername="postgresql").render_as_string(hide_password=False)
            if url is not None and url.get_backend_name() == "postgresql" else None
        )
        self._origin = f"{os.getpid()}-{id(self)}"
        #: Each subscriber's queue, and the event types it wants (None: all).
        self._subscribers: dict[asyncio.Queue[dict[str, Any]], frozenset[str] | None] = {}
        self._outgoing: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def cross_process(self) -> bool:
        return self._pg_dsn is not None

    async def start(self) -> None:
        if self._pg_dsn is None:
            return
        self._task = asyncio.create_task(self._run(), name="live-notify")

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5)
        await self._disconnect()

    def subscribe(self, types: frozenset[str] | None = None) -> asyncio.Queue[dict[str, Any]]:
        """A queue of the events published from now on; with ``types``, only events of those types
        (a subscriber that wants one kind is not woken for every message of every conversation).
        Without, every event but the private ones (``PRIVATE_PREFIX``)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers[queue] = types
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.pop(queue, None)

    def publish(self, *events: dict[str, Any]) -> None:
        """Deliver here at once; queue for the other processes (PostgreSQL only)."""
        for event in events:
            self._deliver(event)
        if self._pg_dsn is not None and not self._closing:
            self._outgoing.extend(events)
            self._wake.set()

    def _deliver(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        private = isinstance(kind, str) and kind.startswith(PRIVATE_PREFIX)
        for queue, types in list(self._subscribers.items()):
            if (types is None and private) or (types is not None and kind not in types):
                continue
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:  # a socket that stopped reading loses old news, not the process
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(event)

    # -- PostgreSQL transport -------------------------------------------------
    async def _connect(self) -> None:
        self._conn = await asyncpg.connect(self._pg_dsn, timeout=5)
        await self._conn.add_listener(CHANNEL, self._on_notify)

    async def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if not self._may_want(payload):
            return
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if message.get("origin") == self._origin:
            return
        for event in message.get("events", []):
            self._deliver(event)

    def _may_want(self, payload: str) -> bool:
        """Whether a subscriber here may want an event of ``payload``: a look for the types they
        want (as ``_flush`` encodes them) before decoding.  Every serving process hears of every
        inbound message, and most have no console open: only the web chat's relay listens."""
        wanted: set[str] = set()
        for types in self._subscribers.values():
            if types is None:
                return True
            wanted |= types
        return any(f'"type":{json.dumps(kind, ensure_ascii=False)}' in payload for kind in wanted)

    async def _run(self) -> None:
        backoff = 0.5
        while not self._closing:
            try:
                if self._conn is None or self._conn.is_closed():
                    await self._connect()
                    backoff = 0.5
                await self._wake.wait()
                if not self._closing:
                    await asyncio.sleep(FLUSH_LINGER)  # let a burst gather into one NOTIFY
                self._wake.clear()
                await self._flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the console degrades to this process's events
                log.warning("live events: PostgreSQL connection failed (%s); retrying in %.1fs", exc, backoff)
                await self._disconnect()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
        with contextlib.suppress(Exception):
            await self._flush()

    async def _flush(self) -> None:
        events, self._outgoing = self._outgoing, []
        batch: list[str] = []
        size = 0
        for event in events:
            encoded = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str)
            length = len(encoded.encode())  # the limit is in bytes
            if length > MAX_PAYLOAD - 100:
                log.warning("live event of %d bytes is too large for NOTIFY; sent to this process only", length)
                continue
            if size + length > MAX_PAYLOAD - 100 and batch:
                await self._notify(batch)
                batch, size = [], 0
            batch.append(encoded)
            size += length + 1
        if batch:
            await self._notify(batch)

    async def _notify(self, encoded: list[str]) -> None:
        payload = '{"origin":' + json.dumps(self._origin) + ',"events":[' + ",".join(encoded) + "]}"
        if self._conn is not None:
            await self._conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
