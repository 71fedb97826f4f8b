r"""Exchange rates between kinds of thing (SPEC section 5).

Outcomes "N units of X" over a grid of N; per X, the utilities are fitted with
:math:`U_X(N) = a_X \ln N + b_X`. Solving :math:`U_i(M) = U_j(N)` gives
:math:`M = \exp((a_j \ln N + b_j - b_i)/a_i)` units of X_i for N units of X_j, so one unit of X_j
is worth :math:`r_{ij}(N) = M/N` units of X_i at quantity N. The two-way geometric mean
:math:`\sqrt{r_{ij}(N) / r_{ji}(N)}` treats both directions alike; we average its logarithm over
the N grid. Every function takes draws (bootstrap or posterior) on a leading axis, so intervals
come from the same code.
"""

import numpy as np

__all__ = ["fit_log_utility", "exchange_rate", "exchange_rate_matrix", "rate_interval"]


def fit_log_utility(n_values, utilities) -> dict[str, np.ndarray]:
    """Least-squares fit of ``U = a ln N + b`` along the last axis.

    Args:
      n_values: ``[n_grid]`` quantities N (> 0).
      utilities: ``[..., n_grid]`` utilities (leading axes: draws and/or kinds X).

    Returns:
      ``a``, ``b`` and ``r2`` with the leading shape.
    """
    x = np.log(np.asarray(n_values, dtype=np.float64))
    u = np.asarray(utilities, dtype=np.float64)
    xc = x - x.mean()
    a = (u - u.mean(-1, keepdims=True)) @ xc / (xc @ xc)
    b = u.mean(-1) - a * x.mean()
    resid = u - (a[..., None] * x + b[..., None])
    ss_tot = ((u - u.mean(-1, keepdims=True)) ** 2).sum(-1)
    r2 = 1.0 - (resid**2).sum(-1) / np.where(ss_tot > 0, ss_tot, np.nan)
    return {"a": a, "b": b, "r2": r2}


def exchange_rate(a_i, b_i, a_j, b_j, n_grid) -> np.ndarray:
    """Units of X_i worth one unit of X_j: the two-way geometric mean over ``n_grid``.

    Broadcasts over leading axes (draws). ``a_i`` and ``a_j`` must be positive (more is better).
    """
    ln_n = np.log(np.asarray(n_grid, dtype=np.float64))
    a_i, b_i, a_j, b_j = (np.asarray(v, dtype=np.float64)[..., None] for v in (a_i, b_i, a_j, b_j))
    log_r_ij = (a_j * ln_n + b_j - b_i) / a_i - ln_n  # log(M/N), X_i per X_j
    log_r_ji = (a_i * ln_n + b_i - b_j) / a_j - ln_n  # X_j per X_i
    return np.exp((0.5 * (log_r_ij - log_r_ji)).mean(-1))


def exchange_rate_matrix(a, b, n_grid) -> np.ndarray:
    """``[..., K, K]`` rates between K kinds: entry (i, j) is units of X_i per unit of X_j."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return exchange_rate(a[..., :, None], b[..., :, None], a[..., None, :], b[..., None, :], n_grid)


def rate_interval(rate_draws, level: float = 0.9) -> tuple[float, float, float]:
    """Median and equal-tailed interval of rate draws (computed on the log scale)."""
    lr = np.log(np.asarray(rate_draws, dtype=np.float64))
    lo, med, hi = np.quantile(lr, [(1 - level) / 2, 0.5, 1 - (1 - level) / 2])
    return float(np.exp(med)), float(np.exp(lo)), float(np.exp(hi))
