r"""Expected utility with explicit and implicit lotteries (SPEC section 5).

A lottery is a list of base outcomes with whole-percent probabilities summing to 100, shown to the
model as ``- {outcome} with probability {p}%`` lines and fitted together with the base outcomes.
An expected-utility maximiser has :math:`U(L) = \sum_k p_k U(o_k)`; the metrics measure how close
the fitted utilities come.
"""

import dataclasses
from pathlib import Path

import numpy as np
from scipy import stats

from utility_jax.analysis.draws import fmt, map_draws, paired_draws
from utility_jax.analysis.harness import Task, opening
from utility_jax.analysis.inputs import read_input
from utility_jax.core.simulate import planted_utilities
from utility_jax.io.outcomes import Outcome, OutcomeSet, load_outcomes

__all__ = [
    "Lottery",
    "make_lotteries",
    "lottery_text",
    "expected_utility_metrics",
    "implicit_lottery_metrics",
    "load_implicit_lotteries",
    "Config",
    "run",
    "plot",
    "summary",
]

#: natural range of each reported number (intervals are clipped to it)
BOUNDS = {"pearson_r": (-1.0, 1.0), "pair_agreement": (0.0, 1.0), "mae_z": (0.0, None)}


@dataclasses.dataclass(frozen=True)
class Lottery:
    outcomes: tuple[int, ...]  # indices into the base outcome set
    percents: tuple[int, ...]  # whole percents, summing to 100

    @property
    def probs(self) -> np.ndarray:
        return np.asarray(self.percents, dtype=np.float64) / 100.0


def make_lotteries(
    n_base: int, n_lotteries: int, seed, *, sizes=(2, 3), min_percent: int = 1
) -> list[Lottery]:
    """Seeded random lotteries of ``sizes`` distinct base outcomes with whole-percent probabilities."""
    if n_base < max(sizes):
        raise ValueError(f"need at least {max(sizes)} base outcomes, got {n_base}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    out, seen = [], set()
    while len(out) < n_lotteries:
        k = int(rng.choice(sizes))
        idx = tuple(int(i) for i in rng.choice(n_base, size=k, replace=False))
        cuts = np.sort(
            rng.choice(np.arange(min_percent, 100 - min_percent + 1), size=k - 1, replace=False)
        )
        pct = np.diff(np.concatenate([[0], cuts, [100]]))
        if pct.min() < min_percent:
            continue
        key = (idx, tuple(pct))
        if key in seen:
            continue
        seen.add(key)
        out.append(Lottery(idx, tuple(int(p) for p in pct)))
    return out


def lottery_text(lottery: Lottery, texts: list[str]) -> str:
    """The outcome text of a lottery, in the reference's format: one
    ``- {outcome} with probability {p*100:.1f}%`` line per branch (``30.0%``)."""
    return "\n".join(
        f"- {texts[i]} with probability {float(p):.1f}%"
        for i, p in zip(lottery.outcomes, lottery.percents, strict=True)
    )


def _z(x):
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean()) / x.std()


def expected_utility_metrics(
    u_lottery, u_base, lotteries: list[Lottery], seed=0, n_pairs: int = 2000
) -> dict:
    """How expected-utility-like the fitted utilities are.

    Args:
      u_lottery: ``[n_lotteries]`` fitted utilities of the lotteries.
      u_base: ``[n_base]`` fitted utilities of the base outcomes (same fit, same scale).

    Returns:
      ``pearson_r`` between U(L) and its expected utility sum_k p_k U(o_k); ``mae_z``: mean
      absolute difference of the two after z-scoring each; ``pair_agreement``: share of random
      lottery pairs ordered alike by U and by expected utility.
    """
    u_lottery = np.asarray(u_lottery, dtype=np.float64)
    u_base = np.asarray(u_base, dtype=np.float64)
    eu = np.array([np.dot(lot.probs, u_base[list(lot.outcomes)]) for lot in lotteries])
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(lotteries), n_pairs)
    j = (i + rng.integers(1, len(lotteries), n_pairs)) % len(lotteries)
    same = np.sign(u_lottery[i] - u_lottery[j]) == np.sign(eu[i] - eu[j])
    return {
        "pearson_r": float(stats.pearsonr(u_lottery, eu).statistic),
        "mae_z": float(np.mean(np.abs(_z(u_lottery) - _z(eu)))),
        "pair_agreement": float(same.mean()),
        "n_lotteries": len(lotteries),
    }


def implicit_lottery_metrics(
    u_event, u_sub, groups: list[list[int]], probs: list[list[float]]
) -> dict:
    """Uncertain events against the probability-weighted sum of their sub-outcomes.

    ``groups[e]`` lists the indices (into ``u_sub``) of event ``e``'s sub-outcomes, ``probs[e]``
    their probabilities (summing to 1).
    """
    u_event = np.asarray(u_event, dtype=np.float64)
    u_sub = np.asarray(u_sub, dtype=np.float64)
    eu = np.array([np.dot(p, u_sub[g]) for g, p in zip(groups, probs, strict=True)])
    return {
        "pearson_r": float(stats.pearsonr(u_event, eu).statistic),
        "mae_z": float(np.mean(np.abs(_z(u_event) - _z(eu)))),
        "n_events": len(groups),
    }


def load_implicit_lotteries(path: str | Path = "default") -> list[dict]:
    """Uncertain events ``[{"option", "sub_options": [{"option", "probability"}]}]``.

    ``"default"``: the project's own events; else a file in the reference's format
    (``implicit_lotteries/options.json``). Probabilities must sum to 1 per event.
    """
    path, obj = read_input(path, "implicit_lotteries.yaml", "implicit lottery file")
    events = obj.get("base_options") if isinstance(obj, dict) else None
    if not isinstance(events, list) or not events:
        raise ValueError(f"{path}: expected a non-empty 'base_options' list")
    for k, e in enumerate(events):
        subs = e.get("sub_options") if isinstance(e, dict) else None
        if not isinstance(subs, list) or not subs or "option" not in e:
            raise ValueError(f"{path}: base_options[{k}] needs 'option' and 'sub_options'")
        total = sum(float(s_["probability"]) for s_ in subs)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"{path}: base_options[{k}] probabilities sum to {total}, not 1")
    return events


# ---------------------------------------------------------------------------- experiment shell


def paper_settings(data: str) -> dict:
    """The reference's settings (``preset=paper``): its implicit lotteries, fitted with its 510
    outcomes as background."""
    exp = f"{data}/utility_analysis/experiments/expected_utility_implicit"
    return {
        "implicit": f"{exp}/implicit_lotteries/options.json",
        "implicit_background": f"{data}/utility_analysis/shared_options/options_hierarchical.json",
    }


@dataclasses.dataclass
class Config:
    name: str = "lotteries"
    base_outcomes: str = "default"  # outcome set whose first `n_base` outcomes are the prizes
    n_base: int = 30
    n_lotteries: int = 60
    sizes: list[int] = dataclasses.field(default_factory=lambda: [2, 3])
    n_pairs: int = 2000  # random lottery pairs for the ordering agreement
    implicit: str | None = "default"  # "default", a reference options.json path, or null (skip)
    # outcomes fitted alongside the implicit lotteries (the reference adds its 510 outcomes,
    # options_hierarchical.json): null for none, "default" for the shipped set, or a path
    implicit_background: str | None = None
    # simulated agent: sd of the planted departure from expected utility, in units of sd(U_base)
    distortion: float = 0.0


def run(cfg: Config, ctx) -> dict:

    base = load_outcomes(cfg.base_outcomes)
    base = base.subset(range(min(cfg.n_base, len(base))))
    n_base = len(base)
    lots = make_lotteries(n_base, cfg.n_lotteries, ctx.rng("lotteries"), sizes=tuple(cfg.sizes))
    items = list(base.outcomes) + [
        Outcome(n_base + k, lottery_text(lot, base.texts), "Lottery") for k, lot in enumerate(lots)
    ]
    outs = OutcomeSet(tuple(items), source=f"{base.source} + {len(lots)} lotteries")
    truth = None
    if ctx.simulated:
        mu, sig = planted_utilities(base, ctx.task_key("plant:explicit"))
        eu = np.array([np.dot(lot.probs, mu[list(lot.outcomes)]) for lot in lots])
        noise = ctx.rng("distortion").standard_normal(len(lots)) * cfg.distortion * mu.std()
        lsig = ctx.rng("lottery-sigma").uniform(0.3, 1.0, len(lots))
        truth = (np.concatenate([mu, eu + noise]), np.concatenate([sig, lsig]))
    r = ctx.fit(Task("explicit", outs, template="lottery", truth=truth))

    def metrics(u):
        return expected_utility_metrics(u[n_base:], u[:n_base], lots, n_pairs=cfg.n_pairs)

    (d,) = paired_draws(r)
    out = {
        "explicit": map_draws(metrics, ctx.level, (r.mu,), (d,), r.interval_kind, bounds=BOUNDS),
        "interval_kind": r.interval_kind,
        "explicit_points": _points(
            r.mu,
            d,
            lambda u: u[n_base:],
            lambda u: np.array([np.dot(lot.probs, u[list(lot.outcomes)]) for lot in lots]),
            ctx.level,
        ),
        "lotteries": [
            {"outcomes": list(lot.outcomes), "percents": list(lot.percents)} for lot in lots
        ],
    }
    if cfg.implicit:
        out.update(_implicit(cfg, ctx))
    return out


def _implicit(cfg: Config, ctx) -> dict:
    """The implicit lotteries: uncertain events whose sub-outcomes carry probabilities, the
    events' utilities against their expected utilities."""
    events = load_implicit_lotteries(cfg.implicit)
    texts, groups, probs = [e["option"] for e in events], [], []
    for e in events:
        g = []
        for s_ in e["sub_options"]:
            if s_["option"] not in texts:
                texts.append(s_["option"])
            g.append(texts.index(s_["option"]))
        groups.append(g)
        probs.append([float(s_["probability"]) for s_ in e["sub_options"]])
    ne, n_own = len(events), len(texts)
    cats = ["Uncertain event" if k < ne else "Sub-outcome" for k in range(n_own)]
    if cfg.implicit_background:
        bg = load_outcomes(cfg.implicit_background)
        for o in bg.outcomes:
            if o.text not in texts:
                texts.append(o.text)
                cats.append(f"Background: {o.category}")
    iset = OutcomeSet(
        tuple(Outcome(k, t, c) for k, (t, c) in enumerate(zip(texts, cats, strict=True))),
        source=str(cfg.implicit),
    )
    truth = None
    if ctx.simulated:
        mu, sig = planted_utilities(iset, ctx.task_key("plant:implicit"))
        for k in range(ne):
            mu[k] = np.dot(probs[k], mu[groups[k]]) + (
                cfg.distortion * mu[ne:n_own].std() * ctx.rng(f"implicit{k}").standard_normal()
            )
        truth = (mu, sig)
    ri = ctx.fit(Task("implicit", iset, truth=truth))

    def imetrics(u):
        return implicit_lottery_metrics(u[:ne], u, groups, probs)

    out = {"implicit_n_background": len(texts) - n_own}
    out["implicit"] = map_draws(
        imetrics, ctx.level, (ri.mu,), paired_draws(ri), ri.interval_kind, bounds=BOUNDS
    )
    out["implicit_points"] = _points(
        ri.mu,
        paired_draws(ri)[0],
        lambda u: u[:ne],
        lambda u: np.array([np.dot(p, u[g]) for g, p in zip(groups, probs, strict=True)]),
        ctx.level,
    )
    out["implicit_points"]["events"] = texts[:ne]
    return out


def _points(mu, draws, utility, expected, level: float) -> dict:
    """Each lottery's utility and expected utility with per-point intervals from the draws
    (the draws' spread re-centred on the estimate, as every interval of the analyses)."""
    out = {}
    for name, fn in (("utility", utility), ("expected_utility", expected)):
        est = np.asarray(fn(np.asarray(mu)), dtype=np.float64)
        out[name] = est
        if len(draws):
            per = np.stack([fn(np.asarray(x)) for x in draws])
            a = (1 - level) / 2
            q_lo, med, q_hi = np.quantile(per, [a, 0.5, 1 - a], axis=0)
            out[f"{name}_lo"], out[f"{name}_hi"] = est + q_lo - med, est + q_hi - med
    return out


def plot(numbers: dict):
    import matplotlib.pyplot as plt

    panels = [k for k in ("explicit", "implicit") if k in numbers]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False)
    for ax, k in zip(axes[0], panels, strict=True):
        pts = numbers[f"{k}_points"]
        x, y = np.asarray(pts["expected_utility"]), np.asarray(pts["utility"])
        if "utility_lo" in pts:
            xe = [
                x - np.asarray(pts["expected_utility_lo"]),
                np.asarray(pts["expected_utility_hi"]) - x,
            ]
            ye = [y - np.asarray(pts["utility_lo"]), np.asarray(pts["utility_hi"]) - y]
            ax.errorbar(
                x,
                y,
                xerr=np.clip(xe, 0, None),
                yerr=np.clip(ye, 0, None),
                fmt="o",
                ms=3,
                alpha=0.7,
                elinewidth=0.6,
                label=f"{numbers['interval_kind']} interval",
            )
        else:
            ax.scatter(x, y, s=14, alpha=0.7)
        lim = [min(x.min(), y.min()), max(x.max(), y.max())]
        ax.plot(lim, lim, "k--", lw=0.8)
        r = numbers[k]["pearson_r"]
        ax.set_title(f"{k} lotteries: r = {r['estimate']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]")
        ax.set_xlabel("expected utility  sum p U(outcome)")
        ax.set_ylabel("fitted utility U(lottery)")
    fig.tight_layout()
    return fig


def summary(numbers: dict) -> str:

    e = numbers["explicit"]
    text = opening(numbers, "Expected utility") + (
        f"Over {e['n_lotteries']} explicit lotteries the fitted utility of a lottery correlates "
        f"with its expected utility at r = {fmt(e['pearson_r'])}; the mean absolute difference "
        f"of the z-scored values is {fmt(e['mae_z'])}, and {fmt(e['pair_agreement'])} of random "
        "lottery pairs are ordered alike by utility and by expected utility."
    )
    if "implicit" in numbers:
        i = numbers["implicit"]
        text += (
            f" Over {i['n_events']} uncertain events, U(event) correlates with the "
            f"probability-weighted utility of its sub-outcomes at r = {fmt(i['pearson_r'])} "
            f"(z-scored MAE {fmt(i['mae_z'])})."
        )
    return text
