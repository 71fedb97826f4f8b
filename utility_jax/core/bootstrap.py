"""Vote-level bootstrap: resampled votes, refitted in one compiled call or by one Newton step."""

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from utility_jax.core import second_order as SO
from utility_jax.core.data import PairwiseData
from utility_jax.core.fit import _config, fit_thurstonian_batch
from utility_jax.core.likelihood import (
    _dense_hessian,
    _hvp_at,
    _neg_log_posterior,
    _saturated,
    _shift,
    _weighted,
    log_likelihood_pairwise,
    log_proba_pairwise,
)
from utility_jax.core.model import (
    FitConfig,
    ThurstonianFit,
    _center_components,
    _component_gauge,
    _flatten,
    _params_of,
    _prior_sd_inverse,
    _unflatten,
    _unpack,
    component_labels,
)

__all__ = ["bootstrap_pairwise", "fit_bootstrap"]


@jax.jit(static_argnames=("n_boot",))
def bootstrap_pairwise(
    key: jax.Array, data: PairwiseData, n_boot: int, p: jax.Array | None = None
) -> PairwiseData:
    """Vote-level bootstrap: resample each pair's votes, ``n_a* ~ Binomial(n, n_a / n)``, or
    ``Binomial(n, p)`` for given ``[n_rows]`` probabilities ``p`` (a parametric bootstrap).

    Votes are resampled, not rows: every pair keeps its (rounded) vote total, so the graph is
    unchanged and only the sampling noise of the answers is propagated. Half-votes from refusals
    enter through the empirical proportion.

    Returns:
      :class:`PairwiseData` with a leading ``[n_boot]`` axis.
    """
    n = jnp.round(data.n_total)
    p = jnp.clip(data.n_a / data.n_total if p is None else p, 0.0, 1.0)
    n_a = jax.random.binomial(key, n, p, shape=(n_boot,) + p.shape).astype(data.n_a.dtype)
    n_a = jnp.where(data.mask, n_a, 0.0)
    bcast = lambda x: jnp.broadcast_to(x, (n_boot,) + x.shape)  # noqa: E731
    return PairwiseData(
        idx_a=bcast(data.idx_a),
        idx_b=bcast(data.idx_b),
        n_a=n_a,
        n_total=bcast(jnp.where(data.mask, n, 1.0).astype(data.n_a.dtype)),
        mask=bcast(data.mask),
        n_items=data.n_items,
        position=None if data.position is None else bcast(data.position),
    )


def fit_bootstrap(
    key: jax.Array,
    data: PairwiseData,
    n_boot: int = 100,
    *,
    cfg: FitConfig | None = None,
    init: ThurstonianFit | None = None,
    method: Literal["auto", "vmap", "map"] = "auto",
    refit: Literal["full", "one_step"] = "full",
    randomize_prior: bool = False,
    resample: Literal["votes", "model"] = "votes",
    **overrides,
) -> ThurstonianFit:
    """``n_boot`` vote-level bootstrap fits (warm-started from ``init``).

    ``refit="one_step"`` replaces each refit by one Newton step from ``init`` (which must be a
    fit of ``data`` at a verified minimum): ``x_b = x - H^-1 (grad L_b(x) - grad L(x))`` with the
    Hessian ``H`` of the full data's objective factored once (Cholesky; preconditioned CG above
    ``dense_max`` parameters). It is the bootstrap's linearisation at the estimate (the one-step
    bootstrap; Davison & Hinkley 1997, sec. 9.5): the same first-order spread as full refits at a
    small fraction of the cost, without their second-order (bias) terms. Members get status 5.

    ``randomize_prior`` (one-step only) also draws each member's prior centres from the prior
    (the posterior bootstrap of Fong, Lyddon & Holmes 2019, linearised): resampled votes carry
    the likelihood's uncertainty and the randomised centres the prior's, so the members' spread
    is ``H^-1 (J + P) H^-1`` (``J``: the votes' score covariance, ``P``: the prior's precision),
    which is the Laplace covariance when the model fits and the sandwich one when it does not.
    Without it, directions that the votes barely pin (an outcome compared only with outcomes of
    similar utility, whose variance only the prior bounds) get no spread at all.

    ``resample="votes"`` draws each row's votes from its observed share (nonparametric);
    ``"model"`` from the probabilities ``init`` predicts for it (parametric). With few votes per
    row the observed shares understate the noise (``E[p(1-p)]`` over ``n`` votes is ``(n-1)/n``
    of the true one, and a row that went 10-0 is never resampled otherwise).

    Every member is a full fit (L-BFGS and the polish, so each is a verified minimum) in one
    compiled call. ``polish="none"`` is several times faster but stops members at the gradient
    tolerance, short of the minimum along flat directions, which narrows the intervals
    (``benchmarks/bench_coverage.py``). Votes are resampled whole: every pair needs a vote total
    of at least 1.
    """
    _check_bootstrap(data, init, refit, resample)
    p = None
    if resample == "model":
        lp, _ = log_proba_pairwise(
            init.mu,
            init.log_var,
            data.idx_a,
            data.idx_b,
            init.link,
            _shift(init.position_bias, data),
        )
        p = jnp.exp(lp)
    boot = bootstrap_pairwise(key, data, n_boot, p)
    if refit == "one_step":
        cfg = _config(cfg, overrides)
        z = None
        if randomize_prior:
            size = cfg.utility_model.n_params(data.n_items, cfg.position_bias)
            z = jax.random.normal(jax.random.fold_in(key, 1), (n_boot, size), data.n_a.dtype)
        return _one_step_jit(boot, data, init, cfg, z)
    if randomize_prior:
        raise ValueError("randomize_prior needs refit='one_step'")
    binit = None if init is None else _member_starts(boot, data, init, cfg, overrides)
    return fit_thurstonian_batch(boot, cfg=cfg, init=binit, method=method, **overrides)


def _member_starts(boot, data, init: ThurstonianFit, cfg, overrides) -> ThurstonianFit:
    """Where each full refit starts: its one-step estimate (within second-order terms of its own
    minimum) where ``init`` is a verified minimum and the step is finite, else ``init``."""
    n_boot = boot.idx_a.shape[0]
    binit = jax.tree.map(lambda x: jnp.broadcast_to(x, (n_boot,) + jnp.shape(x)), init)
    if init.status is None or not bool(init.converged):
        return binit
    step = _one_step_jit(boot, data, init, _config(cfg, overrides), None)
    ok = jnp.all(jnp.isfinite(step.mu), -1) & jnp.all(jnp.isfinite(step.log_var), -1)

    def pick(a, b):
        if a is None or b is None:
            return b
        return jnp.where(ok.reshape((-1,) + (1,) * (jnp.ndim(b) - 1)), a, b)

    return dataclasses.replace(
        binit,
        mu=pick(step.mu, binit.mu),
        log_var=pick(step.log_var, binit.log_var),
        position_bias=pick(step.position_bias, binit.position_bias),
    )


def _check_bootstrap(data: PairwiseData, init, refit: str, resample: str) -> None:
    """The arguments :func:`fit_bootstrap` refuses, each with the reason."""
    nt = np.asarray(data.n_total)[np.asarray(data.mask)]
    if nt.size and nt.min() < 1:
        rows = np.flatnonzero(nt < 1)
        raise ValueError(
            f"fit_bootstrap resamples whole votes: {rows.size} pairs have a vote total below 1 "
            f"(first: row {int(rows[0])}, total {float(nt[rows[0]])}); use Laplace or posterior "
            "intervals for fractional-vote data"
        )
    if refit not in ("full", "one_step"):
        raise ValueError(f"refit must be full or one_step, got {refit!r}")
    if resample not in ("votes", "model"):
        raise ValueError(f"resample must be votes or model, got {resample!r}")
    if resample == "model" and init is None:
        raise ValueError("resample='model' draws from a fit's probabilities: pass init=the fit")
    if refit == "one_step" and init is None:
        raise ValueError("refit='one_step' steps from an estimate: pass init=the fit")


@jax.jit(static_argnames=("cfg",))
def _one_step_jit(boot: PairwiseData, data: PairwiseData, fit: ThurstonianFit, cfg: FitConfig, z):
    """One Newton step per bootstrap member from ``fit`` (see :func:`fit_bootstrap`); ``z``:
    ``[n_boot, size]`` standard normals that randomise the prior centres, or None."""
    n = data.n_items
    wdata = _weighted(data, cfg)
    x = _flatten(_params_of(fit, cfg), cfg)
    pen, pen_hvp, pen_matrix = _component_gauge(n, x.shape[0], cfg, component_labels(wdata))

    def grad_of(d):
        def f(y):
            return _neg_log_posterior(_unflatten(y, n, cfg), d, cfg, _saturated(d)) + pen(y)

        return jax.grad(f)(x)

    g0 = grad_of(wdata)
    gb = jax.lax.map(lambda d: grad_of(_weighted(d, cfg)) - g0, boot, batch_size=16)
    if z is not None:  # a prior centre moved by delta ~ N(0, s^2) shifts the gradient by -delta/s^2
        gb = gb - z * _prior_sd_inverse(n, x.shape[0], cfg, x.dtype)
    if x.shape[0] > cfg.matvec_dense_max:
        hvp, diag = _hvp_at(x, wdata, cfg)
        minv = 1.0 / jnp.maximum(diag, 1e-12)

        def solve(g):
            return SO._pcg(lambda v: hvp(v) + pen_hvp(v), g, lambda r: minv * r, 500, 1e-6)[0]

        steps = jax.lax.map(solve, gb)
    else:
        h = _dense_hessian(x, wdata, cfg) + pen_matrix()
        chol = jnp.linalg.cholesky(0.5 * (h + h.T))
        steps = jax.scipy.linalg.cho_solve((chol, True), gb.T).T
    xs = x[None, :] - steps

    def member(xb, d):
        mu, log_var = _unpack(_unflatten(xb, n, cfg), n, cfg, x.dtype)
        mu, n_comp = _center_components(mu, component_labels(d))
        bias = xb[-1] if cfg.position_bias else None
        return ThurstonianFit(
            mu=mu,
            log_var=log_var,
            converged=jnp.all(jnp.isfinite(xb)),
            n_iter=jnp.asarray(1, jnp.int32),
            grad_norm=jnp.asarray(jnp.nan, x.dtype),
            nll=-log_likelihood_pairwise(mu, log_var, d, cfg.link, bias),
            link=cfg.link,
            n_components=n_comp,
            position_bias=bias,
            status=jnp.asarray(5, jnp.int32),
        )

    return jax.vmap(member)(xs, boot)
