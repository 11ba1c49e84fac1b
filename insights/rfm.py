"""RFM: recency, frequency and monetary quintile scores (1-5) and the usual named cells.

Scores are quintiles of each customer's rank among the buyers of the same
run, so 5 is the best fifth: the most recent, most frequent, highest
spending; customers with equal values share a score (a tie group takes the
score of its average rank: when more than half bought once, they are all F 2 or 3).  The cells follow the common
R x F grid of RFM practice (monetary is reported beside it, not used to
name the cell):

=================  =========================
cell               R, F
=================  =========================
champions          R 5, F 4-5
loyal              R 3-4, F 4-5
potential_loyalist R 4-5, F 2-3
new                R 5, F 1
promising          R 4, F 1
need_attention     R 3, F 3
about_to_sleep     R 3, F 1-2
at_risk            R 1-2, F 3-4
cant_lose          R 1-2, F 5
hibernating        R 2, F 1-2
lost               R 1, F 1-2
=================  =========================
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

CELLS = ("champions", "loyal", "potential_loyalist", "new", "promising", "need_attention", "about_to_sleep", "at_risk",
         "cant_lose", "hibernating", "lost")


def quintiles(values: np.ndarray, *, higher_is_better: bool = True) -> np.ndarray:
    """1-5 by each customer's rank; tied customers share their average rank, so the score."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return np.zeros(0, dtype=int)
    ranks = rankdata(values if higher_is_better else -values, method="average")
    return np.clip(np.ceil(5 * ranks / len(values)), 1, 5).astype(int)


def cell(r: int, f: int) -> str:
    if r >= 5 and f >= 4:
        return "champions"
    if r >= 3 and f >= 4:
        return "loyal"
    if r >= 4 and f >= 2:
        return "potential_loyalist"
    if r >= 5:
        return "new"
    if r == 4:
        return "promising"
    if r == 3:
        return "need_attention" if f >= 3 else "about_to_sleep"
    if f >= 5:
        return "cant_lose"
    if f >= 3:
        return "at_risk"
    return "hibernating" if r == 2 else "lost"


def score(recency_days: np.ndarray, frequency: np.ndarray, monetary: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    r = quintiles(recency_days, higher_is_better=False)
    f = quintiles(frequency)
    m = quintiles(monetary)
    return r, f, m, [cell(int(a), int(b)) for a, b in zip(r, f, strict=True)]
