"""The in-memory form of NLU training data, whatever file format it came from.

Every reader (Rasa 3 YAML, legacy Markdown and JSON, CSV) produces the same
`TrainingData`, so the classifier, the extractors and the evaluation never
care where an example was written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable


class TrainingDataError(ValueError):
    """Bad training data; the message always says `file:line: problem`.

    The CLI prints the message as is, so it must be enough for a user to find
    and fix the line without a traceback.
    """

    def __init__(self, path: str | os.PathLike[str] | None, line: int | None, problem: str) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.problem = problem
        where = self.path or "<data>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class EntityAnnotation:
    """One entity marked in an example; `value` is the normalised value (synonym target)."""

    start: int
    end: int
    entity: str
    value: str
    text: str
    role: str | None = None
    group: str | None = None

    def key(self) -> tuple[Any, ...]:
        return (self.start, self.end, self.entity, self.value, self.role, self.group)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"start": self.start, "end": self.end, "entity": self.entity, "value": self.value}
        if self.role is not None:
            d["role"] = self.role
        if self.group is not None:
            d["group"] = self.group
        return d


@dataclass(frozen=True)
class Example:
    """One training utterance; `intent` is the base intent, `response_key` the part after `/`."""

    text: str
    intent: str
    entities: tuple[EntityAnnotation, ...] = ()
    response_key: str | None = None
    source: str | None = None
    line: int | None = None
    metadata: Any = None

    @property
    def full_intent(self) -> str:
        """The intent as written, e.g. `chitchat/ask_name`, which Rasa's dedup and responses key on."""
        return f"{self.intent}/{self.response_key}" if self.response_key else self.intent

    def unique_key(self) -> tuple[Any, ...]:
        return (self.full_intent, self.text, tuple(sorted(e.key() for e in self.entities)))


@dataclass
class Synonym:
    """An explicit synonym entry: every variant maps to `value`."""

    value: str
    variants: list[str]


@dataclass
class RegexFeature:
    name: str
    patterns: list[str]


@dataclass
class LookupTable:
    name: str
    elements: list[str]


@dataclass
class TrainingData:
    """All examples (as written, duplicates included) plus synonyms, regexes and lookups.

    Duplicates are kept in `examples_as_written` so that counts can be reported
    the way a user wrote them; `examples` is the deduplicated list Rasa would train on.
    """

    examples_as_written: list[Example] = field(default_factory=list)
    synonyms: list[Synonym] = field(default_factory=list)
    regexes: list[RegexFeature] = field(default_factory=list)
    lookups: list[LookupTable] = field(default_factory=list)
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    @property
    def examples(self) -> list[Example]:
        seen: set[tuple[Any, ...]] = set()
        unique: list[Example] = []
        for ex in self.examples_as_written:
            k = ex.unique_key()
            if k not in seen:
                seen.add(k)
                unique.append(ex)
        return unique

    @property
    def intents(self) -> list[str]:
        """Distinct base intents in order of first appearance."""
        return list(dict.fromkeys(ex.intent for ex in self.examples_as_written))

    @property
    def full_intents(self) -> list[str]:
        return list(dict.fromkeys(ex.full_intent for ex in self.examples_as_written))

    @property
    def retrieval_intents(self) -> list[str]:
        return list(dict.fromkeys(ex.intent for ex in self.examples_as_written if ex.response_key))

    @property
    def entity_names(self) -> list[str]:
        return sorted({a.entity for ex in self.examples_as_written for a in ex.entities})

    def synonym_map(self) -> dict[str, str]:
        """Annotated or explicit text -> value, the way Rasa's EntitySynonymMapper learns it.

        Keys are the exact text (case kept) so that counts match what was
        written; matching at parse time is case-insensitive.
        """
        mapping: dict[str, str] = {}
        for syn in self.synonyms:
            for variant in syn.variants:
                mapping[variant] = syn.value
        for ex in self.examples_as_written:
            for a in ex.entities:
                if a.value != a.text:
                    mapping[a.text] = a.value
        return mapping

    def merge(self, other: "TrainingData") -> "TrainingData":
        return TrainingData(
            examples_as_written=self.examples_as_written + other.examples_as_written,
            synonyms=self.synonyms + other.synonyms,
            regexes=self.regexes + other.regexes,
            lookups=self.lookups + other.lookups,
            responses={**self.responses, **other.responses},
            sources=self.sources + other.sources,
        )

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> "TrainingData":
        """Build data from (text, intent) pairs; handy for tests and generated data."""
        examples = []
        for text, intent in pairs:
            base, _, key = intent.partition("/")
            examples.append(Example(text=text, intent=base, response_key=key or None))
        return cls(examples_as_written=examples)
