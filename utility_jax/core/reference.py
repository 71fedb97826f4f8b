"""The reference implementation's fitting algorithm, re-written in JAX for comparison.

Follows ``utility_models/thurstonian/utils.py`` of centerforaisafety/emergent-values as SPEC
section 3 describes it: parameters ``mu`` and ``log sigma^2`` initialised ``N(0, 0.01^2)``, Adam
(lr 0.01) for 1000 full-batch epochs on the soft-label binary cross-entropy (every pair weight 1),
with ``mu`` normalised to mean 0 / std 1 inside the loss and ``sigma`` scaled alike, and the
probabilities clipped to ``[1e-5, 1 - 1e-5]`` as the reference does. No prior. It is here to be
measured against (``benchmarks/bench_fit.py``), not to be used.
"""

import jax
import jax.numpy as jnp
import optax
from jax.scipy.special import ndtr

from utility_jax.core.data import PairwiseData
from utility_jax.core.likelihood import log_likelihood_pairwise
from utility_jax.core.model import PROBIT, ThurstonianFit

__all__ = ["fit_reference_adam"]

_EPS = 1e-5  # the reference's clipping constant


def _normalise(mu, log_var):
    mean, sd = mu.mean(), mu.std()
    return (mu - mean) / sd, log_var - 2.0 * jnp.log(sd)


@jax.jit(static_argnames=("epochs",))
def fit_reference_adam(
    data: PairwiseData, key: jax.Array, epochs: int = 1000, lr: float = 0.01
) -> ThurstonianFit:
    """Adam on the reference's loss; returns the normalised fit as a :class:`ThurstonianFit`."""
    n = data.n_items
    k1, k2 = jax.random.split(key)
    params = {
        "mu": 0.01 * jax.random.normal(k1, (n,)),
        "log_var": 0.01 * jax.random.normal(k2, (n,)),
    }
    label = data.n_a / data.n_total
    m = data.mask.astype(label.dtype)

    def loss(p):
        mu, lv = _normalise(p["mu"], p["log_var"])
        s2 = jnp.exp(lv)
        z = (mu[data.idx_a] - mu[data.idx_b]) / jnp.sqrt(s2[data.idx_a] + s2[data.idx_b])
        prob = jnp.clip(ndtr(z), _EPS, 1 - _EPS)
        bce = -(label * jnp.log(prob) + (1 - label) * jnp.log(1 - prob))
        return jnp.sum(bce * m) / jnp.sum(m)

    opt = optax.adam(lr)

    def step(_, carry):
        p, s = carry
        g = jax.grad(loss)(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    params, _ = jax.lax.fori_loop(0, epochs, step, (params, opt.init(params)))
    mu, lv = _normalise(params["mu"], params["log_var"])
    g = jax.grad(loss)(params)
    gn = jnp.maximum(jnp.abs(g["mu"]).max(), jnp.abs(g["log_var"]).max())
    nll = -log_likelihood_pairwise(mu, lv, data, PROBIT)
    return ThurstonianFit(
        mu=mu,
        log_var=lv,
        converged=jnp.asarray(False),
        n_iter=jnp.asarray(epochs),
        grad_norm=gn,
        nll=nll,
        link=PROBIT,
    )
