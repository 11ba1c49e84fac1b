"""Cosine similarities between messages and training examples in the fast tier's TF-IDF space, for a batch at once.

Messages come as the CSR parts Featurizer.transform_many gives (row starts,
columns, values); examples as unit rows stored by column.  Everything is a
handful of numpy calls over the messages' n-grams and the examples that hold
them: scipy's sparse product costs about a millisecond a call, more than the
rest of a parse.  Each message's sums are its own entries in order, so its
answer is the same alone or in any batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


def _gather(starts: np.ndarray, cols: np.ndarray, vals: np.ndarray,
            rows: sp.csc_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per entry of every message: its message, and per (entry, example holding its column): the example and
    the product of the two values; plus each message's norm."""
    n = len(starts) - 1
    query = np.repeat(np.arange(n), np.diff(starts))
    norms = np.sqrt(np.bincount(query, weights=vals * vals, minlength=n))
    lo, hi = rows.indptr[cols], rows.indptr[cols + 1]
    lengths = hi - lo
    at = np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    return np.repeat(query, lengths), rows.indices[at], np.repeat(vals, lengths) * rows.data[at], norms


def nearest_sparse(starts: np.ndarray, cols: np.ndarray, vals: np.ndarray, rows: sp.csc_matrix, top: int = 1) -> np.ndarray:
    """Cosine similarity of each message to its nearest row (unit rows, by column); with `top` > 1 the mean over
    its `top` nearest rows (all of them when there are fewer)."""
    n, n_rows = len(starts) - 1, rows.shape[0]
    if n_rows == 0 or n == 0:
        return np.zeros(n)
    query, example, products, norms = _gather(starts, cols, vals, rows)
    dots = np.bincount(query * n_rows + example, weights=products, minlength=n * n_rows).reshape(n, n_rows)
    top = min(top, n_rows)
    if top == 1:
        best = dots.max(axis=1)
    else:  # sorted before summing, so a message's mean does not depend on the order partition left them in
        best = np.sort(np.partition(dots, n_rows - top, axis=1)[:, n_rows - top:], axis=1).mean(axis=1)
    return best / np.where(norms > 0, norms, 1.0)


def unit_rows(matrix: sp.csr_matrix) -> sp.csc_matrix:
    """Rows scaled to length 1 (the featurizer normalises each block, not the whole row), stored by column."""
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return sp.csc_matrix(sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ matrix)


@dataclass
class IntentRows:
    """Each intent's examples, so that every message of a batch meets only the examples of its own intent, in one pass.

    One column per (intent, feature column) that an intent's examples use,
    keyed ``intent * n_features + column`` in sorted order, holding that
    intent's examples by their index within the intent; one empty column at
    the end stands for every pair no example uses.  A loop over the batch's
    intents cost about fifteen numpy calls an intent, more than the whole
    rest of a parse on a small bot (the sample bot's inbound path: the
    out-of-scope signals were half of its parsing).  Stored by intent over
    all features, each intent would carry an index entry per feature.
    """

    keys: np.ndarray  # sorted int64: intent * n_features + column
    rows: sp.csc_matrix  # (most examples of one intent, len(keys) + 1)
    counts: np.ndarray  # examples of each intent, by class index
    n_features: int

    @classmethod
    def of(cls, unit: sp.csr_matrix, intents: np.ndarray) -> IntentRows:
        """From unit rows (over all features) and the class index of each."""
        unit = sp.csr_matrix(unit)
        n_features = unit.shape[1]
        classes = np.unique(intents)
        counts = np.zeros(int(classes.max()) + 1 if len(classes) else 0, dtype=np.int64)
        keys, data, indices, indptr = [], [], [], [np.zeros(1, dtype=np.int64)]
        for c in classes:
            block = unit[np.flatnonzero(intents == c)]
            counts[c] = block.shape[0]
            columns = np.unique(block.indices)
            local = sp.csc_matrix(sp.csr_matrix((block.data, np.searchsorted(columns, block.indices), block.indptr),
                                                shape=(block.shape[0], len(columns))))
            keys.append(int(c) * n_features + columns.astype(np.int64))
            data.append(local.data)
            indices.append(local.indices)
            indptr.append(local.indptr[1:].astype(np.int64) + indptr[-1][-1])
        indptr.append(indptr[-1][-1:])  # the empty column
        joined = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
        rows = sp.csc_matrix((np.concatenate(data) if data else np.zeros(0), np.concatenate(indices) if indices
                              else np.zeros(0, dtype=np.int32), np.concatenate(indptr)),
                             shape=(int(counts.max()) if len(counts) else 0, len(joined) + 1))
        return cls(joined, rows, counts, n_features)

    def nearest(self, starts: np.ndarray, cols: np.ndarray, vals: np.ndarray, answered: np.ndarray) -> np.ndarray:
        """Cosine similarity of each message to the nearest example of its intent (`answered`, class indices);
        0 where that intent has none."""
        n = len(starts) - 1
        if n == 0:
            return np.zeros(0)
        answered = np.asarray(answered, dtype=np.int64)
        entry_intent = np.repeat(answered, np.diff(starts))
        key = entry_intent * self.n_features + cols
        at = np.searchsorted(self.keys, key)
        inside = np.minimum(at, max(len(self.keys) - 1, 0))
        known = (at < len(self.keys)) & (self.keys[inside] == key) if len(self.keys) else np.zeros(len(key), bool)
        query, example, products, norms = _gather(starts, np.where(known, at, len(self.keys)), vals, self.rows)
        # each message's cells: one per example of its intent, at least one (a zero) for an intent without any
        width = np.ones(n, dtype=np.int64)
        known_intent = (answered >= 0) & (answered < len(self.counts))
        width[known_intent] = np.maximum(self.counts[answered[known_intent]], 1)
        offsets = np.concatenate([[0], np.cumsum(width)[:-1]])
        dots = np.bincount(offsets[query] + example, weights=products, minlength=int(width.sum()))
        return np.maximum.reduceat(dots, offsets) / np.where(norms > 0, norms, 1.0)

    def expanded(self) -> tuple[sp.csr_matrix, np.ndarray]:
        """The examples over all features again, grouped by intent, and the class index of each."""
        intents = np.flatnonzero(self.counts)
        first = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        owner = self.keys // self.n_features
        column = self.keys % self.n_features
        lengths = np.diff(self.rows.indptr)[:-1]
        coo = sp.coo_matrix((self.rows.data, (np.repeat(first[owner], lengths) + self.rows.indices,
                                              np.repeat(column, lengths))),
                            shape=(int(self.counts.sum()), self.n_features))
        return coo.tocsr(), np.repeat(intents, self.counts[intents])

    def __len__(self) -> int:
        return int(self.counts.sum())
