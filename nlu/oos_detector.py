"""Out-of-scope probability for data with an `oos` intent: a small logistic regression over per-message signals.

One softmax temperature calibrates the intents on average, but `oos` is not
an intent like the others: its examples are whatever the bot was not built
for, many unrelated topics with a few examples each, which one linear
boundary separates badly. So the probability that a message is out of
scope is learnt on its own, on the out-of-fold scores of the training data,
from signals that see it in different ways: three from the intent model

    the `oos` log-odds of the calibrated intent model,
    the log-probabilities of the best and second in-scope intents,

and three neighbour similarities, looked up in the pipeline's own space (TF-IDF
rows for `fast`, the sentence embedding for `accurate`; `Neighbours`, the same
code for the out-of-fold answers and at parse):

    the mean similarity to the 3 nearest `oos` examples and the similarity to
    their centroid: how much the message resembles what was collected as out
    of scope, measured by more than the one nearest example (a single
    near-duplicate decides the nearest);
    the similarity to the nearest example of the intent the message would be
    answered with: whether anything like it was trained for that answer.

Each parse compares the message with the `oos` examples (a few hundred at
most) and one intent's examples, not with every training row.

The parse answer keeps the in-scope intents' proportions and gives `oos` the
learnt probability; the `nlu_fallback` threshold is then chosen on those.

The regression weighs the two classes by `expected_oos_rate`, not by how
rare `oos` is in the training file (the same weighting as the threshold's
objective, nlu.thresholds): at those weights its probability is the one for
traffic with that share of out-of-scope messages (Saerens et al., 2002).

How the signals were chosen, on BANKING77-OOS's training file only
(../shared/datasets/banking77-oos: 27 of 77 intents held out as `oos`, 100 of
them in training): out-of-fold expected accuracy at the threshold chosen there
(expected_oos_rate 0.2). For `fast`, with 4 and 10 folds, every combination of
up to four of seven TF-IDF neighbour signals was fitted; the mean over the 3
nearest `oos` examples was in each of the 25 best, the centroid and the
answered intent's nearest example in most of them:
  nearest oos only (the former signal)                 0.850 / 0.858
  nearest oos + nearest in-scope (every row)           0.849 / 0.863
  nearest oos + nearest of the answered intent         0.853 / 0.862
  3 nearest oos + oos centroid + answered intent       0.855 / 0.870  <- chosen
  best of all (adds the 5 nearest in-scope, every row) 0.859 / 0.870
For `accurate` (4 folds) the same three in the embedding score as the former
nearest oos + nearest in-scope pair (0.905 against 0.904), for a product with
one intent's vectors instead of all 6,493 at each parse; one set for both.
The test file only reports (bench/results/nlu_neighbours*.json), and so do
three other draws of 27 held-out intents (random.Random(1..3), built as
SOURCE.md says): fast 0.853 / 0.831 / 0.830 before, 0.856 / 0.852 / 0.842 after.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import ThreadpoolController

from nlu.sparse_neighbours import IntentRows, nearest_sparse, unit_rows

_LOG_FLOOR = float(np.log(1e-9))
#: The intent model's signals, the first columns of `signals`.
INTENT_SIGNALS = ["oos log-odds", "best in-scope log-probability", "second in-scope log-probability"]
#: How many nearest `oos` examples the fast tier's similarity is averaged over.
NEAREST_OOS = 3
#: The neighbour signals, the last columns of `signals` (Neighbours.similarities), in either space.
NEIGHBOUR_SIGNALS = [f"mean similarity to the {NEAREST_OOS} nearest oos examples", "similarity to the oos centroid",
                     "similarity to the nearest example of the answered intent"]


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    """log(sum(exp(row))) of each row (scipy's logsumexp costs about ten times as much a call at parse sizes)."""
    top = x.max(axis=1)
    return top + np.log(np.exp(x - top[:, None]).sum(axis=1))


def _in_scope_columns(n_classes: int, oos_index: int) -> np.ndarray:
    return np.flatnonzero(np.arange(n_classes) != oos_index)


def answered_intents(scores: np.ndarray, oos_index: int) -> np.ndarray:
    """The in-scope intent each message would be answered with (best score but `oos`'s), as class indices."""
    columns = _in_scope_columns(scores.shape[1], oos_index)
    return columns[scores[:, columns].argmax(axis=1)]


def signals(logits: np.ndarray, oos_index: int, neighbours: np.ndarray) -> np.ndarray:
    """(messages, signals) inputs of the regression: INTENT_SIGNALS from temperature-scaled scores, then the
    (messages, k) neighbour similarities.

    Log-probabilities are floored at log 1e-9, so that no signal is unbounded.
    """
    in_scope = logits[:, _in_scope_columns(logits.shape[1], oos_index)]
    log_in_total = _logsumexp_rows(in_scope)
    log_odds = logits[:, oos_index] - log_in_total
    log_in = in_scope - np.logaddexp(log_in_total, logits[:, oos_index])[:, None]  # log-probabilities
    best = log_in.max(axis=1)
    second = np.partition(log_in, -2, axis=1)[:, -2] if log_in.shape[1] >= 2 else np.full(len(logits), _LOG_FLOOR)
    return np.column_stack([np.clip(log_odds, _LOG_FLOOR, -_LOG_FLOOR), np.maximum(best, _LOG_FLOOR),
                            np.maximum(second, _LOG_FLOOR), neighbours])


def with_oos_probability(logits: np.ndarray, q: np.ndarray, oos_index: int) -> np.ndarray:
    """Probabilities with `oos` at `q` and the in-scope intents sharing 1 - q as the softmax of their own logits."""
    columns = _in_scope_columns(logits.shape[1], oos_index)
    in_scope = logits[:, columns]
    shares = np.exp(in_scope - in_scope.max(axis=1)[:, None])
    out = np.empty_like(logits, dtype=np.float64)
    out[:, columns] = shares * ((1.0 - q) / shares.sum(axis=1))[:, None]
    out[:, oos_index] = q
    return out


def nearest_dense(queries: np.ndarray, rows: np.ndarray, top: int = 1) -> np.ndarray:
    """Cosine similarity of each (unit) query vector to its nearest (unit) row; with `top` > 1 the mean over its
    `top` nearest rows (all of them when there are fewer)."""
    if len(rows) == 0:
        return np.zeros(len(queries))
    dots = queries @ rows.T
    top = min(top, len(rows))
    if top == 1:
        return dots.max(axis=1)
    return np.sort(np.partition(dots, len(rows) - top, axis=1)[:, len(rows) - top:], axis=1).mean(axis=1)


@functools.cache
def _blas() -> ThreadpoolController:
    """The process's BLAS libraries (looked up once: the lookup costs milliseconds)."""
    return ThreadpoolController()


def _by_intent(vectors: np.ndarray, intents: np.ndarray) -> dict[int, np.ndarray]:
    """Sentence vectors grouped by intent (class index)."""
    return {int(c): vectors[intents == c] for c in np.unique(intents)}


@dataclass
class Neighbours:
    """The training examples the neighbour signals are measured against, in the pipeline's space.

    Rows are of unit length: TF-IDF rows by column (sp.csc_matrix) for `fast`,
    sentence vectors (np.ndarray) for `accurate`.
    """

    space: str  # "tfidf" (fast) or "embedding" (accurate)
    oos_rows: Any  # the `oos` examples
    oos_centroid: Any  # their mean, scaled to length 1 (one row)
    #: the in-scope examples by intent: IntentRows (`fast`), or a dict of vectors by class index (`accurate`)
    by_intent: IntentRows | dict[int, np.ndarray]

    @classmethod
    def tfidf(cls, oos: sp.csr_matrix, in_scope: sp.csr_matrix, intents: np.ndarray) -> "Neighbours":
        """From the featurizer's rows of the `oos` and in-scope examples (`intents`: the latter's class indices)."""
        unit = unit_rows(oos)
        centroid = sp.csr_matrix(unit.mean(axis=0)) if unit.shape[0] else sp.csr_matrix((1, unit.shape[1]))
        return cls("tfidf", unit, unit_rows(centroid), IntentRows.of(unit_rows(in_scope).tocsr(), intents))

    @classmethod
    def embedding(cls, oos: np.ndarray, in_scope: np.ndarray, intents: np.ndarray) -> "Neighbours":
        """From the (unit) vectors of the `oos` and in-scope examples (`intents`: the latter's class indices)."""
        centroid = oos.mean(axis=0, keepdims=True) if len(oos) else np.zeros((1, in_scope.shape[1]), dtype=in_scope.dtype)
        centroid = centroid / max(float(np.linalg.norm(centroid)), 1e-12)
        return cls("embedding", oos, centroid.astype(oos.dtype if len(oos) else in_scope.dtype), _by_intent(in_scope, intents))

    def _nearest(self, queries: Any, rows: Any, top: int = 1) -> np.ndarray:
        return nearest_sparse(*queries, rows, top=top) if self.space == "tfidf" else nearest_dense(queries, rows, top)

    def similarities(self, scores: np.ndarray, oos_index: int, queries: Any) -> np.ndarray:
        """(messages, NEIGHBOUR_SIGNALS) of messages given as TF-IDF rows (CSR parts) or vectors; `scores` (any
        scale) name the intent each would be answered with, whose examples alone are compared."""
        # One BLAS thread: OpenBLAS may split a product over both cores, and on a busy machine waiting for the
        # second one cost 7 to 17 ms a parse against 0.5 ms on one thread (a product with 6,493 vectors).
        with _blas().limit(limits=1, user_api="blas") if self.space == "embedding" else contextlib.nullcontext():
            answered = answered_intents(scores, oos_index)
            if isinstance(self.by_intent, IntentRows):
                near_answer = self.by_intent.nearest(*queries, answered)
            else:
                near_answer = np.zeros(len(answered))
                for intent in np.unique(answered):
                    rows = self.by_intent.get(int(intent))
                    if rows is not None:
                        which = np.flatnonzero(answered == intent)
                        near_answer[which] = nearest_dense(queries[which], rows)
            return np.column_stack([self._nearest(queries, self.oos_rows, NEAREST_OOS),
                                    self._nearest(queries, self.oos_centroid), near_answer])

    def to_arrays(self) -> dict[str, np.ndarray]:
        if isinstance(self.by_intent, IntentRows):
            rows, row_intents = self.by_intent.expanded()
            return {"answer_rows_intents": row_intents.astype(np.int64), **_sparse_arrays("oos_rows", self.oos_rows),
                    **_sparse_arrays("oos_centroid", self.oos_centroid), **_sparse_arrays("answer_rows", rows.tocsc())}
        intents = sorted(self.by_intent)
        sizes = [len(self.by_intent[c]) for c in intents]
        dim = self.oos_centroid.shape[1]
        answer = np.vstack([self.by_intent[c] for c in intents]) if intents else np.zeros((0, dim), dtype=np.float32)
        return {"answer_rows_intents": np.repeat(np.array(intents, dtype=np.int64), sizes), "oos_rows": self.oos_rows,
                "oos_centroid": self.oos_centroid, "answer_rows": answer}

    @classmethod
    def from_arrays(cls, space: str, arrays: dict[str, np.ndarray]) -> "Neighbours":
        intents = arrays["answer_rows_intents"]
        if space == "embedding":
            return cls(space, arrays["oos_rows"], arrays["oos_centroid"], _by_intent(arrays["answer_rows"], intents))
        return cls(space, _sparse_from_arrays("oos_rows", arrays), _sparse_from_arrays("oos_centroid", arrays),
                   IntentRows.of(_sparse_from_arrays("answer_rows", arrays).tocsr(), intents))


def _sparse_arrays(name: str, rows: sp.csc_matrix) -> dict[str, np.ndarray]:
    return {f"{name}_data": rows.data, f"{name}_indices": rows.indices, f"{name}_indptr": rows.indptr,
            f"{name}_shape": np.array(rows.shape)}


def _sparse_from_arrays(name: str, arrays: dict[str, np.ndarray]) -> sp.csc_matrix:
    shape = tuple(int(x) for x in arrays[f"{name}_shape"])
    return sp.csc_matrix((arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"]), shape=shape)


@dataclass
class OosDetector:
    """The fitted regression and the training examples its neighbour signals are measured against."""

    oos_index: int
    coef: np.ndarray  # (signals,), for unscaled signals
    intercept: float
    neighbours: Neighbours

    @property
    def space(self) -> str:
        """Where neighbours are looked up: "tfidf" (fast) or "embedding" (accurate)."""
        return self.neighbours.space

    def probability(self, logits: np.ndarray, queries: Any) -> np.ndarray:
        """Out-of-scope probability of each message: `logits` are the intent model's scores over its temperature,
        `queries` the messages' TF-IDF rows (CSR parts) or embedding vectors."""
        features = signals(logits, self.oos_index, self.neighbours.similarities(logits, self.oos_index, queries))
        z = np.full(len(features), self.intercept)
        for j, weight in enumerate(self.coef):  # column by column: a matrix product's sums can depend on the batch
            z += features[:, j] * weight
        return 1.0 / (1.0 + np.exp(-z))

    def proba(self, logits: np.ndarray, queries: Any) -> np.ndarray:
        """The intents' probabilities with `oos` at the regression's (see with_oos_probability)."""
        return with_oos_probability(logits, self.probability(logits, queries), self.oos_index)

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {"oos_index": self.oos_index, "intercept": self.intercept, "space": self.neighbours.space,
                "signals": INTENT_SIGNALS + NEIGHBOUR_SIGNALS}
        return meta, {"oos_coef": self.coef, **self.neighbours.to_arrays()}

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> "OosDetector":
        space = str(meta["space"])
        return cls(int(meta["oos_index"]), arrays["oos_coef"], float(meta["intercept"]), Neighbours.from_arrays(space, arrays))


def fit_regression(features: np.ndarray, is_oos: np.ndarray, expected_oos_rate: float,
                   seed: int = 0) -> tuple[np.ndarray, float, np.ndarray]:
    """Weights for unscaled signals, and each example's probability from a fit that did not see it.

    The held-out probabilities (stratified folds over in/out of scope) are what
    the threshold is chosen on: the same regression's answers on its own
    training rows would be a little too sure.
    """
    share = float(is_oos.mean())
    weights = {True: expected_oos_rate / share, False: (1 - expected_oos_rate) / (1 - share)}
    mean, std = features.mean(axis=0), features.std(axis=0)
    std[std == 0] = 1.0
    scaled = (features - mean) / std

    def fit(rows: np.ndarray) -> LogisticRegression:
        return LogisticRegression(C=1.0, class_weight=weights).fit(scaled[rows], is_oos[rows])

    held_out = np.zeros(len(features))
    k = int(min(4, is_oos.sum(), (~is_oos).sum()))
    if k >= 2:
        folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(scaled, is_oos)
        for train_rows, test_rows in folds:
            held_out[test_rows] = fit(train_rows).predict_proba(scaled[test_rows])[:, 1]
    model = fit(np.arange(len(features)))
    if k < 2:
        held_out = model.predict_proba(scaled)[:, 1]
    coef = model.coef_[0] / std
    intercept = float(model.intercept_[0] - (model.coef_[0] * mean / std).sum())
    return coef, intercept, held_out
