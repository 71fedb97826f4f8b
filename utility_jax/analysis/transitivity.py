"""Transitivity as the paper measured it (SPEC section 4): fresh uniform triads, both orders.

The reference's transitivity experiment draws 1,000 triads uniformly from all C(N, 3) outcome
triples, asks the three pairs of each fresh (not the active-learning graph, whose triangles are
full of near-indifferent pairs), in both orders with K answers per order, and reports
log10 P(cycle). Its exact definition lived in the lost notebook, so every candidate
(:mod:`utility_jax.core.triads`) is reported beside a random responder's value, exact and
simulated with the model's vote counts; the summary says which candidate, if any, reproduces
the paper's random baseline (-0.484; GPT-4o: -1.61).

Intervals: a bootstrap over triads (the triad sample is the main source of noise here).
"""

import dataclasses

import numpy as np

from utility_jax.analysis.draws import fmt, interval
from utility_jax.analysis.harness import Task, opening
from utility_jax.core import triads as T
from utility_jax.core.data import pool_orders
from utility_jax.io.outcomes import load_outcomes
from utility_jax.run.agents import simulated_truth

__all__ = ["Config", "run", "plot", "summary", "PAPER"]

BOUNDS = {"hard_cycle_rate": (0.0, 1.0), "mean_p_cycle": (0.0, 1.0)}

#: the paper's reported values (log10 P(cycle))
PAPER = {"random responder": -0.484, "GPT-4o": -1.61}

_LABELS = {
    "log10_mean_p_cycle": "log10 mean P(cycle)",
    "log10_odds_mean_p_cycle": "log10 odds of mean P(cycle)",
    "mean_log10_p_cycle": "mean log10 P(cycle)",
    "log10_hard_cycle_rate": "log10 hard cycle rate",
}


@dataclasses.dataclass
class Config:
    name: str = "transitivity"
    n_triads: int = 1000  # the reference's sample size
    n_random: int = 200  # simulated random responders (same votes per pair as the model)
    n_boot: int = 500  # bootstrap resamples of the triads


def _probs(counts: np.ndarray, refusal: str) -> tuple[np.ndarray, np.ndarray]:
    wins, total = pool_orders(counts, refusal=refusal)
    wins, total = np.asarray(wins, np.float64), np.asarray(total, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, wins / total, np.nan), total


def run(cfg: Config, ctx) -> dict:
    conf = ctx.conf
    outcomes = load_outcomes(conf.outcomes.path, limit=conf.outcomes.limit)
    truth = simulated_truth(conf, outcomes, ctx.task_key("plant")) if ctx.simulated else None
    triads = T.sample_uniform_triads(len(outcomes), cfg.n_triads, ctx.rng("triads"))
    pairs, rows = T.triad_pairs(triads)
    counts = ctx.query(Task("triads", outcomes, truth=truth), pairs)
    p, total = _probs(counts, conf.elicitation.refusal)

    def metrics(r):
        return T.cycle_metrics(p[r[:, 0]], p[r[:, 1]], p[r[:, 2]])

    point = metrics(rows)
    rng = ctx.rng("bootstrap")
    boot = [metrics(rows[rng.integers(0, len(rows), len(rows))]) for _ in range(cfg.n_boot)]
    per_order = conf.elicitation.k * (2 if conf.elicitation.orders == "both" else 1)
    closed = T.random_baselines(per_order)
    sim = T.simulate_random(total, rows, cfg.n_random, ctx.rng("random"))
    a = (1 - ctx.level) / 2
    defs = {}
    for d in (*T.DEFINITIONS, "hard_cycle_rate", "mean_p_cycle"):
        s = sim[d][np.isfinite(sim[d])]
        defs[d] = {
            **interval(point[d], [b[d] for b in boot], ctx.level, bounds=BOUNDS.get(d)),
            "random_closed_form": closed[d],
            "random_simulated": float(s.mean()),
            "random_simulated_lo": float(np.quantile(s, a)),
            "random_simulated_hi": float(np.quantile(s, 1 - a)),
            "random_simulated_sd": float(s.std(ddof=1)),
        }
    out = {
        "interval_kind": "triad-bootstrap",
        "definitions": defs,
        "n_triads": point["n_triads"],
        "n_strict_triads": point["n_strict_triads"],
        "n_pairs": int(len(pairs)),
        "votes_per_pair_planned": per_order,
        "mean_votes_per_pair": float(total.mean()),
        "paper": PAPER,
        "reproduces_paper_random": _reproduces(defs),
        "triads": triads,
    }
    if truth is not None:
        mu = np.asarray(truth[0])
        out["planted_utility_sd"] = float(mu.std())
    return out


def _reproduces(defs: dict) -> list[str]:
    """Definitions whose random-responder value is within 2 simulated sd of the paper's -0.484."""
    target = PAPER["random responder"]
    return [
        d
        for d in T.DEFINITIONS
        if abs(defs[d]["random_closed_form"] - target) <= 2 * defs[d]["random_simulated_sd"]
    ]


def plot(numbers: dict):
    import matplotlib.pyplot as plt

    defs = numbers["definitions"]
    names = list(T.DEFINITIONS)
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    est = np.array([defs[d]["estimate"] for d in names])
    lo = np.array([defs[d]["lo"] for d in names])
    hi = np.array([defs[d]["hi"] for d in names])
    finite = np.isfinite(est)
    ax.errorbar(
        est[finite],
        y[finite] + 0.12,
        xerr=[est[finite] - lo[finite], hi[finite] - est[finite]],
        fmt="o",
        color="C0",
        capsize=3,
        label="model (triad bootstrap)",
    )
    rs = np.array([defs[d]["random_simulated"] for d in names])
    rlo = np.array([defs[d]["random_simulated_lo"] for d in names])
    rhi = np.array([defs[d]["random_simulated_hi"] for d in names])
    ax.errorbar(
        rs,
        y - 0.12,
        xerr=[rs - rlo, rhi - rs],
        fmt="s",
        color="C3",
        capsize=3,
        label="random responder (simulated)",
    )
    ax.scatter(
        [defs[d]["random_closed_form"] for d in names],
        y - 0.12,
        marker="x",
        color="k",
        zorder=3,
        label="random responder (exact)",
    )
    for (who, v), ls in zip(PAPER.items(), (":", "--"), strict=True):
        ax.axvline(v, color="grey", ls=ls, lw=1, label=f"paper: {who} ({v})")
    ax.set_yticks(y, [_LABELS[d] for d in names])
    ax.invert_yaxis()
    ax.set_xlabel("value (lower = fewer cycles)")
    ax.set_title(f"Transitivity on {numbers['n_triads']} fresh uniform triads", fontsize=10)
    fig.legend(loc="outside lower center", ncols=3, fontsize=7, frameon=False)
    fig.set_layout_engine("constrained")
    return fig


def summary(numbers: dict) -> str:
    defs = numbers["definitions"]
    lines = [
        opening(
            numbers,
            "Transitivity on fresh uniform triads",
            f"{numbers['n_triads']} triads, {numbers['n_pairs']} pairs, "
            f"{numbers['mean_votes_per_pair']:.1f} votes per pair",
            intervals="triad-bootstrap",
        )
        + "Each candidate definition of the paper's log10 P(cycle), with a random responder's "
        "value (exact, and simulated with the same votes per pair):"
    ]
    for d in T.DEFINITIONS:
        v = defs[d]
        sep = v["estimate"] - v["random_closed_form"]
        lines.append(
            f"  {_LABELS[d]:30s} model {fmt(v)}   random {v['random_closed_form']:.3f} exact, "
            f"{v['random_simulated']:.3f} [{v['random_simulated_lo']:.3f}, "
            f"{v['random_simulated_hi']:.3f}] simulated   model - random {sep:+.3f}"
        )
    h = defs["hard_cycle_rate"]
    lines.append(f"  hard cycle rate (strict triads: {numbers['n_strict_triads']}): {fmt(h)}")
    rep = numbers["reproduces_paper_random"]
    lines.append(
        "The paper's random baseline (-0.484) is reproduced, within 2 simulated sd, by: "
        + (", ".join(_LABELS[d] for d in rep) if rep else "no candidate definition")
        + ". The closest is log10 odds of the mean P(cycle) (exact: log10(1/3) = -0.477); "
        "which definition the paper used (and how its -1.61 for GPT-4o was computed) is not "
        "public: unresolved (docs/fidelity.md)."
    )
    return "\n".join(lines)
