"""Glue from a (Hydra) config to a finished run folder; shared by experiments, tests, notebooks."""

import logging
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf

from utility_jax.config import ComputeUtilitiesConf, validate
from utility_jax.elicit.simulated import SimulatedAgent, planted_utilities, reference_utilities
from utility_jax.outcomes import OutcomeSet, load_outcomes
from utility_jax.pipeline import ComputeUtilitiesResult, compute_utilities
from utility_jax.report import write_run

__all__ = ["build_outcomes", "build_agent", "run_compute_utilities"]

log = logging.getLogger("utility_jax")


def build_outcomes(cfg: ComputeUtilitiesConf) -> OutcomeSet:
    outcomes = load_outcomes(cfg.outcomes.path)
    if cfg.outcomes.limit is not None:
        outcomes = outcomes.subset(range(min(cfg.outcomes.limit, len(outcomes))))
    return outcomes


def build_agent(cfg: ComputeUtilitiesConf, outcomes: OutcomeSet, key: jax.Array):
    """The agent and, for simulated agents, its true ``(mu, sigma)``."""
    a = cfg.agent
    if a.kind != "simulated":
        raise ValueError(f"agent.kind={a.kind!r} is not available in this version")
    if a.utilities == "planted":
        mu, sigma = planted_utilities(
            outcomes, key, mu_scale=a.mu_scale, sigma_range=(a.sigma_min, a.sigma_max)
        )
    else:
        mu, sigma = reference_utilities(a.utilities, outcomes)
    agent = SimulatedAgent(
        mu, sigma, link=a.link, position_bias=a.position_bias, refusal_rate=a.refusal_rate
    )
    return agent, (mu, sigma)


def run_compute_utilities(
    cfg: DictConfig | dict[str, Any], out_dir: str | Path
) -> ComputeUtilitiesResult:
    """Validate ``cfg``, run the loop, and write the run folder ``out_dir``."""
    conf = validate(cfg)
    if conf.x64:
        jax.config.update("jax_enable_x64", True)
    key = jax.random.key(conf.seed)
    k_agent, k_run = jax.random.split(key)
    outcomes = build_outcomes(conf)
    agent, truth = build_agent(conf, outcomes, k_agent)
    progress = None
    if conf.progress:
        from tqdm.auto import tqdm

        progress = lambda **kw: tqdm(file=sys.stderr, dynamic_ncols=True, **kw)  # noqa: E731
    res = compute_utilities(
        outcomes, agent, conf, key=k_run, progress=progress, true_utilities=truth
    )
    full = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    full.pop("hydra", None)
    write_run(res, out_dir, config=full, plots=conf.plots)
    m = res.metrics
    log.info(
        "done: held-out accuracy %.4f (random %.4f), log loss %.4f; files in %s",
        m.get("heldout", {}).get("accuracy", np.nan),
        m["random_responder"].get("heldout", {}).get("accuracy", np.nan),
        m.get("heldout", {}).get("log_loss", np.nan),
        out_dir,
    )
    return res
