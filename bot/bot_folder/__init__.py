"""A bot is a folder, as in Rasa: ``nlu.yml``, ``domain.yml`` and ``rules.yml``.

This module reads the folder into plain objects and reports mistakes with
the file and the problem, so that a broken bot stops ``dangol serve`` at
start rather than misbehaving in front of customers.

Rasa's formats are kept (``responses``, ``slots``, ``forms``, ``rules`` with
``condition: - active_loop``); Dangol's extensions are documented in
``examples/support-bot/README.md``: a ``handoff:`` rule step, ``lang:`` on a
response variation, ``validate:``/``personal:`` on slots and a ``policy:``
block in ``domain.yml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

import nlu
from bot.bot_folder.domain import BUILTIN_RESPONSES, read_forms, read_policy, read_responses, read_slots, variant
from bot.bot_folder.rules import read_rules
from bot.bot_folder.spec import (
    CUSTOMER_FIELD_FOR,
    DEFAULT_ENTITY_FOR,
    DEFAULT_ORDER_PATTERN,
    NOT_NLU_FILES,
    PRIORITIES,
    VALIDATORS,
    Action,
    BotFolder,
    BotFolderError,
    FormSpec,
    HandoffTarget,
    PolicyConfig,
    ResponseVariant,
    SlotSpec,
)

__all__ = [
    "CUSTOMER_FIELD_FOR", "DEFAULT_ENTITY_FOR", "DEFAULT_ORDER_PATTERN", "PRIORITIES", "VALIDATORS", "Action", "BotFolder",
    "BotFolderError", "FormSpec", "HandoffTarget", "PolicyConfig", "ResponseVariant", "SlotSpec", "load_bot_folder",
]


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise BotFolderError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BotFolderError(f"{path}: cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise BotFolderError(f"{path}: expected a mapping at the top level")
    return data


def load_bot_folder(path: str | Path) -> BotFolder:
    folder = Path(path)
    if not folder.is_dir():
        raise BotFolderError(f"bot folder {folder} does not exist")
    domain_path = folder / "domain.yml"
    if not domain_path.is_file():
        raise BotFolderError(f"{folder}: domain.yml is missing")
    domain = _load_yaml(domain_path)
    responses = read_responses(domain_path, domain)
    slots = read_slots(domain_path, domain)
    forms = read_forms(domain_path, domain, slots, responses)
    policy = read_policy(domain_path, domain.get("policy"))
    for name, variations in BUILTIN_RESPONSES.items():
        if name not in responses:
            responses[name] = [variant(domain_path, name, v) for v in variations]
    for attr in ("fallback_response", "fallback_handoff_response", "human_handoff_response", "vip_response",
                 "cancelled_response", "give_up_response"):
        if getattr(policy, attr) not in responses:
            raise BotFolderError(f"{domain_path}: policy {attr} names response {getattr(policy, attr)} that is not defined")
    bot = BotFolder(path=folder, responses=responses, rules={}, nlu_files=[], forms=forms, slots=slots, policy=policy)
    rules_path = folder / "rules.yml"
    if rules_path.is_file():
        read_rules(rules_path, _load_yaml(rules_path), bot)
    nlu_files = sorted(p for p in folder.glob("*.yml") if p.name not in NOT_NLU_FILES)
    nlu_files += sorted((folder / "data").glob("**/*.yml")) if (folder / "data").is_dir() else []
    bot.nlu_files = nlu_files
    bot.training_data = _training_data(nlu_files)
    return bot


def _training_data(files: list[Path]) -> Any:
    """The NLU files read now, so that ``dangol serve`` reports a bad one before it starts."""
    if not files:
        return None
    try:
        return nlu.load_training_data([str(p) for p in files])
    except nlu.TrainingDataError as exc:
        raise BotFolderError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise BotFolderError(f"{files[0].parent}: cannot read the NLU data: {exc}") from None
