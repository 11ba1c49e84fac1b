"""Slot validation: e-mail, phone (E.164), order number, text."""

from __future__ import annotations

import re

import pytest

from bot.bot_folder import DEFAULT_ORDER_PATTERN, SlotSpec
from bot.forms import candidate, validate

EMAIL = SlotSpec("email", validate="email", entities=("email",))
PHONE = SlotSpec("phone", validate="phone", entities=("phone_number",))
ORDER = SlotSpec("order_number", validate="order_number", entities=("order_number",),
                 pattern=re.compile(r"(?:ORD-?)?\d{5,10}", re.IGNORECASE))
TEXT = SlotSpec("details")


@pytest.mark.parametrize(("raw", "value"), [
    ("Kim@Example.COM", "kim@example.com"),
    ("my e-mail is lee.minsu+shop@mail.co.kr.", "lee.minsu+shop@mail.co.kr"),
    ("<a@b.io>", "a@b.io"),
    ("kim at example dot com", None),
    ("kim@example", None),
    ("a@b.com or c@d.com", None),
    ("", None),
])
def test_email(raw: str, value: str | None) -> None:
    assert validate(EMAIL, raw) == value


@pytest.mark.parametrize(("raw", "value"), [
    ("010-1234-5678", "+821012345678"),
    ("01012345678", "+821012345678"),
    ("02-312-3456", "+8223123456"),
    ("+1 415 555 2671", "+14155552671"),
    ("my number is 010 9876 5432", "+821098765432"),
    ("010-12", None),
    ("call me", None),
])
def test_phone_numbers_become_e164_with_korean_numbers_first(raw: str, value: str | None) -> None:
    assert validate(PHONE, raw, ("KR", "US")) == value


def test_the_phone_region_is_configurable() -> None:
    # Without +country code the first region that accepts the number wins.
    assert validate(PHONE, "(415) 555-2671", ("KR", "US")) == "+824155552671"
    assert validate(PHONE, "(415) 555-2671", ("US",)) == "+14155552671"
    assert validate(PHONE, "010-1234-5678", ("US",)) is None


@pytest.mark.parametrize(("raw", "value"), [
    ("ORD-204518", "ORD-204518"),
    ("ord204518", "ORD204518"),
    ("#123456", "123456"),
    ("it's order ORD-204518 I think", "ORD-204518"),
    ("1234", None),
    ("no idea", None),
])
def test_order_numbers_follow_the_configured_pattern(raw: str, value: str | None) -> None:
    assert validate(ORDER, raw) == value


def test_the_default_order_pattern() -> None:
    slot = SlotSpec("order", validate="order_number", pattern=re.compile(DEFAULT_ORDER_PATTERN, re.IGNORECASE))
    assert validate(slot, "AB-123456") == "AB-123456"
    assert validate(slot, "hello") is None


def test_text_slots_take_words_but_not_nothing() -> None:
    assert validate(TEXT, "  the box was crushed ") == "the box was crushed"
    assert validate(TEXT, "...") is None
    assert validate(TEXT, "x" * 501) is None


def test_an_entity_is_preferred_to_the_raw_text() -> None:
    parse = {"entities": [{"entity": "email", "value": "a@b.com", "start": 6, "end": 13}]}
    assert candidate(EMAIL, parse, "it is a@b.com thanks", requested=True) == "a@b.com"
    assert candidate(EMAIL, {"entities": []}, "  a@b.com ", requested=True) == "a@b.com"
    assert candidate(EMAIL, {"entities": []}, "a@b.com", requested=False) is None
