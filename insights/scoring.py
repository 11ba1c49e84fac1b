"""One scoring run over the whole customer base: RFM, BG/NBD, Gamma-Gamma, CLV,
churn risk, behavioural clusters, lead score and values, lifecycle stages and
recommendations, written to each customer's scores.

The database sends every customer's facts as columns (crm_store.customer_facts,
one statement); numpy does the rest on a worker thread, so a run inside
``dangol serve`` does not stall the event loop, and the scores go back in bulk.  Definitions of every score are in docs/insights.md.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crm_store import scores as store
from crm_store import segment_sizes
from crm_store.columns import utcnow
from crm_store.customer_facts import CustomerFacts, customer_facts
from crm_store.database import Database
from insights import clusters, rfm
from insights.models import BGNBD, FitError, GammaGamma, clv, fit_bgnbd, fit_gamma_gamma
from insights.recommend import ItemToItem, basket_of, top_k

log = logging.getLogger(__name__)

#: A buyer whose probability of being alive falls below this is moved to "churned".
CHURNED_BELOW = 0.2
#: Below this mean drop-out probability per purchase the fit says "nobody leaves" (a short history).
NO_DROPOUT = 1e-3
EPOCH = dt.date(1970, 1, 1)


@dataclass(slots=True)
class ScoreRun:
    customers: int = 0
    buyers: int = 0
    bgnbd: dict[str, float] | None = None
    gamma_gamma: dict[str, float] | None = None
    clusters: list[dict[str, Any]] = field(default_factory=list)
    recommendations: int = 0
    churned: int = 0
    segments: int = 0  # segments whose size was recorded for today
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"customers": self.customers, "buyers": self.buyers, "bgnbd": self.bgnbd, "gamma_gamma": self.gamma_gamma,
                "clusters": self.clusters, "recommendations": self.recommendations, "churned": self.churned,
                "segments": self.segments, "seconds": self.seconds, "notes": self.notes}


def lead_score(f: dict[str, np.ndarray]) -> np.ndarray:
    """0-100: profile completeness (40) and engagement in the last 30 days (messages 30, other events 30)."""
    return np.round(8.0 * f["profile_fields"] + 3.0 * np.minimum(f["recent_messages"], 10) + 3.0 * np.minimum(f["recent_events"], 10), 1)


def informational_value(f: dict[str, np.ndarray]) -> np.ndarray:
    """0-100: how much a customer tells us: profile fields, conversation, feedback and answers."""
    return np.minimum(100.0, 10.0 * f["profile_fields"] + np.minimum(f["messages"], 20) + 10.0 * f["informing"])


def growth_value(f: dict[str, np.ndarray]) -> np.ndarray:
    """0-100: how much a customer brings others: referrals, reviews, community events, shares."""
    return np.minimum(100.0, 20.0 * f["growing"])


def _buyer_scores(f: dict[str, np.ndarray], as_of_day: int, run: ScoreRun) -> dict[str, np.ndarray]:
    """Every purchase-based score of the buyers (``f`` holds the buyers' facts only)."""
    days, purchases, first, last = f["days"], f["purchases"], f["first_day"], f["last_day"]
    revenue, first_value, returned = f["revenue"], f["first_day_value"], f["returned_value"]
    out: dict[str, np.ndarray] = {"recency_days": as_of_day - last, "frequency": purchases, "monetary": revenue + returned}
    out["rfm_r"], out["rfm_f"], out["rfm_m"], cells = rfm.score(out["recency_days"], purchases, out["monetary"])
    out["rfm_cell"] = np.array(cells, dtype=object)
    x, t_x, T = days - 1, (last - first) / 7.0, (as_of_day - first) / 7.0
    m = np.divide(revenue - first_value, x, out=np.zeros(len(x)), where=x > 0)
    try:
        bg: BGNBD = fit_bgnbd(x, t_x, T)
        run.bgnbd = {k: round(v, 6) for k, v in bg.params().items()}
        if bg.a / (bg.a + bg.b) < NO_DROPOUT:
            run.notes.append("BG/NBD finds almost no drop-out in this history (mean drop-out chance per purchase "
                             f"{bg.a / (bg.a + bg.b):.1e}): p_alive is near 1 and churn_risk near 0 for everyone; read rfm_cell")
        out["p_alive"] = bg.p_alive(x, t_x, T)
        out["expected_purchases_90d"] = bg.expected_purchases(90 / 7.0, x, t_x, T)
        out["churn_risk"] = 1.0 - out["p_alive"]
        gg: GammaGamma = fit_gamma_gamma(x, m)
        run.gamma_gamma = {k: round(v, 6) for k, v in gg.params().items()}
        out["expected_spend"] = gg.expected_spend(x, m)
        out["clv"] = clv(bg, gg, x, t_x, T, m)
    except FitError as exc:
        run.notes.append(f"prediction skipped: {exc}")
    out["cluster"] = _clusters(f, days, purchases, first, last, revenue, as_of_day, run)
    return out


def _clusters(f: dict[str, np.ndarray], days: np.ndarray, purchases: np.ndarray, first: np.ndarray, last: np.ndarray,
              revenue: np.ndarray, as_of_day: int, run: ScoreRun) -> np.ndarray:
    features = np.column_stack([
        np.where(days > 1, (last - first) / np.maximum(days - 1, 1), np.maximum(as_of_day - first, 1)),
        f["lines"] / np.maximum(purchases, 1),
        revenue / np.maximum(purchases, 1),
        f["returns"] / np.maximum(purchases, 1),
        f["channels"],
        f["conversations"],
    ])
    found = clusters.cluster(features)
    run.clusters = [{"id": i, "name": name, "description": description, "size": size}
                    for i, (name, description, size) in enumerate(zip(found.names, found.descriptions, found.sizes, strict=True))]
    return found.labels


def _compute(facts: CustomerFacts, as_of: dt.datetime, run: ScoreRun) -> tuple[dict[str, np.ndarray], list[Any]]:
    """Every score of every customer as a column (NaN or None where it does not apply), and the ids to move to churned."""
    as_of_day = (as_of.astimezone(dt.UTC).date() - EPOCH).days
    f = facts.columns
    n = len(facts)
    out: dict[str, np.ndarray] = {"lead_score": lead_score(f), "informational_value": informational_value(f),
                                  "growth_value": growth_value(f)}
    buyers = np.flatnonzero(~np.isnan(f["days"]))
    run.customers, run.buyers = n, len(buyers)
    churned: list[Any] = []
    if len(buyers):
        started = time.perf_counter()
        scores = _buyer_scores({name: values[buyers] for name, values in f.items()}, as_of_day, run)
        run.seconds["models"] = round(time.perf_counter() - started, 3)
        for name, values in scores.items():
            column = np.full(n, None, dtype=object) if values.dtype == object else np.full(n, np.nan)
            column[buyers] = values
            out[name] = column
        if "p_alive" in scores:
            churned = [facts.ids[i] for i in buyers[scores["p_alive"] < CHURNED_BELOW]]
    return out, churned


def _recommendations(bought: list[tuple[Any, list[str]]], k: int) -> tuple[list[Any], list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(customer ids, item SKUs, and per customer k item columns, their scores and whether each is a real pick)."""
    data = basket_of(bought)
    empty = np.zeros((0, k))
    if data.matrix.shape[1] == 0:
        return data.customers, data.items, empty.astype(int), empty, empty.astype(bool)
    model = ItemToItem(data)
    picks, values = [], []
    for start in range(0, len(data.customers), 1024):
        scores = model.scores(np.arange(start, min(start + 1024, len(data.customers))))
        chosen = top_k(scores, k)
        picks.append(chosen)
        values.append(np.take_along_axis(scores, chosen, axis=1))
    chosen, scores = np.concatenate(picks), np.concatenate(values)
    return data.customers, data.items, chosen, scores, np.isfinite(scores) & (scores > 1e-6)


def _recommendation_rows(customers: list[Any], items: list[str], chosen: np.ndarray, scores: np.ndarray, real: np.ndarray,
                         names: dict[str, str]) -> list[tuple[Any, int, str, str | None, float]]:
    rows = []
    for row, col in zip(*np.nonzero(real), strict=True):
        sku = items[chosen[row, col]]
        rows.append((customers[row], int(col), sku, names.get(sku) or None, round(float(scores[row, col]), 6)))
    return rows


async def score_customers(db: Database, as_of: dt.datetime | None = None, *, recommendations: int = 10) -> ScoreRun:
    """Score every customer as of ``as_of`` (default now) and write the scores; see the module docstring."""
    as_of = as_of or utcnow()
    run = ScoreRun()
    started = time.perf_counter()
    async with db.read() as conn:
        facts = await conn.run_sync(customer_facts, as_of)
    run.seconds["summaries"] = round(time.perf_counter() - started, 3)
    columns, churned = await asyncio.to_thread(_compute, facts, as_of, run)

    def write(conn: Any) -> None:
        store.replace_scores(conn, facts.ids, columns, run.clusters)
        store.set_stages(conn, churned, "churned", ("customer",))

    started = time.perf_counter()
    await db.run_in_transaction(write)
    run.churned = len(churned)
    run.seconds["write"] = round(time.perf_counter() - started, 3)
    if recommendations > 0:
        started = time.perf_counter()
        async with db.read() as conn:
            bought = await conn.run_sync(store.purchased_items)
        customers, items, chosen, scores, real = await asyncio.to_thread(_recommendations, bought, recommendations)
        async with db.read() as conn:
            names = await conn.run_sync(store.item_names, [items[j] for j in np.unique(chosen[real])])
        recs = _recommendation_rows(customers, items, chosen, scores, real, names)
        await db.run_in_transaction(store.replace_recommendations, recs)
        run.recommendations = len(recs)
        run.seconds["recommendations"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    run.segments = await db.run_in_transaction(segment_sizes.record_sizes)
    run.seconds["segment_sizes"] = round(time.perf_counter() - started, 3)
    log.info("scored %d customers (%d buyers) in %.1f s", run.customers, run.buyers, sum(run.seconds.values()))
    return run
