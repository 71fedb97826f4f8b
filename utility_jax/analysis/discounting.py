r"""Temporal discounting (SPEC section 5): indifference points and discount-curve fits.

Choices are "$1000 now" against "$X in t months" over a delay x amount grid, both orders asked.
At each delay the indifference amount is where P(prefer later) crosses 1/2, interpolated on the
log-amount scale; the discount factor is :math:`d(t) = 1000 / X^*(t)`. Exponential
:math:`d = e^{-kt}` and hyperbolic :math:`d = 1/(1 + kt)` curves are fitted to the discount
factors by least squares on the log scale; the better fit (smaller residual sum of squares, each
model has one parameter) is the classification.
"""

import dataclasses
from pathlib import Path

import numpy as np
from scipy import optimize

from utility_jax.analysis.draws import fmt, interval
from utility_jax.analysis.harness import Task, opening
from utility_jax.analysis.inputs import read_input
from utility_jax.core.data import pool_orders
from utility_jax.io.outcomes import Outcome, OutcomeSet

__all__ = [
    "indifference_points",
    "fit_discount_curves",
    "MODELS",
    "default_grid",
    "load_grid",
    "Config",
    "run",
    "plot",
    "summary",
]

#: natural range of each reported number (intervals are clipped to it)
BOUNDS = {"r2_log": (None, 1.0), "rmse_log": (0.0, None)}

MODELS = {
    "exponential": lambda t, k: np.exp(-k * t),
    "hyperbolic": lambda t, k: 1.0 / (1.0 + k * t),
}


def indifference_points(p_later, amounts, baseline: float = 1000.0) -> np.ndarray:
    """Indifference amount per delay.

    Args:
      p_later: ``[n_delays, n_amounts]`` probability of preferring the delayed amount.
      amounts: ``[n_amounts]`` delayed amounts, increasing.

    Returns:
      ``[n_delays]`` amounts where ``p_later`` crosses 1/2 (log-linear interpolation), NaN when it
      never does within the grid (censored).
    """
    p = np.asarray(p_later, dtype=np.float64)
    la = np.log(np.asarray(amounts, dtype=np.float64))
    out = np.full(p.shape[0], np.nan)
    for d in range(p.shape[0]):
        above = np.flatnonzero(p[d] >= 0.5)
        if len(above) == 0:
            continue
        k = above[0]
        if k == 0:
            out[d] = np.exp(la[0]) if p[d, 0] == 0.5 else np.nan  # indifferent below the grid
            continue
        p0, p1 = p[d, k - 1], p[d, k]
        w = (0.5 - p0) / (p1 - p0)
        out[d] = np.exp(la[k - 1] + w * (la[k] - la[k - 1]))
    return out


def fit_discount_curves(delays, indiff, baseline: float = 1000.0) -> dict:
    """Fit both curves to ``d(t) = baseline / indiff(t)`` (finite points only)."""
    t = np.asarray(delays, dtype=np.float64)
    x = np.asarray(indiff, dtype=np.float64)
    ok = np.isfinite(x) & (x > 0)
    t, d = t[ok], baseline / x[ok]
    res = {"n_points": int(ok.sum())}
    for name, f in MODELS.items():

        def loss(logk, f=f):
            return np.sum((np.log(f(t, np.exp(logk))) - np.log(d)) ** 2)

        r = optimize.minimize_scalar(loss, bounds=(-12, 3), method="bounded")
        k = float(np.exp(r.x))
        pred = np.log(f(t, k))
        ss_tot = np.sum((np.log(d) - np.log(d).mean()) ** 2)
        res[name] = {
            "k": k,
            "sse_log": float(r.fun),
            "r2_log": float(1 - r.fun / ss_tot) if ss_tot > 0 else float("nan"),
            "rmse_log": float(np.sqrt(np.mean((pred - np.log(d)) ** 2))),
        }
    res["better"] = _verdict(res)
    return res


def _verdict(res: dict) -> str:
    """The better-fitting curve, or ``"neither"`` when no curve beats a constant (R^2 <= 0 for
    both: a random answerer) or the two fit equally (a tie gets no verdict)."""
    sse = {m: res[m]["sse_log"] for m in MODELS}
    if all(not (res[m]["r2_log"] > 0) for m in MODELS):
        return "neither"
    a, b = sorted(sse.values())
    if np.isclose(a, b, rtol=1e-9, atol=1e-12):
        return "neither"
    return min(MODELS, key=lambda m: sse[m])


def default_grid() -> dict:
    """The project's grid: the reference's amount formula (30 amounts, $500..$30,000, log-spaced,
    rounded to $100) at 12 delays from 0 to 60 months."""
    mult = np.logspace(np.log10(0.5), np.log10(30), 30)
    return {
        "baseline_amount": 1000.0,
        "time_delays_months": [0, 1, 2, 3, 6, 9, 12, 18, 24, 36, 48, 60],
        "delayed_amounts": np.round(1000 * mult, -2).tolist(),
    }


def load_grid(path: str | Path = "default") -> dict:
    """``"default"`` or the reference's ``derived/time_discounting_grid.json``."""
    if str(path) == "default":
        return default_grid()
    path, obj = read_input(path, "", "time-discounting grid")
    missing = {"baseline_amount", "time_delays_months", "delayed_amounts"} - set(obj)
    if missing:
        raise ValueError(f"{path}: lacks {sorted(missing)}")
    return obj


def _time_text(months: int) -> str:
    return "right now" if months == 0 else ("in 1 month" if months == 1 else f"in {months} months")


# ---------------------------------------------------------------------------- experiment shell


@dataclasses.dataclass
class Config:
    name: str = "discounting"
    grid: str = "default"  # "default" or the reference's time_discounting_grid.json
    # simulated agent: U($X at t) = ln X + ln d(t) with this d, noise sd `planted_noise`
    shape: str = "hyperbolic"  # hyperbolic | exponential | none
    rate: float = 0.08  # k per month
    planted_noise: float = 0.3


def _grid_outcomes(base: float, delays, amounts):
    """The baseline offer and every (delay, amount) offer as outcomes, and each grid cell's
    outcome index (0 where the offer is the baseline itself, "indifferent")."""
    items = [
        Outcome(
            0,
            f"${base:,.0f} right now",
            "now",
            {"amount": f"${base:,.0f}", "time": "right now", "dollars": base, "delay": 0},
        )
    ]
    cell = []  # grid cell -> outcome index (0: the same offer as the baseline, "indifferent")
    for t in delays:
        for x in amounts:
            text = f"${x:,.0f} {_time_text(t)}"
            if text == items[0].text:
                cell.append(0)
                continue
            cell.append(len(items))
            items.append(
                Outcome(
                    len(items),
                    text,
                    "later",
                    {
                        "amount": f"${x:,.0f}",
                        "time": _time_text(t),
                        "dollars": float(x),
                        "delay": t,
                    },
                )
            )
    return items, np.asarray(cell)


def _plant(cfg: Config, items):
    """Simulated truth: log dollars plus the log of the planted discount factor."""
    if cfg.shape not in ("hyperbolic", "exponential", "none"):
        raise ValueError(f"analysis.shape={cfg.shape!r}: hyperbolic, exponential or none")
    d = {"none": lambda t: np.ones_like(t), **MODELS}[cfg.shape]
    t = np.array([o.extra["delay"] for o in items], dtype=np.float64)
    x = np.array([o.extra["dollars"] for o in items])
    mu = np.log(x) + np.log(d(t, cfg.rate) if cfg.shape != "none" else d(t))
    return (mu, np.full(len(items), cfg.planted_noise))


def run(cfg: Config, ctx) -> dict:

    g = load_grid(cfg.grid)
    base = float(g["baseline_amount"])
    delays = [int(t) for t in g["time_delays_months"]]
    amounts = np.asarray(g["delayed_amounts"], dtype=np.float64)
    items, cell = _grid_outcomes(base, delays, amounts)
    outs = OutcomeSet(tuple(items), source=str(cfg.grid))
    truth = _plant(cfg, items) if ctx.simulated else None
    # every (now, later) pair, both orders, k answers per order: a direct grid, not a graph
    task = Task("grid", outs, template="time_discounting", truth=truth)
    pairs = np.stack([np.zeros(len(items) - 1, int), np.arange(1, len(items))], 1)
    counts = ctx.query(task, pairs)
    folder = ctx.folder(task)
    wins_now, total = pool_orders(counts, refusal=ctx.conf.elicitation.refusal)
    np.savetxt(
        folder / "counts.csv",
        counts.reshape(len(pairs), -1),
        delimiter=",",
        fmt="%g",
        header="order0_A,order0_B,order0_refusal,order1_A,order1_B,order1_refusal "
        "(pair = ($base now, item); order0 shows 'now' as A)",
    )
    shape = (len(delays), len(amounts))
    p_item = np.concatenate([[0.5], 1.0 - wins_now / np.maximum(total, 1e-12)])
    p_later = p_item[cell].reshape(shape)
    tot = np.concatenate([[0.0], total])[cell].reshape(shape)
    # intervals: a binomial bootstrap of the votes (the same n_bootstrap as the fitter's)
    n_boot = max(ctx.conf.uncertainty.n_bootstrap, 50)
    rng = ctx.rng("discount-bootstrap")
    nb = np.round(tot).astype(int)
    boots = rng.binomial(nb[None], p_later[None], size=(n_boot, *shape)) / np.maximum(nb, 1)
    boots = np.where(nb[None] > 0, boots, p_later[None])

    def derive(p):
        ind = indifference_points(p, amounts, base)
        return ind, fit_discount_curves(delays, ind, base)

    ind0, fit0 = derive(p_later)
    per = [derive(b) for b in boots]

    def iv(point, vals, key=""):
        return interval(
            point, vals, ctx.level, "bootstrap", bounds=BOUNDS.get(key), log=key in ("", "k")
        )

    out = {
        "interval_kind": "vote bootstrap",
        "baseline_amount": base,
        "delays": delays,
        "amounts": amounts,
        "p_later": p_later,
        "indifference": [iv(ind0[i], [q[0][i] for q in per]) for i in range(len(delays))],
        "n_points": fit0["n_points"],
        "better": fit0["better"],
        "better_share_of_draws": float(np.mean([q[1]["better"] == fit0["better"] for q in per])),
    }
    for m in MODELS:
        out[m] = {
            key: iv(fit0[m][key], [q[1][m][key] for q in per], key)
            for key in ("k", "r2_log", "rmse_log")
        }
    if ctx.simulated:
        out["planted"] = {"shape": cfg.shape, "rate": cfg.rate}
    # the raw choice data is small: keep it beside the numbers
    out["refusal_rate"] = float(counts[..., 2].sum() / max(counts.sum(), 1))
    return out


def plot(numbers: dict):
    import matplotlib.pyplot as plt

    delays = np.asarray(numbers["delays"], dtype=np.float64)
    base = numbers["baseline_amount"]
    ind = numbers["indifference"]
    est = np.array([i["estimate"] if i["estimate"] is not None else np.nan for i in ind], float)
    lo = np.array([i["lo"] if i["lo"] is not None else np.nan for i in ind], float)
    hi = np.array([i["hi"] if i["hi"] is not None else np.nan for i in ind], float)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ok = np.isfinite(est)
    a1.errorbar(
        delays[ok],
        base / est[ok],
        yerr=[np.abs(base / est[ok] - base / hi[ok]), np.abs(base / lo[ok] - base / est[ok])],
        fmt="o",
        ms=4,
        label="indifference points",
    )
    tt = np.linspace(0, delays.max(), 200)
    for m, f in MODELS.items():
        k = numbers[m]["k"]["estimate"]
        a1.plot(
            tt, f(tt, k), label=f"{m} k={k:.3g} (R^2 log {numbers[m]['r2_log']['estimate']:.3f})"
        )
    a1.set_xlabel("delay (months)")
    a1.set_ylabel(f"discount factor  {base:,.0f} / indifference amount")
    a1.set_title(
        f"better fit: {numbers['better']} ({100 * numbers['better_share_of_draws']:.0f}% of draws)"
    )
    a1.legend(fontsize=8)
    p = np.asarray(numbers["p_later"], dtype=np.float64)
    im = a2.imshow(p, aspect="auto", origin="lower", cmap="coolwarm", vmin=0, vmax=1)
    a2.set_yticks(range(len(delays)), [int(d) for d in delays], fontsize=7)
    amts = np.asarray(numbers["amounts"])
    ticks = np.arange(0, len(amts), max(1, len(amts) // 6))
    a2.set_xticks(ticks, [f"{amts[i]:,.0f}" for i in ticks], fontsize=7)
    a2.set_xlabel("delayed amount ($)")
    a2.set_ylabel("delay (months)")
    a2.set_title("P(prefer the delayed amount)")
    fig.colorbar(im, ax=a2)
    fig.tight_layout()
    return fig


def summary(numbers: dict) -> str:
    h, e = numbers["hyperbolic"], numbers["exponential"]
    head = opening(
        numbers,
        "Temporal discounting",
        f"${numbers['baseline_amount']:,.0f} now against {len(numbers['amounts'])} delayed "
        f"amounts at {len(numbers['delays'])} delays, both orders",
        intervals="vote-bootstrap",
    )
    text = head + (
        f"Indifference points exist at {numbers['n_points']} "
        f"delays. Hyperbolic d = 1/(1+kt): k = {fmt(h['k'], 4)}/month, R^2 (log scale) "
        f"{fmt(h['r2_log'])}; exponential d = exp(-kt): k = {fmt(e['k'], 4)}/month, R^2 "
        f"{fmt(e['r2_log'])}. "
        + (
            f"The better fit is {numbers['better']}, in "
            f"{100 * numbers['better_share_of_draws']:.0f}% of the bootstrap draws."
            if numbers["better"] != "neither"
            else "Neither curve fits better than a constant, or they tie: no verdict "
            f"({100 * numbers['better_share_of_draws']:.0f}% of the draws agree)."
        )
    )
    if "planted" in numbers:
        text += f" (Planted: {numbers['planted']['shape']}, k = {numbers['planted']['rate']}.)"
    return text
