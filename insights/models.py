"""BG/NBD and Gamma-Gamma fitted by maximum likelihood, vectorized over customers.

BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"):
while alive a customer buys at a Poisson rate (Gamma(r, alpha) across
customers) and after each purchase drops out with probability p (Beta(a, b)
across customers).  Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV"):
the average spend of a customer's repeat purchases, independent of how often
they buy.  Both log-likelihoods are the published closed forms; scipy
minimizes them over the logarithms of the parameters (so they stay positive)
and numpy evaluates them for every customer at once: 100,000 customers fit in
about a second.

Inputs per customer, in the model's time unit (weeks by default):
``x`` repeat purchases (purchase days after the first), ``t_x`` the time of
the last purchase after the first, ``T`` the time from the first purchase to
the end of observation, ``m`` the mean spend of the repeat purchases.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln, hyp2f1

#: CLV defaults: a year ahead, counted in months, discounted 1% a month (about
#: 12.7% a year, a usual cost of capital); the margin is 1, so CLV is revenue.
CLV_MONTHS = 12
MONTHLY_DISCOUNT = 0.01
WEEKS_PER_MONTH = 52.0 / 12.0


class FitError(Exception):
    """Too little data to fit (no repeat buyers) or the optimizer did not converge."""


@dataclass(frozen=True, slots=True)
class BGNBD:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float

    def params(self) -> dict[str, float]:
        return asdict(self)

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Probability that each customer has not dropped out by ``T``."""
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        ratio = np.exp((self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + t_x)))
        odds = np.where(x > 0, self.a / np.maximum(self.b + x - 1, 1e-12) * ratio, 0.0)
        return 1.0 / (1.0 + odds)

    def expected_purchases(self, t: float | np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Expected purchases in the next ``t`` time units, given each customer's history."""
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        t = np.asarray(t, dtype=float)
        z = t / (alpha + T + t)
        first = (a + b + x - 1) / (a - 1)
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
        second = 1 - np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t))) * hyp
        ratio = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + t_x)))
        denominator = 1 + np.where(x > 0, a / np.maximum(b + x - 1, 1e-12) * ratio, 0.0)
        return first * second / denominator


def _bgnbd_nll(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray) -> float:
    r, alpha, a, b = np.exp(log_params)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x), -np.inf)
    ll = a1 + a2 + np.logaddexp(a3, a4)
    return -float(np.sum(weights * ll))


def _compress(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Identical customers counted once with a weight: CDNOW-like data shrinks tenfold."""
    stacked = np.column_stack(columns)
    unique, counts = np.unique(stacked, axis=0, return_counts=True)
    return [unique[:, i] for i in range(unique.shape[1])], counts.astype(float)


#: Bounds on the logarithms of the parameters: e^-12 .. e^12 is beyond any real customer base
#: and keeps degenerate data (everyone alike) from sending the search off for ever.
LOG_BOUND = 12.0


def _minimize(nll: object, start: np.ndarray, args: tuple[object, ...]) -> np.ndarray:
    """L-BFGS-B for speed, then a short bounded Nelder-Mead to polish (the published digits need it)."""
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(start)
    first = minimize(nll, start, args=args, method="L-BFGS-B", bounds=bounds)  # type: ignore[call-overload]
    polish = minimize(nll, first.x, args=args, method="Nelder-Mead", bounds=bounds,  # type: ignore[call-overload]
                      options={"maxiter": 400 * len(start), "xatol": 1e-7, "fatol": 1e-9})
    best = min((r for r in (first, polish) if np.isfinite(r.fun)), key=lambda r: r.fun, default=None)
    if best is None:
        raise FitError("the likelihood could not be evaluated")
    return np.asarray(best.x)


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BGNBD:
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    if len(x) == 0 or not np.any(x > 0):
        raise FitError("BG/NBD needs customers with repeat purchases")
    (xu, tu, Tu), weights = _compress(x, t_x, T)
    logs = _minimize(_bgnbd_nll, np.log([0.5, max(float(np.mean(T)), 1.0), 1.0, 1.0]), (xu, tu, Tu, weights))
    r, alpha, a, b = np.exp(logs)
    return BGNBD(float(r), float(alpha), float(a), float(b), -_bgnbd_nll(logs, xu, tu, Tu, weights))


@dataclass(frozen=True, slots=True)
class GammaGamma:
    p: float
    q: float
    gamma: float
    log_likelihood: float

    def params(self) -> dict[str, float]:
        return asdict(self)

    def expected_spend(self, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Expected spend per purchase: the population mean for those with no repeat purchase."""
        x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
        population = self.p * self.gamma / (self.q - 1) if self.q > 1 else float("nan")
        own = (self.p * (self.gamma + x * np.where(x > 0, m, 0.0))) / (self.p * x + self.q - 1)
        return np.where(x > 0, own, population)


def _gg_nll(log_params: np.ndarray, x: np.ndarray, m: np.ndarray, weights: np.ndarray) -> float:
    p, q, g = np.exp(log_params)
    px = p * x
    ll = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g) + (px - 1) * np.log(m) + px * np.log(x)
          - (px + q) * np.log(x * m + g))
    return -float(np.sum(weights * ll))


def fit_gamma_gamma(x: np.ndarray, m: np.ndarray) -> GammaGamma:
    """Fit on the customers with repeat purchases and a positive mean spend."""
    x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
    keep = (x > 0) & (m > 0) & np.isfinite(m)
    if keep.sum() < 3:
        raise FitError("Gamma-Gamma needs at least 3 customers with repeat purchases of positive value")
    (xu, mu), weights = _compress(x[keep], m[keep])
    logs = _minimize(_gg_nll, np.log([1.0, 1.0, max(float(np.mean(mu)), 1.0)]), (xu, mu, weights))
    p, q, g = np.exp(logs)
    return GammaGamma(float(p), float(q), float(g), -_gg_nll(logs, xu, mu, weights))


def clv(bgnbd: BGNBD, gg: GammaGamma, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, m: np.ndarray, *,
        months: int = CLV_MONTHS, monthly_discount: float = MONTHLY_DISCOUNT, weeks_per_unit: float = 1.0) -> np.ndarray:
    """Discounted expected revenue over ``months``: each month's expected purchases times expected spend.

    ``weeks_per_unit`` says how long one model time unit is (1 when fitted in weeks).
    """
    spend = gg.expected_spend(x, m)
    total = np.zeros(len(np.asarray(x)), dtype=float)
    previous = np.zeros_like(total)
    for month in range(1, months + 1):
        cumulative = bgnbd.expected_purchases(month * WEEKS_PER_MONTH / weeks_per_unit, x, t_x, T)
        total += (cumulative - previous) * spend / (1 + monthly_discount) ** month
        previous = cumulative
    return total
