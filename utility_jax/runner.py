"""Glue from a (Hydra) config to a finished compute-utilities run folder; shared by the entry
points, tests and notebooks."""

import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf

from utility_jax.agents import build_agent
from utility_jax.config import validate
from utility_jax.incidents import RunIncidentError
from utility_jax.outcomes import load_outcomes
from utility_jax.pipeline import ComputeUtilitiesResult, compute_utilities
from utility_jax.progress import progress_factory
from utility_jax.report import write_run

__all__ = ["run_compute_utilities"]

log = logging.getLogger("utility_jax")


def run_compute_utilities(
    cfg: DictConfig | dict[str, Any], out_dir: str | Path
) -> ComputeUtilitiesResult:
    """Validate ``cfg``, run the loop, and write the run folder ``out_dir``."""
    conf = validate(cfg)
    if conf.x64:
        jax.config.update("jax_enable_x64", True)
    key = jax.random.key(conf.seed)
    k_agent, k_run = jax.random.split(key)
    outcomes = load_outcomes(conf.outcomes.path, limit=conf.outcomes.limit)
    progress = progress_factory(conf.progress)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    agent, truth = build_agent(conf, outcomes, k_agent, out_dir=out_dir, progress=progress)
    try:
        res = compute_utilities(
            outcomes, agent, conf, key=k_run, progress=progress, true_utilities=truth
        )
    finally:
        agent.close(export_dir=out_dir)
    full = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    full.pop("hydra", None)
    write_run(res, out_dir, config=full, plots=conf.plots)
    m = res.metrics
    inc = m["incidents"]
    if inc["error_rate_exceeded"]:
        raise RunIncidentError(
            f"{out_dir}: the run finished and wrote its folder, but {inc['error_rate']:.1%} of "
            f"requests failed (agent.max_error_rate={inc['max_error_rate']}); the last error: "
            f"{inc['last_error']}. Rerun the same command with hydra.run.dir={out_dir} to retry "
            "only the failed requests."
        )
    log.info(
        "done: held-out accuracy %.4f (random %.4f), log loss %.4f; files in %s",
        m.get("heldout", {}).get("accuracy", np.nan),
        m["random_responder"].get("heldout", {}).get("accuracy", np.nan),
        m.get("heldout", {}).get("log_loss", np.nan),
        out_dir,
    )
    return res
