"""Builds what the engine asks for: a parser for text and a decider for turns.

The parser, in order of preference:

* ``rasa_url``: a Rasa server (``POST /model/parse``), with the local model
  behind it for when Rasa is down or slow;
* ``nlu_model``: a model saved by ``dangol nlu train``;
* otherwise the built-in classifier trained from the bot folder's NLU files
  at start (well under a second for the sample), cached on disk under a hash
  of those files so that a restart with the same data loads instead;
* the keyword matcher of :mod:`bot.keywords` when the bot folder has no
  intents to train on.

With ``in_child`` a built-in model saved on disk parses in a process of its
own (:mod:`bot.pipeline.parse_child`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import nlu
from bot.bot_folder import BotFolder, BotFolderError, load_bot_folder
from bot.engine.turn import Decider
from bot.keywords import KeywordParser
from bot.pipeline.batch_parser import BatchParser
from bot.pipeline.parse_child import ChildParser
from bot.policy import RuleBot
from nlu import Parser

log = logging.getLogger(__name__)

#: Bump when a change to training would make cached models wrong.
CACHE_VERSION = "1"


def cache_dir() -> Path:
    configured = os.environ.get("DANGOL_NLU_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "dangol" / "nlu"


def training_hash(files: list[Path]) -> str:
    digest = hashlib.sha256(CACHE_VERSION.encode())
    digest.update(str(getattr(nlu.model, "MODEL_FORMAT_VERSION", "")).encode())
    for path in files:
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def train_folder_model(folder: BotFolder, *, use_cache: bool = True) -> Any:
    """The built-in model for ``folder``'s NLU files; BotFolderError names a bad file."""
    return folder_model(folder, use_cache=use_cache)[0]


def folder_model(folder: BotFolder, *, use_cache: bool = True) -> tuple[Any, Path | None]:
    """train_folder_model, and the directory the model is saved in (None when it could not be cached)."""
    try:
        key = training_hash([*folder.nlu_files, *folder.path.glob("config.yml")])  # config.yml picks the NLU pipeline
    except OSError as exc:
        raise BotFolderError(f"{folder.path}: cannot read NLU data: {exc}") from None
    target = cache_dir() / key
    if use_cache and target.is_dir():
        try:
            return nlu.load_model(target), target
        except Exception as exc:  # noqa: BLE001 - a broken cache entry is retrained, never fatal
            log.warning("cached NLU model %s is unusable (%s); retraining", target, exc)
            shutil.rmtree(target, ignore_errors=True)
    try:
        data = folder.training_data or nlu.load_training_data([str(p) for p in folder.nlu_files])
        model = nlu.train(data, settings=nlu.read_settings(folder.path))
    except nlu.TrainingDataError as exc:
        raise BotFolderError(str(exc)) from None
    except ValueError as exc:
        raise BotFolderError(f"{folder.path}: NLU training failed: {exc}") from None
    if use_cache:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
            model.save(scratch)
            try:
                os.replace(scratch, target)
            except OSError:  # another process cached the same model first
                shutil.rmtree(scratch, ignore_errors=True)
        except OSError as exc:
            log.info("could not cache the NLU model under %s: %s", target.parent, exc)
    return model, (target if use_cache and target.is_dir() else None)


def _has_intents(folder: BotFolder) -> bool:
    data = folder.training_data
    return bool(data is not None and data.examples)


async def build_parser(folder: BotFolder, *, nlu_model: Path | None = None, rasa_url: str | None = None,
                       rasa_timeout: float = 2.0, in_child: bool = False) -> Parser:
    model = None
    saved_at: Path | None = None
    if nlu_model is not None:
        try:
            model = nlu.load_model(nlu_model)
        except nlu.ModelError as exc:
            raise BotFolderError(f"NLU model {nlu_model}: {exc}") from None
        saved_at = nlu_model
    elif folder.nlu_files and _has_intents(folder):
        model, saved_at = await asyncio.to_thread(folder_model, folder)
    if rasa_url:
        return nlu.RasaBackend(rasa_url, timeout=rasa_timeout, fallback=model)
    if model is None:
        log.warning("bot folder %s has no NLU data; using the keyword matcher", folder.path)
        return KeywordParser.from_files(folder.nlu_files)
    if in_child and saved_at is not None:
        return ChildParser(model, saved_at)
    return BatchParser(model)


async def load_bot(bot_path: Path, *, nlu_model: Path | None = None, rasa_url: str | None = None,
                   rasa_timeout: float = 2.0, parse_in_child: bool = False) -> tuple[Decider, Parser]:
    folder = load_bot_folder(bot_path)
    parser = await build_parser(folder, nlu_model=nlu_model, rasa_url=rasa_url, rasa_timeout=rasa_timeout,
                                in_child=parse_in_child)
    return RuleBot(folder).decide, parser
