"""Behavioural segments say in words and figures what their members do."""

from __future__ import annotations

import re

import numpy as np

from insights.clusters import cluster


def behaviour(rng: np.random.Generator, n: int, days: float, lines: float, spend: float) -> np.ndarray:
    """``n`` customers (FEATURES order) who buy every ``days`` with ``lines`` lines and ``spend`` an order, return
    nothing, chat on one channel and never ask support."""
    return np.column_stack([rng.normal(days, days / 20, n), rng.normal(lines, lines / 20, n), rng.normal(spend, spend / 20, n),
                            np.zeros(n), np.ones(n), np.zeros(n)])


def test_each_segment_is_described_by_its_traits_and_its_members_typical_figures() -> None:
    rng = np.random.default_rng(7)
    found = cluster(np.vstack([behaviour(rng, 200, 7, 30, 500), behaviour(rng, 200, 200, 2, 20)]), k=2)
    assert found.sizes == [200, 200]
    (often,) = [d for d in found.descriptions if "buys often" in d]
    (rarely,) = [d for d in found.descriptions if "buys rarely" in d]
    assert "typically 7 days between purchases" in often and "30 lines an order" in often
    assert re.search(r"\b(49\d|50\d)\.\d\d an order", often), often
    assert re.search(r"typically (199|200|201) days between purchases", rarely) and "2.0 lines an order" in rarely
    assert "small baskets" in rarely
    # alike for everyone (one channel, no support, no returns): said of nobody
    assert not any(word in d for d in found.descriptions for word in ("chat", "support", "return"))


def test_two_segments_standing_out_on_the_same_trait_get_distinct_names() -> None:
    rng = np.random.default_rng(3)
    found = cluster(np.vstack([behaviour(rng, 50, 2, 7, 100), behaviour(rng, 50, 2, 3.5, 100), behaviour(rng, 900, 100, 5, 100)]), k=3)
    assert sorted(found.names) == ["buys often and large baskets", "buys often and small baskets", "typical"]
    assert found.descriptions[found.names.index("typical")].startswith("behaves like the average customer: typically 100 days")
