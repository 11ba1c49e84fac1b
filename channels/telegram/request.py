"""python-telegram-bot's HTTP layer on the service's aiohttp session.

PTB ships an httpx backend; under the delivery worker's concurrency it was
about ten times slower than aiohttp against the same server (DESIGN.md), so
the channel plugs this :class:`BaseRequest` into ``telegram.Bot`` instead.
PTB keeps doing what it is good at: building the parameters, turning HTTP
status codes and ``parameters.retry_after`` into its typed errors.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

_DEFAULT = type(BaseRequest.DEFAULT_NONE)


class AiohttpRequest(BaseRequest):
    """One :class:`BaseRequest` per timeout profile, all on one shared session.

    The session is owned by whoever created it (the channel); this object
    never closes a session it was given.
    """

    __slots__ = ("_connect_timeout", "_owned", "_read_timeout", "_session", "_timeouts", "_write_timeout")
    _headers = {"User-Agent": BaseRequest.USER_AGENT}
    _form_headers = {"User-Agent": BaseRequest.USER_AGENT, "Content-Type": "application/x-www-form-urlencoded"}

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        connect_timeout: float | None = 5.0,
        read_timeout: float | None = 10.0,
        write_timeout: float | None = 10.0,
    ) -> None:
        self._session = session
        self._owned = False
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        #: ClientTimeout objects are costly to build per request; there are only a few combinations.
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._owned = True

    async def shutdown(self) -> None:
        if self._owned and self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("AiohttpRequest is not initialized")
        read = self._read_timeout if isinstance(read_timeout, _DEFAULT) else read_timeout
        connect = self._connect_timeout if isinstance(connect_timeout, _DEFAULT) else connect_timeout
        # aiohttp has no separate write timeout; a slow upload is bounded by the total.
        timeout = self._timeouts.get((connect, read))
        if timeout is None:
            timeout = self._timeouts[(connect, read)] = aiohttp.ClientTimeout(sock_connect=connect, sock_read=read)
        data: Any = None
        headers = self._headers
        if request_data is not None:
            if request_data.contains_files:
                data = _form(request_data)
            else:
                # Form-encoded, as PTB's own backend sends it; nested objects are JSON strings.
                # Encoded here: aiohttp's FormData does the same with far more work per request.
                data = urlencode(request_data.json_parameters).encode()
                headers = self._form_headers
        try:
            async with self._session.request(method, url, data=data, timeout=timeout, headers=headers) as response:
                return response.status, await response.read()
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise TimedOut(f"aiohttp: {type(exc).__name__}") from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc


def _form(request_data: RequestData) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, part in request_data.multipart_data.items():
        filename, content, *rest = part
        content_type = rest[0] if rest else "application/octet-stream"
        form.add_field(name, content, filename=filename, content_type=content_type)
    return form
