r"""Bayesian Thurstonian utilities: a NumPyro model, NUTS and SVI, posterior summaries.

Model (the fitter's likelihood and priors, as a generative model)::

    mu        ~ ZeroSumNormal(mu_prior_scale)        # sum-to-zero means: the location gauge
    log_sigma ~ ZeroSumNormal(logsigma_prior_scale)  # case III only: mean(log sigma) = 0, the
                                                     # scale gauge (the fitter's mean(log var) = 0)
    votes     ~ Binomial(n, Phi((mu_a - mu_b) / sqrt(sigma_a^2 + sigma_b^2)))

The identifiability choice is explicit and exact: both gauges are constraints of the prior, so no
chain can drift along a flat direction. With ``n_a`` given, the likelihood enters through
:func:`~utility_jax.core.model.log_likelihood_pairwise` (log space, fractional half-votes allowed);
without it the model samples vote counts (prior/posterior predictive).

Inference: NUTS initialised at the MAP fit with chains vectorised, or SVI with an ``AutoNormal``
or low-rank multivariate normal guide (initialised at the MAP) for large outcome sets.
"""

import dataclasses
import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO, init_to_value
from numpyro.infer.autoguide import AutoLowRankMultivariateNormal, AutoNormal

from utility_jax.core.bayes_config import BayesConfig
from utility_jax.core.data import PairwiseData
from utility_jax.core.likelihood import log_likelihood_pairwise, log_proba_pairwise, pair_proba
from utility_jax.core.model import DEFAULT_MODEL, ThurstonianFit, get_model

__all__ = [
    "BayesConfig",
    "Posterior",
    "thurstonian_model",
    "run_nuts",
    "run_svi",
    "summarize_posterior",
    "posterior_predictive_proba",
    "posterior_predictive_log_proba",
    "hdi",
]


def thurstonian_model(
    idx_a,
    idx_b,
    n_total,
    n_a=None,
    *,
    n_items: int,
    mask=None,
    variant: str = DEFAULT_MODEL,
    mu_prior_scale: float = 10.0,
    logsigma_prior_scale: float = 1.0,
    position=None,
    position_bias: bool = False,
    bias_prior_scale: float = 1.0,
    hierarchical: str = "none",
):
    """The Thurstonian model on vote counts (NumPyro; ``n_a=None`` samples the votes).

    ``variant`` names a :data:`~utility_jax.core.model.MODELS` entry (named so as not to clash
    with the ``model`` argument of NumPyro/ArviZ utilities). With ``position_bias``, a first-slot shift
    ``bias ~ N(0, bias_prior_scale^2)`` is added to the latent difference of every presentation
    row (``position`` 1; pooled rows have 0), as in the MAP fitter. ``hierarchical`` (``"none"``,
    ``"mu"``, ``"both"``) samples the prior scales (``mu_scale``, ``log_sigma_scale``) from
    half-normals of the given scales (see :class:`BayesConfig`).
    """
    if hierarchical not in ("none", "mu", "both"):
        raise ValueError(f"hierarchical must be none, mu or both, got {hierarchical!r}")
    mu_scale, ls_scale = mu_prior_scale, logsigma_prior_scale
    if hierarchical != "none":
        mu_scale = numpyro.sample("mu_scale", dist.HalfNormal(mu_prior_scale))
    mu = numpyro.sample("mu", dist.ZeroSumNormal(mu_scale, event_shape=(n_items,)))
    spec = get_model(variant)
    if spec.learns_variance and hierarchical == "both":  # non-centred: sigmas weakly identified
        ls_scale = numpyro.sample("log_sigma_scale", dist.HalfNormal(logsigma_prior_scale))
        z = numpyro.sample("log_sigma_z", dist.ZeroSumNormal(1.0, event_shape=(n_items,)))
        log_sigma = numpyro.deterministic("log_sigma", ls_scale * z)
    elif spec.learns_variance:
        log_sigma = numpyro.sample(
            "log_sigma", dist.ZeroSumNormal(ls_scale, event_shape=(n_items,))
        )
    else:
        log_sigma = jnp.zeros((n_items,), mu.dtype)
    log_var = 2.0 * log_sigma
    link = spec.link
    mask = jnp.ones(jnp.shape(idx_a), bool) if mask is None else mask
    bias = None
    if position_bias:
        bias = numpyro.sample("bias", dist.Normal(0.0, bias_prior_scale))
    shift = 0.0 if bias is None or position is None else bias * position
    if n_a is None:
        var_sum = jnp.exp(log_var[idx_a]) + jnp.exp(log_var[idx_b])
        p = pair_proba(mu[idx_a] - mu[idx_b] + shift, var_sum, link)
        with numpyro.handlers.mask(mask=mask):
            numpyro.sample("n_a", dist.Binomial(jnp.round(n_total).astype(jnp.int32), probs=p))
        return
    data = PairwiseData(idx_a, idx_b, n_a, n_total, mask, n_items, position)
    numpyro.factor("votes", log_likelihood_pairwise(mu, log_var, data, link, bias))


@dataclasses.dataclass
class Posterior:
    """Posterior draws on the model's own scale, with diagnostics.

    Attributes:
      mu: ``[draws, n_items]``. log_sigma: ``[draws, n_items]`` (zeros for case V / logit).
      method: ``"nuts"`` or ``"svi"``. link: the model's choice link (probit or logit).
      diagnostics: R-hat, ESS, divergences (NUTS), final ELBO loss (SVI), wall time.
      chains: number of chains (draws are chain-major).
    """

    mu: np.ndarray
    log_sigma: np.ndarray
    method: str
    link: str
    diagnostics: dict[str, Any]
    chains: int = 1
    inference_data: Any = None
    position_bias: np.ndarray | None = None  # [draws] the first-slot shift, when modelled
    scales: dict[str, np.ndarray] | None = None  # [draws] learned prior scales (hierarchical)

    @property
    def sigma(self) -> np.ndarray:
        """``[draws, n_items]`` standard deviations on the model's own scale."""
        return np.exp(self.log_sigma)

    def normalized(self) -> tuple[np.ndarray, np.ndarray]:
        """Draws of (mu, sigma) normalised per draw to mean 0 / sd 1 over outcomes."""
        sd = self.mu.std(axis=1, keepdims=True)
        return (self.mu - self.mu.mean(1, keepdims=True)) / sd, self.sigma / sd

    def save(self, path) -> None:
        """The draws as a compressed ``.npz`` (``mu``, ``log_sigma``, ``chains``)."""
        np.savez_compressed(path, mu=self.mu, log_sigma=self.log_sigma, chains=self.chains)


def _model_kwargs(data: PairwiseData, cfg: BayesConfig) -> dict:
    return dict(**_array_kwargs(data), **_static_kwargs(data.n_items, cfg))


def _array_kwargs(data: PairwiseData) -> dict:
    return dict(
        idx_a=data.idx_a,
        idx_b=data.idx_b,
        n_total=data.n_total,
        n_a=data.n_a,
        mask=data.mask,
        position=data.position,
    )


def _static_kwargs(n_items: int, cfg: BayesConfig) -> dict:
    return dict(
        n_items=n_items,
        variant=cfg.model,
        mu_prior_scale=cfg.mu_prior_scale,
        logsigma_prior_scale=cfg.logsigma_prior_scale,
        position_bias=cfg.position_bias,
        bias_prior_scale=cfg.bias_prior_scale,
        hierarchical=cfg.hierarchical,
    )


_SCALES = ("mu_scale", "log_sigma_scale")


def _init_values(fit: ThurstonianFit | None, cfg: BayesConfig) -> dict:
    if fit is None:
        return {}
    mu = jnp.asarray(fit.mu)
    vals = {"mu": mu - mu.mean()}
    if get_model(cfg.model).learns_variance:
        ls = 0.5 * jnp.asarray(fit.log_var)
        vals["log_sigma"] = ls - ls.mean()
    if cfg.position_bias:
        b = fit.position_bias
        vals["bias"] = jnp.asarray(0.0 if b is None else b, mu.dtype).reshape(())
    if cfg.hierarchical != "none":  # the scales the MAP's spread suggests
        vals["mu_scale"] = jnp.maximum(jnp.std(vals["mu"]), 1e-3)
        if get_model(cfg.model).learns_variance and cfg.hierarchical == "both":
            vals["log_sigma_scale"] = jnp.maximum(jnp.std(vals["log_sigma"]), 1e-3)
            vals["log_sigma_z"] = vals.pop("log_sigma") / vals["log_sigma_scale"]
    return vals


def _arviz_diagnostics(mcmc: MCMC) -> tuple[dict[str, Any], Any]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az

    idata = az.from_numpyro(mcmc, log_likelihood=False)
    rhat = az.rhat(idata)
    ess_bulk = az.ess(idata, method="bulk")
    ess_tail = az.ess(idata, method="tail")
    names = [v for v in ("mu", "log_sigma", "bias", *_SCALES) if v in idata.posterior]
    r = np.concatenate([np.asarray(rhat[v]).ravel() for v in names])
    eb = np.concatenate([np.asarray(ess_bulk[v]).ravel() for v in names])
    et = np.concatenate([np.asarray(ess_tail[v]).ravel() for v in names])
    div = int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())
    diag = {
        "max_rhat": float(np.nanmax(r)),
        "min_ess_bulk": float(np.nanmin(eb)),
        "min_ess_tail": float(np.nanmin(et)),
        "median_ess_bulk": float(np.nanmedian(eb)),
        "divergences": div,
    }
    return diag, idata


def diagnostics_ok(
    diag: dict[str, Any], *, rhat_max: float = 1.01, ess_min: float = 100.0
) -> list[str]:
    """Human-readable warnings for failed diagnostics (empty when all pass)."""
    out = []
    if diag.get("max_rhat", 1.0) > rhat_max:
        out.append(f"max R-hat {diag['max_rhat']:.4f} > {rhat_max}: chains disagree")
    if diag.get("divergences", 0) > 0:
        out.append(f"{diag['divergences']} divergent transitions")
    if diag.get("min_ess_bulk", np.inf) < ess_min:
        out.append(f"min bulk ESS {diag['min_ess_bulk']:.0f} < {ess_min:.0f}")
    return out


def run_nuts(
    key: jax.Array,
    data: PairwiseData,
    cfg: BayesConfig = BayesConfig(),
    *,
    init: ThurstonianFit | None = None,
    progress_bar: bool = False,
) -> Posterior:
    """NUTS with ``cfg.num_chains`` vectorised chains, initialised at ``init`` (the MAP fit).

    The compiled sampler is reused across calls with the same config and data shapes (the data
    and the initial values are arguments of the compiled program), so repeated studies (seeds,
    bootstrap x posterior comparisons, coverage simulations) compile once.
    """
    mcmc = _mcmc(cfg, data.n_items, progress_bar)
    init_params = None
    if init is not None:
        init_params = {
            k: jnp.broadcast_to(v, (cfg.num_chains,) + v.shape)
            for k, v in _init_values(init, cfg).items()
        }
    t0 = time.perf_counter()
    mcmc.run(
        key,
        **_array_kwargs(data),
        init_params=_to_unconstrained(init_params),
        extra_fields=("diverging", "num_steps"),
    )
    s = mcmc.get_samples()
    jax.block_until_ready(s)
    wall = time.perf_counter() - t0
    diag, idata = _arviz_diagnostics(mcmc)
    steps = np.asarray(mcmc.get_extra_fields()["num_steps"])
    diag.update(
        seconds=wall,
        ess_per_second=diag["min_ess_bulk"] / wall,
        mean_leapfrog_steps=float(steps.mean()),
        chains=cfg.num_chains,
        draws=cfg.num_samples,
        warmup=cfg.num_warmup,
    )
    mu = np.asarray(s["mu"])
    ls = np.asarray(s["log_sigma"]) if "log_sigma" in s else np.zeros_like(mu)
    bias = np.asarray(s["bias"]) if "bias" in s else None
    return Posterior(
        mu, ls, "nuts", get_model(cfg.model).link, diag, cfg.num_chains, idata, bias, _scales_of(s)
    )


def _scales_of(samples) -> dict[str, np.ndarray] | None:
    found = {k: np.asarray(samples[k]) for k in _SCALES if k in samples}
    return found or None


_MCMC_CACHE: dict = {}


def _mcmc(cfg: BayesConfig, n_items: int, progress_bar: bool) -> MCMC:
    key = (cfg, n_items, progress_bar)
    if key not in _MCMC_CACHE:
        model = functools.partial(thurstonian_model, **_static_kwargs(n_items, cfg))
        kernel = NUTS(
            model,
            target_accept_prob=cfg.target_accept_prob,
            max_tree_depth=cfg.max_tree_depth,
        )
        _MCMC_CACHE[key] = MCMC(
            kernel,
            num_warmup=cfg.num_warmup,
            num_samples=cfg.num_samples,
            num_chains=cfg.num_chains,
            chain_method="vectorized",
            progress_bar=progress_bar,
            jit_model_args=True,
        )
    return _MCMC_CACHE[key]


def _to_unconstrained(params):
    """ZeroSumNormal sites live in an N-1 dimensional unconstrained space; the (positive)
    scales on the log scale."""
    if params is None:
        return None
    from numpyro.distributions.transforms import ZeroSumTransform

    t = ZeroSumTransform(transform_ndims=1)

    def unc(k, v):
        return v if k == "bias" else jnp.log(v) if k in _SCALES else t.inv(v)

    return {k: unc(k, v) for k, v in params.items()}


def run_svi(
    key: jax.Array,
    data: PairwiseData,
    cfg: BayesConfig = BayesConfig(),
    *,
    init: ThurstonianFit | None = None,
) -> Posterior:
    """SVI with an ``AutoNormal`` (``cfg.svi_guide="normal"``) or low-rank MVN guide."""
    import optax

    init_fn = init_to_value(values=_init_values(init, cfg))
    if cfg.svi_guide == "lowrank":
        rank = cfg.svi_rank or max(1, min(20, data.n_items // 10))
        guide = AutoLowRankMultivariateNormal(
            thurstonian_model, init_loc_fn=init_fn, rank=rank, init_scale=0.05
        )
    else:
        guide = AutoNormal(thurstonian_model, init_loc_fn=init_fn, init_scale=0.05)
    svi = SVI(thurstonian_model, guide, optax.adam(cfg.svi_lr), Trace_ELBO())
    k_run, k_draw = jax.random.split(key)
    t0 = time.perf_counter()
    res = svi.run(k_run, cfg.svi_steps, progress_bar=False, **_model_kwargs(data, cfg))
    draws = guide.sample_posterior(k_draw, res.params, sample_shape=(cfg.svi_draws,))
    jax.block_until_ready(draws)
    wall = time.perf_counter() - t0
    losses = np.asarray(res.losses)
    tail = losses[-max(10, len(losses) // 10) :]
    diag = {
        "seconds": wall,
        "final_elbo_loss": float(tail.mean()),
        "elbo_loss_sd_last_10pct": float(tail.std()),
        "guide": cfg.svi_guide,
        "steps": cfg.svi_steps,
        "draws": cfg.svi_draws,
    }
    mu = np.asarray(draws["mu"])
    ls = np.asarray(draws["log_sigma"]) if "log_sigma" in draws else np.zeros_like(mu)
    bias = np.asarray(draws["bias"]) if "bias" in draws else None
    return Posterior(
        mu, ls, "svi", get_model(cfg.model).link, diag, 1, None, bias, _scales_of(draws)
    )


def hdi(draws: np.ndarray, prob: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Highest-density interval of ``[draws, ...]`` along axis 0 (shortest interval holding ``prob``)."""
    x = np.sort(np.asarray(draws), axis=0)
    n = x.shape[0]
    k = max(1, int(np.floor(prob * n)))
    widths = x[k:] - x[: n - k]
    i = np.argmin(widths, axis=0)
    lo = np.take_along_axis(x, i[None], 0)[0]
    hi = np.take_along_axis(x, (i + k)[None], 0)[0]
    return lo, hi


def summarize_posterior(post: Posterior, prob: float = 0.9) -> dict[str, np.ndarray]:
    """Per-outcome mean, sd and HDI for mu and sigma, on the own and the normalised scale."""
    mu_n, sig_n = post.normalized()
    out = {}
    for name, x in (
        ("mu", post.mu),
        ("sigma", post.sigma),
        ("mu_normalized", mu_n),
        ("sigma_normalized", sig_n),
    ):
        lo, hi = hdi(x, prob)
        out.update(
            {
                f"{name}_mean": x.mean(0),
                f"{name}_sd": x.std(0),
                f"{name}_hdi_lo": lo,
                f"{name}_hdi_hi": hi,
            }
        )
    return out


def posterior_predictive_log_proba(post: Posterior, idx_a, idx_b) -> tuple[np.ndarray, np.ndarray]:
    """Posterior-predictive ``(log P(a > b), log P(b > a))``: the log of the mean over draws of
    each draw's probability, computed in log space (``logsumexp``), never clipped."""
    a, b = jnp.asarray(idx_a), jnp.asarray(idx_b)
    lp, lq = log_proba_pairwise(
        jnp.asarray(post.mu), jnp.asarray(2.0 * post.log_sigma), a, b, post.link
    )
    log_d = np.log(post.mu.shape[0])
    return (
        np.asarray(jax.scipy.special.logsumexp(lp, axis=0)) - log_d,
        np.asarray(jax.scipy.special.logsumexp(lq, axis=0)) - log_d,
    )


def posterior_predictive_proba(post: Posterior, idx_a, idx_b) -> np.ndarray:
    """Posterior-predictive P(a > b): the mean over draws of each draw's probability."""
    return np.exp(posterior_predictive_log_proba(post, idx_a, idx_b)[0])
