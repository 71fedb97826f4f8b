"""The reference's no-flipped-prompt ablation (``--exclude_flipped``), beside the both-orders run.

Every pair is normally asked in both presentation orders (K answers each) and the two pooled, so
a preference for the option shown first cancels out (and is fitted, by default). The ablation
asks only the first order (``elicitation.orders=first``) and fits as the reference does, with no
shift (``fitter.position_bias=false``): half the requests, and any position bias goes straight
into the utilities. Both runs use the run's agent, outcomes, graph and fitter; the held-out pairs of the
ablation are also asked in one order only, as in the reference.
"""

import dataclasses

import numpy as np
from scipy import stats

from utility_jax.analysis.draws import fmt, map_draws, paired_draws
from utility_jax.analysis.harness import Task, opening
from utility_jax.io.outcomes import load_outcomes
from utility_jax.run.agents import simulated_truth

__all__ = ["Config", "run", "plot", "summary"]

BOUNDS = {"pearson_r": (-1.0, 1.0), "spearman_rho": (-1.0, 1.0)}

_METRICS = ("heldout_accuracy", "heldout_log_loss", "train_log10_p_cycle", "requests")


@dataclasses.dataclass
class Config:
    name: str = "no_flip"


def _row(task) -> dict:
    m = task.result.metrics
    c = m["cost"]
    return {
        "heldout_accuracy": m["heldout"]["accuracy"] if "heldout" in m else float("nan"),
        "heldout_log_loss": m["heldout"]["log_loss"] if "heldout" in m else float("nan"),
        "train_log10_p_cycle": m["training_graph_transitivity"]["log10_p_cycle"],
        "requests": int(c["answers"] + c["errors"]),
        "spearman_to_truth": m.get("recovery", {}).get("spearman_mu", float("nan")),
        "pearson_to_truth": m.get("recovery", {}).get("pearson_mu", float("nan")),
        # the order effect in the answers, and the fitted shift (None where not fitted)
        "share_choosing_first_shown": m["order"]["share_choosing_first_shown"],
        "share_choosing_first_shown_lo": m["order"]["share_choosing_first_shown_lo"],
        **{k: m["order"].get(k) for k in ("position_bias", "position_bias_lo", "position_bias_hi")},
    }


def _agreement(u, v) -> dict:
    return {
        "pearson_r": float(stats.pearsonr(u, v).statistic),
        "spearman_rho": float(stats.spearmanr(u, v).statistic),
    }


def run(cfg: Config, ctx) -> dict:
    conf = ctx.conf
    outcomes = load_outcomes(conf.outcomes.path, limit=conf.outcomes.limit)
    truth = simulated_truth(conf, outcomes, ctx.task_key("plant")) if ctx.simulated else None
    both = ctx.fit(Task("both_orders", outcomes, truth=truth))
    first = ctx.fit(
        Task(
            "first_order_only",
            outcomes,
            truth=truth,
            elicitation={"orders": "first"},
            fitter={"position_bias": False},
        )
    )
    db, df = paired_draws(both, first)
    out = {
        "interval_kind": both.interval_kind,
        "both_orders": _row(both),
        "first_order_only": _row(first),
        "agreement": map_draws(
            _agreement,
            ctx.level,
            (both.mu, first.mu),
            (db, df),
            both.interval_kind,
            bounds=BOUNDS,
        ),
        "points": {"both_orders": both.mu, "first_order_only": first.mu},
        "position_bias_planted": conf.agent.position_bias if ctx.simulated else None,
    }
    return out


def plot(numbers: dict):
    import matplotlib.pyplot as plt

    x = np.asarray(numbers["points"]["both_orders"])
    y = np.asarray(numbers["points"]["first_order_only"])
    fig, ax = plt.subplots(figsize=(5, 4.6))
    ax.scatter(x, y, s=12, alpha=0.7)
    lim = [min(x.min(), y.min()), max(x.max(), y.max())]
    ax.plot(lim, lim, "k--", lw=0.8, label="y = x")
    a = numbers["agreement"]["pearson_r"]
    ax.set_xlabel("utility, both orders pooled (normalised)")
    ax.set_ylabel("utility, first order only (normalised)")
    ax.set_title(f"No-flip ablation: r = {fmt(a)}", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.set_layout_engine("constrained")
    return fig


def summary(numbers: dict) -> str:
    b, f = numbers["both_orders"], numbers["first_order_only"]
    bias = numbers.get("position_bias_planted")
    detail = f"planted position bias {bias}" if bias is not None else ""
    lines = [
        opening(numbers, "No-flip ablation (first presentation order only)", detail)
        + f"Utilities agree with the both-orders run at Pearson r = "
        f"{fmt(numbers['agreement']['pearson_r'])}.",
        f"{'':24s}{'both orders':>14s}{'first only':>14s}",
    ]
    for k in (*_METRICS, "share_choosing_first_shown", "spearman_to_truth", "pearson_to_truth"):
        if isinstance(b[k], float) and np.isnan(b[k]):
            continue
        lines.append(
            f"{k:24s}{b[k]:>14.4f}{f[k]:>14.4f}"
            if k != "requests"
            else f"{k:24s}{b[k]:>14d}{f[k]:>14d}"
        )
    lines.append(
        "(held-out numbers are each run's own held-out pairs, asked as that run asks: the "
        "ablation's in one order only)"
    )
    return "\n".join(lines)
