"""The `nlu_fallback` threshold, chosen on out-of-fold confidences of the training data.

With out-of-scope examples (an `oos` intent) the threshold trades in-scope
accuracy (an in-scope message is right when its intent is top and at least
the threshold) against out-of-scope recall (an out-of-scope one is right
when `oos` is top or the confidence is below it). People collect far fewer
out-of-scope examples than their bot will meet, so the two are not weighed
by how rare `oos` is in the training file: they are weighed by the share of
out-of-scope messages the bot is expected to meet (`expected_oos_rate`), so
the objective is the expected accuracy on such traffic:

    (1 - expected_oos_rate) * in-scope accuracy + expected_oos_rate * oos recall

or, when a target recall is set, the threshold is the lowest that reaches it
(the least in-scope accuracy given up). Without out-of-scope examples only
the cost of a threshold can be measured, so a confidence floor is chosen
(`choose_floor_threshold`).

Confidences are piecewise constant between observed values, so the chosen
threshold is the middle of the best run of equal scores, not its edge: a
refitted model's confidences move a little, and the middle keeps the choice.
"""

from __future__ import annotations

import numpy as np

#: The share of out-of-scope messages assumed when config.yml sets none. Deployed assistants meet
#: many messages outside what they were built for; CLINC150's authors (Larson et al., 2019) sized
#: their test set at 1,000 out-of-scope queries in 5,500 (18%) to reflect that, and reports of
#: deployed assistants give shares from about one in ten to one in three. One in five sits in the
#: middle of that range and is easy to reason about; a bot whose traffic differs sets its own.
DEFAULT_EXPECTED_OOS_RATE = 0.2


def _runs(conf: np.ndarray) -> np.ndarray:
    """Candidate thresholds: 0 and every observed confidence, sorted and distinct."""
    return np.unique(np.concatenate([[0.0], conf]))


def _count_at_least(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each threshold, how many of `values` are >= it."""
    ordered = np.sort(values)
    return len(ordered) - np.searchsorted(ordered, thresholds, side="left")


def _middle(candidates: np.ndarray, first: int, last: int) -> float:
    """Any threshold in (candidates[first - 1], candidates[last]] answers as candidates[first..last] do."""
    below = candidates[first - 1] if first > 0 else 0.0
    return float((below + candidates[last]) / 2) if first > 0 else 0.0


def oos_curves(proba: np.ndarray, gold: np.ndarray, oos_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate thresholds and, at each, in-scope accuracy and out-of-scope recall."""
    conf = proba.max(axis=1)
    pred = proba.argmax(axis=1)
    in_scope = gold != oos_index
    candidates = _runs(conf)
    right_in = _count_at_least(conf[in_scope & (pred == gold)], candidates) / max(1, int(in_scope.sum()))
    oos = ~in_scope
    as_oos = int((oos & (pred == oos_index)).sum())
    other_oos = conf[oos & (pred != oos_index)]
    below = len(other_oos) - _count_at_least(other_oos, candidates)
    oos_recall = (as_oos + below) / max(1, int(oos.sum()))
    return candidates, right_in, oos_recall


def choose_oos_threshold(proba: np.ndarray, gold: np.ndarray, oos_index: int,
                         expected_oos_rate: float = DEFAULT_EXPECTED_OOS_RATE,
                         target_oos_recall: float | None = None) -> tuple[float, dict[str, float]]:
    """Threshold for data with an `oos` intent (see the module docstring); also what it achieves."""
    in_scope = gold != oos_index
    if in_scope.all() or (~in_scope).all():
        return 0.0, {}
    candidates, in_acc, oos_rec = oos_curves(proba, gold, oos_index)
    stats: dict[str, float] = {"oos_examples": int((~in_scope).sum())}
    if target_oos_recall is not None:
        reached = np.flatnonzero(oos_rec >= target_oos_recall - 1e-12)
        first = int(reached[0]) if len(reached) else len(candidates) - 1
        threshold = _middle(candidates, first, first)
        stats["target_oos_recall"] = target_oos_recall
        stats["target_reached"] = bool(len(reached))
        at = first
    else:
        score = (1 - expected_oos_rate) * in_acc + expected_oos_rate * oos_rec
        at = int(np.argmax(score))
        last = at
        while last + 1 < len(score) and abs(score[last + 1] - score[at]) <= 1e-12:
            last += 1
        threshold = _middle(candidates, at, last)
        stats["expected_oos_rate"] = expected_oos_rate
        stats["expected_accuracy"] = float(score[at])
    stats["in_scope_accuracy"] = float(in_acc[at])
    stats["oos_recall"] = float(oos_rec[at])
    return threshold, stats


def choose_floor_threshold(proba: np.ndarray, gold: np.ndarray, budget: float, cap: float) -> tuple[float, dict[str, float]]:
    """Confidence floor for data without out-of-scope examples, chosen on validation data.

    Without `oos` examples nothing measures what a threshold catches, only what
    it costs: right answers turned into nlu_fallback. So the rule is the largest
    threshold that sends at most `budget` of the validation examples the model
    gets right to nlu_fallback (the `budget`-quantile of their confidences),
    never above `cap`. With budget 0.001 one right answer in a thousand is
    given up; texts far from every intent still fall back, because their
    confidence is spread over the intents.
    """
    conf = proba.max(axis=1)
    right = proba.argmax(axis=1) == gold
    if not right.any():
        return 0.0, {}
    threshold = min(float(np.quantile(conf[right], budget, method="lower")), cap)
    below = conf < threshold
    stats = {
        "budget": budget,
        "right_fallback_rate": float(below[right].mean()),
        "fallback_rate": float(below.mean()),
        "accuracy_as_answered": float((right & ~below).mean()),
    }
    return threshold, stats
