"""Entity extraction without a trained tagger: patterns from the data plus built-in extractors.

What a support bot needs most (an e-mail, a phone number, an order number, an
amount of money) has a regular shape, so patterns get it right more often than
a tagger trained on a few hundred examples would. Entities the data annotates
are found by exact, whole-word lookup of the annotated texts.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import phonenumbers

from nlu.training_data import TrainingData

REGEX_EXTRACTOR = "RegexEntityExtractor"
BUILTIN_EXTRACTOR = "BuiltinEntityExtractor"
ANNOTATION_EXTRACTOR = "AnnotationLookupExtractor"
SYNONYM_PROCESSOR = "EntitySynonymMapper"

# --- built-in patterns --------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")

_SYMBOLS = {"$": "USD", "US$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₩": "KRW", "₹": "INR", "C$": "CAD", "A$": "AUD"}
_WORDS = {
    "dollar": "USD", "dollars": "USD", "usd": "USD", "bucks": "USD",
    "euro": "EUR", "euros": "EUR", "eur": "EUR",
    "pound": "GBP", "pounds": "GBP", "gbp": "GBP",
    "yen": "JPY", "jpy": "JPY",
    "won": "KRW", "krw": "KRW", "원": "KRW",
    "cad": "CAD", "aud": "AUD", "chf": "CHF", "inr": "INR",
}
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_SYM = r"US\$|C\$|A\$|[$€£¥₩₹]"
_CODE = r"USD|EUR|GBP|JPY|KRW|CAD|AUD|CHF|INR"
_MONEY = re.compile(
    rf"(?P<sym>{_SYM})\s?(?P<n1>{_NUM})"
    rf"|(?<![\w.,])(?P<code>{_CODE})\s?(?P<n2>{_NUM})(?![\d])"
    rf"|(?<![\w.,])(?P<man>\d+)\s?만(?:\s?(?P<cheon>\d)\s?천)?\s?원"
    rf"|(?<![\w.,])(?P<n3>{_NUM})\s?(?P<word>원|dollars?|usd|bucks|euros?|eur|pounds?|gbp|yen|jpy|won|krw|cad|aud|chf|inr)(?![a-z])",
    re.IGNORECASE,
)

_ORDER = re.compile(
    r"(?<![\w#])#(?P<hash>[A-Za-z0-9][A-Za-z0-9-]{3,})\b"
    r"|(?:\border|주문)\s*(?:(?:no\.?|number|num|id|번호|번호는)\s*)?(?:is\s+)?[:#]?\s*"
    r"(?P<code>(?=[A-Za-z0-9-]*\d)[A-Za-z0-9][A-Za-z0-9-]{3,})(?![A-Za-z0-9])",
    re.IGNORECASE,
)

_PHONE = re.compile(
    r"(?<![\w+#$€£¥₩])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]?\d{2,5}){1,4}(?![\w.,]?\d)"
)
_PHONE_REGIONS = ("US", "KR", "GB", "DE", "FR", "JP")
_DIGIT = re.compile(r"\d")  # phone numbers are only looked for in text that has a digit
_HANGUL = re.compile(r"[\uac00-\ud7a3]")


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


def _money_value(m: re.Match[str]) -> dict[str, Any] | None:
    if m.group("sym"):
        amount, currency = _decimal(m.group("n1")), _SYMBOLS.get(m.group("sym").upper(), "USD")
    elif m.group("code"):
        amount, currency = _decimal(m.group("n2")), m.group("code").upper()
    elif m.group("man"):
        amount = Decimal(m.group("man")) * 10000 + Decimal(m.group("cheon") or 0) * 1000
        currency = "KRW"
    else:
        amount, currency = _decimal(m.group("n3")), _WORDS[m.group("word").lower()]
    if amount is None:
        return None
    number: int | float = int(amount) if amount == amount.to_integral_value() else float(amount)
    return {"amount": number, "currency": currency}


def normalize_phone(candidate: str, regions: tuple[str, ...] = _PHONE_REGIONS) -> str | None:
    """E.164 form of a phone number if some region accepts it as valid, else None."""
    digits = re.sub(r"\D", "", candidate)
    if not 7 <= len(digits) <= 15:
        return None
    tries: tuple[str | None, ...] = (None,) if candidate.strip().startswith("+") else regions
    for region in tries:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


@dataclass
class _Span:
    start: int
    end: int

    def overlaps(self, other: "_Span") -> bool:
        return self.start < other.end and other.start < self.end


def builtin_entities(text: str, phone_regions: tuple[str, ...] = _PHONE_REGIONS) -> list[dict[str, Any]]:
    """E-mails, money, order numbers and phone numbers; earlier kinds win overlaps."""
    has_digit = _DIGIT.search(text) is not None
    if not has_digit and "@" not in text and "#" not in text:
        return []  # every pattern needs one of them: most texts are done here, without a regex run
    found: list[dict[str, Any]] = []
    taken: list[_Span] = []

    def add(start: int, end: int, entity: str, value: Any) -> None:
        span = _Span(start, end)
        if any(span.overlaps(t) for t in taken):
            return
        taken.append(span)
        found.append({"entity": entity, "start": start, "end": end, "value": value, "extractor": BUILTIN_EXTRACTOR})

    for m in _EMAIL.finditer(text):
        add(m.start(), m.end(), "email", m.group(0))
    for m in _MONEY.finditer(text):
        value = _money_value(m)
        if value is not None:
            add(m.start(), m.end(), "money", value)
    for m in _ORDER.finditer(text):
        group = "hash" if m.group("hash") else "code"
        add(m.start(group), m.end(group), "order_number", m.group(group).upper())
    if has_digit:
        if _HANGUL.search(text) and phone_regions and phone_regions[0] != "KR":
            phone_regions = ("KR",) + tuple(r for r in phone_regions if r != "KR")
        for m in _PHONE.finditer(text):
            e164 = normalize_phone(m.group(0), phone_regions)
            if e164:
                add(m.start(), m.end(), "phone_number", e164)
    found.sort(key=lambda e: e["start"])
    return found


# --- patterns learnt from the training data -------------------------------------


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _whole_words(alternatives: list[str]) -> re.Pattern[str] | None:
    """One case-insensitive regex matching any alternative as a whole word (longest first)."""
    alts = sorted({a.strip() for a in alternatives if a.strip()}, key=len, reverse=True)
    if not alts:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(a) for a in alts) + r")(?!\w)", re.IGNORECASE)


class DataEntityExtractor:
    """Regexes, lookup tables and annotated values of the training data, plus its synonyms.

    A regex named like an intent (Rasa's `regex: greet`) is an intent feature,
    not an entity, unless some example annotates an entity of that name.
    Kept as plain strings (`state`) so a saved model is JSON, not pickled code.
    """

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.state: dict[str, Any] = {
            "regexes": [], "lookups": [], "annotated": [], "synonyms": {}, "builtins": True,
            "phone_regions": list(_PHONE_REGIONS), **(state or {}),
        }
        self.regexes = [(name, re.compile(p, re.IGNORECASE)) for name, patterns in self.state["regexes"] for p in patterns]
        self.lookups = [(name, rx) for name, elements in self.state["lookups"] if (rx := _whole_words(elements)) is not None]
        self.annotated = [(name, rx) for name, values in self.state["annotated"] if (rx := _whole_words(list(values))) is not None]
        self.synonyms: dict[str, str] = {_fold(k): v for k, v in self.state["synonyms"].items()}
        self.builtins = bool(self.state["builtins"])
        self.phone_regions = tuple(self.state["phone_regions"])

    @classmethod
    def from_data(cls, data: TrainingData, builtins: bool = True, memorize_annotations: bool = True) -> "DataEntityExtractor":
        entity_names = set(data.entity_names)
        intents = set(data.intents)
        regexes = [
            [rx.name, list(rx.patterns)] for rx in data.regexes if not (rx.name in intents and rx.name not in entity_names)
        ]
        lookups = [[lt.name, list(lt.elements)] for lt in data.lookups]
        annotated: list[list[Any]] = []
        if memorize_annotations:
            by_entity: dict[str, dict[str, str]] = {}
            for ex in data.examples:
                for a in ex.entities:
                    by_entity.setdefault(a.entity, {})[a.text] = a.value
            annotated = [[name, values] for name, values in sorted(by_entity.items())]
        return cls({"regexes": regexes, "lookups": lookups, "annotated": annotated,
                    "synonyms": data.synonym_map(), "builtins": builtins})

    def extract(self, text: str) -> list[dict[str, Any]]:
        entities: list[dict[str, Any]] = []
        seen: set[tuple[str, int, int]] = set()

        def add(name: str, start: int, end: int, value: Any, extractor: str) -> None:
            key = (name, start, end)
            if key in seen or start == end:
                return
            seen.add(key)
            entities.append({"entity": name, "start": start, "end": end, "value": value, "extractor": extractor})

        for name, pattern in self.regexes:
            for m in pattern.finditer(text):
                add(name, m.start(), m.end(), m.group(0), REGEX_EXTRACTOR)
        for name, pattern in self.lookups:
            for m in pattern.finditer(text):
                add(name, m.start(), m.end(), m.group(0), REGEX_EXTRACTOR)
        for name, pattern in self.annotated:
            for m in pattern.finditer(text):
                add(name, m.start(), m.end(), m.group(0), ANNOTATION_EXTRACTOR)
        if self.builtins:
            for e in builtin_entities(text, self.phone_regions):
                add(e["entity"], e["start"], e["end"], e["value"], BUILTIN_EXTRACTOR)
        for e in entities:
            if isinstance(e["value"], str):
                mapped = self.synonyms.get(_fold(e["value"]))
                if mapped is not None and mapped != e["value"]:
                    e["value"] = mapped
                    e["processors"] = [SYNONYM_PROCESSOR]
        entities.sort(key=lambda e: (e["start"], e["end"]))
        return entities
