"""Glue from a (Hydra) config to a finished run folder; shared by experiments, tests, notebooks."""

import dataclasses
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


def build_outcomes(cfg) -> OutcomeSet:
    """The outcome set of any run config with an ``outcomes`` section (path, limit)."""
    outcomes = load_outcomes(cfg.outcomes.path)
    if cfg.outcomes.limit is not None:
        outcomes = outcomes.subset(range(min(cfg.outcomes.limit, len(outcomes))))
    return outcomes


def build_backend(cfg: ComputeUtilitiesConf):
    """The LLM backend of an ``hf`` or ``openai`` agent config."""
    a, el = cfg.agent, cfg.elicitation
    if not a.model:
        raise ValueError(
            f"agent={a.kind} needs agent.model (a checkpoint path, hub id or served model name)"
        )
    if a.kind == "hf":
        from utility_jax.elicit.hf import HFBackend

        return HFBackend(
            a.model,
            device=a.device,
            dtype=a.dtype,
            batch_size=a.batch_size,
            chat=a.chat,
            temperature=el.temperature,
            max_new_tokens=el.max_new_tokens,
        )
    from utility_jax.elicit.openai_compat import OpenAIBackend

    return OpenAIBackend(
        a.base_url,
        a.model,
        api_key_env=a.api_key_env,
        concurrency=a.concurrency,
        timeout_s=a.timeout_s,
        max_retries=a.max_retries,
        temperature=el.temperature,
        max_tokens=el.max_new_tokens,
    )


def store_config(cfg: ComputeUtilitiesConf) -> dict:
    """The parts of a config that decide which questions are asked and how (for resume checks)."""
    d = dataclasses.asdict(cfg)
    el = {k: v for k, v in d["elicitation"].items() if k not in ("store", "force")}
    return {
        "outcomes": d["outcomes"],
        "agent": d["agent"],
        "elicitation": el,
        "graph": d["graph"],
        "seed": d["seed"],
    }


def build_agent(
    cfg: ComputeUtilitiesConf,
    outcomes: OutcomeSet,
    key: jax.Array,
    out_dir=None,
    progress=None,
    *,
    fields: dict[str, str] | None = None,
    truth: tuple[np.ndarray, np.ndarray] | None = None,
):
    """The agent and, for simulated agents, its true ``(mu, sigma)`` (else None).

    ``fields`` fill a template's extra fields (``{entity}``...); ``truth`` gives a simulated
    agent its utilities (analyses plant them from the outcomes' structure).
    """
    a = cfg.agent
    if a.kind in ("hf", "openai"):
        from utility_jax.elicit.llm import LLMAgent
        from utility_jax.elicit.prompts import load_template, system_message
        from utility_jax.elicit.store import ResponseStore

        el = cfg.elicitation
        shared = el.store is not None
        if out_dir is None and not shared:
            raise ValueError(
                "an LLM agent needs a run folder (out_dir) or elicitation.store for its answers"
            )
        path = Path(el.store) if shared else Path(out_dir) / "responses.sqlite"
        store = ResponseStore(path, config=store_config(cfg), force=el.force, shared=shared)
        template = load_template(el.template, text=el.template_text)
        agent = LLMAgent(
            build_backend(cfg),
            outcomes,
            template,
            system=system_message(el.system),
            mode=el.mode,
            store=store,
            progress=progress,
            fields=fields,
        )
        return agent, None
    if truth is not None:
        mu, sigma = (np.asarray(x, dtype=np.float64) for x in truth)
    elif a.utilities == "planted":
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
    progress = None
    if conf.progress:
        from tqdm.auto import tqdm

        progress = lambda **kw: tqdm(file=sys.stderr, dynamic_ncols=True, **kw)  # noqa: E731
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    agent, truth = build_agent(conf, outcomes, k_agent, out_dir=out_dir, progress=progress)
    res = compute_utilities(
        outcomes, agent, conf, key=k_run, progress=progress, true_utilities=truth
    )
    store = getattr(agent, "store", None)
    if store is not None:
        n = store.export_jsonl(Path(out_dir) / "responses.jsonl")
        log.info("%d stored answers exported to responses.jsonl", n)
        store.close()
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
