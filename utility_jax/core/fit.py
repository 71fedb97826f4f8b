"""The fitter: L-BFGS to a gradient tolerance, then a second-order polish that verifies it.

L-BFGS with a zoom line search (optax) inside ``lax.while_loop``, to a gradient tolerance on the
objective scaled by ``n_items / total_votes``; then a second-order polish
(:mod:`utility_jax.core.second_order`: saddle-free Newton on the assembled Hessian, or Newton-CG
above ``dense_max`` parameters), so ``converged`` means a verified minimum: a positive-definite
Hessian and a Newton decrement (distance to the minimum in posterior sd) below ``newton_tol``, at
any size. It never raises: it returns ``converged``, ``status``/``reason``, ``newton_decrement``,
``min_eigenvalue``, ``n_iter`` and ``grad_norm``.
"""

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu

from utility_jax.core import second_order as SO
from utility_jax.core.data import PairwiseData
from utility_jax.core.likelihood import (
    _dense_hessian,
    _hvp_at,
    _neg_log_posterior,
    _rows_hessian,
    _saturated,
    _weighted,
    log_likelihood_pairwise,
)
from utility_jax.core.model import (
    FitConfig,
    ThurstonianFit,
    _center_components,
    _component_gauge,
    _flatten,
    _init_params,
    _prior_diag,
    _prior_hvp,
    _unflatten,
    _unpack,
    component_labels,
)

__all__ = ["fit_thurstonian", "fit_thurstonian_batch"]


def _polish_mode(cfg: FitConfig, size: int) -> str:
    if cfg.polish == "auto":
        return "dense" if size <= cfg.dense_max else "cg"
    return cfg.polish


def _hessian_ops(x, wdata: PairwiseData, cfg: FitConfig, gauge_hvp):
    """``(v -> H v, diag H)`` of the negative log posterior plus the component gauge at ``x``.
    Up to ``cfg.matvec_dense_max`` parameters the Hessian is assembled once and applied as a
    dense product (one BLAS call: faster on a CPU than the rows' gather and scatter-add at these
    sizes: ``benchmarks/bench_fit.py`` prints each polish mode's time); above it, matrix-free
    from the rows."""
    n, size = wdata.n_items, x.shape[0]
    if size <= cfg.matvec_dense_max:
        # the rows' part dense; the priors and gauges (a diagonal plus rank-one terms) applied
        # in closed form, never materialised
        h = _rows_hessian(x, wdata, cfg)

        def hvp(v):
            return h @ v + _prior_hvp(v, n, cfg) + gauge_hvp(v)

        return hvp, jnp.diagonal(h) + _prior_diag(n, size, cfg, x.dtype)
    hvp, diag = _hvp_at(x, wdata, cfg)
    return (lambda v: hvp(v) + gauge_hvp(v)), diag


def _polish(params, wdata: PairwiseData, cfg: FitConfig, sat):
    """Second-order steps from the L-BFGS solution: ``(params, PolishInfo)`` (the L-BFGS
    solution back if the steps produced a non-finite value)."""
    n = wdata.n_items
    x0 = _flatten(params, cfg)
    pen, pen_hvp, pen_matrix = _component_gauge(n, x0.shape[0], cfg, component_labels(wdata))

    def grad(x):
        def f(y):
            return _neg_log_posterior(_unflatten(y, n, cfg), wdata, cfg, sat) + pen(y)

        return jax.grad(f)(x)

    if _polish_mode(cfg, x0.shape[0]) == "dense":

        def hess(y):
            return _dense_hessian(y, wdata, cfg) + pen_matrix()

        x, info = SO.newton_polish(
            x0, grad, hess, max_steps=cfg.polish_steps, floor=0.1 * cfg.newton_tol
        )
    else:
        x, info = SO.newton_cg_polish(
            x0,
            grad,
            lambda y: _hessian_ops(y, wdata, cfg, pen_hvp),
            max_steps=cfg.polish_steps,
            tol=cfg.newton_tol,
        )
    x = jnp.where(jnp.all(jnp.isfinite(x)), x, x0)
    return _unflatten(x, n, cfg), info


def _objective_scale(data: PairwiseData) -> jax.Array:
    total = jnp.sum(jnp.where(data.mask, data.n_total, 0.0))
    return data.n_items / jnp.maximum(total, 1.0)


def _gtol(cfg: FitConfig, dtype) -> float:
    if cfg.gtol is not None:
        return cfg.gtol
    return 1e-6 if jnp.dtype(dtype) == jnp.float64 else 1e-3


def _fit_one(data: PairwiseData, key, init, cfg: FitConfig) -> ThurstonianFit:
    gtol = _gtol(cfg, data.n_a.dtype)
    wdata = _weighted(data, cfg)
    scale = _objective_scale(wdata)
    sat = _saturated(wdata)

    def obj(params):
        return scale * _neg_log_posterior(params, wdata, cfg, sat)

    params0 = _init_params(data, cfg, key, init)
    opt = optax.lbfgs(memory_size=cfg.memory_size)
    value_and_grad = optax.value_and_grad_from_state(obj)

    def gnorm(g):
        return otu.tree_max(jax.tree.map(jnp.abs, g))

    def step(carry):
        params, state, _, prev_value, it = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=obj)
        params = optax.apply_updates(params, updates)
        return params, state, prev_value, value, it + 1

    def cond(carry):
        params, state, prev2, prev, it = carry
        g = otu.tree_get(state, "grad")
        # Stop at the tolerance, at max_iter, or when the line search makes no progress
        # for two steps (float32 round-off): the caller sees converged=False then.
        stalled = (it > 2) & (prev2 - prev <= 0.0) & (it > 2)
        return (it == 0) | ((it < cfg.max_iter) & (gnorm(g) >= gtol) & ~stalled)

    state0 = opt.init(params0)
    inf = jnp.asarray(jnp.inf, data.n_a.dtype)
    params, _, _, _, n_iter = jax.lax.while_loop(cond, step, (params0, state0, inf, inf, 0))
    extra = {}
    if cfg.polish != "none":
        params, info = _polish(params, wdata, cfg, sat)
    gn = gnorm(jax.grad(obj)(params))
    if cfg.polish != "none":
        pd = info.min_eigenvalue > 1e-6 * info.scale  # below: zero to round-off, a flat direction
        converged = pd & (info.decrement <= cfg.newton_tol)
        status = jnp.where(converged, 0, jnp.where(pd, 3, 2))
        extra = dict(newton_decrement=info.decrement, min_eigenvalue=info.min_eigenvalue)
    else:
        converged = gn < gtol
        status = jnp.where(converged, 1, 4)
    mu, log_var = _unpack(params, data.n_items, cfg, data.n_a.dtype)
    mu, n_comp = _center_components(mu, component_labels(data))
    bias = params["bias"] if cfg.position_bias else None
    nll = -log_likelihood_pairwise(mu, log_var, data, cfg.link, bias)
    return ThurstonianFit(
        mu=mu,
        log_var=log_var,
        converged=converged,
        n_iter=n_iter,
        grad_norm=gn,
        nll=nll,
        link=cfg.link,
        n_components=n_comp,
        position_bias=bias,
        status=status,
        **extra,
    )


@jax.jit(static_argnames=("cfg",))
def _fit_jit(data, key, init, cfg):
    return _fit_one(data, key, init, cfg)


@jax.jit(static_argnames=("cfg", "method"))
def _fit_batch_jit(data, keys, init, cfg, method):
    if method == "vmap":
        in_axes = (0, None if keys is None else 0, None if init is None else 0)
        return jax.vmap(lambda d, k, i: _fit_one(d, k, i, cfg), in_axes=in_axes)(data, keys, init)
    return jax.lax.map(lambda x: _fit_one(x[0], x[1], x[2], cfg), (data, keys, init))


def _config(cfg: FitConfig | None, overrides) -> FitConfig:
    cfg = cfg or FitConfig()
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def fit_thurstonian(
    data: PairwiseData,
    *,
    cfg: FitConfig | None = None,
    key: jax.Array | None = None,
    init: ThurstonianFit | None = None,
    **overrides,
) -> ThurstonianFit:
    """Fit utilities to one dataset (jit-compiled; one compilation per padded shape and config).

    Args:
      data: unbatched :class:`PairwiseData`.
      cfg: a :class:`FitConfig`; keyword ``overrides`` replace its fields
        (``fit_thurstonian(data, polish="cg")``).
      key: PRNG key for a random initialisation (``N(0, init_scale^2)`` means); zeros if None.
      init: a previous fit to warm-start from (same ``n_items`` and model). If the warm-started
        fit is not a verified minimum, a cold start is tried too and the better one returned.

    Returns:
      :class:`ThurstonianFit`.

    Examples:
      >>> import utility_jax as uj
      >>> d = uj.PairwiseData.from_counts(2, [0], [1], [15], [20])
      >>> fit = uj.fit_thurstonian(d, model="logit", mu_prior_scale=None)
      >>> round(float(fit.mu[0] - fit.mu[1]), 3)  # log(15/5)
      1.099
    """
    cfg = _config(cfg, overrides)
    if data.idx_a.ndim != 1:
        raise ValueError("fit_thurstonian takes unbatched data; use fit_thurstonian_batch")
    _check_init(init, data.n_items, cfg)
    fit = _fit_jit(data, key, init, cfg)
    if init is not None and fit.status is not None and not bool(fit.converged):
        # a warm start far from this data's minimum (e.g. a previous round's fit with an
        # outcome in an extreme regime) can leave it short: try a cold start, keep the better
        cold = _fit_jit(data, key, None, cfg)
        if bool(cold.converged) or float(cold.nll) < float(fit.nll):
            return cold
    return fit


def _check_init(init: ThurstonianFit | None, n_items: int, cfg: FitConfig) -> None:
    if init is None:
        return
    if init.mu.shape[-1] != n_items:
        raise ValueError(
            f"init has {init.mu.shape[-1]} items but the data has {n_items}: warm-start from a fit "
            "of the same outcomes"
        )
    if init.link != cfg.link:
        raise ValueError(f"init is a {init.link} fit but the config's model {cfg.model!r} is not")


def fit_thurstonian_batch(
    data: PairwiseData,
    *,
    cfg: FitConfig | None = None,
    keys: jax.Array | None = None,
    init: ThurstonianFit | None = None,
    method: Literal["auto", "vmap", "map"] = "auto",
    **overrides,
) -> ThurstonianFit:
    """Fit a batch of datasets (leading axis of every leaf) in one compiled call.

    Use it for bootstrap resamples x seeds x models: stack the datasets (padded to one length,
    see :func:`utility_jax.core.data.stack`) and get a batched :class:`ThurstonianFit` back.

    Args:
      method: ``"vmap"`` vectorises the fits (every L-BFGS step of the batch at once, running
        until the slowest fit converges): the fast choice on a GPU/TPU. ``"map"`` runs them one
        after another inside the same compiled program (``lax.map``): on a CPU the vectorised
        gathers and scatter-adds are no cheaper per fit and the batch would wait for its slowest
        member, so this is faster there (``benchmarks/bench_fit.py`` measures both).
        ``"auto"``: ``"map"`` on CPU, ``"vmap"`` elsewhere.
    """
    cfg = _config(cfg, overrides)
    if data.idx_a.ndim != 2:
        raise ValueError("fit_thurstonian_batch takes data with exactly one leading batch axis")
    if method == "auto":
        method = "map" if jax.default_backend() == "cpu" else "vmap"
    if method not in ("vmap", "map"):
        raise ValueError(f"method must be auto, vmap or map, got {method!r}")
    return _fit_batch_jit(data, keys, init, cfg, method)
