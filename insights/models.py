"""BG/NBD and Gamma-Gamma fitted by maximum likelihood, vectorized over customers.

BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"):
while alive a customer buys at a Poisson rate (Gamma(r, alpha) across
customers) and after each purchase drops out with probability p (Beta(a, b)
across customers).  Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV"):
the average spend of a customer's repeat purchases, independent of how often
they buy.  Both log-likelihoods are the published closed forms; scipy's
L-BFGS-B minimizes them over the logarithms of the parameters (so they stay
positive) with their exact gradients, and numpy evaluates them for every
customer at once; above FIT_SAMPLE customers the parameters are fitted on a
fixed random sample, so a million customers fit in seconds.

Inputs per customer, in the model's time unit (weeks by default):
``x`` repeat purchases (purchase days after the first), ``t_x`` the time of
the last purchase after the first, ``T`` the time from the first purchase to
the end of observation, ``m`` the mean spend of the repeat purchases.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, gammaln, hyp2f1

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


Levels = tuple[np.ndarray, np.ndarray]


def levels(x: np.ndarray) -> Levels:
    """The distinct values of ``x`` and where each entry's is: repeat counts take a few dozen values, so the
    likelihoods evaluate their special functions a few dozen times per step, not once per customer."""
    values, at = np.unique(x, return_inverse=True)
    return values, at


def _bgnbd_nll(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray) -> float:
    return _bgnbd_nll_grad(log_params, x, t_x, T, weights)[0]


def _bgnbd_nll_grad(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray,
                    x_levels: Levels | None = None) -> tuple[float, np.ndarray]:
    """The negative log-likelihood and its exact gradient in the log-parameters: with the gradient L-BFGS-B
    needs a few dozen evaluations instead of thousands of finite differences (1,000,000 customers in seconds)."""
    r, alpha, a, b = np.exp(log_params)
    counts, at = x_levels or levels(x)
    log_at, log_atx = np.log(alpha + T), np.log(alpha + t_x)
    a1 = (gammaln(r + counts) - gammaln(r))[at] + r * np.log(alpha)
    a2 = (gammaln(a + b) + gammaln(b + counts) - gammaln(b) - gammaln(a + b + counts))[at]
    a3 = -(r + x) * log_at
    repeat = x > 0
    bx1 = np.where(repeat, b + x - 1, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(repeat, np.log(a) - np.log(bx1) - (r + x) * log_atx, -np.inf)
    last = np.logaddexp(a3, a4)
    ll = a1 + a2 + last
    w3, w4 = np.exp(a3 - last), np.where(repeat, np.exp(a4 - last), 0.0)
    psi_abx = digamma(a + b + counts)[at]
    d_r = (digamma(r + counts) - digamma(r))[at] + np.log(alpha) - w3 * log_at - w4 * log_atx
    d_alpha = r / alpha - w3 * (r + x) / (alpha + T) - w4 * (r + x) / (alpha + t_x)
    d_a = digamma(a + b) - psi_abx + w4 / a
    d_b = digamma(a + b) + (digamma(b + counts) - digamma(b))[at] - psi_abx - w4 / bx1
    grad = np.array([r * np.dot(weights, d_r), alpha * np.dot(weights, d_alpha), a * np.dot(weights, d_a), b * np.dot(weights, d_b)])
    return -float(np.dot(weights, ll)), -grad


def _compress(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Identical customers counted once with a weight: CDNOW-like data shrinks tenfold."""
    stacked = np.column_stack(columns)
    unique, counts = np.unique(stacked, axis=0, return_counts=True)
    return [unique[:, i] for i in range(unique.shape[1])], counts.astype(float)


#: Bounds on the logarithms of the parameters: e^-12 .. e^12 is beyond any real customer base
#: and keeps degenerate data (everyone alike) from sending the search off for ever.
LOG_BOUND = 12.0


def _minimize(nll_grad: object, start: np.ndarray, args: tuple[object, ...], weights: np.ndarray) -> np.ndarray:
    """L-BFGS-B on the exact gradient of the mean negative log-likelihood, within LOG_BOUND (CDNOW: 15 evaluations)."""
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(start)
    total = float(np.sum(weights))  # minimize the mean, so the tolerances do not depend on the customer count

    def mean(log_params: np.ndarray, *rest: object) -> tuple[float, np.ndarray]:
        value, grad = nll_grad(log_params, *rest)  # type: ignore[operator]
        return value / total, grad / total

    found = minimize(mean, start, args=args, jac=True, method="L-BFGS-B", bounds=bounds,
                     options={"maxiter": 1000, "ftol": 1e-11, "gtol": 1e-7})
    if not np.isfinite(found.fun):
        raise FitError("the likelihood could not be evaluated")
    return np.asarray(found.x)


#: Above this many customers the population parameters are fitted on a fixed random sample of this size
#: (their standard errors are then a fraction of a percent); every customer is still scored with them.
FIT_SAMPLE = 200_000


def _sample(*columns: np.ndarray) -> list[np.ndarray]:
    if len(columns[0]) <= FIT_SAMPLE:
        return list(columns)
    chosen = np.random.default_rng(0).choice(len(columns[0]), FIT_SAMPLE, replace=False)
    return [c[chosen] for c in columns]


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BGNBD:
    """Maximum likelihood (the log-likelihood reported is of the customers fitted: all, or FIT_SAMPLE of them)."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    if len(x) == 0 or not np.any(x > 0):
        raise FitError("BG/NBD needs customers with repeat purchases")
    (xu, tu, Tu), weights = _compress(*_sample(x, t_x, T))
    start = np.log([0.5, max(float(np.mean(T)), 1.0), 1.0, 1.0])
    logs = _minimize(_bgnbd_nll_grad, start, (xu, tu, Tu, weights, levels(xu)), weights)
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
    return _gg_nll_grad(log_params, x, m, weights)[0]


def _gg_nll_grad(log_params: np.ndarray, x: np.ndarray, m: np.ndarray, weights: np.ndarray,
                 x_levels: Levels | None = None) -> tuple[float, np.ndarray]:
    """The negative log-likelihood and its exact gradient in the log-parameters (see :func:`_bgnbd_nll_grad`)."""
    p, q, g = np.exp(log_params)
    counts, at = x_levels or levels(x)
    px = p * x
    log_xmg = np.log(x * m + g)
    ll = ((gammaln(p * counts + q) - gammaln(p * counts))[at] - gammaln(q) + q * np.log(g) + (px - 1) * np.log(m) + px * np.log(x)
          - (px + q) * log_xmg)
    psi_pxq = digamma(p * counts + q)[at]
    d_p = x * (psi_pxq - digamma(p * counts)[at] + np.log(m) + np.log(x) - log_xmg)
    d_q = psi_pxq - digamma(q) + np.log(g) - log_xmg
    d_g = q / g - (px + q) / (x * m + g)
    grad = np.array([p * np.dot(weights, d_p), q * np.dot(weights, d_q), g * np.dot(weights, d_g)])
    return -float(np.dot(weights, ll)), -grad


def fit_gamma_gamma(x: np.ndarray, m: np.ndarray) -> GammaGamma:
    """Fit on the customers with repeat purchases and a positive mean spend."""
    x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
    keep = (x > 0) & (m > 0) & np.isfinite(m)
    if keep.sum() < 3:
        raise FitError("Gamma-Gamma needs at least 3 customers with repeat purchases of positive value")
    (xu, mu), weights = _compress(*_sample(x[keep], m[keep]))
    start = np.log([1.0, 1.0, max(float(np.mean(mu)), 1.0)])
    logs = _minimize(_gg_nll_grad, start, (xu, mu, weights, levels(xu)), weights)
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
