"""IntentRows: each message meets only the examples of the intent it would be answered with, a whole batch in one pass."""

from __future__ import annotations

import numpy as np
import pytest

from nlu.features import Featurizer
from nlu.sparse_neighbours import IntentRows, unit_rows

EXAMPLES = {0: ["i lost my card", "my card was stolen"], 2: ["what is my balance", "how much money do i have", "balance please"]}


def _fitted() -> tuple[Featurizer, IntentRows]:
    texts = [t for c in EXAMPLES for t in EXAMPLES[c]]
    featurizer = Featurizer()
    featurizer.fit_transform(texts + ["tell me a joke"])
    intents = np.array([c for c in EXAMPLES for _ in EXAMPLES[c]])
    return featurizer, IntentRows.of(unit_rows(featurizer.transform(texts)).tocsr(), intents)


def _cosine(featurizer: Featurizer, query: str, examples: list[str]) -> float:
    X, R = np.asarray(featurizer.transform([query]).todense()), np.asarray(featurizer.transform(examples).todense())
    norm = np.linalg.norm(X)
    return float((R / np.linalg.norm(R, axis=1, keepdims=True) @ X.T).max() / norm) if norm else 0.0


def test_each_message_is_compared_with_its_own_intents_examples_only() -> None:
    featurizer, rows = _fitted()
    queries = ["my card is lost", "my card is lost", "balance", ""]
    answered = np.array([0, 2, 2, 0])
    got = rows.nearest(*featurizer.transform_many(queries), answered)
    expected = [_cosine(featurizer, q, EXAMPLES[int(c)]) for q, c in zip(queries, answered)]
    assert got == pytest.approx(expected)
    assert got[0] > got[1]  # the same text, nearer its own intent's examples


def test_an_intent_without_examples_gives_zero() -> None:
    featurizer, rows = _fitted()
    got = rows.nearest(*featurizer.transform_many(["my card is lost", "balance"]), np.array([1, 2]))
    assert got[0] == 0.0 and got[1] > 0.0


def test_a_message_gets_the_same_answer_alone_as_in_any_batch() -> None:
    featurizer, rows = _fitted()
    queries = ["card stolen yesterday", "how much money", "joke", "balance of my card"]
    answered = np.array([0, 2, 0, 2])
    together = rows.nearest(*featurizer.transform_many(queries), answered)
    alone = [rows.nearest(*featurizer.transform_many([q]), answered[i:i + 1])[0] for i, q in enumerate(queries)]
    assert alone == list(together)


def test_the_rows_saved_over_all_features_build_the_same_index() -> None:
    featurizer, rows = _fitted()
    expanded, intents = rows.expanded()
    again = IntentRows.of(expanded, intents)
    queries = featurizer.transform_many(["card stolen", "balance please"])
    assert np.array_equal(again.nearest(*queries, np.array([0, 2])), rows.nearest(*queries, np.array([0, 2])))
    assert list(intents) == [0, 0, 2, 2, 2] and len(again) == 5
