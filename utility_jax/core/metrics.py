r"""Coherence metrics for pairwise preferences (pure JAX/NumPy, no I/O).

Every metric takes arrays; :func:`evaluate_pairwise` bundles the held-out ones for a fit. The
random-responder baselines (a 50/50 answerer with the same vote counts) belong beside every
reported number: :func:`random_responder_confidence` gives the closed form of its average
confidence; the experiments also refit on simulated 50/50 votes for the other metrics.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from utility_jax.core.data import PairwiseData
from utility_jax.core.likelihood import predict_log_proba

__all__ = [
    "wilson_interval",
    "fisher_interval",
    "heldout_accuracy",
    "heldout_accuracy_ties_half",
    "log_loss_per_vote",
    "brier_score",
    "calibration_error",
    "average_confidence",
    "random_responder_confidence",
    "cycle_probability",
    "sample_triads",
    "transitivity",
    "evaluate_pairwise",
]


def _mean(x, mask, w=None):
    w = jnp.ones_like(x) if w is None else w
    w = jnp.where(mask, w, 0.0)
    return jnp.sum(jnp.where(mask, x, 0.0) * w) / jnp.maximum(jnp.sum(w), 1e-30)


def heldout_accuracy(p_model, p_empirical, mask=None) -> jax.Array:
    r"""Share of pairs whose predicted and empirical majorities agree.

    .. math:: \mathrm{mean}_e\, [(p^{model}_e \ge 0.5) = (p^{emp}_e \ge 0.5)]

    Tie rule (the reference's): a probability of exactly 0.5 counts as preferring the first
    outcome ("A"), on both sides. Args are ``[n_pairs]``; ``mask`` drops padding rows.
    """
    p_model, p_empirical = jnp.asarray(p_model), jnp.asarray(p_empirical)
    mask = jnp.ones(p_model.shape, bool) if mask is None else mask
    return _mean(((p_model >= 0.5) == (p_empirical >= 0.5)).astype(p_model.dtype), mask)


_TIE_TOL = 1e-6  # a predicted probability this close to 0.5 is a tie


def heldout_accuracy_ties_half(p_model, p_empirical, mask=None) -> jax.Array:
    """Held-out accuracy where a tie on either side (predicted within 1e-6 of 0.5, or an
    empirical 50/50) scores one half: a model with no preferences scores 0.5, not 1."""
    p_model, p_empirical = jnp.asarray(p_model), jnp.asarray(p_empirical)
    mask = jnp.ones(p_model.shape, bool) if mask is None else mask
    tie = (jnp.abs(p_model - 0.5) < _TIE_TOL) | (p_empirical == 0.5)
    agree = ((p_model > 0.5) == (p_empirical > 0.5)).astype(p_model.dtype)
    return _mean(jnp.where(tie, 0.5, agree), mask)


def log_loss_per_vote(logp_a, logp_b, n_a, n_total, mask=None) -> jax.Array:
    r"""Natural-log loss per vote with soft labels.

    .. math:: -\sum_e [n_{a,e} \log p_e + (n_e - n_{a,e}) \log(1-p_e)] / \sum_e n_e

    Takes log-probabilities (``predict_log_proba``) so nothing is clipped.
    """
    mask = jnp.ones(jnp.shape(n_a), bool) if mask is None else mask
    ll = n_a * logp_a + (n_total - n_a) * logp_b
    return -jnp.sum(jnp.where(mask, ll, 0.0)) / jnp.sum(jnp.where(mask, n_total, 0.0))


def brier_score(p_model, p_empirical, mask=None) -> jax.Array:
    """Mean squared difference between predicted and empirical P(A > B), one weight per pair."""
    mask = jnp.ones(jnp.shape(p_model), bool) if mask is None else mask
    return _mean((jnp.asarray(p_model) - p_empirical) ** 2, mask)


def calibration_error(p_model, n_a, n_total, mask=None, n_bins: int = 10) -> jax.Array:
    r"""Expected calibration error over ``n_bins`` equal-width bins of predicted P(A > B).

    .. math:: \sum_b \frac{N_b}{N} \left| \bar p^{model}_b - \frac{\sum_{e \in b} n_{a,e}}{N_b} \right|

    with :math:`N_b` the votes in bin ``b`` (vote-weighted).
    """
    p_model = jnp.asarray(p_model)
    mask = jnp.ones(p_model.shape, bool) if mask is None else mask
    w = jnp.where(mask, n_total, 0.0)
    b = jnp.clip((p_model * n_bins).astype(jnp.int32), 0, n_bins - 1)
    votes = jax.ops.segment_sum(w, b, n_bins)
    wins = jax.ops.segment_sum(jnp.where(mask, n_a, 0.0), b, n_bins)
    pred = jax.ops.segment_sum(w * p_model, b, n_bins)
    safe = jnp.maximum(votes, 1e-30)
    return jnp.sum(jnp.abs(pred / safe - wins / safe) * votes) / jnp.maximum(votes.sum(), 1e-30)


def average_confidence(p_empirical, mask=None) -> jax.Array:
    """Completeness: mean over pairs of ``max(p, 1 - p)`` of the empirical preferences."""
    p = jnp.asarray(p_empirical)
    mask = jnp.ones(p.shape, bool) if mask is None else mask
    return _mean(jnp.maximum(p, 1.0 - p), mask)


def random_responder_confidence(n_votes: int) -> float:
    r"""Expected average confidence of a 50/50 responder with ``n_votes`` votes per pair.

    .. math:: E[\max(K, n-K)/n],\quad K \sim \mathrm{Binomial}(n, 1/2)

    For 20 votes this is 0.588 (the paper quotes 58.7%).
    """
    k = np.arange(n_votes + 1)
    return float(np.sum(stats.binom.pmf(k, n_votes, 0.5) * np.maximum(k, n_votes - k) / n_votes))


def cycle_probability(p_ab, p_bc, p_ca) -> jax.Array:
    r"""Probability that three independent pairwise choices form a cycle.

    .. math:: P(\text{cycle}) = p_{ab}p_{bc}p_{ca} + (1-p_{ab})(1-p_{bc})(1-p_{ca})

    A 50/50 responder gives 0.25 on every triad (log10 = -0.602).
    """
    return p_ab * p_bc * p_ca + (1 - p_ab) * (1 - p_bc) * (1 - p_ca)


def sample_triads(pairs, n_triads: int, seed) -> np.ndarray:
    """Triads ``(a, b, c)`` all three of whose pairs were asked, sampled uniformly.

    Triangles are found by intersecting neighbour sets of the asked graph (``O(E * degree)``,
    never all ``C(N, 3)`` triples), then ``n_triads`` are drawn uniformly without replacement
    (all of them if fewer exist).
    """
    p = np.sort(np.asarray(pairs, dtype=np.int64).reshape(-1, 2), axis=1)
    nbrs: dict[int, set[int]] = {}
    for a, b in p.tolist():
        nbrs.setdefault(a, set()).add(b)
        nbrs.setdefault(b, set()).add(a)
    tri = []
    for a, b in set(map(tuple, p.tolist())):  # a < b; keep c > b so each triangle appears once
        for c in nbrs[a] & nbrs[b]:
            if c > b:
                tri.append((a, b, c))
    if not tri:
        return np.zeros((0, 3), dtype=np.int64)
    tri = np.array(sorted(tri), dtype=np.int64)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if len(tri) > n_triads:
        tri = tri[np.sort(rng.choice(len(tri), size=n_triads, replace=False))]
    return tri


def transitivity(data: PairwiseData, triads: np.ndarray) -> dict[str, float]:
    """Cycle metrics on triads using the *empirical* pair probabilities of ``data``.

    Returns:
      ``log10_p_cycle``: log10 of the mean soft cycle probability over triads;
      ``hard_cycle_rate``: share of triads whose three strict majorities form a cycle (triads with
      an exact 50/50 pair are left out of this one); ``n_triads``.
    """
    v = data.valid()
    n = data.n_items
    p = v["n_a"] / v["n_total"]
    lookup = dict(zip((v["idx_a"] * n + v["idx_b"]).tolist(), p.tolist(), strict=True))

    def prob(x, y):  # P(x > y)
        out = np.empty(len(x))
        for k, (i, j) in enumerate(zip(x.tolist(), y.tolist(), strict=True)):
            out[k] = lookup[i * n + j] if (i * n + j) in lookup else 1.0 - lookup[j * n + i]
        return out

    if len(triads) == 0:
        return {"log10_p_cycle": float("nan"), "hard_cycle_rate": float("nan"), "n_triads": 0}
    a, b, c = triads[:, 0], triads[:, 1], triads[:, 2]
    pab, pbc, pca = prob(a, b), prob(b, c), prob(c, a)
    soft = np.asarray(cycle_probability(pab, pbc, pca))
    strict = (pab != 0.5) & (pbc != 0.5) & (pca != 0.5)
    x, y, z = pab > 0.5, pbc > 0.5, pca > 0.5
    hard = ((x & y & z) | (~x & ~y & ~z))[strict]
    return {
        "log10_p_cycle": float(math.log10(max(soft.mean(), 1e-300))),
        "hard_cycle_rate": float(hard.mean()) if hard.size else float("nan"),
        "n_triads": int(len(triads)),
    }


def evaluate_pairwise(fit, data: PairwiseData) -> dict[str, float]:
    """Held-out metrics of a fit on ``data``: accuracy, log loss per vote, Brier, ECE.

    ``fit`` is a :class:`~utility_jax.core.model.ThurstonianFit` (unbatched).
    """
    return {
        k: (int(v) if k.startswith("n_") else float(v)) for k, v in _evaluate(fit, data).items()
    }


@jax.jit
def _evaluate(fit, data: PairwiseData) -> dict[str, jax.Array]:
    lp, lq = predict_log_proba(
        fit, data.idx_a, data.idx_b, presented=data.position is not None, position=data.position
    )
    p = jnp.exp(lp)
    pe = data.empirical_proba()
    m = data.mask
    return {
        "accuracy": heldout_accuracy(p, pe, m),
        "log_loss": log_loss_per_vote(lp, lq, data.n_a, data.n_total, m),
        "brier": brier_score(p, pe, m),
        "calibration_error": calibration_error(p, data.n_a, data.n_total, m),
        "average_confidence": average_confidence(pe, m),
        "n_pairs": jnp.sum(m),
        "n_ties": jnp.sum(jnp.where(m, pe == 0.5, False)),
        # predictions at 0.5 (a model with no preference): the reference's rule counts them as
        # "A"; beside it, accuracy scoring any tie (predicted or empirical) as half right
        "n_model_ties": jnp.sum(jnp.where(m, jnp.abs(p - 0.5) < _TIE_TOL, False)),
        "accuracy_ties_half": heldout_accuracy_ties_half(p, pe, m),
    }


def wilson_interval(p: float, n: float, level: float = 0.9) -> tuple[float, float]:
    """Wilson score interval of a share ``p`` of ``n`` trials (NaN when ``n`` is 0 or ``p`` is
    not finite)."""
    if not n or not np.isfinite(p):
        return float("nan"), float("nan")
    z = stats.norm.ppf(0.5 + level / 2)
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return float(c - h), float(c + h)


def fisher_interval(r: float, n: int, level: float = 0.9) -> tuple[float, float]:
    """Fisher-z interval of a Pearson correlation over ``n`` pairs (NaN under 4 pairs or at
    |r| = 1, where it is undefined)."""
    if n < 4 or not np.isfinite(r) or abs(r) >= 1 - 1e-12:  # 1 to round-off: undefined too
        return float("nan"), float("nan")
    z, se = math.atanh(r), 1 / math.sqrt(n - 3)
    q = stats.norm.ppf(0.5 + level / 2)
    return math.tanh(z - q * se), math.tanh(z + q * se)
