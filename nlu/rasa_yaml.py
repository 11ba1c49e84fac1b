"""Reader of Rasa 3 YAML training data (`version: "3.x"`, `nlu:` items).

PyYAML forgets where things were written; a small loader remembers the line
of every mapping value so that each error can point at the line to fix.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from nlu.markup import MarkupError, parse_markup
from nlu.training_data import (
    Example,
    LookupTable,
    RegexFeature,
    Synonym,
    TrainingData,
    TrainingDataError,
)

SUPPORTED_MAJOR = "3"


def check_regexes(lines: list[tuple[int | None, str]], path: str) -> None:
    """A regex that does not compile would only fail at parse time, far from its line."""
    for ln, pattern in lines:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise TrainingDataError(path, ln, f"invalid regex '{pattern}': {exc}") from None
_NLU_ITEM_KEYS = ("intent", "synonym", "regex", "lookup")


class _Mapping(dict):  # type: ignore[type-arg]
    """A dict that knows the line of itself and of each value (1-based)."""

    line: int
    value_lines: dict[Any, tuple[int, str | None]]


class _LineLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:  # type: ignore[override]
        plain = super().construct_mapping(node, deep=deep)
        mapping = _Mapping(plain)
        mapping.line = node.start_mark.line + 1
        mapping.value_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            style = getattr(value_node, "style", None)
            try:
                mapping.value_lines[key] = (value_node.start_mark.line + 1, style)
            except TypeError:  # unhashable key; Rasa data never has one
                pass
        return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    lambda loader, node: loader.construct_mapping(node, deep=True),  # type: ignore[arg-type]
)


def _line_of(mapping: Any, key: str) -> int | None:
    if isinstance(mapping, _Mapping):
        entry = mapping.value_lines.get(key)
        return entry[0] if entry else mapping.line
    return None


def _block_lines(item: _Mapping, key: str, path: str) -> list[tuple[int | None, str]]:
    """The `- ` lines of a block string, each with its line number in the file."""
    raw = item.get(key)
    line, style = item.value_lines.get(key, (item.line, None))
    if isinstance(raw, list):
        out: list[tuple[int | None, str]] = []
        for i, entry in enumerate(raw):
            if isinstance(entry, str):
                out.append((line + i, entry))
            else:
                raise TrainingDataError(path, line + i, f"'{key}' items must be strings")
        return out
    if not isinstance(raw, str):
        raise TrainingDataError(path, line, f"'{key}' must be a block string of '- ' lines")
    first = line + 1 if style in ("|", ">") else line
    out = []
    for i, text_line in enumerate(raw.split("\n")):
        stripped = text_line.strip()
        if not stripped:
            continue
        if not stripped.startswith("-"):
            raise TrainingDataError(path, first + i, f"expected an example line starting with '- ', got '{stripped[:40]}'")
        out.append((first + i, stripped[1:].strip()))
    return out


def _read_examples(item: _Mapping, intent_name: str, path: str) -> list[Example]:
    base, _, response_key = intent_name.partition("/")
    if not base:
        raise TrainingDataError(path, item.line, f"bad intent name '{intent_name}'")
    if "examples" not in item or item["examples"] in (None, "", []):
        raise TrainingDataError(path, item.line, f"intent '{intent_name}' has no examples")
    intent_metadata = item.get("metadata")
    raw = item["examples"]
    entries: list[tuple[int | None, str, Any]] = []
    if isinstance(raw, list) and any(isinstance(e, dict) for e in raw):
        # Rasa 3 also allows `examples:` as a list of {text: ..., metadata: ...}.
        base_line = _line_of(item, "examples") or item.line
        for i, entry in enumerate(raw):
            if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
                where = entry.line if isinstance(entry, _Mapping) else base_line + i
                raise TrainingDataError(path, where, f"each example of intent '{intent_name}' needs a 'text:' string")
            where = entry.line if isinstance(entry, _Mapping) else base_line + i
            text = entry["text"].strip()
            if text.startswith("- "):
                text = text[2:].strip()
            entries.append((where, text, entry.get("metadata", intent_metadata)))
    else:
        entries = [(ln, text, intent_metadata) for ln, text in _block_lines(item, "examples", path)]
    if not entries:
        raise TrainingDataError(path, item.line, f"intent '{intent_name}' has no examples")
    examples = []
    for ln, marked, metadata in entries:
        if not marked:
            raise TrainingDataError(path, ln, f"empty example in intent '{intent_name}'")
        try:
            text, entities = parse_markup(marked)
        except MarkupError as exc:
            raise TrainingDataError(path, ln, str(exc)) from None
        examples.append(
            Example(
                text=text,
                intent=base,
                entities=entities,
                response_key=response_key or None,
                source=path,
                line=ln,
                metadata=metadata,
            )
        )
    return examples


def _check_version(doc: _Mapping, path: str) -> None:
    if "version" not in doc:
        return  # Rasa only warns and assumes the current format
    version = doc["version"]
    text = str(version).strip()
    major = text.split(".", 1)[0]
    if major != SUPPORTED_MAJOR:
        raise TrainingDataError(
            path, _line_of(doc, "version"), f"unsupported training data version '{text}' (this reader knows 3.x)"
        )


def _collect_responses(doc: _Mapping) -> dict[str, list[dict[str, Any]]]:
    """Responses of retrieval intents (`utter_chitchat/ask_name`), wherever they are written."""
    responses = doc.get("responses")
    if not isinstance(responses, dict):
        return {}
    return {
        str(name): [dict(v) for v in variants if isinstance(v, dict)]
        for name, variants in responses.items()
        if "/" in str(name) and isinstance(variants, list)
    }


def read_yaml(content: str, path: str) -> TrainingData | None:
    """Parse one YAML file; None when it holds no NLU data (domain, stories, rules)."""
    try:
        doc = yaml.load(content, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "bad YAML"
        raise TrainingDataError(path, line, f"bad YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise TrainingDataError(path, None, f"bad YAML: {exc}") from None
    if doc is None:
        return None
    if not isinstance(doc, _Mapping):
        raise TrainingDataError(path, 1, "expected a mapping with 'version:' and 'nlu:' keys at the top level")
    _check_version(doc, path)
    responses = _collect_responses(doc)
    if "nlu" not in doc:
        return TrainingData(responses=responses) if responses else None
    items = doc["nlu"]
    nlu_line = _line_of(doc, "nlu")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise TrainingDataError(path, nlu_line, "'nlu:' must be a list of intent, synonym, regex or lookup items")
    data = TrainingData(responses=responses)
    for i, item in enumerate(items):
        if not isinstance(item, _Mapping):
            raise TrainingDataError(path, nlu_line, f"item {i + 1} of 'nlu:' is not a mapping")
        kinds = [k for k in _NLU_ITEM_KEYS if k in item]
        if len(kinds) != 1:
            found = ", ".join(str(k) for k in item.keys()) or "nothing"
            raise TrainingDataError(
                path, item.line, f"an 'nlu:' item needs exactly one of intent/synonym/regex/lookup (found {found})"
            )
        kind = kinds[0]
        name = item[kind]
        if name is None or (isinstance(name, str) and not name.strip()):
            raise TrainingDataError(path, item.line, f"'{kind}:' needs a name")
        name = str(name).strip()
        if kind == "intent":
            data.examples_as_written.extend(_read_examples(item, name, path))
            continue
        if "examples" not in item or not item["examples"]:
            raise TrainingDataError(path, item.line, f"{kind} '{name}' has no examples")
        lines = _block_lines(item, "examples", path)
        values = [text for _, text in lines]
        if kind == "regex":
            check_regexes(lines, path)
        if not values:
            raise TrainingDataError(path, item.line, f"{kind} '{name}' has no examples")
        if kind == "synonym":
            data.synonyms.append(Synonym(name, values))
        elif kind == "regex":
            data.regexes.append(RegexFeature(name, values))
        else:
            data.lookups.append(LookupTable(name, values))
    return data
