"""The utility-control experiment: assembly -> target utilities -> model before -> SFT -> model after.

All measurements use the same outcome set and the same held-out pairs; the model is our NNX model
read from a Hugging Face checkpoint and measured through the ``jax`` log-prob backend, so the
model measured after tuning is exactly the one that was tuned.
"""

import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf
from scipy import stats

import utility_jax as uj
from utility_jax.assembly import SimulatedAssembly, pool_preferences, sample_citizens
from utility_jax.config import OutcomesConf
from utility_jax.elicit.prompts import load_template, render_pair, system_message
from utility_jax.runner import build_outcomes
from utility_jax.simulate import pool_orders

__all__ = ["ControlConf", "run_utility_control"]

log = logging.getLogger("utility_jax")


@dataclasses.dataclass
class ModelConf:
    path: str | None = (
        None  # a local HF checkpoint; null builds a tiny random Qwen2 in the run folder
    )
    hidden_size: int = 64
    num_hidden_layers: int = 2
    batch_size: int = 32


@dataclasses.dataclass
class AssemblyConf:
    kind: str = "simulated"  # simulated | agent (LLM citizens with persona prompts)
    n_citizens: int = 50
    pooling: str = "mean"  # mean | majority
    effect: float = 0.3
    party_effect: float = 0.8
    noise: float = 0.5
    # kind=agent: the LLM that plays every citizen (log-prob mode)
    agent_kind: str = "jax"  # jax | hf | openai
    agent_model: str | None = None  # checkpoint path / served model; null: the model being tuned
    agent_base_url: str | None = None


@dataclasses.dataclass
class SFTConf:
    steps: int = 250
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 20
    weight_decay: float = 0.0
    eval_every: int = 50
    loss: str = "answer"  # answer | token (plain SFT on sampled target letters)
    lora_rank: int = 0  # > 0: LoRA adapters only
    lora_alpha: float = 16.0
    checkpoint_every: int = 0  # > 0: save checkpoints/step_N every N steps


@dataclasses.dataclass
class ControlConf:
    outcomes: OutcomesConf = dataclasses.field(default_factory=lambda: OutcomesConf(limit=20))
    model: ModelConf = dataclasses.field(default_factory=ModelConf)
    assembly: AssemblyConf = dataclasses.field(default_factory=AssemblyConf)
    sft: SFTConf = dataclasses.field(default_factory=SFTConf)
    template: str = "default"
    system: str | None = "default"
    heldout_fraction: float = 0.25
    heldout_outcomes: int = (
        0  # outcomes kept out of training entirely (their pairs are measured apart)
    )
    k: int = 10
    seed: int = 0
    plots: bool = True
    progress: bool = True
    name: str = "utility_control"


def _validate(cfg) -> ControlConf:
    raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    known = {f.name for f in dataclasses.fields(ControlConf)}
    merged = OmegaConf.merge(
        OmegaConf.structured(ControlConf), {k: v for k, v in raw.items() if k in known}
    )
    conf: ControlConf = OmegaConf.to_object(merged)
    if conf.assembly.kind not in ("simulated", "agent"):
        raise ValueError(f"assembly.kind={conf.assembly.kind!r} must be 'simulated' or 'agent'")
    if conf.assembly.agent_kind not in ("jax", "hf", "openai"):
        raise ValueError(
            f"assembly.agent_kind={conf.assembly.agent_kind!r} must be jax, hf or openai"
        )
    return conf


def _measure(backend, outcomes, tpl, system, train, heldout, k, target_heldout):
    """Elicit on the training pairs, refit, and score the refit utilities on the held-out pairs;
    also the model's own answers on the held-out pairs against the target."""
    from utility_jax.elicit.llm import LLMAgent

    n = len(outcomes)
    agent = LLMAgent(backend, outcomes, tpl, mode="logprob", system=system)
    c = agent.query(train, k, key=jax.random.key(0))
    data = uj.PairwiseData.from_counts(n, train[:, 0], train[:, 1], *pool_orders(c, refusal="drop"))
    fit = uj.fit_thurstonian(data)
    p = np.asarray(uj.predict_proba(fit, heldout[:, 0], heldout[:, 1]))
    ch = agent.query(heldout, k, key=jax.random.key(1))
    direct = np.divide(*pool_orders(ch, refusal="drop"))
    return fit, {
        "heldout_accuracy_refit": float(np.mean((p >= 0.5) == (target_heldout >= 0.5))),
        "heldout_agreement_direct": float(np.mean((direct >= 0.5) == (target_heldout >= 0.5))),
        "mean_probability_outside_AB": float(np.mean(agent.other_mass)),
    }


def _corr(x, y, kind="pearson") -> float:
    """A correlation, NaN (without a warning) when either side is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if np.ptp(x) < 1e-9 or np.ptp(y) < 1e-9:
        return float("nan")
    f = stats.pearsonr if kind == "pearson" else stats.spearmanr
    return float(f(x, y).statistic)


def citizen_preferences_llm(backend, citizens, outcomes, tpl, pairs, k: int = 10) -> np.ndarray:
    """``[citizens, pairs]`` P(first outcome preferred) from an LLM playing each citizen: the
    persona prompt is the system message, both orders asked in log-prob mode."""
    from utility_jax.assembly import persona_prompt
    from utility_jax.elicit.llm import LLMAgent

    out = []
    for c in citizens:
        agent = LLMAgent(backend, outcomes, tpl, mode="logprob", system=persona_prompt(c))
        counts = agent.query(pairs, k, key=jax.random.key(0))
        out.append(np.divide(*pool_orders(counts, refusal="drop")))
    return np.stack(out)


def _citizen_backend(a: AssemblyConf, tuned_path):
    model = a.agent_model or str(tuned_path)
    if a.agent_kind == "jax":
        from utility_jax.elicit.jax_backend import JaxBackend

        return JaxBackend.from_pretrained(model)
    if a.agent_kind == "hf":
        from utility_jax.elicit.hf import HFBackend

        return HFBackend(model)
    from utility_jax.elicit.openai_compat import OpenAIBackend

    return OpenAIBackend(a.agent_base_url, model)


def party_axis(p_citizens, citizens, pairs, n) -> np.ndarray | None:
    """Utilities of the Democrat citizens' pooled preferences minus the Republicans' (the
    assembly's political axis), or None when a party is missing."""
    mus = {}
    for party in ("Democrat", "Republican"):
        idx = [i for i, c in enumerate(citizens) if c.attributes["party"] == party]
        if not idx:
            return None
        p = np.asarray(p_citizens)[idx].mean(0)
        d = uj.PairwiseData.from_counts(
            n, pairs[:, 0], pairs[:, 1], 20 * p, np.full(len(pairs), 20.0)
        )
        mus[party] = np.asarray(uj.fit_thurstonian(d).mu_normalized)
    return mus["Democrat"] - mus["Republican"]


def _direct_agreement(backend, outcomes, tpl, system, pairs, k, target) -> float:
    """Share of pairs whose model answer (both orders pooled) agrees with the target's side."""
    from utility_jax.elicit.llm import LLMAgent

    agent = LLMAgent(backend, outcomes, tpl, mode="logprob", system=system)
    c = agent.query(pairs, k, key=jax.random.key(2))
    direct = np.divide(*pool_orders(c, refusal="drop"))
    return float(np.mean((direct >= 0.5) == (target >= 0.5)))


def _examples(outcomes, tpl, system, pairs, p_first):
    prompts, t = [], []
    for (i, j), p in zip(pairs.tolist(), p_first.tolist(), strict=True):
        prompts.append(render_pair(tpl, outcomes[i].text, outcomes[j].text, system))
        t.append(p)
        prompts.append(render_pair(tpl, outcomes[j].text, outcomes[i].text, system))
        t.append(1 - p)
    return prompts, np.asarray(t)


def run_utility_control(cfg: DictConfig | dict, out_dir: str | Path) -> dict[str, Any]:
    """Run the experiment and write its run folder; returns the metrics."""
    from transformers import AutoTokenizer

    from utility_jax.elicit.jax_backend import JaxBackend
    from utility_jax.finetune import load_checkpoint, save_checkpoint
    from utility_jax.finetune.sft import SFTConfig, train_sft
    from utility_jax.finetune.tokens import answer_token_ids, encode_prompts

    conf = _validate(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    outcomes = build_outcomes(conf)
    n = len(outcomes)
    tpl, system = load_template(conf.template), system_message(conf.system)
    rng = np.random.default_rng(conf.seed)

    path = conf.model.path
    if path is None:
        from utility_jax.testing import build_random_qwen2

        corpus = [tpl.render(a, b) for a in outcomes.texts for b in outcomes.texts if a != b]
        path = build_random_qwen2(
            out / "base_model",
            corpus,
            seed=conf.seed,
            vocab_size=600,
            hidden_size=conf.model.hidden_size,
            intermediate_size=2 * conf.model.hidden_size,
            num_hidden_layers=conf.model.num_hidden_layers,
        )
    tokenizer = AutoTokenizer.from_pretrained(path)
    backend = JaxBackend(
        load_checkpoint(path), tokenizer, model_id=str(path), batch_size=conf.model.batch_size
    )

    # assembly -> target
    citizens = sample_citizens(conf.assembly.n_citizens, rng)
    a = conf.assembly
    pairs = np.stack(np.triu_indices(n, 1), 1)
    if a.kind == "simulated":
        assembly = SimulatedAssembly(
            n, citizens, rng, effect=a.effect, party_effect=a.party_effect, noise=a.noise
        )
        p_citizens = assembly.preferences(pairs)
    else:
        p_citizens = citizen_preferences_llm(
            _citizen_backend(a, path), citizens, outcomes, tpl, pairs, conf.k
        )
    p_target = pool_preferences(p_citizens, a.pooling)
    unseen = (
        np.sort(rng.permutation(n)[: conf.heldout_outcomes])
        if conf.heldout_outcomes > 0
        else np.zeros(0, int)
    )
    touches = np.isin(pairs, unseen).any(1)
    perm = rng.permutation(np.flatnonzero(~touches))
    n_ho = max(1, int(conf.heldout_fraction * len(perm)))
    ho_idx, tr_idx = np.sort(perm[:n_ho]), np.sort(perm[n_ho:])
    heldout, train = pairs[ho_idx], pairs[tr_idx]
    unseen_idx = np.flatnonzero(touches)
    target_fit = uj.fit_thurstonian(
        uj.PairwiseData.from_counts(
            n, pairs[:, 0], pairs[:, 1], 20 * p_target, np.full(len(pairs), 20.0)
        )
    )

    # before -> SFT -> after
    unseen_before = (
        _direct_agreement(
            backend, outcomes, tpl, system, pairs[unseen_idx], conf.k, p_target[unseen_idx]
        )
        if len(unseen_idx)
        else None
    )
    fit_before, before = _measure(
        backend, outcomes, tpl, system, train, heldout, conf.k, p_target[ho_idx]
    )
    prompts, t = _examples(outcomes, tpl, system, train, p_target[tr_idx])
    ids, mask = encode_prompts(tokenizer, prompts)
    vp, vt = _examples(outcomes, tpl, system, heldout, p_target[ho_idx])
    vids, vmask = encode_prompts(tokenizer, vp)
    ans = answer_token_ids(tokenizer)
    progress = None
    if conf.progress:
        from tqdm.auto import tqdm

        progress = lambda **kw: tqdm(file=sys.stderr, dynamic_ncols=True, **kw)  # noqa: E731
    s = conf.sft

    def on_step(step, model):
        if s.checkpoint_every > 0 and step % s.checkpoint_every == 0:
            save_checkpoint(model, out / "checkpoints" / f"step_{step}", source=path)

    sft_log = train_sft(
        backend.lm,
        ids,
        mask,
        t,
        ans["A"],
        ans["B"],
        SFTConfig(
            steps=s.steps,
            batch_size=s.batch_size,
            lr=s.lr,
            warmup=s.warmup,
            weight_decay=s.weight_decay,
            seed=conf.seed,
            eval_every=s.eval_every,
            loss=s.loss,
            lora_rank=s.lora_rank,
            lora_alpha=s.lora_alpha,
        ),
        val=(vids, vmask, vt),
        progress=progress,
        on_step=on_step,
    )
    backend.model = f"{path}#sft-seed{conf.seed}"
    fit_after, after = _measure(
        backend, outcomes, tpl, system, train, heldout, conf.k, p_target[ho_idx]
    )
    tuned = save_checkpoint(backend.lm, out / "tuned_model", source=path)
    unseen_metrics = {}
    if len(unseen_idx):
        unseen_metrics = {
            "n_outcomes": int(len(unseen)),
            "n_pairs": int(len(unseen_idx)),
            "agreement_direct_before": unseen_before,
            "agreement_direct_after": _direct_agreement(
                backend, outcomes, tpl, system, pairs[unseen_idx], conf.k, p_target[unseen_idx]
            ),
        }

    # political lean: correlation with the assembly's own Democrat - Republican axis
    axis = party_axis(p_citizens, citizens, pairs, n)
    lean = {
        name: (_corr(f.mu, axis) if axis is not None else float("nan"))
        for name, f in (("target", target_fit), ("before", fit_before), ("after", fit_after))
    }
    metrics = {
        "n_outcomes": n,
        "n_train_pairs": len(train),
        "n_heldout_pairs": len(heldout),
        "n_citizens": len(citizens),
        "pooling": a.pooling,
        "sft_steps": s.steps,
        "before": before,
        "after": after,
        "spearman_with_target": {
            "before": _corr(fit_before.mu, target_fit.mu, "spearman"),
            "after": _corr(fit_after.mu, target_fit.mu, "spearman"),
        },
        "political_lean_dem_minus_rep": lean,
        "unseen_outcomes": unseen_metrics,
        "final_sft_loss": sft_log[-1]["loss"],
        "tuned_model": str(tuned),
        "base_model": str(path),
    }
    _write(out, outcomes, target_fit, fit_before, fit_after, metrics, sft_log, conf)
    log.info(
        "held-out accuracy of the refit utilities: before %.3f, after %.3f; files in %s",
        before["heldout_accuracy_refit"],
        after["heldout_accuracy_refit"],
        out,
    )
    return metrics


def _write(out, outcomes, target_fit, fit_before, fit_after, metrics, sft_log, conf):
    import csv

    import yaml

    (out / "config_resolved.yaml").write_text(
        yaml.safe_dump(dataclasses.asdict(conf), sort_keys=False)
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (out / "sft_log.json").write_text(json.dumps(sft_log, indent=1))
    cols = {"target": target_fit, "before": fit_before, "after": fit_after}
    with open(out / "utilities.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "text", "category", *[f"{k}_mu_normalized" for k in cols]])
        for i, o in enumerate(outcomes.outcomes):
            w.writerow(
                [
                    i,
                    o.text,
                    o.category,
                    *[f"{float(f.mu_normalized[i]):.5f}" for f in cols.values()],
                ]
            )
    m = metrics
    lines = [
        f"utility_control: {m['n_outcomes']} outcomes, {m['n_train_pairs']} training / {m['n_heldout_pairs']} "
        f"held-out pairs, simulated assembly of {m['n_citizens']} citizens ({m['pooling']} pooling), {m['sft_steps']} SFT steps",
        f"held-out accuracy of the refit utilities against the assembly: before {m['before']['heldout_accuracy_refit']:.3f}, "
        f"after {m['after']['heldout_accuracy_refit']:.3f}",
        f"model's own answers on held-out pairs agreeing with the assembly: before "
        f"{m['before']['heldout_agreement_direct']:.3f}, after {m['after']['heldout_agreement_direct']:.3f}",
        f"Spearman with the target utilities: before {m['spearman_with_target']['before']:.3f}, "
        f"after {m['spearman_with_target']['after']:.3f}",
        "political lean (correlation with the assembly's Democrat - Republican axis): "
        + ", ".join(f"{k} {v:+.3f}" for k, v in m["political_lean_dem_minus_rep"].items()),
        f"tuned checkpoint: {m['tuned_model']}",
    ]
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    if conf.plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
        t = np.asarray(target_fit.mu_normalized)
        for ax, (name, f) in zip(
            axes[:2], (("before", fit_before), ("after", fit_after)), strict=True
        ):
            ax.scatter(t, np.asarray(f.mu_normalized), s=14)
            ax.plot([-2.5, 2.5], [-2.5, 2.5], "--", color="0.6", lw=1)
            ax.set_xlabel("target utility (assembly)")
            ax.set_ylabel(f"model utility {name} SFT")
            ax.set_title(f"{name}: held-out acc {metrics[name]['heldout_accuracy_refit']:.2f}")
        lean = metrics["political_lean_dem_minus_rep"]
        axes[2].bar(list(lean), list(lean.values()), color=["0.5", "C0", "C1"])
        axes[2].axhline(0, color="k", lw=0.8)
        axes[2].set_title("lean: corr. with Dem - Rep axis")
        fig.tight_layout()
        fig.savefig(out / "control.png", dpi=130)
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(5, 3.3))
        ax.plot([r["step"] for r in sft_log], [r["loss"] for r in sft_log], lw=1)
        ax.set_xlabel("SFT step")
        ax.set_ylabel("answer cross-entropy")
        ax.set_title("SFT loss")
        fig.tight_layout()
        fig.savefig(out / "sft_loss.png", dpi=130)
        plt.close(fig)
