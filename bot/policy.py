"""Turns an understood message into a decision: what to say, whom to call.

Rules map an intent to responses and optionally a handoff.  A message the
NLU could not place (``nlu_fallback``) follows the ``nlu_fallback`` rule.
"""

from __future__ import annotations

import random
import re
import string
from typing import Any

from bot.bot_folder import BotFolder, ResponseVariant
from crm_store.inbound import Decision, Handoff, Reply, Turn
from crm_store.records import Attachment

HANGUL = re.compile(r"[\uac00-\ud7a3]")
FALLBACK = "nlu_fallback"


class _Fields(dict[str, Any]):
    """Leaves an unknown ``{placeholder}`` as written instead of failing."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


_FORMATTER = string.Formatter()


def fill(template: str, fields: dict[str, Any]) -> str:
    values = _Fields({k: v for k, v in fields.items() if v is not None})
    try:
        return _FORMATTER.vformat(template, (), values)
    except (ValueError, IndexError, AttributeError):
        return template


def message_language(text: str | None, locale: str | None) -> str:
    if text and HANGUL.search(text):
        return "ko"
    if locale:
        return locale.split("-")[0].split("_")[0].lower()
    return "en"


class RuleBot:
    def __init__(self, folder: BotFolder, *, rng: random.Random | None = None) -> None:
        self.folder = folder
        self.rng = rng or random.Random()

    def pick(self, name: str, channel: str, lang: str) -> ResponseVariant:
        variants = self.folder.responses[name]
        for wanted in ((channel, lang), (None, lang), (channel, None), (None, None)):
            chosen = [v for v in variants if v.channel == wanted[0] and (v.lang or "en") == (wanted[1] or "en")]
            if chosen:
                return self.rng.choice(chosen)
        return self.rng.choice(variants)

    def render(self, name: str, turn: Turn, slots: dict[str, Any] | None = None) -> Reply:
        lang = message_language(turn.message.text, turn.customer.locale)
        variant = self.pick(name, turn.message.channel, lang)
        fields = {**turn.customer.as_fields(), **(slots or {})}
        attachments = [Attachment(type="image", url=variant.image)] if variant.image else []
        return Reply(
            text=fill(variant.text, fields) if variant.text else None,
            buttons=list(variant.buttons),
            attachments=attachments,
            metadata={"response": name},
        )

    def decide(self, turn: Turn) -> Decision:
        intent = intent_name(turn.parse)
        actions = self.folder.rules.get(intent) or self.folder.rules.get(FALLBACK) or []
        decision = Decision(intent=intent)
        for action in actions:
            if action.response:
                decision.replies.append(self.render(action.response, turn))
            elif action.handoff_team:
                decision.handoff = Handoff(team=action.handoff_team, priority=action.handoff_priority, reason=f"intent {intent}")
        return decision


def intent_name(parse: dict[str, Any] | None) -> str:
    if not parse:
        return FALLBACK
    intent = parse.get("intent") or {}
    return str(intent.get("name") or FALLBACK)
