r"""The utility models: what a fit is made of, before any data.

Outcome ``i`` has a random utility :math:`U_i \sim N(\mu_i, \sigma_i^2)` and

.. math::  P(i \succ j) = \Phi\big((\mu_i - \mu_j) / \sqrt{\sigma_i^2 + \sigma_j^2}\big).

Each :class:`UtilityModel` in :data:`MODELS` says what varies by model: the choice link, whether
every outcome has its own variance, the noise scale it reports, and so the parameter layout and
the prior. Nothing outside this module compares model names:

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

This module also holds :class:`FitConfig` (the model, its prior and the solver's settings) and
:class:`ThurstonianFit` (a fit's output), as OTT-JAX keeps a problem apart from its solver
(:mod:`~utility_jax.core.fit`) and the likelihood (:mod:`~utility_jax.core.likelihood`).
"""

import dataclasses
import math
from typing import Literal

import jax
import jax.numpy as jnp

from utility_jax.core.data import PairwiseData

__all__ = [
    "FIT_STATUS",
    "LINKS",
    "MODELS",
    "FitConfig",
    "ThurstonianFit",
    "UtilityModel",
    "component_labels",
    "get_model",
    "link_of",
    "normalize_utilities",
    "standardize_shift",
]

PROBIT = "probit"
LOGIT = "logit"
#: the choice links: the normal CDF of the scaled difference, or the logistic of the difference
LINKS = (PROBIT, LOGIT)


@dataclasses.dataclass(frozen=True)
class UtilityModel:
    """One utility model: its choice link, its parameter layout and the noise it reports.

    Attributes:
      name: the name configs use (``fitter.model``, ``BayesConfig.model``).
      link: :data:`PROBIT` or :data:`LOGIT`.
      learns_variance: a log-variance per outcome (case III); else every outcome's noise is
        fixed (unit variance for case V; the Gumbel scale for Bradley-Terry).
      fixed_sigma: the standard deviation reported for every outcome when the variance is not
        learned (``None`` when it is).
      description: one line, shown where a config names an unknown model.
    """

    name: str
    link: str
    learns_variance: bool
    fixed_sigma: float | None
    description: str

    def blocks(self, position_bias: bool) -> tuple[str, ...]:
        """The solver's parameter blocks, in the order of the flat vector."""
        return (
            ("mu",)
            + (("log_sigma",) if self.learns_variance else ())
            + (("bias",) if position_bias else ())
        )

    def n_params(self, n_items: int, position_bias: bool) -> int:
        """The length of the flat parameter vector."""
        return n_items * (2 if self.learns_variance else 1) + int(position_bias)


CASE3 = UtilityModel(
    "case3", PROBIT, True, None, "Thurstone's case III: a mean and a variance per outcome"
)
CASE5 = UtilityModel("case5", PROBIT, False, 1.0, "Thurstone's case V: one shared unit variance")
BRADLEY_TERRY = UtilityModel(
    "logit", LOGIT, False, math.pi / math.sqrt(6.0), "Bradley-Terry: the logistic link"
)
#: every model by its config name
MODELS: dict[str, UtilityModel] = {m.name: m for m in (CASE3, CASE5, BRADLEY_TERRY)}
DEFAULT_MODEL = CASE3.name


def get_model(name: str) -> UtilityModel:
    """The :class:`UtilityModel` of a config name; a ``ValueError`` names the choices."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        known = "; ".join(f"{m.name} ({m.description})" for m in MODELS.values())
        raise ValueError(f"model must be one of: {known}; got {name!r}") from None


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
    """The choice link of a model by its config name (:attr:`UtilityModel.link`)."""
    return get_model(model).link


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Hyperparameters of :func:`fit_thurstonian` (hashable: a static jit argument).

    Attributes:
      model: a name in :data:`MODELS` (case3, case5 or logit).
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
        (:mod:`utility_jax.core.second_order`): ``"dense"`` (exact Hessian, saddle-free Newton),
        ``"cg"`` (matrix-free: a certificate from one conjugate-gradient solve first, Newton-CG
        steps only where it fails; its smallest eigenvalue is the Krylov estimate, an upper
        bound), ``"auto"`` (dense up to ``dense_max`` parameters, where it is the faster one) or ``"none"`` (L-BFGS alone: ``converged`` then
        only means the gradient tolerance).
      polish_steps: Newton steps at most (they stop earlier at a decrement of
        ``newton_tol / 10``, or where round-off stops it falling).
      newton_tol: ``converged`` needs a Newton decrement below this: the fit is then within
        ``newton_tol`` posterior standard deviations of the minimum (in the Hessian's metric),
        whatever the number of outcomes or votes.
      dense_max: the most parameters for the dense polish under ``"auto"`` (300: the
        crossover measured on a 2-core CPU, ``benchmarks/bench_fit.py --n``; dense is faster
        below it).
      matvec_dense_max: the most parameters for which the matrix-free polish still assembles
        the Hessian and applies it as a dense product (faster on a CPU than the rows' scatter
        at these sizes; the cost is ``size^2`` memory).
      position_bias: estimate one shift of the latent difference toward the option shown first
        (the home-advantage term of Bradley-Terry), with a N(0, bias_prior_scale^2) prior; it
        applies to presentation rows (``PairwiseData.position``), not to pooled ones.
    """

    model: str = DEFAULT_MODEL
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
    dense_max: int = 300
    matvec_dense_max: int = 4096

    def __post_init__(self):
        if self.polish not in ("auto", "dense", "cg", "none"):
            raise ValueError(f"polish must be auto, dense, cg or none, got {self.polish!r}")
        get_model(self.model)  # a ValueError that lists the models
        if self.edge_weight not in ("votes", "uniform"):
            raise ValueError(f"edge_weight must be votes or uniform, got {self.edge_weight!r}")
        for name in ("mu_prior_scale", "logvar_prior_scale"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"{name} must be positive or None, got {v}")
        if self.max_iter < 1 or (self.gtol is not None and not self.gtol > 0):
            raise ValueError("max_iter must be >= 1 and gtol > 0")

    @property
    def utility_model(self) -> UtilityModel:
        """The :class:`UtilityModel` named by ``model``."""
        return MODELS[self.model]

    @property
    def link(self) -> str:
        """The model's choice link."""
        return self.utility_model.link


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
      link: :data:`PROBIT` or :data:`LOGIT` (static).
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
    link: str = dataclasses.field(default=PROBIT, metadata=dict(static=True))
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
        if self.link == LOGIT:  # Bradley-Terry: the Gumbel noise's sd
            return jnp.full_like(self.mu, BRADLEY_TERRY.fixed_sigma)
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


def _unpack(params, n_items, cfg, dtype):
    mu = params["mu"]
    if not cfg.utility_model.learns_variance:
        return mu, jnp.zeros((n_items,), dtype)
    # The solver works on log sigma: L-BFGS needs ~40% fewer iterations than on log sigma^2
    # (the two blocks' curvatures match better; measured on the N=500 benchmark problem).
    # The Laplace approximation differentiates with respect to log sigma^2 directly.
    if "log_sigma" in params:
        return mu, 2.0 * params["log_sigma"]
    return mu, params["log_var"]


def _prior_penalty(mu, log_var, bias, n, cfg: FitConfig):
    """The gauge penalties and the priors (a quadratic in the parameters)."""
    obj = 0.5 * n * jnp.mean(mu) ** 2  # location gauge: zero at mean(mu) = 0
    if cfg.mu_prior_scale is not None:
        obj = obj + 0.5 * jnp.sum(mu**2) / cfg.mu_prior_scale**2
    if cfg.utility_model.learns_variance:
        obj = obj + 0.5 * n * jnp.mean(log_var) ** 2  # scale gauge: mean(log_var) = 0
        if cfg.logvar_prior_scale is not None:
            obj = obj + 0.5 * jnp.sum(log_var**2) / cfg.logvar_prior_scale**2
    if bias is not None:
        obj = obj + 0.5 * jnp.sum(bias**2) / cfg.bias_prior_scale**2
    return obj


# The polish works on one flat vector: [mu (n), log_sigma (n, case III), bias (1, if fitted)].
def _flatten(params, cfg: FitConfig) -> jax.Array:
    blocks = cfg.utility_model.blocks(cfg.position_bias)
    return jnp.concatenate([jnp.reshape(params[b], (-1,)) for b in blocks])


def _unflatten(x, n: int, cfg: FitConfig):
    params = {"mu": x[:n]}
    if cfg.utility_model.learns_variance:
        params["log_sigma"] = x[n : 2 * n]
    if cfg.position_bias:
        params["bias"] = x[-1]
    return params


def _row_columns(data: PairwiseData, cfg: FitConfig) -> jax.Array:
    """``[rows, k]`` the flat-vector positions of the parameters each row depends on."""
    n, a, b = data.n_items, data.idx_a, data.idx_b
    cols = [a, b]
    if cfg.utility_model.learns_variance:
        cols += [n + a, n + b]
    if cfg.position_bias:
        cols.append(jnp.full_like(a, cfg.utility_model.n_params(n, position_bias=False)))
    return jnp.stack(cols, -1)


def _prior_diag(n: int, size: int, cfg: FitConfig, dtype) -> jax.Array:
    """The diagonal of the Hessian of :func:`_prior_penalty` on the flat vector."""
    d = jnp.full((size,), 1.0 / n, dtype)  # location gauge
    if cfg.mu_prior_scale is not None:
        d = d.at[:n].add(1.0 / cfg.mu_prior_scale**2)
    if cfg.utility_model.learns_variance:  # log_var = 2 log_sigma
        s = cfg.logvar_prior_scale
        d = d.at[n : 2 * n].set(4.0 / n + (0.0 if s is None else 4.0 / s**2))
    if cfg.position_bias:
        d = d.at[-1].set(1.0 / cfg.bias_prior_scale**2)
    return d


def _prior_hvp(v, n: int, cfg: FitConfig) -> jax.Array:
    """The Hessian of :func:`_prior_penalty` on the flat vector times ``v``, in closed form (a
    diagonal plus the gauges' rank-one terms): the matrix-free polish calls it once per
    Hessian-vector product."""
    hv = _prior_diag(n, v.shape[0], cfg, v.dtype) * v
    rank_one = jnp.zeros_like(v).at[:n].set(jnp.sum(v[:n]) / n - v[:n] / n)
    if cfg.utility_model.learns_variance:  # gauge 0.5 n mean(2 log_sigma)^2
        rank_one = rank_one.at[n : 2 * n].set(4.0 * (jnp.sum(v[n : 2 * n]) - v[n : 2 * n]) / n)
    return hv + rank_one


def _prior_hessian(n: int, size: int, cfg: FitConfig, dtype) -> jax.Array:
    """The Hessian of :func:`_prior_penalty` on the flat vector, dense (``size`` x ``size``)."""
    return jax.vmap(lambda v: _prior_hvp(v, n, cfg))(jnp.eye(size, dtype=dtype))


def _prior_sd_inverse(n: int, size: int, cfg: FitConfig, dtype) -> jax.Array:
    """Per flat parameter, the square root of the prior's own curvature (without the gauge):
    ``1/s`` for the means and the shift, ``2/s`` for log sigma (``log_var = 2 log_sigma``)."""
    c = jnp.zeros((size,), dtype)
    if cfg.mu_prior_scale is not None:
        c = c.at[:n].set(1.0 / cfg.mu_prior_scale)
    if cfg.utility_model.learns_variance and cfg.logvar_prior_scale is not None:
        c = c.at[n : 2 * n].set(2.0 / cfg.logvar_prior_scale)
    if cfg.position_bias:
        c = c.at[-1].set(1.0 / cfg.bias_prior_scale)
    return c


def _params_of(fit: ThurstonianFit, cfg: FitConfig, solver: bool = True):
    """A fit's parameters as the solver's dict (``log_sigma``) or the objective's (``log_var``)."""
    params = {"mu": fit.mu}
    if cfg.utility_model.learns_variance:
        if solver:
            params["log_sigma"] = 0.5 * fit.log_var
        else:
            params["log_var"] = fit.log_var
    if cfg.position_bias:
        params["bias"] = jnp.asarray(fit.position_bias).reshape(())
    return params


def _component_gauge(n: int, size: int, cfg: FitConfig, lab):
    """With several connected components, each has its own location (and, case III, scale)
    freedom the global gauge does not fix: ``(penalty(x), hvp(v), matrix())`` of the quadratic
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
        if cfg.utility_model.learns_variance:
            out = out + 4.0 * block_sums(x[n : 2 * n])[0]  # log_var = 2 log_sigma
        return 0.5 * multi * out

    def hvp(v):
        hv = jnp.zeros((size,), v.dtype).at[:n].set(block_sums(v[:n])[1])
        if cfg.utility_model.learns_variance:
            hv = hv.at[n : 2 * n].set(4.0 * block_sums(v[n : 2 * n])[1])
        return multi * hv

    def matrix():  # the same quadratic's Hessian, dense
        same = (lab[:, None] == lab[None, :]) / jnp.maximum(count[lab], 1.0)[:, None]
        m = jnp.zeros((size, size), jnp.float32).at[:n, :n].set(same)
        if cfg.utility_model.learns_variance:
            m = m.at[n : 2 * n, n : 2 * n].set(4.0 * same)
        return multi * m

    return penalty, hvp, matrix


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


def _init_params(data: PairwiseData, cfg: FitConfig, key, init):
    n, dtype = data.n_items, data.n_a.dtype
    if init is not None:
        params = {"mu": jnp.asarray(init.mu, dtype)}
        if cfg.utility_model.learns_variance:
            params["log_sigma"] = 0.5 * jnp.asarray(init.log_var, dtype)
    else:
        mu = jnp.zeros((n,), dtype)
        if key is not None:
            mu = cfg.init_scale * jax.random.normal(key, (n,), dtype)
        params = {"mu": mu}
        if cfg.utility_model.learns_variance:
            params["log_sigma"] = jnp.zeros((n,), dtype)
    if cfg.position_bias:
        b0 = init.position_bias if init is not None and init.position_bias is not None else 0.0
        params["bias"] = jnp.asarray(b0, dtype).reshape(())
    return params
