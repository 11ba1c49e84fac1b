"""Opt-out and opt-in words written in a conversation, independent of the engine.

A customer who writes STOP, unsubscribe, 수신거부 or 광고거부 (the whole
message, ignoring case, spaces and closing punctuation) withdraws marketing
consent on every channel; START or 수신동의 grants it again.  The engine asks
``OptOutWords.match`` for each customer text, whoever holds the conversation
(:mod:`bot.engine.opt_out`); a match becomes a consent
change (recorded with its audit row in the message's own transaction, so it
holds before the delivery worker claims anything else) and a confirmation in
the customer's language.

The words and confirmations are configurable per bot folder in the
``opt_out:`` section of its ``domain.yml``::

    opt_out:
      stop_words: [STOP, unsubscribe, 수신거부, 광고거부, 그만]
      start_words: [START, 수신동의]
      confirm_stop: {en: "...", ko: "..."}
      confirm_start: {en: "...", ko: "..."}
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from crm_store.consents import ANY_CHANNEL, MARKETING, NIGHT

Kind = Literal["opt_out", "opt_in"]

DEFAULT_STOP = ("STOP", "unsubscribe", "stop all", "수신거부", "광고거부", "수신 거부")
DEFAULT_START = ("START", "subscribe", "수신동의")
DEFAULT_CONFIRM_STOP = {
    "en": "You have been unsubscribed and will receive no more marketing messages. Reply START to subscribe again.",
    "ko": "수신거부 처리되었습니다. 더 이상 광고성 메시지를 보내지 않습니다. 다시 받으시려면 '수신동의'라고 보내주세요.",
}
DEFAULT_CONFIRM_START = {
    "en": "You are subscribed to our messages again. Reply STOP at any time to unsubscribe.",
    "ko": "수신동의 처리되었습니다. 언제든 '수신거부'라고 보내시면 수신을 중단합니다.",
}
_CLOSING = ".!?。！？~…"


class OptOutConfigError(ValueError):
    """The ``opt_out`` section of a bot folder cannot be used; the message names the key."""


def normalize(text: str) -> str:
    """Case, width, surrounding spaces and closing punctuation do not matter; inner spaces neither.

    Plain string methods only (it runs on every customer message: about 1 us, where a regex pass cost 7)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return "".join(text.casefold().split()).rstrip(_CLOSING)


@dataclass(slots=True, frozen=True)
class OptAction:
    """What a matched message asks for: the consent changes (channel, purpose, granted) and the confirmation."""

    kind: Kind
    consents: tuple[tuple[str, str, bool], ...]
    confirmation: str


@dataclass(slots=True)
class OptOutWords:
    stop_words: tuple[str, ...] = DEFAULT_STOP
    start_words: tuple[str, ...] = DEFAULT_START
    confirm_stop: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CONFIRM_STOP))
    confirm_start: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CONFIRM_START))
    default_language: str = "en"
    _stop: frozenset[str] = frozenset()
    _start: frozenset[str] = frozenset()
    #: A message longer than this (the longest word with room for spaces and punctuation) is no opt-out.
    _longest: int = 0

    def __post_init__(self) -> None:
        self._stop = frozenset(normalize(w) for w in self.stop_words if w.strip())
        self._start = frozenset(normalize(w) for w in self.start_words if w.strip())
        self._longest = 2 * max(len(w) for w in (*self.stop_words, *self.start_words)) + 8

    def classify(self, text: str | None, lang: str) -> OptAction | None:
        """An opt-out or opt-in if the whole message is one of the words; otherwise None."""
        kind = self.match(text)
        return None if kind is None else self.action(kind, lang)

    def match(self, text: str | None) -> Kind | None:
        """Whether the whole message is a stop or a start word: a length check, then one set lookup."""
        if not text or len(text) > self._longest:
            return None
        key = normalize(text)
        if key in self._stop:
            return "opt_out"
        if key in self._start:
            return "opt_in"
        return None

    def action(self, kind: Kind, lang: str) -> OptAction:
        """What ``kind`` does, confirmed in ``lang`` (else the default language).

        An opt-out withdraws marketing and its night-time consent on every channel;
        an opt-in grants marketing on every channel (night-time consent is asked separately).
        """
        if kind == "opt_out":
            return OptAction(kind, ((ANY_CHANNEL, MARKETING, False), (ANY_CHANNEL, NIGHT, False)), self._text(self.confirm_stop, lang))
        return OptAction(kind, ((ANY_CHANNEL, MARKETING, True),), self._text(self.confirm_start, lang))

    def _text(self, texts: dict[str, str], lang: str) -> str:
        return texts.get(lang) or texts.get(self.default_language) or next(iter(texts.values()))


def load_opt_out_words(bot_folder: str | Path, default_language: str = "en") -> OptOutWords:
    """The bot folder's words (``opt_out:`` in domain.yml), or the defaults in English and Korean."""
    domain = Path(bot_folder) / "domain.yml"
    section: Any = None
    if domain.is_file():
        section = (yaml.safe_load(domain.read_text(encoding="utf-8")) or {}).get("opt_out")
    if section is None:
        return OptOutWords(default_language=default_language)
    if not isinstance(section, dict):
        raise OptOutConfigError(f"{domain}: opt_out must be a mapping")
    known = {"stop_words", "start_words", "confirm_stop", "confirm_start"}
    if unknown := set(section) - known:
        raise OptOutConfigError(f"{domain}: opt_out has unknown keys {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    words: dict[str, Any] = {}
    for key in ("stop_words", "start_words"):
        if key in section:
            value = section[key]
            if not isinstance(value, list) or not value or not all(isinstance(w, str) and w.strip() for w in value):
                raise OptOutConfigError(f"{domain}: opt_out.{key} must be a non-empty list of words")
            words[key] = tuple(value)
    for key, default in (("confirm_stop", DEFAULT_CONFIRM_STOP), ("confirm_start", DEFAULT_CONFIRM_START)):
        if key in section:
            value = section[key]
            if not isinstance(value, dict) or not value or not all(isinstance(v, str) and v for v in value.values()):
                raise OptOutConfigError(f"{domain}: opt_out.{key} must map languages to texts")
            words[key] = {**default, **{str(k): v for k, v in value.items()}}
    return OptOutWords(default_language=default_language, **words)
