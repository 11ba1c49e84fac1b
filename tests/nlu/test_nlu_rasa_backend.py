"""RasaBackend against a loopback server answering like Rasa 3.6, and its fallbacks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from nlu import Model, RasaBackend, TrainingData, train

RASA_ANSWER: dict[str, Any] = {
    "text": "hello",
    "intent": {"name": "greet", "confidence": 0.9987},
    "entities": [],
    "text_tokens": [[0, 5]],
    "intent_ranking": [{"name": "greet", "confidence": 0.9987}, {"name": "goodbye", "confidence": 0.0013}],
}


@pytest.fixture(scope="module")
def local_model() -> Model:
    pairs = [(t, "greet") for t in ["hi", "hello", "hey", "good morning"]] + [
        (t, "goodbye") for t in ["bye", "goodbye", "see you", "good night"]
    ]
    return train(TrainingData.from_pairs(pairs))


def _rasa_app(mode: str = "ok") -> web.Application:
    async def parse(request: web.Request) -> web.Response:
        body = await request.json()
        if mode == "500":
            return web.Response(status=500, text="boom")
        if mode == "garbage":
            return web.Response(text="<html>not json</html>", content_type="text/html")
        if mode == "slow":
            await asyncio.sleep(2)
        return web.json_response({**RASA_ANSWER, "text": body["text"]})

    app = web.Application()
    app.router.add_post("/model/parse", parse)
    return app


async def test_answers_come_from_rasa_when_it_is_up(aiohttp_server: Any, local_model: Model) -> None:
    server = await aiohttp_server(_rasa_app())
    backend = RasaBackend(str(server.make_url("/")), timeout=2, fallback=local_model)
    answer = await backend.parse("hello")
    assert answer["intent"] == {"name": "greet", "confidence": 0.9987}
    assert answer["text_tokens"] == [[0, 5]]  # Rasa's answer passes through
    await backend.close()


async def test_stopped_rasa_falls_back_to_local_model(aiohttp_server: Any, local_model: Model, caplog: pytest.LogCaptureFixture) -> None:
    server = await aiohttp_server(_rasa_app())
    backend = RasaBackend(str(server.make_url("/")), timeout=2, fallback=local_model)
    assert (await backend.parse("hello"))["text_tokens"]
    await server.close()
    answer = await backend.parse("good bye")
    assert answer == local_model.parse("good bye")
    assert "Rasa at" in caplog.text
    await backend.close()


@pytest.mark.parametrize("mode", ["500", "garbage"])
async def test_errors_and_garbage_fall_back(aiohttp_server: Any, local_model: Model, mode: str) -> None:
    server = await aiohttp_server(_rasa_app(mode))
    backend = RasaBackend(str(server.make_url("/")), timeout=2, fallback=local_model)
    assert (await backend.parse("hello")) == local_model.parse("hello")
    await backend.close()


async def test_timeout_without_fallback_model_answers_nlu_fallback(aiohttp_server: Any) -> None:
    server = await aiohttp_server(_rasa_app("slow"))
    backend = RasaBackend(str(server.make_url("/")), timeout=0.2)
    answer = await backend.parse("mail me at a@b.co")
    assert answer["intent"] == {"name": "nlu_fallback", "confidence": 0.0}
    assert answer["entities"][0]["entity"] == "email"  # built-in extractors need no model
    await backend.close()


async def test_given_session_is_used_and_left_open(aiohttp_server: Any) -> None:
    import aiohttp

    server = await aiohttp_server(_rasa_app())
    async with aiohttp.ClientSession() as session:
        backend = RasaBackend(str(server.make_url("/")), session=session)
        await backend.parse("hello")
        await backend.close()
        assert not session.closed
