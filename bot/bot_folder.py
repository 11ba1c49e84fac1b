"""A bot is a folder, as in Rasa: ``nlu.yml``, ``domain.yml`` and ``rules.yml``.

This module reads the folder into plain objects and reports mistakes with
the file and the problem, so that a broken bot stops ``dangol serve`` at
start rather than misbehaving in front of customers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crm_store.records import Button


class BotFolderError(Exception):
    """A bot folder that cannot be used; the message names the file."""


@dataclass(slots=True)
class ResponseVariant:
    text: str | None
    buttons: list[Button] = field(default_factory=list)
    image: str | None = None
    channel: str | None = None
    lang: str | None = None


@dataclass(slots=True)
class RuleAction:
    """One step after the intent: say a response, or hand off to a team."""

    response: str | None = None
    handoff_team: str | None = None
    handoff_priority: str = "medium"


@dataclass(slots=True)
class BotFolder:
    path: Path
    responses: dict[str, list[ResponseVariant]]
    rules: dict[str, list[RuleAction]]
    nlu_files: list[Path]


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise BotFolderError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
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
    responses = _responses(domain_path, _load_yaml(domain_path))
    rules: dict[str, list[RuleAction]] = {}
    rules_path = folder / "rules.yml"
    if rules_path.is_file():
        rules = _rules(rules_path, _load_yaml(rules_path), responses)
    nlu_files = sorted(p for p in folder.glob("*.yml") if p.name not in {"domain.yml", "rules.yml", "stories.yml"})
    nlu_files += sorted((folder / "data").glob("**/*.yml")) if (folder / "data").is_dir() else []
    return BotFolder(path=folder, responses=responses, rules=rules, nlu_files=nlu_files)


def _responses(path: Path, data: dict[str, Any]) -> dict[str, list[ResponseVariant]]:
    raw = data.get("responses") or {}
    if not isinstance(raw, dict):
        raise BotFolderError(f"{path}: responses must be a mapping of name to variations")
    responses: dict[str, list[ResponseVariant]] = {}
    for name, variations in raw.items():
        if not isinstance(variations, list) or not variations:
            raise BotFolderError(f"{path}: response {name} needs a list of variations")
        parsed = []
        for variation in variations:
            if not isinstance(variation, dict) or not (variation.get("text") or variation.get("image")):
                raise BotFolderError(f"{path}: every variation of {name} needs text or image")
            buttons = [Button(str(b["title"]), str(b["payload"])) for b in variation.get("buttons") or []]
            parsed.append(
                ResponseVariant(
                    text=variation.get("text"), buttons=buttons, image=variation.get("image"),
                    channel=variation.get("channel"), lang=variation.get("lang"),
                )
            )
        responses[str(name)] = parsed
    return responses


def _rules(path: Path, data: dict[str, Any], responses: dict[str, list[ResponseVariant]]) -> dict[str, list[RuleAction]]:
    rules: dict[str, list[RuleAction]] = {}
    for rule in data.get("rules") or []:
        name = rule.get("rule", "?")
        steps = rule.get("steps") or []
        if not steps or "intent" not in steps[0]:
            raise BotFolderError(f"{path}: rule {name!r} must start with an intent step")
        actions = []
        for step in steps[1:]:
            if "action" in step:
                action = str(step["action"])
                if action not in responses:
                    raise BotFolderError(f"{path}: rule {name!r} uses response {action} that domain.yml does not define")
                actions.append(RuleAction(response=action))
            elif "handoff" in step:
                spec = step["handoff"] or {}
                actions.append(RuleAction(handoff_team=str(spec.get("team", "support")), handoff_priority=str(spec.get("priority", "medium"))))
            else:
                raise BotFolderError(f"{path}: rule {name!r} has a step that is neither action nor handoff: {step}")
        rules[str(steps[0]["intent"])] = actions
    return rules
