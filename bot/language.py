"""Which language a customer writes in, from the message itself, so that answers follow the customer.

Used by the bot's rules (:mod:`bot.policy`) and by the engine's opt-out
words (:mod:`bot.engine.opt_out`), which answer even when a person holds the
conversation and the rules are not asked.
"""

from __future__ import annotations

import re

HANGUL = re.compile(r"[\uac00-\ud7a3]")
_LATIN_WORD = re.compile(r"(?<![\w@.])(?=[A-Za-z]{2})[A-Za-z]*[a-z][A-Za-z]*(?![\w@])")
_EMAIL_OR_URL = re.compile(r"\S+@\S+|https?://\S+")


def message_language(text: str | None, locale: str | None, previous: str | None = None, default: str = "en") -> str:
    """Hangul means Korean; a Latin word means English; numbers, e-mails and codes keep the previous language."""
    if text:
        if HANGUL.search(text):
            return "ko"
        if not text.startswith("/") and _LATIN_WORD.search(_EMAIL_OR_URL.sub(" ", text)):
            return "en"
    if previous:
        return previous
    if locale:
        return locale.split("-")[0].split("_")[0].lower()
    return default
