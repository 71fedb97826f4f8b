"""Compare finished runs at a glance: ``utility-jax compare RUN_OR_SWEEP...``.

Every run folder under the given paths (a run, a sweep, any folder of runs) becomes one row of a
table of its model, fit settings, coherence metrics, cost and incidents (``compare.csv``, also
printed), and two figures: the normalised utilities of each run against the first on their
shared outcomes, with the runs' intervals and Pearson r (Fisher-z interval), and the held-out
accuracy of every run with its Wilson interval beside its log loss.
"""

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from utility_jax.core.metrics import fisher_interval, wilson_interval
from utility_jax.run.collect import find_runs, run_row
from utility_jax.run.uncertainty import INTERVAL_KINDS

__all__ = ["COLUMNS", "compare_runs", "table_text"]

#: (column, row key) of the comparison table
COLUMNS = (
    ("agent", "config.agent.kind"),
    ("model", "config.agent.model"),
    ("fitter", "config.fitter.model"),
    ("k", "config.elicitation.k"),
    ("seed", "config.seed"),
    ("N", "metrics.n_outcomes"),
    ("pairs", "metrics.n_train_pairs"),
    ("ho_acc", "metrics.heldout.accuracy"),
    ("ho_logloss", "metrics.heldout.log_loss"),
    ("log10_pcycle_graph", "metrics.training_graph_transitivity.log10_p_cycle"),
    ("converged", "metrics.fit.converged"),
    ("answers", "metrics.cost.answers"),
    ("calls", "metrics.cost.model_calls"),
    ("tokens", "metrics.cost.tokens"),
    ("refusal_rate", "metrics.cost.refusal_rate"),
    ("error_rate", "metrics.incidents.error_rate"),
)


def _utilities(folder: Path) -> dict[str, tuple[float, float, float]]:
    """``{text: (mu_normalized, lo, hi)}`` with the run's preferred interval (NaN if none)."""
    path = folder / "utilities.json"
    if not path.exists():
        return {}
    nan = float("nan")

    def num(r, k):  # null: not fitted (an outcome never compared) or no such interval
        return float(r[k]) if k and r.get(k) is not None else nan

    try:
        rows = json.loads(path.read_text())
        kind = next((k for k in INTERVAL_KINDS if rows and f"{k}_lo" in rows[0]), None)
        return {
            r["text"]: (num(r, "mu_normalized"), num(r, f"{kind}_lo"), num(r, f"{kind}_hi"))
            for r in rows
        }
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(
            f"{path}: not a run's utilities.json (a list of rows with 'text' and "
            f"'mu_normalized'): {type(e).__name__}: {e}"
        ) from None


def compare_runs(paths: list[str | Path], out: str | Path) -> dict[str, Any]:
    """The table and figures for every run under ``paths``; returns ``{"rows", "pairs"}``."""
    folders: list[tuple[Path, Path]] = []
    for p in paths:
        root = Path(p)
        runs = find_runs(root)
        if not runs:
            raise FileNotFoundError(f"{root}: no run folder (metrics.json) under it")
        folders += [(f, root) for f in runs]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for f, root in folders:
        r = run_row(f, root)
        row = {"run": str(f)}
        row.update({name: r.get(key) for name, key in COLUMNS})
        n_ho = r.get("metrics.heldout.n_pairs") or r.get("metrics.n_heldout_pairs") or 0
        row["ho_acc_lo"], row["ho_acc_hi"] = wilson_interval(
            row["ho_acc"] or float("nan"), int(n_ho)
        )
        rows.append(row)
    with open(out / "compare.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    pairs = _pairwise(folders)
    _plot(rows, pairs, folders, out)
    return {"rows": rows, "pairs": pairs}


def _pairwise(folders) -> list[dict[str, Any]]:
    """Pearson r of each run's utilities with the first run's, on shared outcome texts."""
    base = _utilities(folders[0][0])
    out = []
    for f, _ in folders[1:]:
        u = _utilities(f)
        shared = [t for t in base if t in u]
        r = float("nan")
        if len(shared) >= 3:
            r = float(stats.pearsonr([base[t][0] for t in shared], [u[t][0] for t in shared])[0])
        lo, hi = fisher_interval(r, len(shared))
        out.append({"run": str(f), "n_shared": len(shared), "pearson_r": r, "lo": lo, "hi": hi})
    return out


def _plot(rows, pairs, folders, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [_short(r["run"]) for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(max(8, 1.1 * len(rows) + 4), 3.8))
    acc = np.array([r["ho_acc"] if r["ho_acc"] is not None else np.nan for r in rows], float)
    lo = np.array([r["ho_acc_lo"] for r in rows], float)
    hi = np.array([r["ho_acc_hi"] for r in rows], float)
    x = np.arange(len(rows))
    a1.bar(x, acc, color="tab:blue", alpha=0.8)
    a1.errorbar(x, acc, yerr=[acc - lo, hi - acc], fmt="none", ecolor="k", capsize=3)
    a1.set_ylim(0.4, 1.0)
    a1.axhline(0.5, color="grey", lw=0.8, ls=":")
    a1.set_title("held-out accuracy (90% Wilson)", fontsize=9)
    ll = np.array([r["ho_logloss"] if r["ho_logloss"] is not None else np.nan for r in rows])
    a2.bar(x, ll, color="tab:orange", alpha=0.8)
    a2.axhline(math.log(2), color="grey", lw=0.8, ls=":")
    a2.set_title("held-out log loss / vote (dotted: chance)", fontsize=9)
    for a in (a1, a2):
        a.set_xticks(x, labels, rotation=30, ha="right", fontsize=7)
    fig.set_layout_engine("constrained")
    fig.savefig(out / "compare_metrics.png", dpi=120)
    plt.close(fig)
    if not pairs:
        return
    base = _utilities(folders[0][0])
    cols = min(len(pairs), 4)
    nrow = math.ceil(len(pairs) / cols)
    fig, axes = plt.subplots(nrow, cols, figsize=(3.6 * cols, 3.4 * nrow), squeeze=False)
    for ax, pr, (f, _) in zip(axes.flat, pairs, folders[1:], strict=False):
        u = _utilities(f)
        shared = [t for t in base if t in u]
        bx = np.array([base[t] for t in shared])
        uy = np.array([u[t] for t in shared])
        if len(shared):
            ax.errorbar(
                bx[:, 0],
                uy[:, 0],
                xerr=np.abs([bx[:, 0] - bx[:, 1], bx[:, 2] - bx[:, 0]]),
                yerr=np.abs([uy[:, 0] - uy[:, 1], uy[:, 2] - uy[:, 0]]),
                fmt="o",
                ms=3,
                alpha=0.6,
                elinewidth=0.6,
            )
            lim = [np.nanmin(bx[:, 0]), np.nanmax(bx[:, 0])]
            ax.plot(lim, lim, "k--", lw=0.7)
        ax.set_xlabel(_short(rows[0]["run"]), fontsize=7)
        ax.set_ylabel(_short(pr["run"]), fontsize=7)
        ax.set_title(
            f"r = {pr['pearson_r']:.3f} [{pr['lo']:.3f}, {pr['hi']:.3f}], n = {pr['n_shared']}",
            fontsize=8,
        )
    for ax in list(axes.flat)[len(pairs) :]:
        ax.axis("off")
    fig.suptitle("normalised utilities against the first run (90% intervals)", fontsize=9)
    fig.set_layout_engine("constrained")
    fig.savefig(out / "compare_utilities.png", dpi=120)
    plt.close(fig)


def _short(path: str, n: int = 28) -> str:
    p = Path(path)
    s = "/".join(p.parts[-2:])
    return s if len(s) <= n else "..." + s[-(n - 3) :]


def table_text(res: dict[str, Any]) -> str:
    """The comparison as fixed-width text."""
    show = ["run", "model", "fitter", "k", "N", "ho_acc", "ho_logloss", "calls", "error_rate"]
    rows = res["rows"]

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4f}"
        return "-" if v is None else str(v)

    cells = [[_short(r["run"]) if c == "run" else fmt(r.get(c)) for c in show] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(show)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(show, widths, strict=True))]
    lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)) for row in cells]
    for p in res["pairs"]:
        lines.append(
            f"utilities of {_short(p['run'])} vs the first run: r = {p['pearson_r']:.3f} "
            f"[{p['lo']:.3f}, {p['hi']:.3f}] on {p['n_shared']} shared outcomes"
        )
    return "\n".join(lines)
