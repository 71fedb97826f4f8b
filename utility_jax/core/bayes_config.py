"""The settings of the Bayesian fits (:mod:`utility_jax.core.bayes`), apart from NumPyro so that
reading or checking a config never imports it."""

import dataclasses
from typing import Literal

from utility_jax.core.model import DEFAULT_MODEL

__all__ = ["BayesConfig"]


@dataclasses.dataclass(frozen=True)
class BayesConfig:
    """Settings of :func:`run_nuts` / :func:`run_svi`.

    Priors default to the fitter's weak priors: ``mu ~ N(0, 10^2)`` and
    ``log sigma^2 ~ N(0, 2^2)``, i.e. ``log sigma ~ N(0, 1)``. ``hierarchical`` learns scales:
    ``"mu"`` (the default) puts ``mu ~ N(0, tau_mu^2)`` with
    ``tau_mu ~ HalfNormal(mu_prior_scale)``; ``"both"`` also ``log sigma ~ N(0, tau_s^2)`` with
    ``tau_s ~ HalfNormal(logsigma_prior_scale)``; ``"none"`` keeps both fixed. A fixed wide prior
    on the means lets every draw's means spread wider than the truth's (the draw's noise adds to
    the spread), so utilities normalised per draw are shrunk toward 0 and their intervals miss
    the large ones; the learned scale removes that. Learning the log-sigmas' scale too changed no
    coverage we measured (docs/uncertainty.md).
    """

    model: str = DEFAULT_MODEL  # a name in utility_jax.core.model.MODELS
    mu_prior_scale: float = 10.0
    logsigma_prior_scale: float = 1.0
    num_warmup: int = 500
    num_samples: int = 1000
    num_chains: int = 2
    target_accept_prob: float = 0.8
    max_tree_depth: int = 8
    svi_guide: Literal["normal", "lowrank"] = "normal"
    svi_steps: int = 3000
    svi_lr: float = 0.01
    svi_draws: int = 1000
    svi_rank: int | None = None  # the low-rank guide's rank; None picks min(20, N/10)
    position_bias: bool = False
    bias_prior_scale: float = 1.0
    hierarchical: Literal["none", "mu", "both"] = "mu"
