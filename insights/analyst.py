"""What an analyst does in a notebook, as functions over a transaction file:
fit BG/NBD and Gamma-Gamma with a forecast check, evaluate recommendations on a time split."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from insights.models import CLV_MONTHS, MONTHLY_DISCOUNT, clv, fit_bgnbd, fit_gamma_gamma
from insights.recommend import evaluate
from insights.sources import SourceError, transactions
from insights.summary import summarize

EPOCH = dt.date(1970, 1, 1)


def clv_report(path: str | Path, calibration_end: dt.date, holdout_weeks: int | None = None) -> dict[str, Any]:
    """Fit on purchases up to ``calibration_end`` (inclusive), in weeks; forecast the holdout weeks after it."""
    tx = transactions(path)
    end = (calibration_end - EPOCH).days
    if holdout_weeks is None:
        holdout_weeks = max(0, int((int(tx.day.max()) - end) // 7))
    s = summarize(tx, end, holdout_days=holdout_weeks * 7)
    bg = fit_bgnbd(s.x, s.t_x, s.T)
    gg = fit_gamma_gamma(s.x, s.m)
    report: dict[str, Any] = {
        "customers": int(len(s.x)), "repeat_buyers": int((s.x > 0).sum()),
        "bgnbd": bg.params(), "gamma_gamma": gg.params(),
        "clv_months": CLV_MONTHS, "monthly_discount": MONTHLY_DISCOUNT,
        "mean_clv": float(np.mean(clv(bg, gg, s.x, s.t_x, s.T, s.m))),
        "mean_p_alive": float(np.mean(bg.p_alive(s.x, s.t_x, s.T))),
    }
    holdout: dict[str, Any] = {"weeks": holdout_weeks}
    if holdout_weeks:
        predicted = bg.expected_purchases(float(holdout_weeks), s.x, s.t_x, s.T)
        actual = s.holdout
        holdout.update(predicted=float(predicted.sum()), actual=float(actual.sum()),
                       total_error=float((predicted.sum() - actual.sum()) / max(actual.sum(), 1.0)),
                       correlation=float(np.corrcoef(predicted, actual)[0, 1]) if actual.std() > 0 else None,
                       mean_absolute_error=float(np.mean(np.abs(predicted - actual))))
    report["holdout"] = holdout
    return report


def recommend_report(path: str | Path, split: dt.date, k: int = 10) -> dict[str, Any]:
    """Train on purchases before ``split``, test on items new to each customer after it."""
    tx = transactions(path)
    cut = (split - EPOCH).days
    before: list[tuple[str, str]] = []
    after: list[tuple[str, str]] = []
    for c, day, items in zip(tx.customer.tolist(), tx.day.tolist(), tx.items, strict=True):
        (before if day < cut else after).extend((tx.customers[c], sku) for sku in items)
    if not before or not after:
        raise SourceError(f"{path}: no purchases with items on {'both sides' if before or after else 'either side'} of {split}")
    return {"k": k, "split": split.isoformat(), **evaluate(before, after, k).as_json()}
