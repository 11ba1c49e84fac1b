"""Out-of-scope probability for data with an `oos` intent: a small logistic regression over per-message signals.

One softmax temperature calibrates the intents on average, but `oos` is not
an intent like the others: its examples are whatever the bot was not built
for, many unrelated topics with a few examples each, which one linear
boundary separates badly. So the probability that a message is out of
scope is learnt on its own, on the out-of-fold scores of the training data,
from signals that see it in different ways:

    the `oos` log-odds of the calibrated intent model,
    the log-probabilities of the best and second in-scope intents,
    the cosine similarity to the nearest `oos` training example,
    (accurate) the cosine similarity to the nearest in-scope training example.

Nearest neighbours are looked up in the pipeline's own space: TF-IDF rows for
`fast` (only the `oos` examples, a few hundred rows at most; the nearest
in-scope row raised the out-of-fold objective only from 0.854 to 0.858 on
BANKING77-OOS and costs a product with every training row in each parse),
the sentence embedding for `accurate` (one product with the stored vectors).
The parse answer keeps the in-scope intents' proportions and gives `oos` the
learnt probability; the `nlu_fallback` threshold is then chosen on those.

The regression weighs the two classes by `expected_oos_rate`, not by how
rare `oos` is in the training file (the same weighting as the threshold's
objective, nlu.thresholds): at those weights its probability is the one for
traffic with that share of out-of-scope messages (Saerens et al., 2002).
This replaces a shift of the `oos` logit by the same change of prior, which
moved a badly calibrated probability without mending it.

BANKING77-OOS (../shared/datasets/banking77-oos: 27 of 77 intents held out
as `oos`, 100 of them in training, 1,080 of 3,080 test rows), default
settings, overall accuracy as answered (in-scope accuracy / oos recall):
  fast      0.784 (0.921 / 0.531) with the logit shift -> 0.827 (0.905 / 0.681)
  accurate  0.863 (0.910 / 0.777) with the logit shift -> 0.901 (0.932 / 0.842)
The signals were compared on out-of-fold answers of the training file
(expected accuracy at the threshold chosen there: fast 0.843 with the intent
model's probabilities alone, 0.854 with the nearest `oos` similarity;
accurate 0.886 alone, 0.905 with both neighbours); the test file only reports.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import ThreadpoolController

_LOG_FLOOR = float(np.log(1e-9))
#: What `signals` returns, in order (the last only where in-scope neighbours are looked up).
SIGNALS = ["oos log-odds", "best in-scope log-probability", "second in-scope log-probability",
           "nearest oos similarity", "nearest in-scope similarity"]


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    """log(sum(exp(row))) of each row (scipy's logsumexp costs about ten times as much a call at parse sizes)."""
    top = x.max(axis=1)
    return top + np.log(np.exp(x - top[:, None]).sum(axis=1))


def _in_scope_columns(n_classes: int, oos_index: int) -> np.ndarray:
    return np.flatnonzero(np.arange(n_classes) != oos_index)


def signals(logits: np.ndarray, oos_index: int, nearest_oos: np.ndarray, nearest_in: np.ndarray | None) -> np.ndarray:
    """(messages, signals) inputs of the regression (SIGNALS), from temperature-scaled scores and neighbour similarities.

    Log-probabilities are floored at log 1e-9, so that no signal is unbounded.
    """
    in_scope = logits[:, _in_scope_columns(logits.shape[1], oos_index)]
    log_in_total = _logsumexp_rows(in_scope)
    log_odds = logits[:, oos_index] - log_in_total
    log_in = in_scope - np.logaddexp(log_in_total, logits[:, oos_index])[:, None]  # log-probabilities
    best = log_in.max(axis=1)
    second = np.partition(log_in, -2, axis=1)[:, -2] if log_in.shape[1] >= 2 else np.full(len(logits), _LOG_FLOOR)
    columns = [np.clip(log_odds, _LOG_FLOOR, -_LOG_FLOOR), np.maximum(best, _LOG_FLOOR), np.maximum(second, _LOG_FLOOR),
               nearest_oos]
    if nearest_in is not None:
        columns.append(nearest_in)
    return np.column_stack(columns)


def with_oos_probability(logits: np.ndarray, q: np.ndarray, oos_index: int) -> np.ndarray:
    """Probabilities with `oos` at `q` and the in-scope intents sharing 1 - q as the softmax of their own logits."""
    columns = _in_scope_columns(logits.shape[1], oos_index)
    in_scope = logits[:, columns]
    shares = np.exp(in_scope - in_scope.max(axis=1)[:, None])
    out = np.empty_like(logits, dtype=np.float64)
    out[:, columns] = shares * ((1.0 - q) / shares.sum(axis=1))[:, None]
    out[:, oos_index] = q
    return out


def nearest_sparse(starts: np.ndarray, cols: np.ndarray, vals: np.ndarray, rows: sp.csc_matrix) -> np.ndarray:
    """Cosine similarity of each query (CSR parts, as Featurizer.transform_many) to its nearest row (unit rows, by column).

    A handful of numpy calls over the queries' n-grams and the rows that hold
    them (scipy's sparse product costs about a millisecond a call, more than
    the rest of a parse); each query's sums are its own entries in order, so
    its answer is the same alone or in any batch.
    """
    n, n_rows = len(starts) - 1, rows.shape[0]
    if n_rows == 0 or n == 0:
        return np.zeros(n)
    query = np.repeat(np.arange(n), np.diff(starts))
    norms = np.sqrt(np.bincount(query, weights=vals * vals, minlength=n))
    lo, hi = rows.indptr[cols], rows.indptr[cols + 1]
    lengths = hi - lo
    at = np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    cells = np.repeat(query, lengths) * n_rows + rows.indices[at]
    dots = np.bincount(cells, weights=np.repeat(vals, lengths) * rows.data[at], minlength=n * n_rows)
    return dots.reshape(n, n_rows).max(axis=1) / np.where(norms > 0, norms, 1.0)


def nearest_dense(queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Cosine similarity of each (unit) query vector to its nearest (unit) row."""
    if len(rows) == 0:
        return np.zeros(len(queries))
    return (queries @ rows.T).max(axis=1)


@functools.cache
def _blas() -> ThreadpoolController:
    """The process's BLAS libraries (looked up once: the lookup costs milliseconds)."""
    return ThreadpoolController()


def unit_rows(matrix: sp.csr_matrix) -> sp.csc_matrix:
    """Rows scaled to length 1 (the featurizer normalises each block, not the whole row), stored by column."""
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return sp.csc_matrix(sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ matrix)


@dataclass
class OosDetector:
    """The fitted regression and the training examples its neighbour signals are measured against."""

    oos_index: int
    coef: np.ndarray  # (signals,), for unscaled signals
    intercept: float
    space: str  # where neighbours are looked up: "tfidf" (fast) or "embedding" (accurate)
    oos_rows: Any  # sp.csc_matrix (tfidf) or np.ndarray (embedding): unit rows of the `oos` examples
    in_rows: np.ndarray | None = None  # embedding: unit vectors of the in-scope examples

    def probability(self, logits: np.ndarray, queries: Any) -> np.ndarray:
        """Out-of-scope probability of each message: `logits` are the intent model's scores over its temperature,
        `queries` the messages' TF-IDF rows (CSR parts) or embedding vectors."""
        if self.space == "tfidf":
            near_oos, near_in = nearest_sparse(*queries, self.oos_rows), None
        else:
            # One thread: OpenBLAS splits a product with thousands of rows over both cores, and on a busy
            # machine waiting for the second one cost 7 to 17 ms a parse against 0.5 ms on one thread.
            with _blas().limit(limits=1, user_api="blas"):
                near_oos = nearest_dense(queries, self.oos_rows)
                near_in = nearest_dense(queries, self.in_rows) if self.in_rows is not None else None
        features = signals(logits, self.oos_index, near_oos, near_in)
        z = np.full(len(features), self.intercept)
        for j, weight in enumerate(self.coef):  # column by column: a matrix product's sums can depend on the batch
            z += features[:, j] * weight
        return 1.0 / (1.0 + np.exp(-z))

    def proba(self, logits: np.ndarray, queries: Any) -> np.ndarray:
        """The intents' probabilities with `oos` at the regression's (see with_oos_probability)."""
        return with_oos_probability(logits, self.probability(logits, queries), self.oos_index)

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {"oos_index": self.oos_index, "intercept": self.intercept, "space": self.space}
        arrays = {"oos_coef": self.coef}
        if self.space == "tfidf":
            rows = self.oos_rows
            arrays.update(oos_rows_data=rows.data, oos_rows_indices=rows.indices, oos_rows_indptr=rows.indptr,
                          oos_rows_shape=np.array(rows.shape))
        else:
            arrays["oos_rows"] = self.oos_rows
            if self.in_rows is not None:
                arrays["in_rows"] = self.in_rows
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> "OosDetector":
        if meta["space"] == "tfidf":
            shape = tuple(int(x) for x in arrays["oos_rows_shape"])
            rows: Any = sp.csc_matrix((arrays["oos_rows_data"], arrays["oos_rows_indices"], arrays["oos_rows_indptr"]), shape=shape)
        else:
            rows = arrays["oos_rows"]
        return cls(int(meta["oos_index"]), arrays["oos_coef"], float(meta["intercept"]), str(meta["space"]), rows,
                   arrays.get("in_rows"))


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
