"""Form slots: where a value comes from (an NLU entity or the raw text) and whether it is acceptable.

Validation normalises what it accepts: e-mails are lower-cased, phone
numbers become E.164 (``010-1234-5678`` -> ``+821012345678`` with the KR
region), order numbers are upper-cased without a leading ``#``.
"""

from __future__ import annotations

import re
from typing import Any

from bot.bot_folder import SlotSpec
from nlu.entities import normalize_phone

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_EMAIL_IN_TEXT = re.compile(r"(?<![\w.+-])" + EMAIL.pattern + r"(?![\w-])")
_PHONE_IN_TEXT = re.compile(r"\+?[\d(][\d\s().-]{5,}\d")


def candidate(slot: SlotSpec, parse: dict[str, Any] | None, text: str | None, requested: bool) -> str | None:
    """The value the message offers for ``slot``: an entity first, else (if it is the slot asked for) the text."""
    if parse and slot.entities:
        for entity in parse.get("entities") or ():
            if entity.get("entity") in slot.entities and entity.get("value") not in (None, ""):
                return str(entity["value"])
    if requested and slot.from_text and text:
        stripped = text.strip()
        return stripped or None
    return None


def validate(slot: SlotSpec, raw: str, phone_regions: tuple[str, ...] = ("KR", "US")) -> str | None:
    """The normalised value, or None when ``raw`` is not acceptable for the slot."""
    kind = slot.validate
    if kind == "email":
        return _email(raw)
    if kind == "phone":
        return _phone(raw, phone_regions)
    if kind == "order_number":
        return _order_number(raw, slot.pattern)
    value = raw.strip()
    if kind == "text":
        if not value or len(value) > slot.max_length or not any(c.isalnum() for c in value):
            return None
        if slot.pattern is not None and not slot.pattern.fullmatch(value):
            return None
    return value or None


def _email(raw: str) -> str | None:
    text = raw.strip().strip("<>").rstrip(".")
    if EMAIL.fullmatch(text):
        return text.lower()
    found = _EMAIL_IN_TEXT.findall(raw)
    return found[0].lower() if len(found) == 1 else None


def _phone(raw: str, regions: tuple[str, ...]) -> str | None:
    value = normalize_phone(raw.strip(), regions)
    if value is None:
        found = _PHONE_IN_TEXT.findall(raw)
        if len(found) == 1 and found[0].strip() != raw.strip():
            value = normalize_phone(found[0].strip(), regions)
    return value


def _order_number(raw: str, pattern: re.Pattern[str] | None) -> str | None:
    value = raw.strip().lstrip("#").strip()
    if pattern is None:
        return value.upper() if value else None
    if pattern.fullmatch(value):
        return value.upper()
    hits = [m.group(0) for m in re.finditer(r"(?<![\w-])(?:" + pattern.pattern + r")(?![\w-])", raw, re.IGNORECASE)]
    return hits[0].upper() if len(hits) == 1 else None
