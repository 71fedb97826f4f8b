"""Simulated forced-choice answers from known utilities (pure JAX).

The simulated agent stands in for an LLM in tests and in the default experiment: it answers
each pair in both presentation orders, ``k`` samples per order, choosing the option shown as
"A" with probability ``Phi((mu_A - mu_B + position_bias) / sqrt(sigma_A^2 + sigma_B^2))`` (or the
logistic link), and refusing with probability ``refusal_rate``.
"""

from collections.abc import Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from utility_jax.core.data import PairwiseData, pool_orders
from utility_jax.core.likelihood import pair_proba
from utility_jax.core.model import PROBIT

__all__ = ["simulate_votes", "simulate_pairwise", "planted_utilities"]


class _Outcome(Protocol):
    extra: dict[str, Any]


class Outcomes(Protocol):
    """What :func:`planted_utilities` reads of an outcome set (``io.outcomes.OutcomeSet`` is one):
    a category per outcome and each outcome's ``extra`` fields. The core never imports the file
    layer, so it names the shape, not the class."""

    categories: Sequence[str]
    outcomes: Sequence[_Outcome]

    def __len__(self) -> int: ...


def _p_first(mu, sigma, i, j, bias, link):
    return pair_proba(mu[i] - mu[j] + bias, sigma[i] ** 2 + sigma[j] ** 2, link)


def planted_utilities(
    outcomes: Outcomes,
    key: jax.Array,
    *,
    mu_scale: float = 1.5,
    category_share: float = 0.5,
    money_slope: float = 0.5,
    sigma_range: tuple[float, float] = (0.3, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded "true" utilities for a simulated agent.

    Means mix a per-category offset and a per-outcome term (``category_share`` of the variance
    from the category), scaled to sd ``mu_scale``; outcomes with an ``amount`` field (money
    anchors) get ``money_slope * mu_scale * log10(amount)`` plus an offset, so more money is
    better. Standard deviations are uniform on ``sigma_range``.
    """
    k_cat, k_item, k_sig = jax.random.split(key, 3)
    cats = sorted(set(outcomes.categories))
    cat_idx = np.array([cats.index(c) for c in outcomes.categories])
    cat_off = np.asarray(jax.random.normal(k_cat, (len(cats),)))[cat_idx]
    item = np.asarray(jax.random.normal(k_item, (len(outcomes),)))
    mu = mu_scale * (np.sqrt(category_share) * cat_off + np.sqrt(1 - category_share) * item)
    for i, o in enumerate(outcomes.outcomes):
        if "amount" in o.extra and o.extra["amount"] > 0:
            mu[i] = money_slope * mu_scale * (np.log10(o.extra["amount"]) - 3.0)
    lo, hi = sigma_range
    sigma = np.asarray(jax.random.uniform(k_sig, (len(outcomes),), minval=lo, maxval=hi))
    return mu.astype(np.float64), sigma.astype(np.float64)


@jax.jit(static_argnames=("k", "link"))
def simulate_votes(
    key: jax.Array,
    mu: jax.Array,
    sigma: jax.Array,
    idx_a: jax.Array,
    idx_b: jax.Array,
    k: int,
    *,
    link: str = PROBIT,
    position_bias: float = 0.0,
    refusal_rate: float = 0.0,
) -> jax.Array:
    """Answer counts per pair and order.

    Args:
      key: PRNG key. mu, sigma: ``[n_items]`` true utilities.
      idx_a, idx_b: ``[n_pairs]`` pairs. k: samples per order.
      position_bias: utility added to whichever option is shown as "A".
      refusal_rate: probability that an answer is unparseable.

    Compiled once per padded length, ``k`` and ``link``; pad pair arrays (e.g. to
    :func:`~utility_jax.core.data.bucket_length`) when calling it with many different lengths.

    Returns:
      ``[n_pairs, 2, 3]`` counts: axis 1 is the order (0: ``idx_a`` shown as A, 1: ``idx_b`` shown
      as A), axis 2 is the answer (A, B, refusal).
    """
    k_ref, k_ab = jax.random.split(key)
    p1 = _p_first(mu, sigma, idx_a, idx_b, position_bias, link)
    p2 = _p_first(mu, sigma, idx_b, idx_a, position_bias, link)
    p_first = jnp.stack([p1, p2], axis=1)  # P(answer "A") per order
    kf = jnp.asarray(k, p_first.dtype)
    ref = jax.random.binomial(k_ref, kf, refusal_rate, shape=p_first.shape)
    n_a = jax.random.binomial(k_ab, kf - ref, p_first)
    return jnp.stack([n_a, kf - ref - n_a, ref], axis=-1)


def simulate_pairwise(
    key: jax.Array,
    mu,
    sigma,
    pairs,
    k: int = 10,
    *,
    link: str = PROBIT,
    position_bias: float = 0.0,
    refusal_rate: float = 0.0,
    refusal: str = "half",
    pad_to: int | None = None,
) -> PairwiseData:
    """Simulate ``k`` answers per order on ``pairs`` (``[n, 2]``) and pool them into data.

    Pairs whose every answer was a dropped refusal are left out.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    mu, sigma = jnp.asarray(mu), jnp.asarray(sigma)
    counts = simulate_votes(
        key,
        mu,
        sigma,
        jnp.asarray(pairs[:, 0]),
        jnp.asarray(pairs[:, 1]),
        k,
        link=link,
        position_bias=position_bias,
        refusal_rate=refusal_rate,
    )
    wins, total = pool_orders(counts, refusal=refusal)
    keep = total > 0
    return PairwiseData.from_counts(
        mu.shape[0], pairs[keep, 0], pairs[keep, 1], wins[keep], total[keep], pad_to=pad_to
    )
