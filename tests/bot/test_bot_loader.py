"""load_bot: the trained model, its cache, a saved model, a Rasa server with the local model behind it."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

import nlu
from bot.bot_folder import BotFolderError, load_bot_folder
from bot.bot_loader import load_bot, train_folder_model
from bot.pipeline.batch_parser import BatchParser
from tests.bot.conftest import SAMPLE_BOT


async def test_the_sample_trains_at_start_and_loads_from_the_cache_after(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, parser = await load_bot(SAMPLE_BOT)
    assert isinstance(parser, BatchParser)
    assert len(list(cache.iterdir())) == 1

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the second start trained again instead of loading the cached model")

    monkeypatch.setattr(nlu, "train", no_training)
    _, again = await load_bot(SAMPLE_BOT)
    assert (await again.parse("where is my order"))["intent"]["name"] == "order_status"


async def test_a_changed_training_file_is_trained_again(cache: Path, tmp_path: Path) -> None:
    bot = tmp_path / "bot"
    shutil.copytree(SAMPLE_BOT, bot)
    await load_bot(bot)
    with (bot / "nlu.yml").open("a", encoding="utf-8") as f:
        f.write("      - what's your favourite colour\n")
    await load_bot(bot)
    assert len(list(cache.iterdir())) == 2


async def test_a_broken_cache_entry_is_retrained(cache: Path) -> None:
    folder = load_bot_folder(SAMPLE_BOT)
    train_folder_model(folder)
    (entry,) = cache.iterdir()
    for file in entry.iterdir():
        file.write_text("{not json", encoding="utf-8")
    model = train_folder_model(folder)
    assert model.parse("hello")["intent"]["name"] == "greet"
    assert nlu.load_model(entry).parse("hello")["intent"]["name"] == "greet"  # the entry was replaced


async def test_a_saved_model_is_used_instead_of_training(cache: Path, tmp_path: Path) -> None:
    model = nlu.train(nlu.load_training_data([str(SAMPLE_BOT / "nlu.yml")]))
    model.save(tmp_path / "model")
    _, parser = await load_bot(SAMPLE_BOT, nlu_model=tmp_path / "model")
    assert (await parser.parse("취소"))["intent"]["name"] == "cancel"
    assert not cache.exists()
    with pytest.raises(BotFolderError, match="NLU model"):
        await load_bot(SAMPLE_BOT, nlu_model=tmp_path / "nowhere")


async def test_a_rasa_server_that_is_down_falls_back_to_the_local_model(cache: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, parser = await load_bot(SAMPLE_BOT, rasa_url=f"http://127.0.0.1:{port}", rasa_timeout=0.5)
    try:
        assert isinstance(parser, nlu.RasaBackend)
        assert (await parser.parse("how long does shipping take"))["intent"]["name"] == "faq_shipping_time"
    finally:
        await parser.close()


async def test_bad_training_data_names_the_file(cache: Path, tmp_path: Path) -> None:
    bot = tmp_path / "bot"
    shutil.copytree(SAMPLE_BOT, bot)
    (bot / "nlu.yml").write_text("version: '3.1'\nnlu:\n  - intent: greet\n    examples: 42\n", encoding="utf-8")
    with pytest.raises(BotFolderError, match="nlu.yml"):
        await load_bot(bot)
