"""The utility-control run: assembly -> target utilities -> model before -> SFT -> model after.

All measurements use the same outcome set and the same held-out pairs; the model is our NNX model
read from a Hugging Face checkpoint and measured through the ``jax`` log-prob backend, so the
model measured after tuning is exactly the one that was tuned. Every utility fit (target, party
axis, before, after) uses the run's ``fitter`` settings.
"""

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from utility_jax.control.assembly import (
    SimulatedAssembly,
    citizen_preferences_llm,
    party_axis,
    pool_preferences,
    sample_citizens,
    target_data,
)
from utility_jax.control.config import ControlConf, mesh_config, sft_config, validate_control
from utility_jax.control.measure import direct_agreement, measure, sft_examples
from utility_jax.control.report import corr, write_control_run
from utility_jax.core.fit import fit_thurstonian
from utility_jax.elicit.jax_backend import JaxBackend
from utility_jax.finetune import load_checkpoint, save_checkpoint
from utility_jax.finetune.plan import format_plan, lm_config, memory_plan
from utility_jax.finetune.sft import train_sft
from utility_jax.finetune.sharding import initialize_distributed, is_writer, make_mesh
from utility_jax.finetune.tokens import answer_token_ids, encode_prompts
from utility_jax.io.outcomes import load_outcomes
from utility_jax.io.prompts import load_template, system_message
from utility_jax.run.agents import build_backend
from utility_jax.run.config import AgentConf, ElicitationConf, fit_config, save_hydra_record
from utility_jax.run.progress import progress_factory

__all__ = ["run_utility_control"]

log = logging.getLogger("utility_jax")


def _base_model(conf: ControlConf, out: Path, outcomes, tpl) -> Path:
    """The checkpoint to tune: ``model.path``, or a tiny random Qwen2 built in the run folder."""
    if conf.model.path is not None:
        return Path(conf.model.path)
    from utility_jax.finetune.testing import build_random_qwen2

    corpus = [tpl.render(a, b) for a in outcomes.texts for b in outcomes.texts if a != b]
    return build_random_qwen2(
        out / "base_model",
        corpus,
        seed=conf.seed,
        vocab_size=600,
        hidden_size=conf.model.hidden_size,
        intermediate_size=2 * conf.model.hidden_size,
        num_hidden_layers=conf.model.num_hidden_layers,
    )


def _citizen_preferences(conf, citizens, rng, outcomes, tpl, pairs, model_path) -> np.ndarray:
    """``[citizens, pairs]`` preferences of a simulated or an LLM assembly."""
    a, n = conf.assembly, len(outcomes)
    if a.kind == "simulated":
        assembly = SimulatedAssembly(
            n, citizens, rng, effect=a.effect, party_effect=a.party_effect, noise=a.noise
        )
        return assembly.preferences(pairs)
    agent = dataclasses.replace(a.agent, model=a.agent.model or str(model_path))
    backend = build_backend(agent, ElicitationConf(mode="logprob"))
    return citizen_preferences_llm(
        backend, citizens, outcomes, tpl, pairs, conf.k, a.republican_instruction
    )


def _split(conf: ControlConf, rng, n: int, pairs):
    """Held-out outcomes (never trained on), then held-out and training pairs among the rest."""
    if n - conf.heldout_outcomes < 4:
        raise ValueError(
            f"heldout_outcomes={conf.heldout_outcomes} leaves {n - conf.heldout_outcomes} of "
            f"{n} outcomes to train on; keep at least 4 (lower heldout_outcomes)"
        )
    unseen = (
        np.sort(rng.permutation(n)[: conf.heldout_outcomes])
        if conf.heldout_outcomes > 0
        else np.zeros(0, int)
    )
    touches = np.isin(pairs, unseen).any(1)
    perm = rng.permutation(np.flatnonzero(~touches))
    n_ho = max(1, int(conf.heldout_fraction * len(perm)))
    return np.sort(perm[:n_ho]), np.sort(perm[n_ho:]), unseen, np.flatnonzero(touches)


def _tune(
    conf, backend, tokenizer, outcomes, tpl, system, split, p_target, out, path, progress, mesh
):
    """SFT of ``backend.lm`` toward the target on the training pairs; returns the SFT log."""
    pairs, ho_idx, tr_idx = split
    prompts, t = sft_examples(outcomes, tpl, system, pairs[tr_idx], p_target[tr_idx])
    ids, mask = encode_prompts(tokenizer, prompts)
    vp, vt = sft_examples(outcomes, tpl, system, pairs[ho_idx], p_target[ho_idx])
    vids, vmask = encode_prompts(tokenizer, vp)
    ans = answer_token_ids(tokenizer)
    every = conf.sft.checkpoint_every

    def on_step(step, model):
        if every > 0 and step % every == 0:
            save_checkpoint(model, out / "checkpoints" / f"step_{step}", source=path)

    return train_sft(
        backend.lm,
        ids,
        mask,
        t,
        ans["A"],
        ans["B"],
        sft_config(conf),
        val=(vids, vmask, vt),
        progress=progress,
        on_step=on_step,
        mesh=mesh,
        state_dir=out / "train_state",
    )


def _dry_run(conf: ControlConf, out: Path) -> dict[str, Any]:
    """What the run would ask a server: the LLM assembly's questions (the model being tuned is
    local and costs nothing), counted and priced; nothing is sent."""
    import json

    from utility_jax.elicit.dry_run import DryRunBackend, Ledger
    from utility_jax.run.config import BudgetConf
    from utility_jax.run.cost import plan

    outcomes = load_outcomes(conf.outcomes.path, limit=conf.outcomes.limit)
    tpl = load_template(conf.template)
    rng = np.random.default_rng(conf.seed)
    citizens = sample_citizens(conf.assembly.n_citizens, rng, joint=conf.assembly.joint)
    pairs = np.stack(np.triu_indices(len(outcomes), 1), 1)
    a = conf.assembly
    agent = a.agent if a.kind == "agent" else AgentConf()  # a simulated assembly asks nothing
    ledger = Ledger()
    if a.kind == "agent":
        backend = DryRunBackend(agent, ElicitationConf(mode="logprob"), ledger, seed=conf.seed)
        citizen_preferences_llm(
            backend, citizens, outcomes, tpl, pairs, conf.k, a.republican_instruction
        )
    pl = plan(ledger, agent, BudgetConf())
    if conf.model.config is not None or conf.model.path is not None:
        pl["memory"] = _memory_plan(conf)
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(json.dumps(pl, indent=1))
    return pl


def _memory_plan(conf: ControlConf) -> dict[str, Any]:
    """The tuning step's per-device memory, compiled on abstract shapes (no weights loaded)."""
    lm = lm_config(conf.model.config or conf.model.path)
    res = memory_plan(
        lm,
        sft_config(conf),
        mesh_config(conf),
        batch_size=conf.sft.batch_size,
        seq_len=conf.model.plan_seq_len,
        param_dtype="float32" if conf.model.param_dtype == "auto" else conf.model.param_dtype,
        device_gb=conf.model.device_gb,
    )
    res["text"] = format_plan(res)  # the command line prints it
    return res


def run_utility_control(cfg: DictConfig | dict, out_dir: str | Path) -> dict[str, Any]:
    """Run the experiment and write its run folder; returns the metrics (``dry_run=true``:
    the plan of the assembly's requests)."""
    conf = validate_control(cfg)
    _start_processes(conf)
    out = Path(out_dir)
    if conf.dry_run:
        return _dry_run(conf, out)
    out.mkdir(parents=True, exist_ok=True)
    if is_writer():
        save_hydra_record(cfg, out)
    outcomes = load_outcomes(conf.outcomes.path, limit=conf.outcomes.limit)
    n, votes = len(outcomes), 2 * conf.k
    tpl, system = load_template(conf.template), system_message(conf.system)
    fcfg = fit_config(conf.fitter)

    def fit_fn(data):
        return fit_thurstonian(data, cfg=fcfg)

    rng = np.random.default_rng(conf.seed)
    path, tokenizer, backend, mesh = _load_model(conf, out, outcomes, tpl)
    citizens = sample_citizens(conf.assembly.n_citizens, rng, joint=conf.assembly.joint)
    pairs = np.stack(np.triu_indices(n, 1), 1)
    p_citizens = _citizen_preferences(conf, citizens, rng, outcomes, tpl, pairs, path)
    p_target = pool_preferences(p_citizens, conf.assembly.pooling)
    ho_idx, tr_idx, unseen, unseen_idx = _split(conf, rng, n, pairs)
    heldout, train = pairs[ho_idx], pairs[tr_idx]
    target_fit = fit_fn(target_data(n, pairs, p_target, votes))

    def unseen_agreement():
        return direct_agreement(
            backend, outcomes, tpl, system, pairs[unseen_idx], conf.k, p_target[unseen_idx]
        )

    unseen_before = unseen_agreement() if len(unseen_idx) else None
    args = (outcomes, tpl, system, train, heldout, conf.k, p_target[ho_idx], fit_fn)
    fit_before, before = measure(backend, *args)
    split = (pairs, ho_idx, tr_idx)
    prog = progress_factory(conf.progress)
    sft_log = _tune(
        conf, backend, tokenizer, outcomes, tpl, system, split, p_target, out, path, prog, mesh
    )
    backend.model = f"{path}#sft-seed{conf.seed}"
    fit_after, after = measure(backend, *args)
    tuned = save_checkpoint(backend.lm, out / "tuned_model", source=path)
    unseen_metrics = _unseen_metrics(unseen, unseen_idx, unseen_before, unseen_agreement)
    # political lean: correlation with the assembly's own Democrat - Republican axis
    axis = party_axis(p_citizens, citizens, pairs, n, fit_fn, votes)
    fits = {"target": target_fit, "before": fit_before, "after": fit_after}
    metrics = {
        "n_outcomes": n,
        "n_train_pairs": len(train),
        "n_heldout_pairs": len(heldout),
        "n_citizens": len(citizens),
        "assembly": _assembly_label(conf, path),
        "pooling": conf.assembly.pooling,
        "sft_steps": conf.sft.steps,
        "before": before,
        "after": after,
        **_target_metrics(fits, axis),
        "unseen_outcomes": unseen_metrics,
        "final_sft_loss": sft_log[-1]["loss"],
        # the jax log-prob backend's throughput over every measurement of the run
        "jax_backend": backend.throughput(),
        "tuned_model": str(tuned),
        "base_model": str(path),
    }
    if is_writer():  # every process holds the same results; one writes them
        write_control_run(out, outcomes, fits, metrics, sft_log, conf)
    log.info(
        "held-out accuracy of the refit utilities: before %.3f, after %.3f; files in %s",
        before["heldout_accuracy_refit"],
        after["heldout_accuracy_refit"],
        out,
    )
    return metrics


def _start_processes(conf: ControlConf) -> None:
    """Join a multi-host run where ``mesh.distributed`` asks (before any device is touched)."""
    m = conf.mesh
    initialize_distributed(m.distributed, m.coordinator_address, m.num_processes, m.process_id)


def _load_model(conf: ControlConf, out: Path, outcomes, tpl):
    """``(checkpoint path, tokenizer, jax backend, mesh)``: the model to tune, read in
    ``model.param_dtype`` and placed on the run's mesh shard by shard."""
    from transformers import AutoTokenizer  # slow to import: only when a run starts

    path = _base_model(conf, out, outcomes, tpl)
    tokenizer = AutoTokenizer.from_pretrained(path)
    mesh = make_mesh(mesh_config(conf))
    lm = load_checkpoint(path, dtype=conf.model.param_dtype, mesh=mesh)
    backend = JaxBackend(
        lm, tokenizer, model_id=str(path), batch_size=conf.model.batch_size, mesh=mesh
    )
    return path, tokenizer, backend, mesh


def _unseen_metrics(unseen, unseen_idx, before, agreement) -> dict:
    """Outcomes never trained on: direct agreement with the target before and after tuning
    (``agreement()`` asks the tuned model); empty when every outcome was trained on."""
    if not len(unseen_idx):
        return {}
    return {
        "n_outcomes": int(len(unseen)),
        "n_pairs": int(len(unseen_idx)),
        "agreement_direct_before": before,
        "agreement_direct_after": agreement(),
    }


def _target_metrics(fits: dict, axis) -> dict:
    """Spearman of the before/after utilities with the target's, and every fit's political lean
    (correlation with the assembly's Democrat - Republican axis; NaN without one)."""
    target = fits["target"].mu
    return {
        "spearman_with_target": {
            k: corr(fits[k].mu, target, "spearman") for k in ("before", "after")
        },
        "political_lean_dem_minus_rep": {
            k: (corr(f.mu, axis) if axis is not None else float("nan")) for k, f in fits.items()
        },
    }


def _assembly_label(conf: ControlConf, model_path) -> str:
    """What played the citizens, in words (the summary's first line says it)."""
    a = conf.assembly
    if a.kind == "simulated":
        return "simulated assembly (planted demographic utilities)"
    who = a.agent.model or f"{model_path} (the model being tuned)"
    return f"LLM assembly ({a.agent.kind} backend: {who})"
