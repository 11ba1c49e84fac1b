"""A hanging Rasa trips the breaker: messages are parsed locally at once, and Rasa is retried in the background."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import web

from nlu import Model, RasaBackend, TrainingData, train

ANSWER: dict[str, Any] = {"intent": {"name": "greet", "confidence": 0.99}, "entities": [], "intent_ranking": []}


@pytest.fixture(scope="module")
def local_model() -> Model:
    pairs = [(t, "greet") for t in ["hi", "hello", "hey"]] + [(t, "goodbye") for t in ["bye", "goodbye", "see you"]]
    return train(TrainingData.from_pairs(pairs))


class Rasa:
    """A loopback Rasa that hangs until told to answer; counts the calls it got."""

    def __init__(self) -> None:
        self.hanging = True
        self.calls = 0

    def app(self) -> web.Application:
        async def parse(request: web.Request) -> web.Response:
            self.calls += 1
            body = await request.json()
            if self.hanging:
                await asyncio.sleep(30)
            return web.json_response({**ANSWER, "text": body["text"]})

        app = web.Application()
        app.router.add_post("/model/parse", parse)
        return app


async def test_after_a_few_timeouts_messages_are_parsed_locally_at_once_and_rasa_is_used_again_once_back(
        aiohttp_server: Any, local_model: Model) -> None:
    rasa = Rasa()
    server = await aiohttp_server(rasa.app())
    backend = RasaBackend(str(server.make_url("/")), timeout=0.3, fallback=local_model)
    backend.retry_every = 0.2
    try:
        for _ in range(backend.trip_after):
            await backend.parse("hello")
        assert backend.breaker_open
        answers, waited = [], []
        for _ in range(20):
            started = time.perf_counter()
            answers.append(await backend.parse("bye"))
            waited.append(time.perf_counter() - started)
        assert max(waited) < 0.3, waited  # none waited for Rasa's timeout
        assert all(a["intent"]["name"] == "goodbye" for a in answers)  # the local model's answer
        rasa.hanging = False
        for _ in range(50):
            if not backend.breaker_open:
                break
            await asyncio.sleep(0.1)
        assert not backend.breaker_open
        assert (await backend.parse("hello"))["intent"] == ANSWER["intent"]
    finally:
        await backend.close()
