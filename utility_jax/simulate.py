"""Simulated forced-choice answers from known utilities (pure JAX).

The simulated agent stands in for an LLM in tests and in the default experiment: it answers
each pair in both presentation orders, ``k`` samples per order, choosing the option shown as
"A" with probability ``Phi((mu_A - mu_B + position_bias) / sqrt(sigma_A^2 + sigma_B^2))`` (or the
logistic link), and refusing with probability ``refusal_rate``.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from utility_jax.data import PairwiseData

__all__ = ["simulate_votes", "simulate_pairwise", "pool_orders"]


def _p_first(mu, sigma, i, j, bias, link):
    d = mu[i] - mu[j] + bias
    if link == "logit":
        return jax.nn.sigmoid(d)
    return ndtr(d / jnp.sqrt(sigma[i] ** 2 + sigma[j] ** 2))


@jax.jit(static_argnames=("k", "link"))
def simulate_votes(
    key: jax.Array,
    mu: jax.Array,
    sigma: jax.Array,
    idx_a: jax.Array,
    idx_b: jax.Array,
    k: int,
    *,
    link: str = "probit",
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
    :func:`~utility_jax.data.bucket_length`) when calling it with many different lengths.

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


def pool_orders(counts, *, refusal: str = "half") -> tuple[np.ndarray, np.ndarray]:
    """Votes for the first outcome and total votes from ``[n, 2, 3]`` order counts.

    Order 0 shows the first outcome as A, order 1 shows it as B. ``refusal="half"`` gives each
    side half a vote per refusal (the paper's rule); ``"drop"`` ignores refusals.
    """
    c = np.asarray(counts, dtype=np.float64)
    wins = c[:, 0, 0] + c[:, 1, 1]
    total = c[:, :, 0].sum(1) + c[:, :, 1].sum(1)
    if refusal == "half":
        refusals = c[:, :, 2].sum(1)
        wins, total = wins + 0.5 * refusals, total + refusals
    elif refusal != "drop":
        raise ValueError(f"refusal must be 'half' or 'drop', got {refusal!r}")
    return wins, total


def simulate_pairwise(
    key: jax.Array,
    mu,
    sigma,
    pairs,
    k: int = 10,
    *,
    link: str = "probit",
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
