r"""Transitivity on fresh triads, as the reference's experiment asks them (pure functions).

The reference's ``evaluate_transitivity.py`` samples 1,000 triads uniformly from all
:math:`\binom{N}{3}`, asks the three pairs of each fresh in both orders, K per order, and pools
the answers into :math:`p_{ab}, p_{bc}, p_{ac}` (the share of votes for the first outcome). How the
paper turned these into its "log10 P(cycle)" lived in the lost notebook, so this module reports
every candidate definition beside its value for a random responder:

* ``log10_mean_p_cycle``: :math:`\log_{10}` of the mean soft cycle probability
  :math:`P_t = p_{ab}p_{bc}(1-p_{ac}) + (1-p_{ab})(1-p_{bc})p_{ac}`;
* ``log10_odds_mean_p_cycle``: :math:`\log_{10}` of the odds :math:`\bar P/(1-\bar P)`;
* ``mean_log10_p_cycle``: the mean over triads of :math:`\log_{10} P_t` (floored at
  :data:`LOG_FLOOR`, since a triad of unanimous transitive pairs has :math:`P_t = 0`);
* ``hard_cycle_rate``: the share of triads whose three strict majorities form a cycle (triads
  with an exact 50/50 pair left out), and its :math:`\log_{10}`.

For a 50/50 responder with ``v`` votes per pair every definition has an exact value
(:func:`random_baselines`), computed by summing over the binomial vote counts.
"""

import math

import numpy as np
from scipy import stats

__all__ = [
    "LOG_FLOOR",
    "DEFINITIONS",
    "sample_uniform_triads",
    "triad_pairs",
    "cycle_metrics",
    "random_baselines",
    "simulate_random",
]

#: P(cycle) floor for the per-triad logarithm (a unanimous transitive triad has P = 0)
LOG_FLOOR = 1e-6

#: every definition reported, in display order
DEFINITIONS = (
    "log10_mean_p_cycle",
    "log10_odds_mean_p_cycle",
    "mean_log10_p_cycle",
    "log10_hard_cycle_rate",
)


def sample_uniform_triads(n: int, n_triads: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_triads, 3]`` distinct triads ``a < b < c`` drawn uniformly from all ``C(n, 3)``
    without replacement, by rejection (the ``C(n, 3)`` list is never built)."""
    total = math.comb(n, 3)
    if n < 3:
        raise ValueError(f"triads need at least 3 outcomes, got {n}")
    if n_triads > total:
        raise ValueError(f"{n} outcomes have only {total} triads, asked for {n_triads}")
    seen: set[tuple[int, int, int]] = set()
    out = []
    while len(out) < n_triads:
        batch = max(64, 2 * (n_triads - len(out)))
        cand = rng.integers(0, n, size=(batch, 3))  # ordered draws; distinct ones are uniform
        cand = cand[
            (cand[:, 0] != cand[:, 1]) & (cand[:, 1] != cand[:, 2]) & (cand[:, 0] != cand[:, 2])
        ]
        for row in np.sort(cand, axis=1).tolist():
            t = tuple(row)
            if t not in seen:
                seen.add(t)
                out.append(t)
                if len(out) == n_triads:
                    break
    return np.asarray(out, dtype=np.int64).reshape(-1, 3)


def triad_pairs(triads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct pairs to ask (``[P, 2]``, smaller index first) and, per triad, the rows of
    its pairs ``(a, b), (b, c), (a, c)`` (``[T, 3]``)."""
    t = np.asarray(triads, dtype=np.int64)
    allp = np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [0, 2]]])
    pairs, inv = np.unique(allp, axis=0, return_inverse=True)
    return pairs, inv.reshape(3, -1).T


def _soft(pab, pbc, pac):
    return pab * pbc * (1 - pac) + (1 - pab) * (1 - pbc) * pac


def cycle_metrics(pab, pbc, pac) -> dict[str, float]:
    """Every definition (module docstring) from per-triad pair probabilities ``[T]`` each
    (``p_xy``: the share of votes preferring ``x``; NaN marks a pair with no votes, and its
    triads are left out)."""
    pab, pbc, pac = (np.asarray(x, dtype=np.float64) for x in (pab, pbc, pac))
    ok = ~(np.isnan(pab) | np.isnan(pbc) | np.isnan(pac))
    pab, pbc, pac = pab[ok], pbc[ok], pac[ok]
    soft = _soft(pab, pbc, pac)
    m = float(soft.mean()) if soft.size else float("nan")
    strict = (pab != 0.5) & (pbc != 0.5) & (pac != 0.5)
    x, y, z = pab > 0.5, pbc > 0.5, pac > 0.5
    hard = ((x & y & ~z) | (~x & ~y & z))[strict]
    rate = float(hard.mean()) if hard.size else float("nan")
    return {
        "mean_p_cycle": m,
        "log10_mean_p_cycle": math.log10(m) if m > 0 else float("-inf"),
        "log10_odds_mean_p_cycle": math.log10(m / (1 - m)) if 0 < m < 1 else float("nan"),
        "mean_log10_p_cycle": float(np.log10(np.maximum(soft, LOG_FLOOR)).mean())
        if soft.size
        else float("nan"),
        "hard_cycle_rate": rate,
        "log10_hard_cycle_rate": math.log10(rate) if rate > 0 else float("-inf"),
        "n_triads": int(ok.sum()),
        "n_strict_triads": int(strict.sum()),
    }


def random_baselines(votes: int) -> dict[str, float]:
    """Exact expectations for a responder answering 50/50 with ``votes`` votes per pair (the
    three pairs of a triad independent): a sum over the ``(votes + 1)^3`` binomial outcomes.

    ``log10_mean_p_cycle`` and ``log10_odds_mean_p_cycle`` are those of the expected mean
    (what a large triad sample converges to); ``mean_log10_p_cycle`` is the expected per-triad
    log; the hard cycle rate among strict triads is 1/4 for any ``votes``.
    """
    if votes < 1:
        raise ValueError(f"votes per pair must be positive, got {votes}")
    k = np.arange(votes + 1)
    w = stats.binom.pmf(k, votes, 0.5)
    p = k / votes
    a, b, c = np.meshgrid(p, p, p, indexing="ij")
    wa, wb, wc = np.meshgrid(w, w, w, indexing="ij")
    weight = wa * wb * wc
    soft = _soft(a, b, c)
    m = float((weight * soft).sum())  # = 1/4
    strict = (a != 0.5) & (b != 0.5) & (c != 0.5)
    cyc = ((a > 0.5) & (b > 0.5) & (c < 0.5)) | ((a < 0.5) & (b < 0.5) & (c > 0.5))
    rate = float((weight * cyc).sum() / (weight * strict).sum())
    return {
        "mean_p_cycle": m,
        "log10_mean_p_cycle": math.log10(m),
        "log10_odds_mean_p_cycle": math.log10(m / (1 - m)),
        "mean_log10_p_cycle": float((weight * np.log10(np.maximum(soft, LOG_FLOOR))).sum()),
        "hard_cycle_rate": rate,
        "log10_hard_cycle_rate": math.log10(rate),
        "votes_per_pair": int(votes),
    }


def simulate_random(
    totals: np.ndarray, rows: np.ndarray, n_rep: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Every definition for ``n_rep`` simulated 50/50 responders that cast the same number of
    votes on each pair as the model did (``totals`` ``[P]``, integer-rounded; ``rows`` from
    :func:`triad_pairs`): ``{definition: [n_rep]}``."""
    v = np.maximum(np.rint(np.asarray(totals, dtype=np.float64)).astype(np.int64), 0)
    out: dict[str, list[float]] = {}
    for _ in range(n_rep):
        wins = rng.binomial(v, 0.5)
        p = np.where(v > 0, wins / np.maximum(v, 1), np.nan)
        for key, val in cycle_metrics(p[rows[:, 0]], p[rows[:, 1]], p[rows[:, 2]]).items():
            out.setdefault(key, []).append(val)
    return {k: np.asarray(v) for k, v in out.items()}
