"""Glue from a (Hydra) config to a finished compute-utilities run folder; shared by the entry
points, tests and notebooks."""

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf

from utility_jax.elicit.budget import BudgetExceeded
from utility_jax.elicit.store import FolderLock, StoreConfigError
from utility_jax.io.outcomes import load_outcomes
from utility_jax.run.agents import MOVABLE, build_agent, store_config
from utility_jax.run.config import save_hydra_record, validate
from utility_jax.run.cost import plan, plan_text
from utility_jax.run.incidents import RunIncidentError, failures
from utility_jax.run.pipeline import ComputeUtilitiesResult, compute_utilities, planned_pairs
from utility_jax.run.progress import progress_factory
from utility_jax.run.report import flatten, write_run

__all__ = ["run_compute_utilities", "dry_run_plan"]

log = logging.getLogger("utility_jax")


#: config sections that change only the fit, not a single answer
FIT_ONLY = ("fitter", "uncertainty", "bayes", "n_triads", "x64")


def _fingerprint(conf) -> dict[str, dict]:
    """What a run folder remembers of its run: the settings that decide the questions and their
    answers (``asked``) and those that decide only the fit (``fit``), as plain JSON values."""
    now = dataclasses.asdict(conf)
    fit = {k: now[k] for k in FIT_ONLY}
    fit["parser"] = now["elicitation"]["parser"]  # stored answers are re-parsed, never re-asked
    blob = {"asked": store_config(conf), "fit": fit}
    return json.loads(json.dumps(blob, default=str))


def _output_folder(out: Path, conf) -> Path:
    """Where this run's results go. A fresh folder, or a resume with the same settings: the run
    folder itself. A resume that changes only the fit (fitter, uncertainty, bayes...): a new
    ``refits/<hash>/`` sub-folder, so earlier results are never overwritten. A resume that
    changes the questions or their answers (model, prompts, K, graph, seed...) is refused,
    naming the keys (``elicitation.force=true`` overrides)."""
    prev = out / "run_config.json"
    if not prev.exists():
        return out
    old, new = json.loads(prev.read_text()), _fingerprint(conf)
    a, b = flatten(old.get("asked", {})), flatten(new["asked"])
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in MOVABLE)
    if changed and not conf.elicitation.force:
        raise StoreConfigError(
            f"{out}: this run folder holds a run that asked other questions (changed: "
            f"{', '.join(changed)}); use a new folder, or elicitation.force=true to reuse it"
        )
    if old.get("fit") == new["fit"]:
        return out
    h = hashlib.sha256(json.dumps(new["fit"], sort_keys=True).encode()).hexdigest()[:8]
    return out / "refits" / f"{conf.fitter.model}-{h}"


def _rerun_advice(cost: dict, out_dir: Path) -> str:
    """What a rerun of a failed run would and would not change, truthfully."""
    permanent = int(cost.get("permanent_errors", 0))
    transient = int(cost.get("errors", 0)) - permanent
    parts = []
    if transient:
        parts.append(
            f"Rerunning the same command with hydra.run.dir={out_dir} asks the {transient} "
            "failed requests again (nothing else)"
        )
    if permanent:
        parts.append(
            f"{permanent} answers were refused for good by the server (HTTP 400/413/422: a "
            "content filter, a prompt too long) and are never asked again: a rerun will not "
            "change them; leave those outcomes out, or change the prompt"
        )
    parts.append(
        "a new limit (agent.max_error_rate, agent.max_refusal_rate) refits from the stored "
        "answers without asking anything"
    )
    return "; ".join(parts)


def _remember(out: Path, conf) -> None:
    (out / "run_config.json").write_text(json.dumps(_fingerprint(conf), indent=1))


def run_compute_utilities(
    cfg: DictConfig | dict[str, Any], out_dir: str | Path
) -> ComputeUtilitiesResult:
    """Validate ``cfg``, run the loop, and write the run folder ``out_dir``.

    One process at a time per run folder (a lock naming the holder); a resume that changes only
    the fit writes to ``refits/<hash>/`` (see :func:`_output_folder`).
    """
    conf = validate(cfg)
    out = Path(out_dir)
    if conf.dry_run:
        pl = dry_run_plan(conf, out)
        save_hydra_record(cfg, out)
        return pl
    _output_folder(out, conf)  # read-only: a refused resume touches nothing, not even the lock
    lock = FolderLock(out / ".run.lock", f"run folder {out}").acquire()
    try:
        return _run(cfg, conf, out)
    finally:
        lock.release()


def dry_run_plan(conf, out_dir: Path) -> dict:
    """``dry_run=true``: every prompt the run would send, rendered and counted by a counting
    backend (nothing sent, no store, nothing fitted: random pairs stand in for each round's
    choice, :func:`~utility_jax.run.pipeline.planned_pairs`, so requests and answers are the
    run's and tokens are estimated from prompts of the same kind); writes ``plan.json`` and
    returns the plan."""
    from utility_jax.elicit.dry_run import Ledger

    key = jax.random.key(conf.seed)
    k_agent, k_run = jax.random.split(key)
    outcomes = load_outcomes(conf.outcomes.path, limit=conf.outcomes.limit)
    ledger = Ledger()
    agent, _ = build_agent(
        conf, outcomes, k_agent, ledger=ledger, progress=progress_factory(conf.progress)
    )
    for pairs in planned_pairs(len(outcomes), conf):
        if len(pairs):
            agent.query(pairs, conf.elicitation.k, key=k_run)
    pl = plan(ledger, conf.agent, conf.budget)
    pl["pairs"] = (
        "held-out pairs and initial graph as the run draws them; random pairs stand in for "
        "the later rounds' choices (same count), so prompt tokens are an estimate"
    )
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "plan.json").write_text(json.dumps(pl, indent=1))
    log.debug("%s", plan_text(pl))
    return pl


def _run(cfg, conf, out_dir: Path) -> ComputeUtilitiesResult:
    if conf.x64:
        jax.config.update("jax_enable_x64", True)
    key = jax.random.key(conf.seed)
    k_agent, k_run = jax.random.split(key)
    outcomes = load_outcomes(conf.outcomes.path, limit=conf.outcomes.limit)
    progress = progress_factory(conf.progress)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    target = _output_folder(out_dir, conf)
    agent, truth = build_agent(conf, outcomes, k_agent, out_dir=out_dir, progress=progress)
    save_hydra_record(cfg, target)  # the lock, the resume check and the store's check passed
    try:
        res = compute_utilities(
            outcomes, agent, conf, key=k_run, progress=progress, true_utilities=truth
        )
    except BudgetExceeded as e:
        _remember(out_dir, conf)  # the store holds every answer: the same command resumes
        raise BudgetExceeded(
            f"{e}; raise it to go on. Every answer so far is stored in {out_dir}: the same "
            f"command with hydra.run.dir={out_dir} and a higher limit (or budget.max_requests="
            "null budget.max_usd=null) continues where this stopped"
        ) from None
    finally:
        agent.close(export_dir=out_dir)
    full = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    full.pop("hydra", None)
    if target != out_dir:
        log.info("only the fit's settings changed: results go to %s", target)
    write_run(res, target, config=full, plots=conf.plots)
    if target == out_dir:
        _remember(out_dir, conf)
    m = res.metrics
    why = failures(m["incidents"])
    if why:
        raise RunIncidentError(
            f"{out_dir}: the run finished and wrote its folder, but it failed: "
            + " | ".join(why)
            + ". "
            + _rerun_advice(m["cost"], out_dir),
            result=res,
        )
    log.info(
        "done: held-out accuracy %.4f (random %.4f), log loss %.4f; files in %s",
        m.get("heldout", {}).get("accuracy", np.nan),
        m["random_responder"].get("heldout", {}).get("accuracy", np.nan),
        m.get("heldout", {}).get("log_loss", np.nan),
        out_dir,
    )
    return res
