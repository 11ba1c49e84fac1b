"""A parser that needs no training: an intent matches when one of its examples
appears in the text as whole words (or, for Hangul, as a substring, since
Korean attaches particles to words).  It keeps the bot answering when no NLU
model is configured, and gives the same answer shape as the NLU models.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import yaml

from nlu import FALLBACK_INTENT

HANGUL = re.compile(r"[\uac00-\ud7a3]")


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold()))


class KeywordParser:
    def __init__(self, examples: dict[str, list[str]]) -> None:
        self.examples = {intent: [_norm(e) for e in texts if _norm(e)] for intent, texts in examples.items()}

    @classmethod
    def from_files(cls, paths: list[Path]) -> KeywordParser:
        examples: dict[str, list[str]] = {}
        for path in paths:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            for item in data.get("nlu") or []:
                if "intent" in item and isinstance(item.get("examples"), str):
                    lines = [re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", ln.strip()[1:].strip()) for ln in item["examples"].splitlines() if ln.strip().startswith("-")]
                    examples.setdefault(str(item["intent"]), []).extend(lines)
        return cls(examples)

    async def parse(self, text: str) -> dict[str, Any]:
        normed = _norm(text)
        padded = f" {normed} "
        best, best_len = FALLBACK_INTENT, 0
        for intent, examples in self.examples.items():
            for example in examples:
                hit = example in normed if HANGUL.search(example) else f" {example} " in padded
                if hit and len(example) > best_len:
                    best, best_len = intent, len(example)
        confidence = 1.0 if best_len else 0.0
        return {
            "text": text,
            "intent": {"name": best, "confidence": confidence},
            "intent_ranking": [{"name": best, "confidence": confidence}],
            "entities": [],
        }
