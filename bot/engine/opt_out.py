"""Opt-out and opt-in words, caught by the engine on every message, whoever holds the conversation.

The law (Korea's Network Act article 50, the EU's ePrivacy rules) wants an
opt-out that works at once, on any channel, also while a person handles
the conversation: the bot's rules are not asked then (see
:meth:`bot.engine.batch.BatchHandler._apply`), so the words are caught here,
before that check.  A match withdraws (or grants again) marketing consent
in the message's own transaction and sends the confirmation in the
customer's language, as a bot message in the same conversation.

Cost on the message path: a length check, then (for short messages only)
one normalization and one frozenset lookup (:meth:`OptOutWords.match`); the
language is worked out only for a message that matched.

One exception is kept from the bot's rules: while the bot runs a form, a
word the NLU reads as a cancel intent ("stop") cancels the form instead;
a person or a finished form leaves no such doubt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.bot_folder import load_bot_folder
from bot.bot_folder.spec import PolicyConfig
from bot.language import message_language
from campaigns.opt_out import OptAction, OptOutWords, load_opt_out_words
from contracts.messages import InboundMessage
from crm_store.message_batch import ConversationRecord, CustomerRecord


@dataclass(slots=True, frozen=True)
class OptOutCatcher:
    """The bot folder's opt-out words, with what the engine needs to answer them without the rules."""

    words: OptOutWords = field(default_factory=OptOutWords)
    default_language: str = "en"
    #: Intents that cancel a running form (the bot folder's ``policy.cancel_intents``).
    cancel_intents: frozenset[str] = PolicyConfig().cancel_intents

    @classmethod
    def for_bot(cls, bot_path: str | Path) -> OptOutCatcher:
        """The words of the bot folder at ``bot_path`` (``opt_out:`` in its domain.yml), in its default language."""
        folder = load_bot_folder(Path(bot_path))
        policy = folder.policy
        return cls(load_opt_out_words(folder.path, policy.default_language), policy.default_language,
                   frozenset(policy.cancel_intents))

    def catch(self, msg: InboundMessage, parse: dict[str, Any] | None, customer: CustomerRecord,
              conv: ConversationRecord) -> OptAction | None:
        """The consent change and confirmation ``msg`` asks for, or None for any other message."""
        kind = self.words.match(msg.text)
        if kind is None:
            return None
        state = conv.bot_state
        if conv.status == "bot" and state.get("form") and _intent(parse) in self.cancel_intents:
            return None  # "stop" in a running form cancels the form (the rules answer it)
        lang = message_language(msg.text, customer.locale, state.get("lang"), self.default_language)
        return self.words.action(kind, lang)


def _intent(parse: dict[str, Any] | None) -> str | None:
    intent = (parse or {}).get("intent")
    return intent.get("name") if isinstance(intent, dict) else None
