"""``rules.yml``: Rasa rules, each answering one intent (or a form's submit) with responses, forms and handoffs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.bot_folder.spec import PRIORITIES, Action, BotFolder, BotFolderError

_IGNORED_ACTIONS = {"action_listen"}


def _action(path: Path, rule: str, step: dict[str, Any], bot: BotFolder) -> Action | None:
    if "action" in step:
        name = str(step["action"])
        if name in bot.responses:
            return Action("response", name)
        if name in bot.forms:
            return Action("form", name)
        if name == "action_deactivate_loop":
            return Action("deactivate")
        if name == "action_default_fallback":
            return Action("response", bot.policy.fallback_response)
        if name == "action_restart":
            return Action("restart")
        if name in _IGNORED_ACTIONS:
            return None
        if name.startswith("utter_"):
            raise BotFolderError(f"{path}: rule {rule!r} uses response {name} that domain.yml does not define")
        raise BotFolderError(f"{path}: rule {rule!r} uses action {name}, which is neither a response nor a form in domain.yml "
                             "(custom actions are not supported)")
    if "handoff" in step:
        spec = step["handoff"] or {}
        if isinstance(spec, str):
            spec = {"team": spec}
        if not isinstance(spec, dict):
            raise BotFolderError(f"{path}: rule {rule!r}: handoff takes {{team, priority}}")
        priority = spec.get("priority")
        if priority is not None and str(priority) not in PRIORITIES:
            raise BotFolderError(f"{path}: rule {rule!r}: priority {priority} is not one of {', '.join(PRIORITIES)}")
        return Action("handoff", team=str(spec["team"]) if spec.get("team") else None,
                      priority=str(priority) if priority else None)
    if "active_loop" in step or "slot_was_set" in step or "slot_was_not_set" in step or "checkpoint" in step:
        return None
    if "intent" in step or "or" in step:
        raise BotFolderError(f"{path}: rule {rule!r} has more than one user turn; a rule answers one message "
                             "(stories are not supported)")
    raise BotFolderError(f"{path}: rule {rule!r} has a step that is neither action nor handoff: {step}")


def _first_intents(path: Path, rule: str, step: dict[str, Any]) -> list[str]:
    if "intent" in step:
        return [str(step["intent"])]
    if "or" in step and isinstance(step["or"], list) and all(isinstance(s, dict) and "intent" in s for s in step["or"]):
        return [str(s["intent"]) for s in step["or"]]
    raise BotFolderError(f"{path}: rule {rule!r} must start with an intent step (or, under a form condition, the form's action)")


def read_rules(path: Path, data: dict[str, Any], bot: BotFolder) -> None:
    raw = data.get("rules") or []
    if not isinstance(raw, list):
        raise BotFolderError(f"{path}: rules must be a list")
    where: dict[Any, str] = {}
    for rule in raw:
        if not isinstance(rule, dict):
            raise BotFolderError(f"{path}: every rule must be a mapping with rule and steps")
        name = str(rule.get("rule", "?"))
        steps = rule.get("steps") or []
        if not isinstance(steps, list) or not steps or not all(isinstance(s, dict) for s in steps):
            raise BotFolderError(f"{path}: rule {name!r} needs a list of steps")
        loop = None
        for cond in rule.get("condition") or []:
            if isinstance(cond, dict) and cond.get("active_loop"):
                loop = str(cond["active_loop"])
                if loop not in bot.forms:
                    raise BotFolderError(f"{path}: rule {name!r} has condition active_loop {loop}, which is not a form in domain.yml")
        first = steps[0]
        if loop and first.get("action") == loop:
            actions = [a for a in (_action(path, name, s, bot) for s in steps[1:]) if a is not None]
            if bot.forms[loop].on_submit:
                raise BotFolderError(f"{path}: rule {name!r}: form {loop} already has a submit rule ({where[('submit', loop)]!r})")
            bot.forms[loop].on_submit = actions
            where[("submit", loop)] = name
            continue
        intents = _first_intents(path, name, first)
        actions = [a for a in (_action(path, name, s, bot) for s in steps[1:]) if a is not None]
        if not actions:
            raise BotFolderError(f"{path}: rule {name!r} does nothing after the intent")
        for intent in intents:
            key: Any = (loop, intent) if loop else intent
            if key in where:
                raise BotFolderError(f"{path}: rules {where[key]!r} and {name!r} both answer intent {intent}"
                                     + (f" while {loop} runs" if loop else ""))
            where[key] = name
            if loop:
                bot.form_rules[(loop, intent)] = actions
            else:
                bot.rules[intent] = actions
