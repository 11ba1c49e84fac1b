"""A loopback HTTP server that records calls and fails on demand.

Fakes of platform APIs share this: they run a real aiohttp server on
127.0.0.1 (the real clients talk to it over TCP), remember every call, and
let a test queue failures (a status and body, or a delay longer than the
client's timeout) for the next calls of a method.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from collections.abc import Awaitable, Callable

from aiohttp import web


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class Failure:
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FakeServer:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.failures: dict[str, deque[Failure]] = defaultdict(deque)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def build(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> FakeServer:
        # A fake closes at once: a call it holds on purpose (a failure's delay) is abandoned, not waited for
        # (the default waits up to 60 s for in-flight handlers).
        self._runner = web.AppRunner(self.build(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def fail(self, method: str, status: int = 500, body: Any = None, *, times: int = 1,
             headers: dict[str, str] | None = None, delay: float = 0.0) -> None:
        """The next ``times`` calls of ``method`` answer ``status``/``body`` (after ``delay`` s)."""
        for _ in range(times):
            self.failures[method].append(Failure(status, body, dict(headers or {}), delay))

    def called(self, method: str) -> list[dict[str, Any]]:
        return [c.params for c in self.calls if c.method == method]

    async def _injected(self, method: str) -> web.Response | None:
        queue = self.failures.get(method)
        if not queue:
            return None
        failure = queue.popleft()
        if failure.delay:
            await asyncio.sleep(failure.delay)
        if failure.body is None and failure.delay and failure.status == 200:
            return None
        return web.Response(status=failure.status, text=json.dumps(failure.body if failure.body is not None else {}),
                            content_type="application/json", headers=failure.headers)


async def read_params(request: web.Request) -> dict[str, Any]:
    """JSON, form or multipart, as the clients send them; nested JSON strings decoded."""
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.read()
        if body:
            params.update(json.loads(body))
    elif request.content_type == "multipart/form-data":
        reader = await request.multipart()
        async for part in reader:
            if part.filename:  # type: ignore[union-attr]
                params[part.name] = {"filename": part.filename, "size": len(await part.read())}  # type: ignore[union-attr]
            else:
                params[part.name] = await part.text()  # type: ignore[union-attr]
    elif request.can_read_body:
        params.update(await request.post())
    for key, value in list(params.items()):
        if isinstance(value, str) and value[:1] in "[{":
            try:
                params[key] = json.loads(value)
            except ValueError:
                pass
    return params


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 5.0) -> None:
    """Wait for background work (the app's delivery worker, a poller) to do what ``check`` looks for."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
