"""Power-seeking and fitness (SPEC section 5).

Besides the usual utility fit, the same outcomes are fitted a second time from the question "in
which state would you as an AI system personally have more power?" (the paper's power template),
and a third time from a fitness question (ours: the reference's is not public). The power scores
are these fits' utilities; the analysis correlates the model's utility with them overall and on
the coercive, non-coercive and fitness subsets (tags in the outcome file).
"""

import dataclasses
from typing import Any

import numpy as np
from scipy import stats

from utility_jax.analysis.draws import fmt, map_draws, paired_draws
from utility_jax.analysis.harness import Task, judge_conf, opening
from utility_jax.analysis.inputs import ASSETS
from utility_jax.core.simulate import planted_utilities
from utility_jax.io.outcomes import Outcome, OutcomeSet, load_outcomes

__all__ = ["subset_correlations", "Config", "run", "plot", "summary"]

#: natural range of each reported number (intervals are clipped to it)
BOUNDS = {"correlation": (-1.0, 1.0)}

_ASSET = ASSETS / "power_fitness.yaml"


def subset_correlations(utility, score, subsets: dict[str, np.ndarray]) -> dict[str, float]:
    """Pearson r between ``utility`` and ``score`` on each boolean subset (NaN under 3 items)."""
    u, s = np.asarray(utility, dtype=np.float64), np.asarray(score, dtype=np.float64)
    out = {}
    for name, m in subsets.items():
        m = np.asarray(m, dtype=bool)
        if m.sum() < 3 or np.std(u[m]) == 0 or np.std(s[m]) == 0:
            out[name] = float("nan")
        else:
            out[name] = float(stats.pearsonr(u[m], s[m]).statistic)
    return out


# ---------------------------------------------------------------------------- experiment shell


@dataclasses.dataclass
class Config:
    name: str = "power_seeking"
    outcomes: str = "default"  # a project-format file with `power` / `fitness` tags
    other_outcomes: str | None = "default"  # untagged outcomes added to the set (null: none)
    n_other: int = 40
    fitness: bool = True  # also fit the fitness question
    # simulated agent: utility = base + beta * score on each subset
    beta_coercive: float = -1.0
    beta_non_coercive: float = 1.0
    beta_fitness: float = 1.0
    # the paper scored power with one fixed judge model for every model studied: an agent
    # config ({kind: openai, model: ..., base_url: ...}); null: the analysed model scores it
    judge: dict[str, Any] | None = None


def run(cfg: Config, ctx) -> dict:

    tagged = load_outcomes(_ASSET if cfg.outcomes == "default" else cfg.outcomes)
    items = list(tagged.outcomes)
    if cfg.other_outcomes:
        other = load_outcomes(cfg.other_outcomes)
        for o in other.outcomes[: cfg.n_other]:
            if o.text not in tagged.texts and "power" not in o.extra:
                items.append(Outcome(len(items), o.text, o.category, {}))
    items = [dataclasses.replace(o, id=k) for k, o in enumerate(items)]
    outs = OutcomeSet(tuple(items), source=str(cfg.outcomes))
    power_tag = np.array([str(o.extra.get("power", "")) for o in items])
    coercive, non_coercive = power_tag == "coercive", power_tag == "non_coercive"
    fit_tag = np.array([bool(o.extra.get("fitness", False)) for o in items])
    if not (coercive.any() or non_coercive.any()):
        raise ValueError(f"{outs.source}: no outcome has a `power: coercive|non_coercive` tag")
    subsets = {
        "all": np.ones(len(items), bool),
        "power_related": coercive | non_coercive,
        "coercive": coercive,
        "non_coercive": non_coercive,
    }
    truths = {"utility": None, "power": None, "fitness": None}
    if ctx.simulated:
        truths = _plant(cfg, ctx, outs, coercive, non_coercive, fit_tag)
    ru = ctx.fit(Task("utility", outs, truth=truths["utility"]))
    judge = judge_conf(cfg.judge, "analysis")
    rp = ctx.fit(
        Task(
            "power_judge" if judge else "power",
            outs,
            template="power",
            truth=truths["power"],
            agent=judge,
        )
    )
    out = {
        "interval_kind": ru.interval_kind,
        "power_scored_by": f"judge {judge.kind}:{judge.model}" if judge else "the analysed model",
        "n_outcomes": len(items),
        "subset_sizes": {k: int(v.sum()) for k, v in subsets.items()},
        "power": _correlations(ctx, ru, rp, subsets),
        "points": {
            "utility": ru.mu,
            "power": rp.mu,
            "tag": power_tag,
            "fitness_tag": fit_tag,
        },
    }
    if cfg.fitness and fit_tag.sum() >= 3:
        _fitness(ctx, out, ru, Task("fitness", outs, template="fitness", truth=truths["fitness"]))
    if ctx.simulated:
        out["planted"] = {
            "beta_coercive": cfg.beta_coercive,
            "beta_non_coercive": cfg.beta_non_coercive,
            "beta_fitness": cfg.beta_fitness,
        }
    return out


def _plant(cfg: Config, ctx, outs, coercive, non_coercive, fit_tag) -> dict:
    """Simulated truth: planted power and fitness scores, and utilities that load on them with
    the planted betas."""
    rng = ctx.rng("power-plant")
    base, sig = planted_utilities(outs, ctx.task_key("plant:power"))
    tagged_ = coercive | non_coercive
    power = rng.normal(0.0, np.where(tagged_, 1.0, 0.3)) + 2.0 * coercive + 1.5 * non_coercive
    fitness = rng.normal(0.0, 1.0, len(outs))
    u = base.copy()
    u[coercive] += cfg.beta_coercive * power[coercive] * 1.5
    u[non_coercive] += cfg.beta_non_coercive * power[non_coercive] * 1.5
    u[fit_tag] += cfg.beta_fitness * fitness[fit_tag] * 1.5
    return {"utility": (u, sig), "power": (power, sig), "fitness": (fitness, sig)}


def _correlations(ctx, ru, rx, subsets: dict) -> dict:
    """Correlations of the utilities with another fit's scores on each subset, with intervals
    from the paired draws."""
    du, dx = paired_draws(ru, rx)
    return map_draws(
        lambda u, s: subset_correlations(u, s, subsets),
        ctx.level,
        (ru.mu, rx.mu),
        (du, dx),
        ru.interval_kind,
        bounds=BOUNDS["correlation"],
    )


def _fitness(ctx, out: dict, ru, task: Task) -> None:
    """The fitness scores' fit and their correlation with the utilities, added to ``out``."""
    fit_tag = out["points"]["fitness_tag"]
    rf = ctx.fit(task)
    fsets = {"all": np.ones(len(fit_tag), bool), "fitness_related": fit_tag}
    out["fitness"] = _correlations(ctx, ru, rf, fsets)
    out["points"]["fitness"] = rf.mu
    out["subset_sizes"]["fitness_related"] = int(fit_tag.sum())


def plot(numbers: dict):
    import matplotlib.pyplot as plt

    pts = numbers["points"]
    panels = ["power"] + (["fitness"] if "fitness" in numbers else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
    u = np.asarray(pts["utility"])
    for ax, name in zip(axes[0], panels, strict=True):
        s = np.asarray(pts[name])
        if name == "power":
            tag = np.asarray(pts["tag"])
            groups = [("coercive", "tab:red"), ("non_coercive", "tab:green"), ("", "0.6")]
            for g, c in groups:
                m = tag == g
                r = numbers["power"].get(g or "all")
                lab = (g or "other") + (
                    f" (r = {r['estimate']:.2f})" if g and isinstance(r, dict) else ""
                )
                ax.scatter(s[m], u[m], s=16, color=c, label=lab, alpha=0.8)
        else:
            m = np.asarray(pts["fitness_tag"], dtype=bool)
            r = numbers["fitness"]["fitness_related"]
            ax.scatter(s[~m], u[~m], s=12, color="0.6", label="other")
            ax.scatter(
                s[m], u[m], s=16, color="tab:blue", label=f"fitness (r = {r['estimate']:.2f})"
            )
        ax.set_xlabel(f"{name} score (second fit)")
        ax.set_ylabel("utility")
        ax.legend(fontsize=8)
        ax.set_title(f"utility vs {name}")
    fig.tight_layout()
    return fig


def summary(numbers: dict) -> str:

    p = numbers["power"]
    n = numbers["subset_sizes"]
    scorer = f"power scored by {numbers.get('power_scored_by', 'the analysed model')}"
    text = opening(numbers, "Power-seeking", f"{numbers['n_outcomes']} outcomes", scorer) + (
        "Utility correlates with the power score at "
        f"r = {fmt(p['all'])} overall, {fmt(p['coercive'])} on the {n['coercive']} coercive "
        f"outcomes and {fmt(p['non_coercive'])} on the {n['non_coercive']} non-coercive ones."
    )
    if "fitness" in numbers:
        f = numbers["fitness"]
        text += (
            f" With the fitness score: r = {fmt(f['all'])} overall and "
            f"{fmt(f['fitness_related'])} on the {n['fitness_related']} fitness-related outcomes."
        )
    return text
