"""Builds what the engine asks for: a parser for text and a decider for turns."""

from __future__ import annotations

from pathlib import Path

from bot.bot_folder import load_bot_folder
from bot.engine import Parser
from bot.keywords import KeywordParser
from bot.policy import RuleBot
from crm_store.inbound import Decider


async def load_bot(bot_path: Path, *, nlu_model: Path | None = None, rasa_url: str | None = None,
                   rasa_timeout: float = 2.0) -> tuple[Decider, Parser]:
    folder = load_bot_folder(bot_path)
    parser: Parser = KeywordParser.from_files(folder.nlu_files)
    return RuleBot(folder).decide, parser
