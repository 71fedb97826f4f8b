"""Emergence (the paper's capability plots): every coherence and analysis metric of a set of
runs against the models' capability (MMLU).

Inputs: ``runs``, a mapping from a model's key in the capability table to its run folder (a
``utility-jax compute`` folder with ``metrics.json``, or an analysis folder with
``analysis.json``; both are read when present), and ``capability``, the ``Model Name,MMLU``
table (the reference's ``capability_scores.csv``). Without ``runs`` the analysis builds its own
family of simulated models (``simulated``: a name, an MMLU score and a utility scale each; a
larger scale makes a more decisive, more coherent agent) and fits each one, so the default runs
anywhere.

For every metric present in at least three runs: Pearson r with MMLU and its Fisher-z interval
(exact enough for a handful of models, unlike a bootstrap over five points), and the
least-squares trend with its t-interval and confidence band; one plot per metric.
"""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

from utility_jax.analysis.convergence import load_capability
from utility_jax.analysis.harness import Task, opening
from utility_jax.core.metrics import fisher_interval
from utility_jax.core.simulate import planted_utilities
from utility_jax.io.outcomes import load_outcomes
from utility_jax.run.report import flatten

__all__ = ["Config", "run_metrics", "trend", "run", "plot", "summary"]

BOUNDS = {"pearson_r": (-1.0, 1.0)}

#: the sections of metrics.json read as coherence metrics
_SECTIONS = ("heldout.", "train.", "training_graph_transitivity.", "pseudolabels.with.")
_SKIP = ("n_", "tie")


@dataclasses.dataclass
class Config:
    name: str = "emergence"
    runs: dict[str, str] | None = None  # {capability-table model name: run folder}
    capability: str | None = None  # the Model Name,MMLU table (needed with runs)
    min_runs: int = 3
    # the simulated family (used without runs): name, MMLU and planted utility scale
    simulated: list[dict] = dataclasses.field(
        default_factory=lambda: [
            {"name": "small", "mmlu": 40.0, "mu_scale": 0.3},
            {"name": "medium", "mmlu": 55.0, "mu_scale": 0.7},
            {"name": "large", "mmlu": 70.0, "mu_scale": 1.2},
            {"name": "xl", "mmlu": 80.0, "mu_scale": 2.0},
            {"name": "frontier", "mmlu": 88.0, "mu_scale": 3.0},
        ]
    )


def _keep(key: str) -> bool:
    last = key.rsplit(".", 1)[-1]
    return not any(last.startswith(s) for s in _SKIP)


def run_metrics(folder: str | Path) -> dict[str, float]:
    """Every scalar coherence metric of a saved run folder: ``metrics.json``'s held-out, training,
    transitivity and pseudolabel numbers, ``cost.refusal_rate``, and each ``*.estimate`` of an
    ``analysis.json`` (named without the suffix)."""
    folder = Path(folder)
    out: dict[str, float] = {}
    mp, ap = folder / "metrics.json", folder / "analysis.json"
    if not mp.exists() and not ap.exists():
        raise FileNotFoundError(f"{folder}: no metrics.json or analysis.json (not a run folder)")
    for path, pick in ((mp, _metrics_keys), (ap, _analysis_keys)):
        if path.exists():
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON: {e}") from e
            out.update(pick(flatten(data)))
    return out


def _metrics_keys(flat: dict) -> dict[str, float]:
    out = {
        k: float(v)
        for k, v in flat.items()
        if k.startswith(_SECTIONS) and isinstance(v, int | float) and _keep(k)
    }
    if isinstance(flat.get("cost.refusal_rate"), int | float):
        out["cost.refusal_rate"] = float(flat["cost.refusal_rate"])
    return out


def _analysis_keys(flat: dict) -> dict[str, float]:
    name = flat.get("analysis", "analysis")
    return {
        f"{name}.{k[: -len('.estimate')]}": float(v)
        for k, v in flat.items()
        if k.endswith(".estimate") and isinstance(v, int | float)
    }


def trend(x, y, level: float = 0.9) -> dict:
    """Pearson r with its Fisher-z interval and the least-squares line with its t-interval."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    out = {"n": int(n)}
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        nan = {"estimate": float("nan"), "lo": float("nan"), "hi": float("nan")}
        return {
            **out,
            "pearson_r": nan,
            "slope": nan,
            "intercept": float("nan"),
            "why": f"{n} runs with finite values, or no spread: no trend",
        }
    r = float(stats.pearsonr(x, y).statistic)
    r_lo, r_hi = fisher_interval(r, n, level)
    if not np.isfinite(r_lo):  # n = 3 or |r| = 1: the Fisher interval is undefined
        r_lo, r_hi = -1.0, 1.0
    lr = stats.linregress(x, y)
    t = stats.t.ppf(0.5 + level / 2, n - 2)
    return {
        **out,
        "pearson_r": {"estimate": r, "lo": r_lo, "hi": r_hi},
        "slope": {
            "estimate": float(lr.slope),
            "lo": float(lr.slope - t * lr.stderr),
            "hi": float(lr.slope + t * lr.stderr),
        },
        "intercept": float(lr.intercept),
        "x": x.tolist(),
        "y": y.tolist(),
    }


def _simulated_runs(cfg: Config, ctx) -> tuple[dict[str, dict], dict[str, float]]:
    conf = ctx.conf
    outcomes = load_outcomes(conf.outcomes.path, limit=conf.outcomes.limit)
    per, cap = {}, {}
    for m in cfg.simulated:
        name = str(m["name"])
        truth = planted_utilities(
            outcomes,
            ctx.task_key("plant"),  # the same values, scaled: only coherence changes
            mu_scale=float(m["mu_scale"]),
            sigma_range=(conf.agent.sigma_min, conf.agent.sigma_max),
        )
        res = ctx.fit(Task(f"model_{name}", outcomes, truth=truth))
        per[name] = _metrics_keys(flatten(res.result.metrics))
        cap[name] = float(m["mmlu"])
    return per, cap


def run(cfg: Config, ctx) -> dict:
    if cfg.runs:
        if not cfg.capability:
            raise ValueError("analysis.runs needs analysis.capability (the Model Name,MMLU table)")
        table = load_capability(cfg.capability)
        missing = sorted(set(cfg.runs) - set(table))
        if missing:
            raise ValueError(
                f"{cfg.capability}: no MMLU score for {missing}; the keys of analysis.runs must "
                "be model names of the capability table"
            )
        per = {k: run_metrics(v) for k, v in cfg.runs.items()}
        cap = {k: table[k] for k in cfg.runs}
        source = f"{len(per)} saved runs"
    else:
        per, cap = _simulated_runs(cfg, ctx)
        source = f"{len(per)} simulated models"
    names = sorted(per, key=cap.get)
    keys = sorted({k for m in per.values() for k in m})
    trends = {}
    for k in keys:
        have = [n for n in names if k in per[n]]
        if len(have) >= cfg.min_runs:
            trends[k] = trend([cap[n] for n in have], [per[n][k] for n in have], ctx.level)
    return {
        "interval_kind": "Fisher-z / t",
        "source": source,
        "models": names,
        "capability": cap,
        "metrics": per,
        "trends": trends,
    }


#: the metrics drawn in the overview figure, when present
OVERVIEW = (
    "heldout.accuracy",
    "heldout.log_loss",
    "train.average_confidence",
    "training_graph_transitivity.log10_p_cycle",
)


def _panel(ax, name: str, t: dict, models: list[str]):
    x, y = np.asarray(t["x"]), np.asarray(t["y"])
    ax.scatter(x, y, s=18, zorder=3)
    xx = np.linspace(x.min(), x.max(), 50)
    n = len(x)
    resid = y - (t["intercept"] + t["slope"]["estimate"] * x)
    s = math.sqrt((resid**2).sum() / max(n - 2, 1))
    tq = stats.t.ppf(0.95, max(n - 2, 1))
    se = s * np.sqrt(1 / n + (xx - x.mean()) ** 2 / max(((x - x.mean()) ** 2).sum(), 1e-12))
    fit = t["intercept"] + t["slope"]["estimate"] * xx
    ax.plot(xx, fit, "C3-", lw=1)
    ax.fill_between(xx, fit - tq * se, fit + tq * se, color="C3", alpha=0.15, lw=0)
    r = t["pearson_r"]
    ax.set_title(f"{name}\nr = {r['estimate']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}]", fontsize=8)
    ax.set_xlabel("MMLU", fontsize=8)
    ax.tick_params(labelsize=7)


def plot(numbers: dict):
    import matplotlib.pyplot as plt

    tr = numbers["trends"]
    shown = [k for k in OVERVIEW if k in tr and "x" in tr[k]] or [k for k in tr if "x" in tr[k]][:4]
    cols = max(len(shown), 1)
    fig, axes = plt.subplots(1, cols, figsize=(3.2 * cols, 3.2), squeeze=False)
    for ax, k in zip(axes[0], shown, strict=False):
        _panel(ax, k, tr[k], numbers["models"])
    fig.suptitle(f"Coherence against capability ({numbers['source']})", fontsize=10)
    fig.set_layout_engine("constrained")
    return fig


def per_metric_figures(numbers: dict):
    """``{metric: Figure}``, one per metric with a trend (saved under ``emergence/``)."""
    import matplotlib.pyplot as plt

    out = {}
    for k, t in numbers["trends"].items():
        if "x" not in t:
            continue
        fig, ax = plt.subplots(figsize=(4, 3.4))
        _panel(ax, k, t, numbers["models"])
        fig.set_layout_engine("constrained")
        out[k] = fig
    return out


def summary(numbers: dict) -> str:
    tr = numbers["trends"]
    lines = [
        opening(
            numbers,
            "Emergence: metrics against capability (MMLU)",
            numbers["source"],
            intervals="Fisher-z (r) / t (slope)",
        )
        + f"{len(tr)} metrics with a trend; models by MMLU: "
        + ", ".join(f"{m} ({numbers['capability'][m]:g})" for m in numbers["models"])
        + "."
    ]
    order = sorted(
        tr,
        key=lambda k: (
            -abs(tr[k]["pearson_r"]["estimate"])
            if np.isfinite(tr[k]["pearson_r"]["estimate"])
            else 0
        ),
    )
    for k in order:
        t = tr[k]
        r, s = t["pearson_r"], t["slope"]
        if not np.isfinite(r["estimate"]):
            lines.append(f"  {k}: {t['why']}")
            continue
        lines.append(
            f"  {k:50s} r = {r['estimate']:+.2f} [{r['lo']:+.2f}, {r['hi']:+.2f}]  slope per "
            f"MMLU point {s['estimate']:+.4f} [{s['lo']:+.4f}, {s['hi']:+.4f}]  (n = {t['n']})"
        )
    return "\n".join(lines)
