"""Behavioural segments: KMeans on standardized behaviour, each described in words.

RFM ranks customers on three numbers; behaviour shows more.  Features per
customer: purchase rhythm (mean days between purchase days), basket size
(lines per purchase), spend per purchase, returns share (returns per
purchase), channels written on, and support conversations.  Heavy-tailed
features are log-scaled before standardizing, so one wholesaler does not
make a cluster of their own.  A cluster's description names the features
on which its centre stands out (more than half a standard deviation from
the mean), e.g. "buys often, large baskets, returns a lot".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Above this many buyers the centres are learned on a fixed random sample of this size.
FIT_SAMPLE = 50_000
FEATURES = ("rhythm_days", "basket_lines", "spend_per_purchase", "returns_share", "channels", "conversations")
WORDS = {
    "rhythm_days": ("buys rarely", "buys often"),  # (when high, when low): a long gap is rare buying
    "basket_lines": ("large baskets", "small baskets"),
    "spend_per_purchase": ("spends a lot per order", "spends little per order"),
    "returns_share": ("returns a lot", "rarely returns"),
    "channels": ("writes on several channels", "does not chat"),
    "conversations": ("often asks support", "never asks support"),
}


@dataclass(frozen=True, slots=True)
class Clusters:
    labels: np.ndarray
    names: list[str]
    descriptions: list[str]
    sizes: list[int]


def describe(centre: np.ndarray) -> tuple[str, str]:
    """Words for a standardized cluster centre: (short name, description)."""
    parts: list[tuple[float, str]] = []
    for value, feature in zip(centre, FEATURES, strict=True):
        if abs(value) < 0.5:
            continue
        high, low = WORDS[feature]
        parts.append((abs(value), high if value > 0 else low))
    parts.sort(reverse=True)
    if not parts:
        return "typical", "behaves like the average customer"
    words = [p[1] for p in parts]
    return words[0], ", ".join(words)


def cluster(features: np.ndarray, k: int = 5, seed: int = 0) -> Clusters:
    """``features``: one row per customer in FEATURES order."""
    from sklearn.cluster import KMeans  # heavy import, only when clustering runs

    n = len(features)
    if n == 0:
        return Clusters(np.zeros(0, dtype=int), [], [], [])
    x = np.log1p(np.maximum(np.asarray(features, dtype=float), 0))
    std = x.std(axis=0)
    std[std == 0] = 1.0
    z = (x - x.mean(axis=0)) / std
    k = max(1, min(k, n, len(np.unique(z, axis=0))))
    # centres learned on a fixed sample of a large base, every customer then given the nearest
    fitted = z if n <= FIT_SAMPLE else z[np.random.default_rng(seed).choice(n, FIT_SAMPLE, replace=False)]
    model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(fitted)
    found = model.labels_ if n <= FIT_SAMPLE else model.predict(z)
    # number clusters by size, largest first, so ids are stable across runs on similar data
    order = np.argsort(-np.bincount(found, minlength=k))
    remap = np.empty(k, dtype=int)
    remap[order] = np.arange(k)
    labels = remap[found]
    names, descriptions, sizes = [], [], []
    for new in range(k):
        name, description = describe(model.cluster_centers_[order[new]])
        names.append(name)
        descriptions.append(description)
        sizes.append(int((labels == new).sum()))
    return Clusters(labels, names, descriptions, sizes)
