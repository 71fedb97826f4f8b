r"""Temporal discounting (SPEC section 5): indifference points and discount-curve fits.

Choices are "$1000 now" against "$X in t months" over a delay x amount grid, both orders asked.
At each delay the indifference amount is where P(prefer later) crosses 1/2, interpolated on the
log-amount scale; the discount factor is :math:`d(t) = 1000 / X^*(t)`. Exponential
:math:`d = e^{-kt}` and hyperbolic :math:`d = 1/(1 + kt)` curves are fitted to the discount
factors by least squares on the log scale; the better fit (smaller residual sum of squares, each
model has one parameter) is the classification.
"""

import numpy as np
from scipy import optimize

__all__ = ["indifference_points", "fit_discount_curves", "MODELS"]

MODELS = {
    "exponential": lambda t, k: np.exp(-k * t),
    "hyperbolic": lambda t, k: 1.0 / (1.0 + k * t),
}


def indifference_points(p_later, amounts, baseline: float = 1000.0) -> np.ndarray:
    """Indifference amount per delay.

    Args:
      p_later: ``[n_delays, n_amounts]`` probability of preferring the delayed amount.
      amounts: ``[n_amounts]`` delayed amounts, increasing.

    Returns:
      ``[n_delays]`` amounts where ``p_later`` crosses 1/2 (log-linear interpolation), NaN when it
      never does within the grid (censored).
    """
    p = np.asarray(p_later, dtype=np.float64)
    la = np.log(np.asarray(amounts, dtype=np.float64))
    out = np.full(p.shape[0], np.nan)
    for d in range(p.shape[0]):
        above = np.flatnonzero(p[d] >= 0.5)
        if len(above) == 0:
            continue
        k = above[0]
        if k == 0:
            out[d] = np.exp(la[0]) if p[d, 0] == 0.5 else np.nan  # indifferent below the grid
            continue
        p0, p1 = p[d, k - 1], p[d, k]
        w = (0.5 - p0) / (p1 - p0)
        out[d] = np.exp(la[k - 1] + w * (la[k] - la[k - 1]))
    return out


def fit_discount_curves(delays, indiff, baseline: float = 1000.0) -> dict:
    """Fit both curves to ``d(t) = baseline / indiff(t)`` (finite points only)."""
    t = np.asarray(delays, dtype=np.float64)
    x = np.asarray(indiff, dtype=np.float64)
    ok = np.isfinite(x) & (x > 0)
    t, d = t[ok], baseline / x[ok]
    res = {"n_points": int(ok.sum())}
    for name, f in MODELS.items():

        def loss(logk, f=f):
            return np.sum((np.log(f(t, np.exp(logk))) - np.log(d)) ** 2)

        r = optimize.minimize_scalar(loss, bounds=(-12, 3), method="bounded")
        k = float(np.exp(r.x))
        pred = np.log(f(t, k))
        ss_tot = np.sum((np.log(d) - np.log(d).mean()) ** 2)
        res[name] = {
            "k": k,
            "sse_log": float(r.fun),
            "r2_log": float(1 - r.fun / ss_tot) if ss_tot > 0 else float("nan"),
            "rmse_log": float(np.sqrt(np.mean((pred - np.log(d)) ** 2))),
        }
    res["better"] = min(MODELS, key=lambda m: res[m]["sse_log"])
    return res
