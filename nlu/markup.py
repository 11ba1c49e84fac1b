"""Rasa's inline entity markup: `[text](entity)`, `[text](entity:value)`, `[text]{...}`.

Shared by the YAML and Markdown readers. Rasa itself silently keeps a broken
annotation as literal text, which then trains the classifier on brackets; we
report it instead, because it is nearly always a typo.
"""

from __future__ import annotations

import json
import re

from nlu.training_data import EntityAnnotation

# Same alternatives as Rasa's ENTITY_REGEX: (entity[:value]) | {json} | [json, json].
_ANNOTATION = re.compile(
    r"\[(?P<text>[^\]]+?)\]"
    r"(?:\((?P<entity>[^:)]+?)(?::(?P<value>[^)]+))?\)"
    r"|\{(?P<dict>[^}]+?)\}"
    r"|\[(?P<list>.*?)\])"
)
_BROKEN_OPEN = re.compile(r"\]\(|\]\{")


class MarkupError(ValueError):
    """A malformed annotation; the reader adds file and line."""


def _from_json(raw: str, text: str) -> list[dict[str, object]]:
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise MarkupError(f"invalid JSON in entity annotation [{text}]: {exc.msg}") from None
    items = parsed if isinstance(parsed, list) else [parsed]
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("entity"), str) or not item["entity"]:
            raise MarkupError(f'entity annotation [{text}] needs an "entity" name')
    return items


def parse_markup(marked: str) -> tuple[str, tuple[EntityAnnotation, ...]]:
    """Strip annotations from `marked`; return the plain text and the entities in it."""
    plain_parts: list[str] = []
    entities: list[EntityAnnotation] = []
    pos = 0
    offset = 0  # length of plain text emitted so far
    for m in _ANNOTATION.finditer(marked):
        between = marked[pos : m.start()]
        _check_leftover(between)
        plain_parts.append(between)
        offset += len(between)
        text = m.group("text")
        start, end = offset, offset + len(text)
        if m.group("entity") is not None:
            entity = m.group("entity").strip()
            value = m.group("value")
            entities.append(EntityAnnotation(start, end, entity, value.strip() if value else text, text))
        else:
            raw = m.group("dict")
            items = _from_json("{" + raw + "}" if raw is not None else "[" + m.group("list") + "]", text)
            for item in items:
                value = item.get("value")
                role = item.get("role")
                group = item.get("group")
                entities.append(
                    EntityAnnotation(
                        start,
                        end,
                        str(item["entity"]),
                        str(value) if value is not None else text,
                        text,
                        str(role) if role is not None else None,
                        str(group) if group is not None else None,
                    )
                )
        plain_parts.append(text)
        offset += len(text)
        pos = m.end()
    tail = marked[pos:]
    _check_leftover(tail)
    plain_parts.append(tail)
    return "".join(plain_parts), tuple(entities)


def _check_leftover(chunk: str) -> None:
    """Text between valid annotations must not look like a started annotation."""
    if _BROKEN_OPEN.search(chunk):
        raise MarkupError(f"unclosed entity annotation near '{chunk.strip()[:40]}'")
    opened = chunk.rfind("[")
    if opened != -1 and "]" not in chunk[opened:]:
        raise MarkupError(f"unclosed '[' in entity annotation near '{chunk[opened:][:40]}'")
