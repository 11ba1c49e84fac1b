"""Per-customer recency/frequency/value summaries from purchase arrays (numpy, no loops).

Several purchases of one customer on one day count as one transaction, as in
the BG/NBD and Gamma-Gamma papers.  The database path builds the same
summaries in SQL (crm_store.scores); this one serves files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from insights.sources import Transactions


@dataclass(slots=True)
class Summary:
    """Arrays over the customers whose first purchase falls in the calibration period."""

    customer: np.ndarray  # index into Transactions.customers
    x: np.ndarray  # repeat purchase days
    t_x: np.ndarray  # last purchase after the first, in units
    T: np.ndarray  # first purchase to the end of calibration, in units
    m: np.ndarray  # mean value of the repeat purchase days (0 when none)
    total: np.ndarray  # value of all purchase days
    holdout: np.ndarray  # purchase days after the calibration end (within the holdout span)


def _daily(tx: Transactions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per customer and day: customer, day, value (sorted by customer, then day)."""
    key = tx.customer.astype(np.int64) * 1_000_000 + tx.day.astype(np.int64)
    unique, inverse = np.unique(key, return_inverse=True)
    value = np.bincount(inverse, weights=tx.amount, minlength=len(unique))
    return unique // 1_000_000, unique % 1_000_000, value


def summarize(tx: Transactions, calibration_end: int, *, holdout_days: int = 0, unit_days: float = 7.0) -> Summary:
    """``calibration_end`` is a day number (days since 1970-01-01), the last day of calibration, inclusive."""
    cust, day, value = _daily(tx)
    inside = day <= calibration_end
    later = (day > calibration_end) & (day <= calibration_end + holdout_days)
    c_in, d_in, v_in = cust[inside], day[inside], value[inside]
    customers, start = np.unique(c_in, return_index=True)
    counts = np.diff(np.append(start, len(c_in)))
    first = d_in[start]
    last = d_in[start + counts - 1]
    total = np.add.reduceat(v_in, start) if len(start) else np.zeros(0)
    x = counts - 1
    repeat_value = total - v_in[start]
    m = np.divide(repeat_value, x, out=np.zeros(len(x)), where=x > 0)
    # T runs to the calibration end date itself, the convention of the papers'
    # CDNOW table (lifetimes' too): the published estimates reproduce with it
    span_end = calibration_end
    position = np.searchsorted(customers, cust[later])
    known = (position < len(customers)) & (customers[np.minimum(position, len(customers) - 1)] == cust[later])
    holdout = np.bincount(position[known], minlength=len(customers)).astype(float)
    return Summary(customers, x.astype(float), (last - first) / unit_days, (span_end - first) / unit_days, m, total, holdout)
