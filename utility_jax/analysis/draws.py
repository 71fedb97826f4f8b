"""Intervals on numbers derived from utilities (pure; no I/O).

Every derived number of an analysis is computed on the point estimate and on each utility draw
(bootstrap, Laplace or posterior); :func:`interval` turns those into ``{"estimate", "lo", "hi",
"draws_shift"}`` and :func:`map_draws` does it for a whole dict of numbers.
"""

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Bounds", "interval", "map_draws", "paired_draws", "fmt"]

#: a number's natural range ``(lo, hi)``; None for an open side
Bounds = tuple[float | None, float | None]


def interval(
    point: float,
    draws,
    level: float,
    kind: str = "bootstrap",
    *,
    bounds: Bounds | None = None,
    log: bool = False,
) -> dict[str, float]:
    """``{"estimate", "lo", "hi", "draws_shift"}`` for a number derived from utilities.

    ``estimate`` is the number computed from the point-estimate utilities. With posterior draws
    the interval is the equal-tailed posterior interval of the number. With bootstrap or Laplace
    draws it is the draws' spread re-centred on the estimate, ``estimate + (quantile - median)``:
    each draw adds its own sampling noise on top of the estimate's, so a nonlinear number (a
    correlation, a mean absolute error) computed on draws is shifted away from the estimate
    (attenuated correlations...). That shift is reported as ``draws_shift`` (median of the draws
    minus the estimate) rather than folded into the interval. ``log``: work on the log scale
    (positive numbers such as exchange rates); ``bounds``: clip to the number's range.
    """
    d = np.asarray(draws, dtype=np.float64)
    d = d[np.isfinite(d)]
    p = float(point)
    if log:
        d = np.log(d[d > 0])
        p = np.log(p) if p > 0 else np.nan
    a = (1 - level) / 2
    if d.size == 0 or not np.isfinite(p):
        lo = hi = shift = np.nan
    else:
        qlo, med, qhi = np.quantile(d, [a, 0.5, 1 - a])
        shift = med - p
        lo, hi = (qlo, qhi) if kind == "posterior" else (p + qlo - med, p + qhi - med)
    if log:
        p, lo, hi = np.exp(p), np.exp(lo), np.exp(hi)
        shift = np.exp(shift)  # a ratio on the log scale
    if bounds is not None:
        b_lo = -np.inf if bounds[0] is None else bounds[0]
        b_hi = np.inf if bounds[1] is None else bounds[1]
        lo, hi = float(np.clip(lo, b_lo, b_hi)), float(np.clip(hi, b_lo, b_hi))
    return {"estimate": float(p), "lo": float(lo), "hi": float(hi), "draws_shift": float(shift)}


def map_draws(
    fn: Callable[..., dict],
    level: float,
    point_args,
    draw_args,
    kind: str = "bootstrap",
    *,
    bounds: Bounds | dict[str, Bounds] | None = None,
) -> dict:
    """Apply ``fn`` (returning a dict of scalars) to the point estimate and to every draw.

    ``draw_args`` are arrays with a leading draw axis (all the same length); numbers of ``fn``
    become :func:`interval` s, clipped to ``bounds``: one ``(lo, hi)`` for every number, or a
    dict from number name to its bounds (each analysis declares its own ``BOUNDS``); other
    values (counts, names) are taken from the point estimate.
    """
    point = fn(*point_args)
    n = len(draw_args[0])
    per = [fn(*(a[d] for a in draw_args)) for d in range(n)]
    out: dict[str, Any] = {}
    for k, v in point.items():
        if isinstance(v, float):
            b = bounds.get(k) if isinstance(bounds, dict) else bounds
            out[k] = interval(v, [p[k] for p in per], level, kind, bounds=b)
        else:
            out[k] = v
    return out


def paired_draws(*results) -> list[np.ndarray]:
    """Draws of several task results (anything with ``.draws``, ``[D, N]``) cut to a common
    length: independent fits pair up by index."""
    n = min(len(r.draws) for r in results)
    return [r.draws[:n] for r in results]


def fmt(iv: dict[str, float], digits: int = 3) -> str:
    """``0.912 [0.880, 0.941]``."""
    return f"{iv['estimate']:.{digits}f} [{iv['lo']:.{digits}f}, {iv['hi']:.{digits}f}]"
