"""One scoring run over the whole customer base: RFM, BG/NBD, Gamma-Gamma, CLV,
churn risk, behavioural clusters, lead score and values, lifecycle stages and
recommendations, written to each customer's scores.

The database sends per-customer summaries (crm_store.scores); numpy does the
rest on a worker thread, so a run inside ``dangol serve`` does not stall the
event loop.  Definitions of every score are in docs/insights.md.
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
from crm_store.database import Database
from insights import clusters, rfm
from insights.models import BGNBD, FitError, GammaGamma, clv, fit_bgnbd, fit_gamma_gamma
from insights.recommend import ItemToItem, basket, top_k

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


def lead_score(e: store.Engagement) -> float:
    """0-100: profile completeness (40) and engagement in the last 30 days (messages 30, other events 30)."""
    return round(8.0 * e.profile_fields + 3.0 * min(e.recent_messages, 10) + 3.0 * min(e.recent_events, 10), 1)


def informational_value(e: store.Engagement) -> float:
    """0-100: how much a customer tells us: profile fields, conversation, feedback and answers."""
    return float(min(100.0, 10.0 * e.profile_fields + min(e.messages, 20) + 10.0 * e.informing))


def growth_value(e: store.Engagement) -> float:
    """0-100: how much a customer brings others: referrals, reviews, community events, shares."""
    return float(min(100.0, 20.0 * e.growing))


def _buyer_scores(summaries: list[store.PurchaseSummary], as_of_day: int, run: ScoreRun) -> dict[str, np.ndarray]:
    days = np.array([s.days for s in summaries], dtype=float)
    purchases = np.array([s.purchases for s in summaries], dtype=float)
    first = np.array([s.first_day for s in summaries], dtype=float)
    last = np.array([s.last_day for s in summaries], dtype=float)
    revenue = np.array([s.revenue for s in summaries], dtype=float)
    first_value = np.array([s.first_day_value for s in summaries], dtype=float)
    returned = np.array([s.returned_value for s in summaries], dtype=float)
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
    features = np.column_stack([
        np.where(days > 1, (last - first) / np.maximum(days - 1, 1), np.maximum(as_of_day - first, 1)),
        np.array([s.items for s in summaries], dtype=float) / np.maximum(purchases, 1),
        revenue / np.maximum(purchases, 1),
        np.array([s.returns for s in summaries], dtype=float) / np.maximum(purchases, 1),
    ])
    out["_features"] = features
    return out


def _compute(summaries: list[store.PurchaseSummary], engagement: list[store.Engagement], as_of: dt.datetime,
             run: ScoreRun) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Any]]:
    as_of_day = (as_of.astimezone(dt.UTC).date() - EPOCH).days
    rows = {e.customer_id: {"customer_id": e.customer_id, "lead_score": lead_score(e),
                            "informational_value": informational_value(e), "growth_value": growth_value(e)} for e in engagement}
    by_id = {e.customer_id: e for e in engagement}
    run.customers, run.buyers = len(rows), len(summaries)
    cluster_rows: list[dict[str, Any]] = []
    churned: list[Any] = []
    if summaries:
        started = time.perf_counter()
        buyer = _buyer_scores(summaries, as_of_day, run)
        run.seconds["models"] = round(time.perf_counter() - started, 3)
        extra = np.array([[by_id[s.customer_id].channels if s.customer_id in by_id else 0,
                           by_id[s.customer_id].conversations if s.customer_id in by_id else 0] for s in summaries], dtype=float)
        found = clusters.cluster(np.column_stack([buyer.pop("_features"), extra]))
        buyer["cluster"] = found.labels
        for i, (name, description, size) in enumerate(zip(found.names, found.descriptions, found.sizes, strict=True)):
            cluster_rows.append({"id": i, "name": name, "description": description, "size": size})
        for i, s in enumerate(summaries):
            row = rows.setdefault(s.customer_id, {"customer_id": s.customer_id})
            for key, values in buyer.items():
                value = values[i]
                row[key] = value if isinstance(value, str) else (None if not np.isfinite(value) else value.item())
            if row.get("p_alive") is not None and row["p_alive"] < CHURNED_BELOW:
                churned.append(s.customer_id)
    run.clusters = cluster_rows
    return list(rows.values()), cluster_rows, churned


def _recommendations(pairs: list[tuple[Any, str]], k: int) -> list[tuple[Any, list[tuple[str, float]]]]:
    data = basket(pairs)
    if data.matrix.shape[1] == 0:
        return []
    model = ItemToItem(data)
    out = []
    for start in range(0, len(data.customers), 1024):
        rows = np.arange(start, min(start + 1024, len(data.customers)))
        scores = model.scores(rows)
        for row, picks in zip(rows, top_k(scores, k), strict=True):
            chosen = [(data.items[j], float(scores[row - start, j])) for j in picks if np.isfinite(scores[row - start, j])
                      and scores[row - start, j] > 1e-6]
            if chosen:
                out.append((store.as_uuid(data.customers[row]), chosen))
    return out


async def score_customers(db: Database, as_of: dt.datetime | None = None, *, recommendations: int = 10) -> ScoreRun:
    """Score every customer as of ``as_of`` (default now) and write the scores; see the module docstring."""
    as_of = as_of or utcnow()
    run = ScoreRun()
    started = time.perf_counter()
    async with db.read() as conn:
        summaries = await conn.run_sync(store.purchase_summaries, as_of)
        engagement = await conn.run_sync(store.engagement, as_of)
    run.seconds["summaries"] = round(time.perf_counter() - started, 3)
    rows, cluster_rows, churned = await asyncio.to_thread(_compute, summaries, engagement, as_of, run)

    def write(conn: Any) -> None:
        store.replace_scores(conn, rows, cluster_rows)
        store.set_stages(conn, churned, "churned", ("customer",))

    started = time.perf_counter()
    await db.run_in_transaction(write)
    run.churned = len(churned)
    run.seconds["write"] = round(time.perf_counter() - started, 3)
    if recommendations > 0:
        started = time.perf_counter()
        async with db.read() as conn:
            pairs = await conn.run_sync(store.purchased_items)
        picked = await asyncio.to_thread(_recommendations, pairs, recommendations)
        async with db.read() as conn:
            names = await conn.run_sync(store.item_names, sorted({sku for _, chosen in picked for sku, _ in chosen}))
        recs = [{"customer_id": cid, "rank": rank, "sku": sku, "name": (names.get(sku) or None), "score": round(score, 6)}
                for cid, chosen in picked for rank, (sku, score) in enumerate(chosen)]
        await db.run_in_transaction(store.replace_recommendations, recs)
        run.recommendations = len(recs)
        run.seconds["recommendations"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    run.segments = await db.run_in_transaction(segment_sizes.record_sizes)
    run.seconds["segment_sizes"] = round(time.perf_counter() - started, 3)
    log.info("scored %d customers (%d buyers) in %.1f s", run.customers, run.buyers, sum(run.seconds.values()))
    return run
