"""Joint demographic tables by iterative proportional fitting (pure NumPy).

A citizen assembly needs *joint* profiles (a Black Republican graduate is rarer than the product
of the marginals says). :func:`ipf` fits a table to given one-way marginals starting from a seed
that carries the associations (two-way interaction factors, e.g. P(party | race)); IPF keeps
the seed's odds ratios and matches every marginal exactly (the table closest to the seed in
Kullback-Leibler divergence among those with the marginals).
"""

import numpy as np

__all__ = ["ipf", "interaction_seed", "marginal"]


def marginal(table: np.ndarray, axis: int) -> np.ndarray:
    """The one-way marginal of ``table`` along ``axis``."""
    other = tuple(a for a in range(table.ndim) if a != axis)
    return table.sum(axis=other)


def interaction_seed(shape: tuple[int, ...], factors: list[tuple[int, int, np.ndarray]]):
    """A positive seed table: the product of two-way factors ``(axis_i, axis_j, F[i, j])``
    broadcast over the other axes (ones where no factor is given)."""
    seed = np.ones(shape)
    for i, j, f in factors:
        f = np.asarray(f, dtype=np.float64)
        if f.shape != (shape[i], shape[j]) or not (f > 0).all():
            raise ValueError(
                f"factor on axes ({i}, {j}) must be positive with shape "
                f"{(shape[i], shape[j])}, got {f.shape}"
            )
        view = [1] * len(shape)
        view[i], view[j] = shape[i], shape[j]
        seed = seed * (f if i < j else f.T).reshape(view)
    return seed


def ipf(seed, margins: list, *, iters: int = 500, tol: float = 1e-12) -> np.ndarray:
    """Scale ``seed`` until its one-way marginals equal ``margins`` (one per axis, each summing to
    1): the joint distribution. Raises when the marginals disagree on the total or the fit does
    not converge."""
    t = np.asarray(seed, dtype=np.float64)
    ms = [np.asarray(m, dtype=np.float64) for m in margins]
    if len(ms) != t.ndim:
        raise ValueError(f"{len(ms)} marginals for a {t.ndim}-way table")
    for a, m in enumerate(ms):
        if m.shape != (t.shape[a],) or abs(m.sum() - 1) > 1e-9 or (m < 0).any():
            raise ValueError(
                f"marginal {a}: shape {m.shape}, sum {m.sum():.6f} (need "
                f"{t.shape[a]} non-negative shares summing to 1)"
            )
    t = t / t.sum()
    for _ in range(iters):
        err = 0.0
        for a, m in enumerate(ms):
            cur = marginal(t, a)
            view = [1] * t.ndim
            view[a] = -1
            t = t * np.divide(m, cur, out=np.zeros_like(m), where=cur > 0).reshape(view)
            err = max(err, float(np.abs(cur - m).max()))
        if err < tol:
            return t
    raise ValueError(f"IPF did not converge in {iters} sweeps (max marginal error {err:.2e})")
