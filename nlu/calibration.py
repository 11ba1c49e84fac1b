"""Out-of-fold scores of every training example, and what is chosen on them.

Confidences of texts a model trained on are too high to choose anything
from, and one held-out split is small where it matters (twenty `oos` rows in
a thousand): every example is scored by a model fitted without it (stratified
k folds), and on those scores the pipeline chooses the embedding's weight
(accurate), the softmax temperature, with an `oos` intent the out-of-scope
regression (nlu.oos_detector), and the `nlu_fallback` threshold
(nlu.thresholds). Nothing is ever chosen on test data.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from sklearn.model_selection import StratifiedKFold

from nlu.classifier import ClassifierConfig, expected_calibration_error, fit_linear, fit_temperature, softmax
from nlu.dense import fit_dense
from nlu.oos_detector import INTENT_SIGNALS, NEIGHBOUR_SIGNALS, Neighbours, fit_regression, signals, with_oos_probability
from nlu.settings import NluSettings
from nlu.thresholds import choose_floor_threshold, choose_oos_threshold

DEFAULT_THRESHOLD = 0.3
#: Examples whose neighbour similarities are computed together (their memory grows with the count).
_NEIGHBOUR_CHUNK = 500


@dataclass
class OutOfFold:
    """Scores of each example from the fold model that did not see it."""

    method: str
    gold: np.ndarray
    sparse: np.ndarray
    dense: np.ndarray | None = None
    #: with an `oos` intent: for each chunk of examples, its fold's training part (nlu.oos_detector.Neighbours) and
    #: the examples as the neighbours' space holds them; the similarities wait for the final scores, which name
    #: the intent each example would be answered with (accurate: after the embedding's weight is chosen)
    references: list[tuple[np.ndarray, Neighbours, Any]] = field(default_factory=list)

    def neighbours(self, scores: np.ndarray, oos_index: int) -> np.ndarray:
        """(examples, NEIGHBOUR_SIGNALS) of every example against its fold's training part."""
        out = np.zeros((len(self.gold), len(NEIGHBOUR_SIGNALS)))
        for chunk, reference, queries in self.references:
            out[chunk] = reference.similarities(scores[chunk], oos_index, queries)
        return out


@dataclass
class Calibration:
    temperature: float = 1.0
    mix: float = 1.0
    threshold: float = DEFAULT_THRESHOLD
    threshold_source: str = "default"
    #: with an `oos` intent: the out-of-scope regression's weights and intercept (nlu.oos_detector)
    oos_coef: np.ndarray | None = None
    oos_intercept: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


def out_of_fold(texts: Sequence[str], labels: Sequence[str], classes: list[str], config: ClassifierConfig,
                vectors: np.ndarray | None, progress: Callable[[str], None], oos_intent: str | None = None) -> OutOfFold | None:
    """k-fold scores of every example, and with `oos_intent` its neighbour similarities; None where the data is too small."""
    y = np.array([classes.index(lab) for lab in labels])
    counts = np.bincount(y, minlength=len(classes))
    if len(classes) < 2 or len(texts) < 10 or (counts >= 2).sum() < 2:
        return None
    k = max(2, min(config.calibration_folds, int(counts.max())))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # intents with fewer examples than folds: sklearn warns, we accept
        folds = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=config.seed).split(np.zeros(len(y)), y))
    sparse = np.zeros((len(texts), len(classes)))
    dense = np.zeros((len(texts), len(classes))) if vectors is not None else None
    texts_arr = np.array(texts, dtype=object)
    o = classes.index(oos_intent) if oos_intent in classes else None
    references: list[tuple[np.ndarray, Neighbours, Any]] = []
    for i, (train_idx, val_idx) in enumerate(folds, start=1):
        progress(f"fitting fold {i}/{k} ({len(train_idx)} examples; scoring the other {len(val_idx)})")
        model = fit_linear(list(texts_arr[train_idx]), [labels[j] for j in train_idx], classes, config)
        sparse[val_idx] = model.scores(list(texts_arr[val_idx]))
        if vectors is not None and dense is not None:
            head = fit_dense(vectors[train_idx], y[train_idx], len(classes), config.dense_C, config.seed)
            dense[val_idx] = head.scores(vectors[val_idx])
        if o is not None:
            oos_rows, in_rows = train_idx[y[train_idx] == o], train_idx[y[train_idx] != o]
            if vectors is not None:
                reference = Neighbours.embedding(vectors[oos_rows], vectors[in_rows], y[in_rows])
            else:
                transform = model.featurizer.transform
                reference = Neighbours.tfidf(transform(list(texts_arr[oos_rows])), transform(list(texts_arr[in_rows])), y[in_rows])
            for chunk in np.array_split(val_idx, max(1, len(val_idx) // _NEIGHBOUR_CHUNK)):  # bounded memory
                queries = vectors[chunk] if vectors is not None else model.featurizer.transform_many(list(texts_arr[chunk]))
                references.append((chunk, reference, queries))
    return OutOfFold(f"{k}-fold out-of-fold scores of all {len(texts)} examples", y, sparse, dense, references)


def _accuracy(scores: np.ndarray, gold: np.ndarray) -> float:
    return float((scores.argmax(axis=1) == gold).mean())


def calibrate(oof: OutOfFold | None, classes: list[str], config: ClassifierConfig, settings: NluSettings,
              threshold: float | None, oos_intent: str, say: Callable[[str], None]) -> Calibration:
    """Embedding weight, temperature and threshold from the out-of-fold scores (defaults without them)."""
    result = Calibration()
    if threshold is not None:
        result.threshold, result.threshold_source = float(threshold), "given"
    if oof is None:
        return result
    scores = oof.sparse
    info: dict[str, Any] = {"method": oof.method, "size": int(len(oof.gold)), "sparse_accuracy": _accuracy(scores, oof.gold)}
    if oof.dense is not None:
        dense = oof.dense
        tried = {w: _accuracy(oof.sparse + w * dense, oof.gold) for w in config.dense_weights}
        result.mix = max(tried, key=lambda w: (tried[w], -w))  # ties: the smaller weight
        scores = oof.sparse + result.mix * dense
        info["embedding_accuracy"] = _accuracy(dense, oof.gold)
        info["embedding_weights_tried"] = {str(w): round(a, 4) for w, a in tried.items()}
        say(f"embedding weight {result.mix} (out-of-fold accuracy: sparse {info['sparse_accuracy']:.4f}, "
            f"embedding {info['embedding_accuracy']:.4f}, both {tried[result.mix]:.4f})")
    result.temperature = fit_temperature(scores, oof.gold)
    proba = softmax(scores, result.temperature)
    info.update(accuracy=_accuracy(scores, oof.gold), ece=expected_calibration_error(proba, oof.gold),
                ece_before_temperature=expected_calibration_error(softmax(scores, 1.0), oof.gold))
    say(f"calibrated on {oof.method}: temperature {result.temperature:.3f}, accuracy {info['accuracy']:.4f}, "
        f"ECE {info['ece']:.3f}")
    o = classes.index(oos_intent) if oos_intent in classes else -1
    if o >= 0 and oof.references and 0 < int((oof.gold == o).sum()) < len(oof.gold):
        logits = scores / result.temperature
        result.oos_coef, result.oos_intercept, held_out = fit_regression(
            signals(logits, o, oof.neighbours(scores, o)), oof.gold == o, settings.expected_oos_rate, config.seed)
        proba = with_oos_probability(logits, held_out, o)  # the threshold is chosen on these
        info["oos_regression"] = {"signals": INTENT_SIGNALS + NEIGHBOUR_SIGNALS,
                                  "coef": [round(float(c), 4) for c in result.oos_coef],
                                  "intercept": round(result.oos_intercept, 4), "expected_oos_rate": settings.expected_oos_rate}
        say(f"out-of-scope regression fitted on {int((oof.gold == o).sum())} oos and {int((oof.gold != o).sum())} in-scope "
            f"out-of-fold answers (classes weighed by expected oos rate {settings.expected_oos_rate})")
    result.info["validation"] = info
    if threshold is not None:
        return result
    if oos_intent in classes:
        result.threshold, stats = choose_oos_threshold(proba, oof.gold, classes.index(oos_intent),
                                                       settings.expected_oos_rate, settings.target_oos_recall)
        aim = (f"target oos recall {settings.target_oos_recall}" if settings.target_oos_recall is not None
               else f"expected oos rate {settings.expected_oos_rate}")
        say(f"threshold {result.threshold:.3f} ({aim}): out-of-fold in-scope accuracy "
            f"{stats.get('in_scope_accuracy', 0):.4f}, oos recall {stats.get('oos_recall', 0):.4f}")
    else:
        result.threshold, stats = choose_floor_threshold(proba, oof.gold, config.fallback_budget, config.max_floor_threshold)
        say(f"threshold {result.threshold:.3f} (confidence floor: {stats.get('right_fallback_rate', 0):.4f} "
            f"of right answers fall back)")
    result.threshold_source = "out-of-fold"
    result.info["threshold_choice"] = stats
    return result
