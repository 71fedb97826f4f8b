"""Writing a utility-control run folder: metrics, utilities, a summary that names what played
the assembly, and plots."""

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import yaml
from scipy import stats

from utility_jax.core.metrics import wilson_interval

__all__ = ["corr", "write_control_run"]


def corr(x, y, kind: str = "pearson") -> float:
    """A correlation, NaN (without a warning) when either side is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if np.ptp(x) < 1e-9 or np.ptp(y) < 1e-9:
        return float("nan")
    f = stats.pearsonr if kind == "pearson" else stats.spearmanr
    return float(f(x, y).statistic)


def write_control_run(out: Path, outcomes, fits: dict, metrics: dict, sft_log, conf) -> None:
    """Write the control run folder: config, metrics, SFT log, utilities, summary and plots.

    ``fits`` maps ``target``, ``before`` and ``after`` to their Thurstonian fits.
    """
    (out / "config_resolved.yaml").write_text(
        yaml.safe_dump(dataclasses.asdict(conf), sort_keys=False)
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (out / "sft_log.json").write_text(json.dumps(sft_log, indent=1))
    cols = fits
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
        f"held-out pairs, {m['assembly']} of {m['n_citizens']} citizens ({m['pooling']} pooling), "
        f"{m['sft_steps']} SFT steps",
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
    tp = m.get("jax_backend")
    if tp:
        lines.append(
            f"jax log-prob backend: {tp['prompts']} prompts in {tp['seconds']:.1f} s, "
            f"{tp['prompts_per_s']:.1f} prompts/s (compilation of each prompt length included)"
        )
    u = m.get("unseen_outcomes") or {}
    if u:
        lines.insert(
            3,
            f"model's own answers on the {u['n_pairs']} pairs touching the {u['n_outcomes']} "
            "never-trained outcomes agreeing with the assembly: before "
            f"{_wilson(u['agreement_direct_before'], u['n_pairs'])}, after "
            f"{_wilson(u['agreement_direct_after'], u['n_pairs'])} (90% Wilson intervals)",
        )
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    if conf.plots:
        _plots(out, fits, metrics, sft_log)


def _wilson(p: float, n: int) -> str:
    """``0.650 [0.560, 0.730]``: a share of ``n`` with its 90% Wilson score interval."""
    lo, hi = wilson_interval(p, n)
    return f"{p:.3f} [{lo:.3f}, {hi:.3f}]"


def _plots(out: Path, fits: dict, metrics: dict, sft_log) -> None:
    target_fit, fit_before, fit_after = fits["target"], fits["before"], fits["after"]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    t = np.asarray(target_fit.mu_normalized)
    for ax, (name, f) in zip(axes[:2], (("before", fit_before), ("after", fit_after)), strict=True):
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
