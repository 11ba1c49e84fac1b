"""Item-to-item recommendations from co-purchases, and their honest offline evaluation.

Two items are alike when the same customers buy both: the cosine between
their columns of the customer x item purchase matrix (scipy.sparse).  A
customer's candidates score the sum of their similarity to what the customer
bought; what they bought already is never recommended.  Lines marked as fees
(``"fee": true``: postage, charges, vouchers) never reach this module.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

#: Catalogues up to this many items keep their similarity matrix dense (at most 400 MB as float32).
DENSE_ITEMS = 10_000

@dataclass(slots=True)
class Basket:
    """Who bought what: a binary customer x item matrix and its labels."""

    customers: list[Hashable]
    items: list[str]
    matrix: sparse.csr_matrix


def basket(pairs: Sequence[tuple[Hashable, str]]) -> Basket:
    """From (customer, sku) pairs; customers may be any hashable id."""
    customers: dict[Hashable, int] = {}
    items: dict[str, int] = {}
    rows, cols = [], []
    for customer, sku in pairs:
        rows.append(customers.setdefault(customer, len(customers)))
        cols.append(items.setdefault(sku, len(items)))
    matrix = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(customers), len(items)))
    matrix.data[:] = 1.0  # duplicates summed by the constructor become one purchase
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return Basket(list(customers), list(items), matrix)


def basket_of(bought: Sequence[tuple[Hashable, Sequence[str]]]) -> Basket:
    """From each customer's distinct items (one entry per customer, as the store groups them)."""
    items: dict[str, int] = {}
    cols = [items.setdefault(sku, len(items)) for _, skus in bought for sku in skus]
    indptr = np.zeros(len(bought) + 1, dtype=np.int64)
    np.cumsum([len(skus) for _, skus in bought], out=indptr[1:])
    matrix = sparse.csr_matrix((np.ones(len(cols), dtype=np.float32), np.array(cols, dtype=np.int64), indptr),
                               shape=(len(bought), len(items)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return Basket([customer for customer, _ in bought], list(items), matrix)


class ItemToItem:
    """Cosine similarity between items; recommend by the similarity to a customer's purchases."""

    def __init__(self, data: Basket) -> None:
        self.data = data
        x = data.matrix.tocsc()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0))).ravel()
        norms[norms == 0] = 1.0
        normalized = x @ sparse.diags(1.0 / norms)
        similarity = (normalized.T @ normalized).tocsr()
        similarity.setdiag(0)
        similarity.eliminate_zeros()
        # co-purchase similarity is dense in small catalogues: a dense matrix then multiplies
        # about ten times faster (Online Retail: 3,600 items, 52 MB as float32)
        self.similarity: sparse.csr_matrix | np.ndarray = (
            similarity.toarray().astype(np.float32) if similarity.shape[0] <= DENSE_ITEMS else similarity)
        self.popularity = np.asarray(data.matrix.sum(axis=0)).ravel()

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """Dense scores of every item for the given customers (row indices), bought ones at -inf."""
        history = self.data.matrix[rows]
        product = history @ self.similarity
        scores = np.asarray(product.todense() if sparse.issparse(product) else product, dtype=np.float64)
        scores += 1e-9 * self.popularity / max(float(self.popularity.max()), 1.0)  # ties go to the popular
        scores[history.nonzero()] = -np.inf
        return scores

    def popular_scores(self, rows: np.ndarray) -> np.ndarray:
        history = self.data.matrix[rows]
        scores = np.tile(self.popularity.astype(np.float64), (len(rows), 1))
        scores[history.nonzero()] = -np.inf
        return scores


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k best per row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


#: A recommender under evaluation: (training basket, customer rows) -> scores of every item for those rows.
Scorer = Callable[[Basket, np.ndarray], np.ndarray]


@dataclass(frozen=True, slots=True)
class Evaluation:
    customers: int
    #: name -> {"hit_rate", "recall"}; always "model" (item-to-item) and "popular"
    results: dict[str, dict[str, float]]

    def as_json(self) -> dict[str, object]:
        return {"customers": self.customers, **self.results}


def evaluate(before: Sequence[tuple[str, str]], after: Sequence[tuple[str, str]], k: int = 10, batch: int = 512,
             others: dict[str, Scorer] | None = None) -> Evaluation:
    """Train on ``before``; score customers who bought on both sides, against the items new to each after the split.

    ``others``: more recommenders to measure the same way (the benchmark's peers);
    whatever they score for an item already bought is ignored.
    """
    data = basket(before)
    model = ItemToItem(data)
    customer_row = {c: i for i, c in enumerate(data.customers)}
    item_col = {s: j for j, s in enumerate(data.items)}
    truth: dict[int, set[int]] = {}
    for customer, sku in after:
        row, col = customer_row.get(customer), item_col.get(sku)
        if row is None or col is None:
            continue
        truth.setdefault(row, set()).add(col)
    owned = data.matrix
    rows = np.array(sorted(r for r, cols in truth.items() if cols - set(owned[r].indices)), dtype=np.int64)
    scorers: dict[str, Scorer] = {"model": lambda _, part: model.scores(part), "popular": lambda _, part: model.popular_scores(part),
                                  **(others or {})}
    sums = {name: [0.0, 0.0] for name in scorers}
    for start in range(0, len(rows), batch):
        part = rows[start:start + batch]
        for name, scorer in scorers.items():
            scores = np.array(scorer(data, part), dtype=np.float64)
            scores[owned[part].nonzero()] = -np.inf
            picks = top_k(scores, k)
            for row, chosen in zip(part, picks, strict=True):
                new = truth[int(row)] - set(owned[int(row)].indices)
                hits = len(new.intersection(chosen.tolist()))
                sums[name][0] += hits > 0
                sums[name][1] += hits / len(new)
    n = float(max(len(rows), 1))
    return Evaluation(len(rows), {name: {"hit_rate": h / n, "recall": r / n} for name, (h, r) in sums.items()})
