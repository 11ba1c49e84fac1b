"""Out-of-fold scores of every training example, and what is chosen on them.

Confidences of texts a model trained on are too high to choose anything
from, and one held-out split is small where it matters (twenty `oos` rows in
a thousand): every example is scored by a model fitted without it (stratified
k folds), and on those scores the pipeline chooses the embedding's weight
(accurate), the softmax temperature, and the `nlu_fallback` threshold
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
from nlu.settings import NluSettings
from nlu.thresholds import choose_floor_threshold, choose_oos_threshold

DEFAULT_THRESHOLD = 0.3


@dataclass
class OutOfFold:
    """Scores of each example from the fold model that did not see it."""

    method: str
    gold: np.ndarray
    sparse: np.ndarray
    dense: np.ndarray | None = None


@dataclass
class Calibration:
    temperature: float = 1.0
    mix: float = 1.0
    threshold: float = DEFAULT_THRESHOLD
    threshold_source: str = "default"
    #: added to the `oos` intent's logit (see oos_prior_shift); the model adds it times the temperature to its bias
    oos_shift: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


def out_of_fold(texts: Sequence[str], labels: Sequence[str], classes: list[str], config: ClassifierConfig,
                vectors: np.ndarray | None, progress: Callable[[str], None]) -> OutOfFold | None:
    """k-fold scores of every example; None where the data is too small to hold any out."""
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
    for i, (train_idx, val_idx) in enumerate(folds, start=1):
        progress(f"fitting fold {i}/{k} ({len(train_idx)} examples; scoring the other {len(val_idx)})")
        model = fit_linear(list(texts_arr[train_idx]), [labels[j] for j in train_idx], classes, config)
        sparse[val_idx] = model.scores(list(texts_arr[val_idx]))
        if vectors is not None and dense is not None:
            head = fit_dense(vectors[train_idx], y[train_idx], len(classes), config.dense_C, config.seed)
            dense[val_idx] = head.scores(vectors[val_idx])
    return OutOfFold(f"{k}-fold out-of-fold scores of all {len(texts)} examples", y, sparse, dense)


def oos_prior_shift(train_share: float, expected_share: float) -> float:
    """Logit shift that turns probabilities learnt at the training file's `oos` share into ones at the expected share.

    The classifier learns the `oos` prior from the training file, where out-of-scope
    examples are rare (1.5% of BANKING77-OOS's rows); the bot meets them at
    `expected_oos_rate`. Bayes' rule with the priors swapped (Saerens et al., 2002)
    multiplies p(oos|x) by expected/train and the rest by (1-expected)/(1-train):
    on the logits, one constant added to `oos`.
    """
    train_share = min(max(train_share, 1e-6), 1 - 1e-6)
    return float(np.log(expected_share / train_share) - np.log((1 - expected_share) / (1 - train_share)))


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
    if oos_intent in classes:
        o = classes.index(oos_intent)
        result.oos_shift = oos_prior_shift(float((oof.gold == o).mean()), settings.expected_oos_rate)
        logits = scores / result.temperature
        logits[:, o] += result.oos_shift
        proba = softmax(logits, 1.0)
        info["oos_prior_shift"] = result.oos_shift
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
