"""Readers of the pre-Rasa-2 formats still found in old projects: Markdown and JSON.

Rasa 3 dropped them, but converting by hand is error-prone, so we read them
directly into the same `TrainingData`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from nlu.markup import MarkupError, parse_markup
from nlu.rasa_yaml import check_regexes
from nlu.training_data import (
    EntityAnnotation,
    Example,
    LookupTable,
    RegexFeature,
    Synonym,
    TrainingData,
    TrainingDataError,
)

_HEADER = re.compile(r"^\s*##\s*(?P<kind>intent|synonym|regex|lookup)\s*:\s*(?P<name>.*?)\s*$")
_OTHER_HEADER = re.compile(r"^\s*#")
_ITEM = re.compile(r"^\s*[-*+]\s*(?P<text>.*?)\s*$")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def read_markdown(content: str, path: str) -> TrainingData | None:
    """Parse a legacy `## intent:x` file; None when it has no NLU section at all (e.g. a README)."""
    # Blank out comments but keep their newlines so line numbers stay right.
    content = _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), content)
    lines = content.split("\n")
    if not any(_HEADER.match(line) for line in lines):
        return None
    data = TrainingData()
    section: tuple[str, str, int] | None = None
    items: list[tuple[int, str]] = []

    def flush() -> None:
        if section is None:
            return
        kind, name, header_line = section
        if not items:
            raise TrainingDataError(path, header_line, f"{kind} '{name}' has no examples")
        if kind == "intent":
            base, _, key = name.partition("/")
            for ln, marked in items:
                try:
                    text, entities = parse_markup(marked)
                except MarkupError as exc:
                    raise TrainingDataError(path, ln, str(exc)) from None
                data.examples_as_written.append(
                    Example(text, base, entities, key or None, source=path, line=ln)
                )
        elif kind == "synonym":
            data.synonyms.append(Synonym(name, [t for _, t in items]))
        elif kind == "regex":
            check_regexes([(ln, t) for ln, t in items], path)
            data.regexes.append(RegexFeature(name, [t for _, t in items]))
        else:
            data.lookups.append(LookupTable(name, [t for _, t in items]))

    for number, line in enumerate(lines, start=1):
        header = _HEADER.match(line)
        if header:
            flush()
            name = header.group("name")
            if not name:
                raise TrainingDataError(path, number, f"'## {header.group('kind')}:' needs a name")
            section = (header.group("kind"), name, number)
            items = []
            continue
        if _OTHER_HEADER.match(line):
            flush()  # some other section (e.g. a story): its items are not NLU data
            section, items = None, []
            continue
        item = _ITEM.match(line)
        if item and section is not None:
            if not item.group("text"):
                raise TrainingDataError(path, number, "empty item")
            items.append((number, item.group("text")))
    flush()
    return data


def _json_entities(raw: Any, text: str, path: str, where: str) -> tuple[EntityAnnotation, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise TrainingDataError(path, None, f"{where}: 'entities' must be a list")
    out = []
    for ent in raw:
        try:
            start, end, name = int(ent["start"]), int(ent["end"]), str(ent["entity"])
        except (KeyError, TypeError, ValueError):
            raise TrainingDataError(path, None, f"{where}: an entity needs 'start', 'end' and 'entity'") from None
        if not 0 <= start < end <= len(text):
            raise TrainingDataError(path, None, f"{where}: entity '{name}' span {start}:{end} is outside the text")
        span = text[start:end]
        value = ent.get("value", span)
        role, group = ent.get("role"), ent.get("group")
        out.append(
            EntityAnnotation(
                start, end, name, str(value), span,
                str(role) if role is not None else None,
                str(group) if group is not None else None,
            )
        )
    return tuple(out)


def read_json(content: str, path: str) -> TrainingData:
    """Parse a `{"rasa_nlu_data": {...}}` file."""
    try:
        doc = json.loads(content)
    except json.JSONDecodeError as exc:
        raise TrainingDataError(path, exc.lineno, f"bad JSON: {exc.msg}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rasa_nlu_data"), dict):
        raise TrainingDataError(path, 1, "not Rasa NLU JSON: expected a top-level 'rasa_nlu_data' object")
    nlu = doc["rasa_nlu_data"]
    data = TrainingData()
    for key in ("common_examples", "intent_examples", "entity_examples"):
        for i, ex in enumerate(nlu.get(key) or []):
            where = f"{key}[{i}]"
            if not isinstance(ex, dict) or not isinstance(ex.get("text"), str):
                raise TrainingDataError(path, None, f"{where}: an example needs a 'text' string")
            intent = ex.get("intent")
            if not intent:
                continue  # entity-only examples train no intent (Rasa does the same)
            text = ex["text"]
            base, _, resp = str(intent).partition("/")
            entities = _json_entities(ex.get("entities"), text, path, where)
            data.examples_as_written.append(Example(text, base, entities, resp or None, source=path))
    for i, syn in enumerate(nlu.get("entity_synonyms") or []):
        if not isinstance(syn, dict) or "value" not in syn or not isinstance(syn.get("synonyms"), list):
            raise TrainingDataError(path, None, f"entity_synonyms[{i}]: needs 'value' and a 'synonyms' list")
        data.synonyms.append(Synonym(str(syn["value"]), [str(s) for s in syn["synonyms"]]))
    for i, rx in enumerate(nlu.get("regex_features") or []):
        if not isinstance(rx, dict) or "name" not in rx or "pattern" not in rx:
            raise TrainingDataError(path, None, f"regex_features[{i}]: needs 'name' and 'pattern'")
        check_regexes([(None, str(rx["pattern"]))], path)
        data.regexes.append(RegexFeature(str(rx["name"]), [str(rx["pattern"])]))
    for i, lt in enumerate(nlu.get("lookup_tables") or []):
        if not isinstance(lt, dict) or "name" not in lt or not isinstance(lt.get("elements"), list):
            raise TrainingDataError(path, None, f"lookup_tables[{i}]: needs 'name' and an 'elements' list")
        data.lookups.append(LookupTable(str(lt["name"]), [str(e) for e in lt["elements"]]))
    return data
