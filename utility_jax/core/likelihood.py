"""The likelihood of pairwise votes and its derivatives, computed in log space.

:func:`pair_proba` is the one place the choice link is written in linear space,
:func:`log_proba_pairwise` its log-space twin (``log_ndtr``, ``log_sigmoid``), and
:func:`log_likelihood_pairwise` the one likelihood that fitting and evaluation share. The
objective the fitter minimises (deviance plus priors and gauge) and its row-by-row Hessians live
here too, beside the predictions of a fit.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtr, xlogy

from utility_jax.core.data import PairwiseData
from utility_jax.core.model import (
    LOGIT,
    PROBIT,
    FitConfig,
    ThurstonianFit,
    _prior_diag,
    _prior_hessian,
    _prior_hvp,
    _prior_penalty,
    _row_columns,
    _unpack,
)

__all__ = [
    "log_likelihood_pairwise",
    "log_proba_pairwise",
    "pair_proba",
    "predict_log_proba",
    "predict_proba",
]


def _log_ndtr_pair(z):
    """``(log Phi(z), log Phi(-z))`` with one ``log_ndtr`` call.

    The smaller tail comes from ``log_ndtr(-|z|)`` (accurate far into the tail); the larger is
    ``log1p(-exp(small))``, well conditioned because ``exp(small) <= 1/2``. Half the cost of two
    ``log_ndtr`` calls, which dominate the fitter's time.
    """
    small = log_ndtr(-jnp.abs(z))
    big = jnp.log1p(-jnp.exp(small))
    pos = z >= 0
    return jnp.where(pos, big, small), jnp.where(pos, small, big)


def pair_proba(d, var_sum, link: str = PROBIT):
    r"""The choice link, P(first preferred) from the latent difference ``d``: the one place it is
    written in linear space (the simulated agent and the NumPyro model use it).

    ``probit``: :math:`\Phi(d / \sqrt{\sigma_a^2 + \sigma_b^2})` with ``var_sum`` the sum of
    variances; ``logit``: :math:`\mathrm{sigmoid}(d)` (``var_sum`` ignored).
    :func:`log_proba_pairwise` is its log-space twin for likelihoods.
    """
    if link == LOGIT:
        return jax.nn.sigmoid(d)
    return ndtr(d / jnp.sqrt(var_sum))


def log_proba_pairwise(mu, log_var, idx_a, idx_b, link, shift=0.0):
    """log P(a > b) and log P(b > a), computed without leaving log space; ``shift`` is added to
    the latent difference (a position bias toward ``a`` when it was shown first)."""
    d = mu[..., idx_a] - mu[..., idx_b] + shift
    if link == LOGIT:
        return jax.nn.log_sigmoid(d), jax.nn.log_sigmoid(-d)
    z = d * jax.lax.rsqrt(jnp.exp(log_var[..., idx_a]) + jnp.exp(log_var[..., idx_b]))
    return _log_ndtr_pair(z)


@jax.jit(static_argnames=("link",))
def log_likelihood_pairwise(
    mu: jax.Array, log_var: jax.Array, data: PairwiseData, link: str = PROBIT, bias=None
) -> jax.Array:
    r"""Log-likelihood of vote counts, summed over (unmasked) pairs.

    .. math:: \sum_e n_{a,e} \log P(a_e \succ b_e) + (n_e - n_{a,e}) \log P(b_e \succ a_e)

    Args:
      mu: ``[n_items]`` means. log_var: ``[n_items]`` log-variances (ignored for logit).
      data: unbatched :class:`PairwiseData`.
      link: :data:`~utility_jax.core.model.PROBIT` or :data:`~utility_jax.core.model.LOGIT`.

    Returns:
      Scalar log-likelihood (the multinomial constant omitted).
    """
    lp, lq = log_proba_pairwise(mu, log_var, data.idx_a, data.idx_b, link, _shift(bias, data))
    ll = data.n_a * lp + (data.n_total - data.n_a) * lq
    return jnp.sum(jnp.where(data.mask, ll, 0.0))


def _shift(bias, data: PairwiseData):
    """The per-row position shift: ``bias`` on presentation rows, 0 on pooled ones."""
    if bias is None or data.position is None:
        return 0.0
    return bias * data.position


def _check_indices(n_items: int, **idx) -> None:
    """Concrete index arrays must be integers in ``[0, n_items)`` (JAX would clamp or wrap them
    silently); traced ones (inside ``jit``) are the caller's responsibility."""
    for name, x in idx.items():
        if isinstance(x, jax.core.Tracer):
            continue
        arr = np.asarray(x)
        if arr.dtype.kind not in "iu":
            if arr.dtype.kind != "f" or np.any(arr % 1 != 0):
                raise ValueError(
                    f"{name}: indices must be integers, got {arr.dtype} {arr.ravel()[:5]}"
                )
        if arr.size and (arr.min() < 0 or arr.max() >= n_items):
            raise ValueError(f"{name}: index outside [0, {n_items}) (got {arr.min()}..{arr.max()})")


@jax.jit(static_argnames=("presented",))
def _predict_log_proba(fit: ThurstonianFit, idx_a, idx_b, presented=False, position=None):
    b = fit.position_bias
    if b is None:
        return log_proba_pairwise(fit.mu, fit.log_var, idx_a, idx_b, fit.link)
    if presented:  # a shown first where position is 1 (every row when position is None)
        shift = b if position is None else b * position
        return log_proba_pairwise(fit.mu, fit.log_var, idx_a, idx_b, fit.link, shift)
    # order-averaged: half the time a is shown first, half the time second
    p1, q1 = log_proba_pairwise(fit.mu, fit.log_var, idx_a, idx_b, fit.link, b)
    p2, q2 = log_proba_pairwise(fit.mu, fit.log_var, idx_a, idx_b, fit.link, -b)
    half = jnp.log(0.5)
    return jnp.logaddexp(p1, p2) + half, jnp.logaddexp(q1, q2) + half


def predict_log_proba(
    fit: ThurstonianFit, idx_a, idx_b, *, presented: bool = False, position=None
) -> tuple[jax.Array, jax.Array]:
    """``(log P(a > b), log P(b > a))`` under a fit, for index arrays ``idx_a``, ``idx_b``.

    With a position-biased fit: ``presented=True`` is the probability when ``a`` is shown first
    ("A") — or, with ``position`` (a row's ``PairwiseData.position``), first where it is 1 and
    order-free where it is 0; ``presented=False`` averages the two orders.
    Raises ``ValueError`` for concrete indices that are not integers in ``[0, n_items)``.
    """
    _check_indices(fit.mu.shape[-1], idx_a=idx_a, idx_b=idx_b)
    return _predict_log_proba(
        fit, jnp.asarray(idx_a, jnp.int32), jnp.asarray(idx_b, jnp.int32), presented, position
    )


def predict_proba(
    fit: ThurstonianFit, idx_a, idx_b, *, presented: bool = False, position=None
) -> jax.Array:
    """P(a > b) under a fit, for index arrays ``idx_a``, ``idx_b`` (any matching shape); see
    :func:`predict_log_proba` for ``presented``."""
    return jnp.exp(predict_log_proba(fit, idx_a, idx_b, presented=presented, position=position)[0])


def _weighted(data: PairwiseData, cfg: FitConfig) -> PairwiseData:
    if cfg.edge_weight == "uniform":
        return data.with_votes(data.n_a / data.n_total, jnp.ones_like(data.n_total))
    return data


def _saturated(data: PairwiseData) -> jax.Array:
    """``[n_rows]`` each pair's saturated log-likelihood (its best possible value)."""
    n_b = data.n_total - data.n_a
    p_hat = data.n_a / data.n_total
    return xlogy(data.n_a, p_hat) + xlogy(n_b, 1.0 - p_hat)


def _neg_log_posterior(params, data: PairwiseData, cfg: FitConfig, saturated=None) -> jax.Array:
    """Negative log posterior (nll + priors + gauge) up to a data-only constant."""
    n = data.n_items
    mu, log_var = _unpack(params, n, cfg, data.n_a.dtype)
    # Deviance form: subtract each pair's saturated log-likelihood, so the summed terms are small
    # near the optimum and float32 round-off does not swamp the line search's comparisons.
    sat = _saturated(data) if saturated is None else saturated
    bias = params.get("bias") if cfg.position_bias else None
    lp, lq = log_proba_pairwise(mu, log_var, data.idx_a, data.idx_b, cfg.link, _shift(bias, data))
    dev = data.n_a * lp + (data.n_total - data.n_a) * lq - sat
    obj = -jnp.sum(jnp.where(data.mask, dev, 0.0))
    return obj + _prior_penalty(mu, log_var, bias, n, cfg)


def _row_hessians(x, data: PairwiseData, cfg: FitConfig) -> jax.Array:
    """``[rows, k, k]`` each row's Hessian of its negative log-likelihood with respect to the
    ``k`` parameters it depends on (the Hessian is their sum, scattered, plus the priors')."""
    cols = _row_columns(data, cfg)
    pos = jnp.zeros_like(data.n_a) if data.position is None else data.position

    def row_nll(v, n_a, n_t, position):
        lv = 2.0 * v[2:4] if cfg.utility_model.learns_variance else jnp.zeros((2,), v.dtype)
        shift = v[-1] * position if cfg.position_bias else 0.0
        lp, lq = log_proba_pairwise(v[:2], lv, 0, 1, cfg.link, shift)
        return -(n_a * lp + (n_t - n_a) * lq)

    hs = jax.vmap(jax.hessian(row_nll))(x[cols], data.n_a, data.n_total, pos)
    return jnp.where(data.mask[:, None, None], hs, 0.0)


def _rows_hessian(x, data: PairwiseData, cfg: FitConfig) -> jax.Array:
    """The likelihood's Hessian alone (no priors or gauges), assembled dense from the rows."""
    cols = _row_columns(data, cfg)
    hs = _row_hessians(x, data, cfg)
    rows = jnp.broadcast_to(cols[:, :, None], hs.shape).reshape(-1)
    colm = jnp.broadcast_to(cols[:, None, :], hs.shape).reshape(-1)
    size = x.shape[0]
    return jnp.zeros((size, size), x.dtype).at[rows, colm].add(hs.reshape(-1))


def _dense_hessian(x, data: PairwiseData, cfg: FitConfig) -> jax.Array:
    """The Hessian of :func:`_neg_log_posterior` on the flat vector, dense."""
    return _rows_hessian(x, data, cfg) + _prior_hessian(data.n_items, x.shape[0], cfg, x.dtype)


def _hvp_at(x, data: PairwiseData, cfg: FitConfig):
    """``(v -> H v, diag H)`` at ``x``, from the rows' Hessians (computed once)."""
    cols = _row_columns(data, cfg)
    hs = _row_hessians(x, data, cfg)
    n, size = data.n_items, x.shape[0]

    def hvp(v):
        local = jnp.einsum("rij,rj->ri", hs, v[cols])
        hv = jax.ops.segment_sum(local.reshape(-1), cols.reshape(-1), size)
        return hv + _prior_hvp(v, n, cfg)

    diag = jax.ops.segment_sum(
        jnp.diagonal(hs, axis1=1, axis2=2).reshape(-1), cols.reshape(-1), size
    )
    return hvp, diag + _prior_diag(n, size, cfg, x.dtype)
