"""A Rasa server as the bot's parser, with the built-in model behind it.

Rasa runs as its own process (it cannot share our Python); when it is down,
slow or answers garbage, the conversation must go on, so every failure falls
back to the local model, or to an `nlu_fallback` answer the bot knows how to handle.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Protocol, runtime_checkable

import aiohttp

from nlu.entities import builtin_entities
from nlu.model import Model
from nlu.names import FALLBACK_INTENT

log = logging.getLogger(__name__)


@runtime_checkable
class Parser(Protocol):
    """What the bot needs from NLU: one async call answering Rasa's parse shape."""

    async def parse(self, text: str) -> dict[str, Any]: ...


def fallback_answer(text: str) -> dict[str, Any]:
    """The answer when no model can be asked; built-in entities still work without one."""
    return {
        "text": text,
        "intent": {"name": FALLBACK_INTENT, "confidence": 0.0},
        "intent_ranking": [],
        "entities": builtin_entities(text),
    }


class RasaBackend:
    """`POST {url}/model/parse` on a Rasa server, falling back to a local model on any failure.

    A circuit breaker keeps a hanging Rasa from slowing every message by
    the timeout: after ``trip_after`` failures in a row the breaker opens,
    messages are parsed locally at once, and one background task asks Rasa
    again every ``retry_every`` seconds (doubling up to ``retry_cap``) until
    it answers, which closes the breaker.
    """

    #: Failures in a row that open the breaker.
    trip_after = 3
    #: Seconds between background tries while the breaker is open (doubling), and their ceiling.
    retry_every = 5.0
    retry_cap = 60.0

    def __init__(
        self,
        url: str,
        timeout: float = 3.0,
        fallback: Model | None = None,
        session: aiohttp.ClientSession | None = None,
        token: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.fallback = fallback
        self.token = token
        self._session = session
        self._owns_session = session is None
        self._failures = 0
        self._probe: asyncio.Task[None] | None = None

    @property
    def breaker_open(self) -> bool:
        """Whether messages skip Rasa for now (a background task is trying it)."""
        return self._probe is not None and not self._probe.done()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    async def parse(self, text: str) -> dict[str, Any]:
        if not self.breaker_open:
            try:
                answer = await self._ask_rasa(text)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
                reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else f"{type(exc).__name__}: {exc}"
                log.warning("Rasa at %s failed (%s); answering with the %s", self.url, reason,
                            "local model" if self.fallback else "nlu_fallback intent")
                self._failed(text)
            else:
                self._failures = 0
                return answer
        return self._local(text)

    def _failed(self, text: str) -> None:
        self._failures += 1
        if self._failures >= self.trip_after and not self.breaker_open:
            log.warning("Rasa at %s failed %d times in a row: parsing locally and retrying Rasa in the background", self.url,
                        self._failures)
            self._probe = asyncio.get_running_loop().create_task(self._retry_in_background(text), name="rasa-breaker")

    async def _retry_in_background(self, text: str) -> None:
        wait = self.retry_every
        while True:
            await asyncio.sleep(wait)
            try:
                await self._ask_rasa(text)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
                wait = min(self.retry_cap, wait * 2)
                continue
            log.info("Rasa at %s answers again; messages go to it", self.url)
            self._failures = 0
            return

    def _local(self, text: str) -> dict[str, Any]:
        if self.fallback is not None:
            return self.fallback.parse(text)
        return fallback_answer(text)

    async def _ask_rasa(self, text: str) -> dict[str, Any]:
        params = {"token": self.token} if self.token else None
        session = self._get_session()
        async with session.post(f"{self.url}/model/parse", json={"text": text}, params=params, timeout=self.timeout) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
        try:
            answer = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError("answer is not JSON") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("intent"), dict) or "name" not in answer["intent"]:
            raise ValueError("answer has no intent")
        answer.setdefault("entities", [])
        answer.setdefault("intent_ranking", [])
        answer.setdefault("text", text)
        if answer["intent"]["name"] is None:  # Rasa's answer to an empty message
            answer["intent"] = {"name": FALLBACK_INTENT, "confidence": 0.0}
        return answer

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()
