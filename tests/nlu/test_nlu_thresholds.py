"""The nlu_fallback threshold and the out-of-scope regression on generated data where the right answer is known in closed form.

In-scope examples are all predicted right with confidences spread evenly over
[0.3, 1]; out-of-scope ones are predicted as some in-scope intent with
confidences spread evenly over [0, 0.6]. For a threshold t in [0.3, 0.6]:
in-scope accuracy = 1 - (t - 0.3) / 0.7 and out-of-scope recall = t / 0.6,
so the expected accuracy at out-of-scope share r is linear in t with slope
r / 0.6 - (1 - r) / 0.7: the best threshold is 0.3 when r < 6/13 and 0.6 when
r > 6/13, and the lowest threshold with recall 0.75 is 0.45.

The out-of-scope regression (nlu.oos_detector) is given one signal, normal
with variance 1 around 0 for in-scope and around 2 for out-of-scope
examples. Bayes' rule gives the log-odds 2x - 2 + log(r / (1 - r)) at an
out-of-scope share r, so the probability is one half at x = 1 - log(r / (1 - r)) / 2,
whatever the share of out-of-scope examples in the training rows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import scipy.sparse as sp

from nlu.features import Featurizer
from nlu.oos_detector import Neighbours, fit_regression, nearest_sparse, unit_rows, with_oos_probability
from nlu.thresholds import choose_oos_threshold

OOS = 2
N = 2001


def _generated() -> tuple[np.ndarray, np.ndarray]:
    in_conf = np.linspace(0.3, 1.0, N)
    oos_conf = np.linspace(0.0, 0.6, N)
    conf = np.concatenate([in_conf, oos_conf])
    proba = np.zeros((2 * N, 3))  # only the top intent and its confidence matter to the threshold
    proba[:, 0] = conf  # every example's top intent is 0 ...
    gold = np.concatenate([np.zeros(N, dtype=int), np.full(N, OOS)])  # ... right for in-scope, wrong for oos
    return proba, gold


@pytest.mark.parametrize("rate, expected", [(0.1, 0.3), (0.2, 0.3), (0.4, 0.3), (0.5, 0.6), (0.8, 0.6)])
def test_threshold_maximises_expected_accuracy_at_the_expected_oos_rate(rate: float, expected: float) -> None:
    proba, gold = _generated()
    threshold, stats = choose_oos_threshold(proba, gold, OOS, expected_oos_rate=rate)
    assert threshold == pytest.approx(expected, abs=0.005)  # within a few steps of the sampled confidences
    in_acc = 1 - (expected - 0.3) / 0.7
    oos_rec = expected / 0.6
    assert stats["expected_accuracy"] == pytest.approx((1 - rate) * in_acc + rate * oos_rec, abs=1e-3)


def test_rate_is_not_taken_from_how_rare_oos_is_in_the_data() -> None:
    proba, gold = _generated()
    few = np.concatenate([np.arange(N), np.arange(N, 2 * N, 100)])  # 21 oos rows against 2,001 in-scope
    assert choose_oos_threshold(proba[few], gold[few], OOS, expected_oos_rate=0.8)[0] == pytest.approx(0.6, abs=0.03)


def test_target_recall_takes_the_lowest_threshold_that_reaches_it() -> None:
    proba, gold = _generated()
    threshold, stats = choose_oos_threshold(proba, gold, OOS, target_oos_recall=0.75)
    assert threshold == pytest.approx(0.45, abs=1e-3)
    assert stats["oos_recall"] >= 0.75 and stats["target_reached"]
    assert stats["in_scope_accuracy"] == pytest.approx(1 - 0.15 / 0.7, abs=1e-3)


def test_threshold_sits_inside_a_gap_not_on_its_edge() -> None:
    proba, gold = _generated()
    in_scope = gold != OOS
    keep = (in_scope & (proba[:, 0] >= 0.5)) | (~in_scope & (proba[:, 0] <= 0.4))  # a clean gap: every t in it is as good
    threshold, stats = choose_oos_threshold(proba[keep], gold[keep], OOS, expected_oos_rate=0.5)
    assert threshold == pytest.approx(0.45, abs=1e-3)
    assert stats["in_scope_accuracy"] == 1.0 and stats["oos_recall"] == 1.0


def _one_signal(n_in: int, n_oos: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0.0, 1.0, n_in), rng.normal(2.0, 1.0, n_oos)])
    return x[:, None], np.concatenate([np.zeros(n_in, dtype=bool), np.ones(n_oos, dtype=bool)])


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.5])
@pytest.mark.parametrize("n_oos", [400, 4000])  # 2% and 17% of the training rows: the answer must not move
def test_oos_regression_is_the_bayes_posterior_at_the_expected_rate(rate: float, n_oos: int) -> None:
    features, is_oos = _one_signal(20000, n_oos)
    coef, intercept, held_out = fit_regression(features, is_oos, expected_oos_rate=rate)
    boundary = -intercept / coef[0]  # where the probability is one half
    assert boundary == pytest.approx(1 - math.log(rate / (1 - rate)) / 2, abs=0.1)
    assert coef[0] == pytest.approx(2.0, abs=0.2)
    assert held_out.shape == (len(is_oos),) and 0 < held_out.min() and held_out.max() < 1


def test_oos_probability_keeps_the_in_scope_intents_proportions() -> None:
    logits = np.log(np.array([[0.6, 0.3, 0.1], [0.1, 0.1, 0.8]]))
    out = with_oos_probability(logits, np.array([0.5, 0.2]), oos_index=2)
    assert out[:, 2] == pytest.approx([0.5, 0.2])
    assert out.sum(axis=1) == pytest.approx([1.0, 1.0])
    assert out[0, 0] / out[0, 1] == pytest.approx(2.0) and out[1, 0] == pytest.approx(out[1, 1])


def test_oos_probability_keeps_the_proportions_where_the_softmax_underflows() -> None:
    logits = np.array([[0.0, -2.0, 900.0]])  # softmax gives the in-scope intents 0.0 and 0.0
    out = with_oos_probability(logits, np.array([0.9]), oos_index=2)
    assert np.isfinite(out).all() and out[0, 2] == pytest.approx(0.9)
    assert out[0, 0] / out[0, 1] == pytest.approx(math.exp(2.0))


def test_nearest_oos_similarity_is_the_cosine_to_the_closest_example_alone_or_in_a_batch() -> None:
    examples = ["how do i top up my card", "card not working abroad", "where is my money"]
    featurizer = Featurizer()
    featurizer.fit_transform(examples + ["exchange rate euro", "cancel my transfer"])
    rows = unit_rows(featurizer.transform(examples))
    queries = ["my card is not working", "top up", "", "exchange euro rate", "where is my money"]
    X = featurizer.transform(queries)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    expected = (X @ sp.csr_matrix(rows).T).toarray().max(axis=1) / np.where(norms > 0, norms, 1.0)
    together = nearest_sparse(*featurizer.transform_many(queries), rows)
    assert together == pytest.approx(expected)
    assert together[-1] == pytest.approx(1.0) and together[2] == 0.0
    assert [nearest_sparse(*featurizer.transform_many([q]), rows)[0] for q in queries] == list(together)


def _cosines(featurizer: Featurizer, queries: list[str], examples: list[str]) -> np.ndarray:
    """(queries, examples) cosine similarities, computed the plain way."""
    X, R = featurizer.transform(queries), featurizer.transform(examples)
    unit = lambda M: np.asarray(M.todense()) / np.maximum(np.linalg.norm(np.asarray(M.todense()), axis=1, keepdims=True), 1e-300)
    return unit(X) @ unit(R).T


def test_mean_of_the_nearest_rows_is_the_mean_of_the_largest_cosines_alone_or_in_a_batch() -> None:
    examples = ["how do i top up my card", "card not working abroad", "where is my money", "top up by bank transfer"]
    featurizer = Featurizer()
    featurizer.fit_transform(examples + ["exchange rate euro", "cancel my transfer"])
    rows = unit_rows(featurizer.transform(examples))
    queries = ["my card is not working", "top up my card", "", "exchange euro rate"]
    cos = _cosines(featurizer, queries, examples)
    for top in (2, 3, 10):  # 10: more than there are rows, so all of them
        expected = np.sort(cos, axis=1)[:, -min(top, len(examples)):].mean(axis=1)
        together = nearest_sparse(*featurizer.transform_many(queries), rows, top=top)
        assert together == pytest.approx(expected)
        assert [nearest_sparse(*featurizer.transform_many([q]), rows, top=top)[0] for q in queries] == list(together)


def test_tfidf_neighbours_measure_the_oos_examples_and_the_answered_intents_examples() -> None:
    """Columns: mean cosine to the 3 nearest `oos` examples, cosine to the `oos` examples' centroid, and cosine
    to the nearest example of the intent the scores would answer (never `oos`, even where it scores best)."""
    oos = ["tell me a joke", "what is the weather", "who won the game", "play some music"]
    intents = {0: ["i lost my card", "my card was stolen"], 1: ["what is my balance", "how much money do i have"]}
    in_scope = [t for c in intents for t in intents[c]]
    featurizer = Featurizer()
    featurizer.fit_transform(oos + in_scope)
    reference = Neighbours.tfidf(featurizer.transform(oos), featurizer.transform(in_scope),
                                 np.array([c for c in intents for _ in intents[c]]))
    queries = ["a joke about the weather", "my card is lost", "how much money is left", "music"]
    scores = np.array([[0.0, 1.0, 5.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 0.0, 3.0]])  # column 2: oos
    got = reference.similarities(scores, 2, featurizer.transform_many(queries))

    to_oos = _cosines(featurizer, queries, oos)
    assert got[:, 0] == pytest.approx(np.sort(to_oos, axis=1)[:, -3:].mean(axis=1))
    centroid = featurizer.transform(oos)
    centroid = np.asarray((sp.diags(1 / np.sqrt(np.asarray(centroid.multiply(centroid).sum(axis=1)).ravel())) @ centroid).mean(axis=0))
    X = np.asarray(featurizer.transform(queries).todense())
    expected_centroid = (X @ centroid.T).ravel() / np.linalg.norm(X, axis=1) / np.linalg.norm(centroid)
    assert got[:, 1] == pytest.approx(expected_centroid)
    answered = [1, 0, 1, 0]  # the best in-scope column of each row of `scores`
    expected_answer = [_cosines(featurizer, [q], intents[c]).max() for q, c in zip(queries, answered)]
    assert got[:, 2] == pytest.approx(expected_answer)
    assert np.array_equal(np.vstack([reference.similarities(scores[i:i + 1], 2, featurizer.transform_many([q]))
                                     for i, q in enumerate(queries)]), got)


def test_embedding_neighbours_measure_the_same_three_similarities_as_tfidf_ones() -> None:
    rng = np.random.default_rng(0)
    unit = lambda M: M / np.linalg.norm(M, axis=1, keepdims=True)
    oos, in_scope, queries = unit(rng.normal(size=(5, 8))), unit(rng.normal(size=(6, 8))), unit(rng.normal(size=(4, 8)))
    intents = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([[0.0, 1.0, 5.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 0.0, 3.0]])  # column 2: oos
    got = Neighbours.embedding(oos, in_scope, intents).similarities(scores, 2, queries)
    assert got[:, 0] == pytest.approx(np.sort(queries @ oos.T, axis=1)[:, -3:].mean(axis=1))
    centroid = oos.mean(axis=0)
    assert got[:, 1] == pytest.approx(queries @ centroid / np.linalg.norm(centroid))
    answered = [1, 0, 1, 0]
    assert got[:, 2] == pytest.approx([(in_scope[intents == c] @ q).max() for q, c in zip(queries, answered)])
