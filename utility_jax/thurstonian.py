r"""Thurstonian (and Bradley-Terry) utility models fitted to pairwise vote counts.

Model. Outcome ``i`` has a random utility :math:`U_i \sim N(\mu_i, \sigma_i^2)` and

.. math::  P(i \succ j) = \Phi\big((\mu_i - \mu_j) / \sqrt{\sigma_i^2 + \sigma_j^2}\big).

* ``case3``: a mean and a log-variance per outcome (Thurstone's case III, the paper's model).
* ``case5``: one shared variance, fixed to :math:`\sigma_i = 1` (the scale gauge), so
  :math:`P = \Phi((\mu_i - \mu_j)/\sqrt 2)`.
* ``logit``: Bradley-Terry, :math:`P = \mathrm{sigmoid}(\mu_i - \mu_j)`; ``mu`` are the textbook
  log-strengths. Its ``sigma`` is reported as :math:`\pi/\sqrt 6`, the standard deviation of the
  Gumbel noise of the equivalent random-utility model.

Identifiability. The likelihood is invariant to a shift of all means (and, for case III, to a
common rescaling of means and standard deviations). We fix the gauge with a quadratic penalty
that is exactly zero on the chosen representative: ``mean(mu) = 0`` and, for case III,
``mean(log_var) = 0``. Optional weak priors, ``mu ~ N(0, mu_prior_scale^2)`` and
``log_var ~ N(0, logvar_prior_scale^2)``, keep perfectly separated data finite; setting both to
``None`` gives the maximum-likelihood fit. (The reference code has no prior and normalises the
means inside its loss; its variances reach ~600 on incoherent outcomes.)

Likelihood. Computed in log space (``log_ndtr``, ``log_sigmoid``) on vote counts; one function,
:func:`log_likelihood_pairwise`, serves fitting and evaluation.

Solver. L-BFGS with a zoom line search (optax) inside ``lax.while_loop``, to a gradient tolerance
on the objective scaled by ``n_items / total_votes``; then a second-order polish
(:mod:`utility_jax.second_order`: saddle-free Newton on the assembled Hessian, or Newton-CG above
``dense_max`` parameters), so ``converged`` means a verified minimum: a positive-definite Hessian
and a Newton decrement (distance to the minimum in posterior sd) below ``newton_tol``, at any
size. It never raises: it returns ``converged``, ``status``/``reason``, ``newton_decrement``,
``min_eigenvalue``, ``n_iter`` and ``grad_norm``.
"""

import dataclasses
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
from jax.flatten_util import ravel_pytree
from jax.scipy.special import log_ndtr, ndtr, xlogy

from utility_jax import second_order as SO
from utility_jax.data import PairwiseData

__all__ = [
    "FitConfig",
    "ThurstonianFit",
    "fit_thurstonian",
    "fit_thurstonian_batch",
    "log_likelihood_pairwise",
    "predict_proba",
    "predict_log_proba",
    "laplace_stderr",
    "bootstrap_pairwise",
    "fit_bootstrap",
    "normalize_utilities",
    "pair_proba",
    "link_of",
    "component_labels",
    "log_proba_pairwise",
]

Model = Literal["case3", "case5", "logit"]
_LOGIT_SIGMA = math.pi / math.sqrt(6.0)


#: ``ThurstonianFit.status`` codes
FIT_STATUS = {
    0: "verified minimum (positive-definite Hessian, Newton decrement below newton_tol)",
    1: "gradient tolerance reached; minimum not verified (polish='none')",
    2: "not a minimum: the Hessian has a non-positive eigenvalue (a saddle or a flat direction, "
    "e.g. unidentified utilities without a prior)",
    3: "Newton decrement above newton_tol after polish_steps (not yet at the minimum)",
    4: "gradient tolerance not reached (max_iter, or the line search stalled)",
    5: "one Newton step from a verified estimate (a one-step bootstrap member, not a refit)",
}


def link_of(model: str) -> str:
    """The choice link of a model: ``"logit"`` for Bradley-Terry, ``"probit"`` for cases III/V."""
    return "logit" if model == "logit" else "probit"


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Hyperparameters of :func:`fit_thurstonian` (hashable: a static jit argument).

    Attributes:
      model: ``"case3"`` | ``"case5"`` | ``"logit"``.
      mu_prior_scale: sd of the N(0, s^2) prior on means; ``None`` for none (ML fit).
      logvar_prior_scale: sd of the N(0, s^2) prior on log-variances (case III only);
        ``None`` reproduces the reference (no prior).
      edge_weight: ``"votes"`` weights each pair by its vote count; ``"uniform"`` gives each
        pair weight 1 with a soft label (the reference's loss).
      max_iter: L-BFGS iterations at most.
      gtol: convergence when ``max|grad|`` of the scaled objective is below this. ``None``
        picks by dtype: 1e-3 in float32 (the objective's round-off floor on 500-outcome problems;
        the means are then within ~1e-3 of the optimum on a scale where they spread ~1) and
        1e-6 in float64.
      memory_size: L-BFGS history length.
      init_scale: sd of the random initial means when a key is given (reference: 0.01).
      polish: second-order steps after L-BFGS that make ``converged`` mean a verified minimum
        (:mod:`utility_jax.second_order`): ``"dense"`` (exact Hessian, saddle-free Newton),
        ``"cg"`` (matrix-free Newton-CG and a Lanczos check, for large problems), ``"auto"``
        (dense up to ``dense_max`` parameters) or ``"none"`` (L-BFGS alone: ``converged`` then
        only means the gradient tolerance).
      polish_steps: Newton steps at most (they stop earlier at a decrement of
        ``newton_tol / 10``, or where round-off stops it falling).
      newton_tol: ``converged`` needs a Newton decrement below this: the fit is then within
        ``newton_tol`` posterior standard deviations of the minimum (in the Hessian's metric),
        whatever the number of outcomes or votes.
      dense_max: the most parameters for the dense polish under ``"auto"``.
      position_bias: estimate one shift of the latent difference toward the option shown first
        (the home-advantage term of Bradley-Terry), with a N(0, bias_prior_scale^2) prior; it
        applies to presentation rows (``PairwiseData.position``), not to pooled ones.
    """

    model: Model = "case3"
    mu_prior_scale: float | None = 10.0
    logvar_prior_scale: float | None = 2.0
    edge_weight: Literal["votes", "uniform"] = "votes"
    max_iter: int = 1000
    gtol: float | None = None
    memory_size: int = 10
    init_scale: float = 0.01
    position_bias: bool = False
    bias_prior_scale: float = 1.0
    polish: Literal["auto", "dense", "cg", "none"] = "auto"
    polish_steps: int = 30
    newton_tol: float = 1e-3
    dense_max: int = 2048

    def __post_init__(self):
        if self.polish not in ("auto", "dense", "cg", "none"):
            raise ValueError(f"polish must be auto, dense, cg or none, got {self.polish!r}")
        if self.model not in ("case3", "case5", "logit"):
            raise ValueError(f"model must be case3, case5 or logit, got {self.model!r}")
        if self.edge_weight not in ("votes", "uniform"):
            raise ValueError(f"edge_weight must be votes or uniform, got {self.edge_weight!r}")
        for name in ("mu_prior_scale", "logvar_prior_scale"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"{name} must be positive or None, got {v}")
        if self.max_iter < 1 or (self.gtol is not None and not self.gtol > 0):
            raise ValueError("max_iter must be >= 1 and gtol > 0")

    @property
    def link(self) -> str:
        return link_of(self.model)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ThurstonianFit:
    """Result of :func:`fit_thurstonian` (extra leading axes when batched).

    Attributes:
      mu: ``[..., n_items]`` means on the model's own scale (gauge: mean 0).
      log_var: ``[..., n_items]`` log-variances (zeros for case V; for logit see ``sigma``).
      converged: ``[...]`` bool: a verified local minimum (positive-definite Hessian and a
        Newton decrement below ``newton_tol``); with ``polish="none"``, the gradient tolerance.
        ``reason`` says why not.
      n_iter: ``[...]`` int, L-BFGS iterations used.
      grad_norm: ``[...]`` max-abs gradient of the scaled objective at the solution.
      nll: ``[...]`` negative log-likelihood (sum over votes, no prior) at the solution.
      link: ``"probit"`` or ``"logit"`` (static).
      n_components: ``[...]`` int, connected components of the comparison graph (an outcome
        never compared is a component of its own). With more than one, utilities compare only
        within a component, and each component's means are centred on their own (mean 0), not
        left at an arbitrary offset. None for fits made elsewhere (the reference algorithm).
      position_bias: ``[...]`` the first-slot shift (None: not estimated).
      newton_decrement: ``[...]`` the Newton decrement at the solution, in posterior sd units
        (None without a polish).
      min_eigenvalue: ``[...]`` the smallest eigenvalue of the Hessian of the negative log
        posterior at the solution (None without a polish).
      status: ``[...]`` int code of :data:`FIT_STATUS` (``reason`` spells it out).
    """

    mu: jax.Array
    log_var: jax.Array
    converged: jax.Array
    n_iter: jax.Array
    grad_norm: jax.Array
    nll: jax.Array
    link: str = dataclasses.field(default="probit", metadata=dict(static=True))
    n_components: jax.Array | None = None
    position_bias: jax.Array | None = None
    newton_decrement: jax.Array | None = None
    min_eigenvalue: jax.Array | None = None
    status: jax.Array | None = None

    @property
    def reason(self) -> str:
        """Why the fit is (not) converged, in words (unbatched fits)."""
        if self.status is None:
            return "converged" if bool(self.converged) else "not converged"
        return FIT_STATUS[int(self.status)]

    @property
    def sigma(self) -> jax.Array:
        """``[..., n_items]`` standard deviations on the model's own scale."""
        if self.link == "logit":
            return jnp.full_like(self.mu, _LOGIT_SIGMA)
        return jnp.exp(0.5 * self.log_var)

    @property
    def mu_normalized(self) -> jax.Array:
        """Means rescaled to mean 0 / std 1 over outcomes, as the paper reports them."""
        return normalize_utilities(self.mu, self.sigma)[0]

    @property
    def position_bias_normalized(self) -> jax.Array | None:
        """The first-slot shift on the normalised scale (divided by the std of ``mu``), as the
        utilities are reported; None when not estimated."""
        if self.position_bias is None:
            return None
        return self.position_bias / jnp.std(self.mu, axis=-1)

    @property
    def position_bias_standardized(self) -> jax.Array | None:
        """The first-slot shift in units of a typical pair's noise: ``b / sqrt(2 mean(sigma^2))``
        (the root-mean-square of ``sqrt(sigma_A^2 + sigma_B^2)`` over all pairs). Free of the
        gauge, and the best-recovered of the shift's scales (``docs/uncertainty.md``); None when
        not estimated."""
        if self.position_bias is None:
            return None
        return standardize_shift(self.position_bias, self.log_var)

    @property
    def sigma_normalized(self) -> jax.Array:
        """Standard deviations on the normalised scale (divided by the std of ``mu``)."""
        return normalize_utilities(self.mu, self.sigma)[1]


def standardize_shift(bias: jax.Array, log_var: jax.Array) -> jax.Array:
    """``bias / sqrt(2 mean(exp(log_var)))`` over the last axis (see
    :attr:`ThurstonianFit.position_bias_standardized`)."""
    return bias / jnp.sqrt(2.0 * jnp.mean(jnp.exp(log_var), axis=-1))


@jax.jit
def normalize_utilities(mu: jax.Array, sigma: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Rescale ``mu`` to mean 0 / std 1 along the last axis and ``sigma`` alike."""
    sd = jnp.std(mu, axis=-1, keepdims=True)
    sd = jnp.where(sd > 0, sd, 1.0)
    return (mu - mu.mean(axis=-1, keepdims=True)) / sd, sigma / sd


# --------------------------------------------------------------------------- likelihood
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


def pair_proba(d, var_sum, link: str = "probit"):
    r"""The choice link, P(first preferred) from the latent difference ``d``: the one place it is
    written in linear space (the simulated agent and the NumPyro model use it).

    ``probit``: :math:`\Phi(d / \sqrt{\sigma_a^2 + \sigma_b^2})` with ``var_sum`` the sum of
    variances; ``logit``: :math:`\mathrm{sigmoid}(d)` (``var_sum`` ignored).
    :func:`log_proba_pairwise` is its log-space twin for likelihoods.
    """
    if link == "logit":
        return jax.nn.sigmoid(d)
    return ndtr(d / jnp.sqrt(var_sum))


def log_proba_pairwise(mu, log_var, idx_a, idx_b, link, shift=0.0):
    """log P(a > b) and log P(b > a), computed without leaving log space; ``shift`` is added to
    the latent difference (a position bias toward ``a`` when it was shown first)."""
    d = mu[..., idx_a] - mu[..., idx_b] + shift
    if link == "logit":
        return jax.nn.log_sigmoid(d), jax.nn.log_sigmoid(-d)
    z = d * jax.lax.rsqrt(jnp.exp(log_var[..., idx_a]) + jnp.exp(log_var[..., idx_b]))
    return _log_ndtr_pair(z)


@jax.jit(static_argnames=("link",))
def log_likelihood_pairwise(
    mu: jax.Array, log_var: jax.Array, data: PairwiseData, link: str = "probit", bias=None
) -> jax.Array:
    r"""Log-likelihood of vote counts, summed over (unmasked) pairs.

    .. math:: \sum_e n_{a,e} \log P(a_e \succ b_e) + (n_e - n_{a,e}) \log P(b_e \succ a_e)

    Args:
      mu: ``[n_items]`` means. log_var: ``[n_items]`` log-variances (ignored for logit).
      data: unbatched :class:`PairwiseData`.
      link: ``"probit"`` or ``"logit"``.

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


# --------------------------------------------------------------------------- objective
def _weighted(data: PairwiseData, cfg: FitConfig) -> PairwiseData:
    if cfg.edge_weight == "uniform":
        return data.with_votes(data.n_a / data.n_total, jnp.ones_like(data.n_total))
    return data


def _unpack(params, n_items, cfg, dtype):
    mu = params["mu"]
    if cfg.model != "case3":
        return mu, jnp.zeros((n_items,), dtype)
    # The solver works on log sigma: L-BFGS needs ~40% fewer iterations than on log sigma^2
    # (the two blocks' curvatures match better; measured on the N=500 benchmark problem).
    # The Laplace approximation differentiates with respect to log sigma^2 directly.
    if "log_sigma" in params:
        return mu, 2.0 * params["log_sigma"]
    return mu, params["log_var"]


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


def _prior_penalty(mu, log_var, bias, n, cfg: FitConfig):
    """The gauge penalties and the priors (a quadratic in the parameters)."""
    obj = 0.5 * n * jnp.mean(mu) ** 2  # location gauge: zero at mean(mu) = 0
    if cfg.mu_prior_scale is not None:
        obj = obj + 0.5 * jnp.sum(mu**2) / cfg.mu_prior_scale**2
    if cfg.model == "case3":
        obj = obj + 0.5 * n * jnp.mean(log_var) ** 2  # scale gauge: mean(log_var) = 0
        if cfg.logvar_prior_scale is not None:
            obj = obj + 0.5 * jnp.sum(log_var**2) / cfg.logvar_prior_scale**2
    if bias is not None:
        obj = obj + 0.5 * jnp.sum(bias**2) / cfg.bias_prior_scale**2
    return obj


# --------------------------------------------------------------------------- second order
# The polish works on one flat vector: [mu (n), log_sigma (n, case III), bias (1, if fitted)].
def _flatten(params, cfg: FitConfig) -> jax.Array:
    parts = [params["mu"]]
    if cfg.model == "case3":
        parts.append(params["log_sigma"])
    if cfg.position_bias:
        parts.append(jnp.reshape(params["bias"], (1,)))
    return jnp.concatenate(parts)


def _unflatten(x, n: int, cfg: FitConfig):
    params = {"mu": x[:n]}
    if cfg.model == "case3":
        params["log_sigma"] = x[n : 2 * n]
    if cfg.position_bias:
        params["bias"] = x[-1]
    return params


def _row_columns(data: PairwiseData, cfg: FitConfig) -> jax.Array:
    """``[rows, k]`` the flat-vector positions of the parameters each row depends on."""
    n, a, b = data.n_items, data.idx_a, data.idx_b
    cols = [a, b]
    if cfg.model == "case3":
        cols += [n + a, n + b]
    if cfg.position_bias:
        cols.append(jnp.full_like(a, n * (2 if cfg.model == "case3" else 1)))
    return jnp.stack(cols, -1)


def _row_hessians(x, data: PairwiseData, cfg: FitConfig) -> jax.Array:
    """``[rows, k, k]`` each row's Hessian of its negative log-likelihood with respect to the
    ``k`` parameters it depends on (the Hessian is their sum, scattered, plus the priors')."""
    cols = _row_columns(data, cfg)
    pos = jnp.zeros_like(data.n_a) if data.position is None else data.position

    def row_nll(v, n_a, n_t, position):
        lv = 2.0 * v[2:4] if cfg.model == "case3" else jnp.zeros((2,), v.dtype)
        shift = v[-1] * position if cfg.position_bias else 0.0
        lp, lq = log_proba_pairwise(v[:2], lv, 0, 1, cfg.link, shift)
        return -(n_a * lp + (n_t - n_a) * lq)

    hs = jax.vmap(jax.hessian(row_nll))(x[cols], data.n_a, data.n_total, pos)
    return jnp.where(data.mask[:, None, None], hs, 0.0)


def _prior_flat(x, n: int, cfg: FitConfig):
    p = _unflatten(x, n, cfg)
    log_var = 2.0 * p["log_sigma"] if cfg.model == "case3" else jnp.zeros_like(p["mu"])
    return _prior_penalty(p["mu"], log_var, p.get("bias"), n, cfg)


def _dense_hessian(x, data: PairwiseData, cfg: FitConfig) -> jax.Array:
    cols = _row_columns(data, cfg)
    hs = _row_hessians(x, data, cfg)
    h = jax.hessian(_prior_flat)(x, data.n_items, cfg)
    rows = jnp.broadcast_to(cols[:, :, None], hs.shape).reshape(-1)
    colm = jnp.broadcast_to(cols[:, None, :], hs.shape).reshape(-1)
    return h.at[rows, colm].add(hs.reshape(-1))


def _hvp_at(x, data: PairwiseData, cfg: FitConfig):
    """``(v -> H v, diag H)`` at ``x``, from the rows' Hessians (computed once)."""
    cols = _row_columns(data, cfg)
    hs = _row_hessians(x, data, cfg)
    n, size = data.n_items, x.shape[0]
    prior_grad = jax.grad(_prior_flat)

    def hvp(v):
        local = jnp.einsum("rij,rj->ri", hs, v[cols])
        hv = jax.ops.segment_sum(local.reshape(-1), cols.reshape(-1), size)
        return hv + jax.jvp(lambda y: prior_grad(y, n, cfg), (x,), (v,))[1]

    diag = jax.ops.segment_sum(
        jnp.diagonal(hs, axis1=1, axis2=2).reshape(-1), cols.reshape(-1), size
    )
    return hvp, diag + _prior_diag(n, size, cfg, x.dtype)


def _prior_diag(n: int, size: int, cfg: FitConfig, dtype) -> jax.Array:
    """The diagonal of the Hessian of :func:`_prior_penalty` on the flat vector."""
    d = jnp.full((size,), 1.0 / n, dtype)  # location gauge
    if cfg.mu_prior_scale is not None:
        d = d.at[:n].add(1.0 / cfg.mu_prior_scale**2)
    if cfg.model == "case3":  # log_var = 2 log_sigma
        s = cfg.logvar_prior_scale
        d = d.at[n : 2 * n].set(4.0 / n + (0.0 if s is None else 4.0 / s**2))
    if cfg.position_bias:
        d = d.at[-1].set(1.0 / cfg.bias_prior_scale**2)
    return d


def _prior_sd_inverse(n: int, size: int, cfg: FitConfig, dtype) -> jax.Array:
    """Per flat parameter, the square root of the prior's own curvature (without the gauge):
    ``1/s`` for the means and the shift, ``2/s`` for log sigma (``log_var = 2 log_sigma``)."""
    c = jnp.zeros((size,), dtype)
    if cfg.mu_prior_scale is not None:
        c = c.at[:n].set(1.0 / cfg.mu_prior_scale)
    if cfg.model == "case3" and cfg.logvar_prior_scale is not None:
        c = c.at[n : 2 * n].set(2.0 / cfg.logvar_prior_scale)
    if cfg.position_bias:
        c = c.at[-1].set(1.0 / cfg.bias_prior_scale)
    return c


def _params_of(fit: ThurstonianFit, cfg: FitConfig, solver: bool = True):
    """A fit's parameters as the solver's dict (``log_sigma``) or the objective's (``log_var``)."""
    params = {"mu": fit.mu}
    if cfg.model == "case3":
        if solver:
            params["log_sigma"] = 0.5 * fit.log_var
        else:
            params["log_var"] = fit.log_var
    if cfg.position_bias:
        params["bias"] = jnp.asarray(fit.position_bias).reshape(())
    return params


def _polish_mode(cfg: FitConfig, size: int) -> str:
    if cfg.polish == "auto":
        return "dense" if size <= cfg.dense_max else "cg"
    return cfg.polish


def _component_gauge(n: int, size: int, cfg: FitConfig, lab):
    """With several connected components, each has its own location (and, case III, scale)
    freedom the global gauge does not fix: ``(penalty(x), hvp(v))`` of the quadratic
    ``0.5 sum_c size_c mean_c(.)^2`` on the means and log-variances (zero on the fitter's
    representative: each component centred on its own)."""
    ones = jnp.ones((n,), jnp.float32)
    count = jax.ops.segment_sum(ones, lab, n)
    multi = (jnp.sum(count > 0) > 1).astype(jnp.float32)

    def block_sums(v):  # sum_c size_c mean_c(v)^2 and its gradient M v
        tot = jax.ops.segment_sum(v, lab, n)
        return jnp.sum(tot**2 / jnp.maximum(count, 1.0)), tot[lab] / jnp.maximum(count[lab], 1.0)

    def penalty(x):
        out = block_sums(x[:n])[0]
        if cfg.model == "case3":
            out = out + 4.0 * block_sums(x[n : 2 * n])[0]  # log_var = 2 log_sigma
        return 0.5 * multi * out

    def hvp(v):
        hv = jnp.zeros((size,), v.dtype).at[:n].set(block_sums(v[:n])[1])
        if cfg.model == "case3":
            hv = hv.at[n : 2 * n].set(4.0 * block_sums(v[n : 2 * n])[1])
        return multi * hv

    return penalty, hvp


def _polish(params, wdata: PairwiseData, cfg: FitConfig, sat):
    """Second-order steps from the L-BFGS solution: ``(params, PolishInfo)`` (the L-BFGS
    solution back if the steps produced a non-finite value)."""
    n = wdata.n_items
    x0 = _flatten(params, cfg)
    pen, pen_hvp = _component_gauge(n, x0.shape[0], cfg, component_labels(wdata))

    def grad(x):
        def f(y):
            return _neg_log_posterior(_unflatten(y, n, cfg), wdata, cfg, sat) + pen(y)

        return jax.grad(f)(x)

    def hess(y):
        return _dense_hessian(y, wdata, cfg) + jax.vmap(pen_hvp)(jnp.eye(y.shape[0], dtype=y.dtype))

    def hvp_at(y):
        hvp, diag = _hvp_at(y, wdata, cfg)
        return (lambda v: hvp(v) + pen_hvp(v)), diag

    dense = _polish_mode(cfg, x0.shape[0]) == "dense"
    polish, second = (SO.newton_polish, hess) if dense else (SO.newton_cg_polish, hvp_at)
    x, info = polish(x0, grad, second, max_steps=cfg.polish_steps, floor=0.1 * cfg.newton_tol)
    x = jnp.where(jnp.all(jnp.isfinite(x)), x, x0)
    return _unflatten(x, n, cfg), info


def component_labels(data: PairwiseData) -> jax.Array:
    """``[n_items]`` the connected component of every outcome in the comparison graph (its label
    is the smallest outcome index in it), by label propagation with pointer jumping (jit-able;
    a few sweeps over the pairs for a random graph)."""
    n = data.n_items
    a, b = data.idx_a, data.idx_b

    def body(carry):
        lab, _ = carry
        lo = jnp.where(data.mask, jnp.minimum(lab[a], lab[b]), n)
        new = jnp.minimum(lab, jax.ops.segment_min(lo, a, n))
        new = jnp.minimum(new, jax.ops.segment_min(lo, b, n))
        new = new[new]
        return new, jnp.any(new != lab)

    lab0 = jnp.arange(n, dtype=jnp.int32)
    lab, _ = jax.lax.while_loop(lambda c: c[1], body, (lab0, jnp.asarray(True)))
    return lab


def _center_components(mu: jax.Array, lab: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(mu, n_components)``: with several components, each component's means shifted to mean
    0 (the likelihood cannot see such shifts; the weak prior barely can); else ``mu`` as is."""
    n = mu.shape[-1]
    size = jax.ops.segment_sum(jnp.ones_like(mu), lab, n)
    mean = jax.ops.segment_sum(mu, lab, n) / jnp.maximum(size, 1.0)
    n_comp = jnp.sum(lab == jnp.arange(n, dtype=lab.dtype))
    return jnp.where(n_comp > 1, mu - mean[lab], mu), n_comp


def _objective_scale(data: PairwiseData) -> jax.Array:
    total = jnp.sum(jnp.where(data.mask, data.n_total, 0.0))
    return data.n_items / jnp.maximum(total, 1.0)


def _init_params(data: PairwiseData, cfg: FitConfig, key, init):
    n, dtype = data.n_items, data.n_a.dtype
    if init is not None:
        params = {"mu": jnp.asarray(init.mu, dtype)}
        if cfg.model == "case3":
            params["log_sigma"] = 0.5 * jnp.asarray(init.log_var, dtype)
    else:
        mu = jnp.zeros((n,), dtype)
        if key is not None:
            mu = cfg.init_scale * jax.random.normal(key, (n,), dtype)
        params = {"mu": mu}
        if cfg.model == "case3":
            params["log_sigma"] = jnp.zeros((n,), dtype)
    if cfg.position_bias:
        b0 = init.position_bias if init is not None and init.position_bias is not None else 0.0
        params["bias"] = jnp.asarray(b0, dtype).reshape(())
    return params


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
        (``fit_thurstonian(data, model="logit")``).
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
    see :func:`utility_jax.data.stack`) and get a batched :class:`ThurstonianFit` back.

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


# --------------------------------------------------------------------------- uncertainty
def laplace_stderr(
    fit: ThurstonianFit, data: PairwiseData, *, cfg: FitConfig | None = None, **overrides
) -> dict[str, jax.Array]:
    """Laplace (inverse-Hessian) standard errors at a fit, on the model's own scale.

    Returns a dict with ``mu`` and (case III) ``log_var`` and ``sigma`` (delta method) standard
    errors, and ``min_eigenvalue`` of the gauge-projected Hessian: when it is not positive (the
    fit stopped on a flat or saddle direction) every error is NaN. The Hessian is that of the
    negative log posterior (likelihood and priors) restricted to the gauge (mean-zero means, and
    mean-zero log-variances for case III), so the errors are those of the representative the
    fitter reports. Dense: O(n_items^2) memory, O(n_items^3) time.
    """
    cfg = _config(cfg, overrides)
    if fit.link != cfg.link:
        raise ValueError(
            f"the fit is a {fit.link} fit but the config's model is {cfg.model!r}: pass the "
            f"config (or model=...) the fit was made with"
        )
    if fit.mu.shape[-1] != data.n_items:
        raise ValueError(f"the fit has {fit.mu.shape[-1]} items but the data {data.n_items}")
    return _laplace_jit(fit, data, cfg)


@jax.jit(static_argnames=("cfg",))
def _laplace_jit(fit, data, cfg):
    def _lv(p):  # case V and the logit model: unit variances
        return p["log_var"] if "log_var" in p else jnp.zeros_like(p["mu"])

    params = _params_of(fit, cfg, solver=False)  # derivatives with respect to log sigma^2
    wdata = _weighted(data, cfg)
    flat, unravel = ravel_pytree(params)
    h = jax.hessian(lambda x: _neg_log_posterior(unravel(x), wdata, cfg))(flat)
    # Covariance on the gauge's tangent space (mean(mu) = 0 and, for case III,
    # mean(log_var) = 0): cov = P (P H P + I - P)^-1 P with P the projector onto it. Inverting
    # H itself would add the gauge penalty's own (arbitrary) variance along the constant direction.
    # (ravel_pytree orders a dict's blocks by key; the bias is a free scalar.)
    n = data.n_items
    center = jnp.eye(n, dtype=h.dtype) - 1.0 / n
    blocks = {"mu": center, "log_var": center, "bias": jnp.eye(1, dtype=h.dtype)}
    proj = jax.scipy.linalg.block_diag(*[blocks[k] for k in sorted(params)])
    eye = jnp.eye(proj.shape[0], dtype=h.dtype)
    a = proj @ h @ proj + eye - proj
    w, v = jnp.linalg.eigh(0.5 * (a + a.T))
    # a fit stopped where the Hessian is not positive definite (a flat or saddle direction) has
    # no Laplace approximation: NaN, never a misleading zero
    ok = w[0] > 0
    cov = proj @ (v / jnp.where(ok, w, 1.0)) @ v.T @ proj
    se = unravel(jnp.where(ok, jnp.sqrt(jnp.clip(jnp.diag(cov), 0.0)), jnp.nan))
    out = {"mu": se["mu"], "min_eigenvalue": w[0]}
    if cfg.position_bias:
        out["position_bias"] = se["bias"]
        # delta method, with the covariance of the shift and the log-variances
        grad = jax.grad(lambda x: standardize_shift(unravel(x)["bias"], _lv(unravel(x))))(flat)
        out["position_bias_standardized"] = jnp.where(
            ok, jnp.sqrt(jnp.clip(grad @ cov @ grad, 0.0)), jnp.nan
        )
    if cfg.model == "case3":
        out["log_var"] = se["log_var"]
        out["sigma"] = 0.5 * fit.sigma * se["log_var"]
    return out


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
    p = None
    if resample == "model":
        if init is None:
            raise ValueError("resample='model' draws from a fit's probabilities: pass init=the fit")
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
        if init is None:
            raise ValueError("refit='one_step' steps from an estimate: pass init=the fit")
        cfg = _config(cfg, overrides)
        z = None
        if randomize_prior:
            size = _flatten(_params_of(init, cfg), cfg).shape[0]
            z = jax.random.normal(jax.random.fold_in(key, 1), (n_boot, size), data.n_a.dtype)
        return _one_step_jit(boot, data, init, cfg, z)
    if randomize_prior:
        raise ValueError("randomize_prior needs refit='one_step'")
    binit = None
    if init is not None:
        binit = jax.tree.map(lambda x: jnp.broadcast_to(x, (n_boot,) + jnp.shape(x)), init)
    return fit_thurstonian_batch(boot, cfg=cfg, init=binit, method=method, **overrides)


@jax.jit(static_argnames=("cfg",))
def _one_step_jit(boot: PairwiseData, data: PairwiseData, fit: ThurstonianFit, cfg: FitConfig, z):
    """One Newton step per bootstrap member from ``fit`` (see :func:`fit_bootstrap`); ``z``:
    ``[n_boot, size]`` standard normals that randomise the prior centres, or None."""
    n = data.n_items
    wdata = _weighted(data, cfg)
    x = _flatten(_params_of(fit, cfg), cfg)
    pen, pen_hvp = _component_gauge(n, x.shape[0], cfg, component_labels(wdata))

    def grad_of(d):
        def f(y):
            return _neg_log_posterior(_unflatten(y, n, cfg), d, cfg, _saturated(d)) + pen(y)

        return jax.grad(f)(x)

    g0 = grad_of(wdata)
    gb = jax.lax.map(lambda d: grad_of(_weighted(d, cfg)) - g0, boot, batch_size=16)
    if z is not None:  # a prior centre moved by delta ~ N(0, s^2) shifts the gradient by -delta/s^2
        gb = gb - z * _prior_sd_inverse(n, x.shape[0], cfg, x.dtype)
    if _polish_mode(cfg, x.shape[0]) == "cg":
        hvp, diag = _hvp_at(x, wdata, cfg)
        minv = 1.0 / jnp.maximum(diag, 1e-12)

        def solve(g):
            return SO._pcg(lambda v: hvp(v) + pen_hvp(v), g, lambda r: minv * r, 500, 1e-6)[0]

        steps = jax.lax.map(solve, gb)
    else:
        h = _dense_hessian(x, wdata, cfg) + jax.vmap(pen_hvp)(jnp.eye(x.shape[0], dtype=x.dtype))
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
