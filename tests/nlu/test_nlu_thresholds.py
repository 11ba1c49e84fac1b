"""The nlu_fallback threshold on generated confidences where the right answer is known in closed form.

In-scope examples are all predicted right with confidences spread evenly over
[0.3, 1]; out-of-scope ones are predicted as some in-scope intent with
confidences spread evenly over [0, 0.6]. For a threshold t in [0.3, 0.6]:
in-scope accuracy = 1 - (t - 0.3) / 0.7 and out-of-scope recall = t / 0.6,
so the expected accuracy at out-of-scope share r is linear in t with slope
r / 0.6 - (1 - r) / 0.7: the best threshold is 0.3 when r < 6/13 and 0.6 when
r > 6/13, and the lowest threshold with recall 0.75 is 0.45.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nlu.calibration import oos_prior_shift
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


def test_prior_shift_moves_the_oos_logit_by_the_change_of_odds() -> None:
    assert oos_prior_shift(0.2, 0.2) == pytest.approx(0.0)
    assert oos_prior_shift(0.01, 0.2) == pytest.approx(math.log(0.2 / 0.01) - math.log(0.8 / 0.99))
    assert oos_prior_shift(0.5, 0.2) < 0
