"""Agents and LLM backends from run configs: the one factory every experiment uses.

``build_backend`` turns an LLM agent config into its backend (the kinds and their modules are
in :mod:`utility_jax.elicit.registry`, imported when asked for);
``build_agent`` wraps it (or a simulated agent) into an :class:`~utility_jax.elicit.Agent` with
its response store. The compute-utilities run, the analyses and utility control all come here.
"""

import dataclasses
import logging
import time
from pathlib import Path

import jax
import numpy as np

from utility_jax.core.simulate import planted_utilities
from utility_jax.elicit.budget import BudgetGuard
from utility_jax.elicit.llm import LLMAgent
from utility_jax.elicit.registry import backend_module
from utility_jax.elicit.simulated import SimulatedAgent, reference_utilities
from utility_jax.elicit.store import ResponseStore, StoreConfigError
from utility_jax.io.outcomes import OutcomeSet
from utility_jax.io.prompts import load_template, system_message
from utility_jax.run.config import AgentConf, ComputeUtilitiesConf, ElicitationConf
from utility_jax.run.cost import budget_guard

log = logging.getLogger("utility_jax")

__all__ = [
    "build_backend",
    "build_agent",
    "simulated_truth",
    "store_config",
    "ledger_run",
    "TRANSPORT_ONLY",
    "MOVABLE",
]


def build_backend(a: AgentConf, el: ElicitationConf):
    """The LLM backend of an agent config (:mod:`utility_jax.elicit.registry`)."""
    if not a.model:
        raise ValueError(
            f"agent={a.kind} needs agent.model (a checkpoint path, hub id or served model name)"
        )
    return backend_module(a.kind, a.backend).from_config(a, el)


#: settings that a resumed run may change although they are part of what was asked: the server's
#: address (a new node serving the same model name; the stored answers stay valid)
MOVABLE = frozenset({"agent.base_url"})

#: agent settings that change how answers are fetched, never what they are: a resumed run may
#: change them freely
TRANSPORT_ONLY = frozenset(
    {
        "concurrency",
        "max_retries",
        "timeout_s",
        "max_error_rate",
        "max_refusal_rate",
        "api_key_env",
        "batch_size",
        "batch",
        "batch_poll_s",
    }
)


def store_config(cfg: ComputeUtilitiesConf) -> dict:
    """The parts of a config that decide which questions are asked and what answers they get
    (model, prompts, K, temperature, mode, graph, seed): a resumed run must not change them.
    Transport settings (:data:`TRANSPORT_ONLY`) and the fit's settings are left out."""
    d = dataclasses.asdict(cfg)
    el = {
        k: v for k, v in d["elicitation"].items() if k not in ("store", "force", "parser", "reask")
    }
    agent = {k: v for k, v in d["agent"].items() if k not in TRANSPORT_ONLY}
    for k in ("backend", "options"):  # a backend of one's own; absent from stores made before
        if not agent[k]:
            del agent[k]
    return {
        "outcomes": d["outcomes"],
        "agent": agent,
        "elicitation": el,
        "graph": d["graph"],
        "seed": d["seed"],
    }


def _llm_agent(cfg: ComputeUtilitiesConf, outcomes, out_dir, progress, fields, ledger=None):
    el = cfg.elicitation
    guard = None
    if cfg.dry_run:  # every prompt rendered and counted; nothing sent, nothing stored
        from utility_jax.elicit.dry_run import DryRunBackend, Ledger

        ledger = ledger if ledger is not None else Ledger()
        backend, store = DryRunBackend(cfg.agent, el, ledger, seed=cfg.seed), None
    else:
        shared = el.store is not None
        if out_dir is None and not shared:
            raise ValueError(
                "an LLM agent needs a run folder (out_dir) or elicitation.store for its answers"
            )
        path = Path(el.store) if shared else Path(out_dir) / "responses.sqlite"
        guard = budget_guard(cfg)  # an unpriced model under max_usd is refused before anything
        backend = build_backend(cfg.agent, el)  # before the store: a bad backend holds no lock
        store = _open_store(path, cfg, shared, out_dir)
        _charge_to(guard, store, ledger_run(out_dir, shared))
    return LLMAgent(
        backend,
        outcomes,
        load_template(el.template, text=el.template_text),
        system=system_message(el.system),
        mode=el.mode,
        store=store,
        progress=progress,
        fields=fields,
        parser=el.parser,
        orders=el.orders,
        budget=guard,  # a plan (dry run) counts everything
        seed=cfg.seed,
    )


#: files a run leaves in its folder once it has asked anything (a stop or the end)
_RUN_TRACES = ("responses.jsonl", "run_config.json", "metrics.json", "votes.csv")


def _open_store(path: Path, cfg: ComputeUtilitiesConf, shared: bool, out_dir) -> ResponseStore:
    """The run's answer store. In a run folder, a store that is missing, empty or unreadable is
    rebuilt from the folder's ``responses.jsonl`` before anything is asked; with no such file,
    a folder that already holds a run is refused (its answers would be bought again) unless
    ``elicitation.reask=true``."""
    el = cfg.elicitation
    jsonl = path.with_name("responses.jsonl")
    kw = dict(config=store_config(cfg), force=el.force, transport=MOVABLE)
    if shared or not any((path.parent / f).exists() for f in _RUN_TRACES):
        return ResponseStore(path, shared=shared, **kw)
    try:
        store = ResponseStore(path, **kw)
    except StoreConfigError as e:
        if "not a usable answer store" not in str(e) or not jsonl.exists():
            raise
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        path.rename(aside)  # kept for a post-mortem, never deleted
        log.warning("%s; moved to %s", e, aside.name)
        store = ResponseStore(path, **kw)
    if store.count() > 0 or el.reask:
        return store
    if jsonl.exists():
        n = store.import_jsonl(jsonl)
        log.warning("%s was empty: rebuilt %d answers from %s", path, n, jsonl.name)
        return store
    store.close()
    raise StoreConfigError(
        f"{path.parent}: this folder holds a run, but its answer store {path.name} is empty "
        "and there is no responses.jsonl to rebuild it from; going on would pay for every "
        "answer again. Restore the store, or pass elicitation.reask=true to ask again"
    )


def ledger_run(out_dir, shared: bool) -> str:
    """The name a run's spending has in its store's ledger: ``"."`` in a run folder's own
    store (all of it is this run's, wherever the folder moves), the run folder's absolute path
    in a shared store."""
    if not shared or out_dir is None:
        return "." if not shared else "(no run folder)"
    return str(Path(out_dir).resolve())


def _charge_to(guard: BudgetGuard, store: ResponseStore, run: str) -> None:
    """Start ``guard`` from what ``run`` already spent and write each new request to the
    store's ledger: ``budget.*`` limits hold across invocations."""
    before = store.spend(run)
    guard.requests, guard.usd = before["requests"], before["usd"]
    guard.on_spend = lambda *a: store.add_spend(run, *a)


def simulated_truth(
    cfg: ComputeUtilitiesConf, outcomes: OutcomeSet, key: jax.Array
) -> tuple[np.ndarray, np.ndarray]:
    """The simulated agent's true ``(mu, sigma)`` on ``outcomes``: planted from ``key``, or a
    reference model's fitted utilities (``agent.utilities`` = a results file)."""
    a = cfg.agent
    if a.utilities == "planted":
        return planted_utilities(
            outcomes, key, mu_scale=a.mu_scale, sigma_range=(a.sigma_min, a.sigma_max)
        )
    return reference_utilities(a.utilities, outcomes)


def build_agent(
    cfg: ComputeUtilitiesConf,
    outcomes: OutcomeSet,
    key: jax.Array,
    out_dir=None,
    progress=None,
    *,
    fields: dict[str, str] | None = None,
    truth: tuple[np.ndarray, np.ndarray] | None = None,
    ledger=None,
):
    """The agent and, for simulated agents, its true ``(mu, sigma)`` (else None).

    ``fields`` fill a template's extra fields (``{entity}``...); ``truth`` gives a simulated
    agent its utilities (analyses plant them from the outcomes' structure).
    """
    a = cfg.agent
    if a.kind != "simulated" or cfg.dry_run:
        return _llm_agent(cfg, outcomes, out_dir, progress, fields, ledger), None
    if truth is not None:
        mu, sigma = (np.asarray(x, dtype=np.float64) for x in truth)
    else:
        mu, sigma = simulated_truth(cfg, outcomes, key)
    agent = SimulatedAgent(
        mu,
        sigma,
        link=a.link,
        position_bias=a.position_bias,
        refusal_rate=a.refusal_rate,
        orders=cfg.elicitation.orders,
    )
    return agent, (mu, sigma)
