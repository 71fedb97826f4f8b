r"""Exchange rates between kinds of thing (SPEC section 5).

Outcomes "N units of X" over a grid of N; per X, the utilities are fitted with
:math:`U_X(N) = a_X \ln N + b_X`. Solving :math:`U_i(M) = U_j(N)` gives
:math:`M = \exp((a_j \ln N + b_j - b_i)/a_i)` units of X_i for N units of X_j, so one unit of X_j
is worth :math:`r_{ij}(N) = M/N` units of X_i at quantity N. The two-way geometric mean
:math:`\sqrt{r_{ij}(N) / r_{ji}(N)}` treats both directions alike; we average its logarithm over
the N grid. Every function takes draws (bootstrap or posterior) on a leading axis, so intervals
come from the same code.
"""

import dataclasses
from pathlib import Path

import numpy as np

from utility_jax.analysis.draws import fmt, interval
from utility_jax.analysis.harness import Task, opening
from utility_jax.analysis.inputs import read_input
from utility_jax.io.datasets import reference_dollar_amounts
from utility_jax.io.outcomes import Outcome, OutcomeSet, money_anchors

__all__ = [
    "fit_log_utility",
    "exchange_rate",
    "exchange_rate_matrix",
    "rate_interval",
    "load_option_space",
    "quantity_outcomes",
    "reference_wording",
    "dollar_amounts",
    "dollar_value",
    "Config",
    "run",
    "plot",
    "summary",
]

#: natural range of each reported number (intervals are clipped to it)
BOUNDS = {"r2": (None, 1.0)}


def fit_log_utility(n_values, utilities) -> dict[str, np.ndarray]:
    """Least-squares fit of ``U = a ln N + b`` along the last axis.

    Args:
      n_values: ``[n_grid]`` quantities N (> 0).
      utilities: ``[..., n_grid]`` utilities (leading axes: draws and/or kinds X).

    Returns:
      ``a``, ``b`` and ``r2`` with the leading shape.
    """
    x = np.log(np.asarray(n_values, dtype=np.float64))
    u = np.asarray(utilities, dtype=np.float64)
    xc = x - x.mean()
    a = (u - u.mean(-1, keepdims=True)) @ xc / (xc @ xc)
    b = u.mean(-1) - a * x.mean()
    resid = u - (a[..., None] * x + b[..., None])
    ss_tot = ((u - u.mean(-1, keepdims=True)) ** 2).sum(-1)
    r2 = 1.0 - (resid**2).sum(-1) / np.where(ss_tot > 0, ss_tot, np.nan)
    return {"a": a, "b": b, "r2": r2}


def exchange_rate(a_i, b_i, a_j, b_j, n_grid) -> np.ndarray:
    """Units of X_i worth one unit of X_j: the two-way geometric mean over ``n_grid``.

    Broadcasts over leading axes (draws). ``a_i`` and ``a_j`` must have the same sign (positive
    when more is better, negative for bads such as deaths).
    """
    ln_n = np.log(np.asarray(n_grid, dtype=np.float64))
    a_i, b_i, a_j, b_j = (np.asarray(v, dtype=np.float64)[..., None] for v in (a_i, b_i, a_j, b_j))
    log_r_ij = (a_j * ln_n + b_j - b_i) / a_i - ln_n  # log(M/N), X_i per X_j
    log_r_ji = (a_i * ln_n + b_i - b_j) / a_j - ln_n  # X_j per X_i
    return np.exp((0.5 * (log_r_ij - log_r_ji)).mean(-1))


def exchange_rate_matrix(a, b, n_grid) -> np.ndarray:
    """``[..., K, K]`` rates between K kinds: entry (i, j) is units of X_i per unit of X_j."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return exchange_rate(a[..., :, None], b[..., :, None], a[..., None, :], b[..., None, :], n_grid)


def rate_interval(rate_draws, level: float = 0.9) -> tuple[float, float, float]:
    """Median and equal-tailed interval of rate draws (computed on the log scale)."""
    lr = np.log(np.asarray(rate_draws, dtype=np.float64))
    lo, med, hi = np.quantile(lr, [(1 - level) / 2, 0.5, 1 - (1 - level) / 2])
    return float(np.exp(med)), float(np.exp(lo)), float(np.exp(hi))


def load_option_space(path: str | Path = "default") -> dict:
    """``{"X_values", "options_templates", "N_values"}``: the project's own (``"default"``) or the
    reference's ``derived/exchange_rate_option_space.json``."""
    path, obj = read_input(path, "exchange_rates.yaml", "exchange-rate option space")
    missing = {"X_values", "options_templates", "N_values"} - set(obj or {})
    if missing:
        raise ValueError(f"{path}: lacks {sorted(missing)}")
    return obj


def _grammar(text: str, n) -> str:
    if n != 1:
        return text
    for a, b in (
        ("1 people", "1 person"),
        (" die ", " dies "),
        (" die.", " dies."),
        (" recover ", " recovers "),
        (" are ", " is "),
        (" each ", " "),
    ):
        text = text.replace(a, b)
    return text


#: third-person singular of the verbs the reference's templates use after a plural "{N} ..."
_SINGULAR_VERB = {"are": "is", "die": "dies", "identify": "identifies"}
_MODALS = {"would", "could", "will", "can", "might", "otherwise"}
_INFLECT = None


def _engine():
    global _INFLECT
    if _INFLECT is None:
        import inflect

        _INFLECT = inflect.engine()
    return _INFLECT


def _split_word(w: str) -> tuple[str, str]:
    core = w.rstrip(".,;:!?")
    return core, w[len(core) :]


def reference_wording(template: str, x: str, n, group: str) -> str:
    """An option of the reference's exchange-rate space worded as the paper asked it.

    ``{N}`` is written as Python writes the number (``1000``, ``0.5``). With N != 1, an animal
    (``group="animals"``) is pluralised ("2 african elephants"). With N = 1, the noun right after
    N is made singular ("1 person", "1 minute", "1 quality-adjusted life year") and, when N counts
    the subject (the template starts with ``{N}``), its verbs agree ("is saved", "dies", "who
    identifies"; a verb after "would"/"otherwise" keeps its form). After "You" the verb takes the
    second person ("You gain"). Nouns and the "You" verbs go through ``inflect``.
    """
    eng = _engine()
    if n != 1:
        text = template.replace("{X}", eng.plural(x) if group == "animals" else x)
        text = text.replace("{N}", str(n))
    else:
        words = template.split(" ")  # the template's own words: X is never changed
        i = words.index("{N}") if "{N}" in words else -1
        if 0 <= i < len(words) - 1 and not words[i + 1].startswith("{X}"):
            for j in range(i + 1, len(words)):
                core, tail = _split_word(words[j])
                single = eng.singular_noun(core) if core.isalpha() else False
                if single:
                    words[j] = single + tail
                    break
        if template.startswith("{N}"):
            for j, w in enumerate(words):
                core, tail = _split_word(w)
                if core in _SINGULAR_VERB and (j == 0 or words[j - 1] not in _MODALS):
                    words[j] = _SINGULAR_VERB[core] + tail
        text = " ".join(words).replace("{X}", x).replace("{N}", str(n))
    if x == "You":
        words = text.split(" ")
        k = words.index("You")
        if k + 1 < len(words):
            core, tail = _split_word(words[k + 1])
            words[k + 1] = eng.plural_verb(core) + tail
        text = " ".join(words)
    return text


def quantity_outcomes(
    space: dict, group: str, measure: str, xs=None, source: str = "", wording: str = "auto"
) -> tuple:
    """Outcomes "N units of X" for every X of ``group`` and N of ``measure``.

    ``wording``: ``"reference"`` (:func:`reference_wording`, the paper's exact texts), ``"project"``
    (our shipped space's rules: "1,000", "1 person", "dies"), or ``"auto"``: the reference's when
    the space is the reference's (it carries ``dollar_options``).

    Returns ``(OutcomeSet, xs, n_values)``; outcome ``k * len(n_values) + m`` is X ``k`` at N
    ``m`` (fields ``X`` and ``N`` kept in ``extra``).
    """
    if wording not in ("auto", "reference", "project"):
        raise ValueError(f"wording must be auto, reference or project, got {wording!r}")
    if wording == "auto":
        wording = "reference" if "dollar_options" in space else "project"

    where = source or "exchange-rate option space"
    try:
        template = space["options_templates"][group][measure]
        allx = [x[0] if isinstance(x, list) else x for x in space["X_values"][group]]
        ns = list(space["N_values"][measure])
    except KeyError as e:
        raise ValueError(
            f"{where}: no {e.args[0]!r} for group={group!r}, measure={measure!r}"
        ) from e
    xs = list(xs) if xs else allx
    unknown = [x for x in xs if x not in allx]
    if unknown:
        raise ValueError(f"{where}: {unknown} are not X values of group {group!r}")
    items = []
    for x in xs:
        for n in ns:
            if wording == "reference":
                text = reference_wording(template, x, n, group)
            else:
                nt = f"{n:,}" if float(n).is_integer() else f"{n}"
                text = _grammar(template.replace("{N}", nt).replace("{X}", x), n)
            items.append(Outcome(len(items), text, f"{group}: {x}", {"X": x, "N": float(n)}))
    return OutcomeSet(tuple(items), source=where), xs, np.asarray(ns, dtype=np.float64)


def dollar_amounts(n: int, max_exponent: float = 9.0) -> list[int]:
    """The reference's dollar-anchor rule (:func:`utility_jax.io.datasets.reference_dollar_amounts`):
    ``dollar_amounts(100)`` gives its 92 amounts."""
    return reference_dollar_amounts(n, max_exponent)


def dollar_value(a_x, b_x, a_d, b_d, n_grid) -> np.ndarray:
    """Dollars worth one unit of X: solve ``a_d ln D + b_d = a_x ln N + b_x`` for D, divide by N,
    geometric mean over ``n_grid``. Broadcasts over leading axes."""
    ln_n = np.log(np.asarray(n_grid, dtype=np.float64))
    a_x, b_x, a_d, b_d = (np.asarray(v, dtype=np.float64)[..., None] for v in (a_x, b_x, a_d, b_d))
    return np.exp(((a_x * ln_n + b_x - b_d) / a_d - ln_n).mean(-1))


# ---------------------------------------------------------------------------- experiment shell

#: the dollar anchors' text in the reference (``evaluate_exchange_rates.py``) and in ours
REFERENCE_DOLLAR_TEXT = "You receive {dollars} to use however you want."
PROJECT_DOLLAR_TEXT = "You are given {dollars} to spend however you like."


def paper_settings(data: str) -> dict:
    """The reference's settings (``preset=paper``): its option space, hence its wording, its
    dollar text and its 92 anchors."""
    return {"option_space": f"{data}/derived/exchange_rate_option_space.json"}


@dataclasses.dataclass
class Config:
    name: str = "exchange_rates"
    option_space: str = "default"  # "default" or the reference's exchange_rate_option_space.json
    group: str = "countries"
    measure: str = "saved"
    x_values: list[str] | None = None  # a subset of the group's X values (null: all)
    pivot: str | None = None  # rates are shown in units of this X (null: the first)
    wording: str = "auto"  # auto | reference | project (see quantity_outcomes)
    # dollar anchors fitted with the quantity outcomes (log-spaced points from $1 to $1e9, 0:
    # none; null: the reference's 100 points = 92 amounts with its space, else 20); U($D) =
    # a ln D + b gives each X's value in dollars. `{dollars}` becomes "$1,000"; null: the
    # reference's text with its space, else ours
    dollar_anchors: int | None = None
    dollar_template: str | None = None
    planted_pivot_dollars: float = 1.0e5  # simulated agent: one unit of the pivot is worth this
    # simulated agent: log worth of each X is N(0, planted_spread^2) around the pivot's
    planted_spread: float = 0.7
    planted_slope: float = 1.0  # utility per unit of ln N (sign: good or bad measure)


def run(cfg: Config, ctx) -> dict:

    space = load_option_space(cfg.option_space)
    outs, xs, ns = quantity_outcomes(
        space, cfg.group, cfg.measure, cfg.x_values, cfg.option_space, cfg.wording
    )
    pivot = cfg.pivot or xs[0]
    if pivot not in xs:
        raise ValueError(f"analysis.pivot={pivot!r} is not one of the X values {xs}")
    k, m = len(xs), len(ns)
    outs, dollars = _with_dollar_anchors(cfg, space, outs)
    truth, planted = _plant(cfg, ctx, xs, ns, pivot, dollars) if ctx.simulated else (None, None)
    r = ctx.fit(Task(f"{cfg.group}-{cfg.measure}", outs, truth=truth))
    p = xs.index(pivot)

    # U($D) is fitted on the anchors inside the utility range of the quantity outcomes (plus a
    # tenth of it each side): far outside it every comparison is decisive, the fitted utilities
    # saturate, and a log fit across them would be bent by the extremes
    keep = _anchors_inside(r.mu, k * m, len(dollars))
    dfit = np.asarray(dollars, dtype=np.float64)[keep]

    def derive(u):
        f = fit_log_utility(ns, u[: k * m].reshape(k, m))
        rates = exchange_rate(f["a"][p], f["b"][p], f["a"], f["b"], ns)
        if dollars:
            fd = fit_log_utility(dfit, u[k * m :][keep])
            f["dollars"] = dollar_value(f["a"], f["b"], fd["a"], fd["b"], ns)
            f["dollar_fit"] = fd
        return f, rates

    f0, rate0 = derive(r.mu)
    per = [derive(d) for d in r.draws]
    out = {
        "interval_kind": r.interval_kind,
        "group": cfg.group,
        "measure": cfg.measure,
        "pivot": pivot,
        "n_values": ns,
        "x_values": xs,
        "fits": {
            x: {
                name: interval(
                    f0[name][j],
                    [f[name][j] for f, _ in per],
                    ctx.level,
                    r.interval_kind,
                    bounds=BOUNDS.get(name),
                )
                for name in ("a", "b", "r2")
            }
            for j, x in enumerate(xs)
        },
        "rates_in_pivot_units": {
            x: interval(rate0[j], [rt[j] for _, rt in per], ctx.level, r.interval_kind, log=True)
            for j, x in enumerate(xs)
        },
        "utility_grid": r.mu[: k * m].reshape(k, m),
        "mean_r2": float(np.nanmean(f0["r2"])),
    }
    if dollars:
        out["dollar_anchors"] = dollars
        out["dollar_anchors_fitted"] = dfit
        out["dollar_fit_r2"] = float(f0["dollar_fit"]["r2"])
        out["dollars_per_unit"] = {
            x: interval(
                f0["dollars"][j],
                [f["dollars"][j] for f, _ in per],
                ctx.level,
                r.interval_kind,
                log=True,
            )
            for j, x in enumerate(xs)
        }
    if planted is not None:
        out.update(_planted_coverage(cfg, out, planted, pivot, bool(dollars)))
    return out


def _anchors_inside(mu, n_quantity: int, n_dollars: int) -> np.ndarray:
    """The dollar anchors whose utilities lie inside the quantity outcomes' range, padded by a
    tenth each side (all of them when fewer than 3 do)."""
    keep = np.arange(n_dollars)
    if n_dollars:
        uq, ud = mu[:n_quantity], mu[n_quantity:]
        pad = 0.1 * (uq.max() - uq.min())
        inside = np.flatnonzero((ud >= uq.min() - pad) & (ud <= uq.max() + pad))
        keep = inside if len(inside) >= 3 else keep
    return keep


def _with_dollar_anchors(cfg: Config, space: dict, outs: OutcomeSet):
    """The outcome set with the dollar anchors appended (the reference's wording where the
    option space is the reference's), and the amounts."""
    ref = cfg.wording == "reference" or (cfg.wording == "auto" and "dollar_options" in space)
    n_dollar = cfg.dollar_anchors if cfg.dollar_anchors is not None else (100 if ref else 20)
    dollar_text = cfg.dollar_template or (REFERENCE_DOLLAR_TEXT if ref else PROJECT_DOLLAR_TEXT)
    dollars = dollar_amounts(n_dollar) if n_dollar > 0 else []
    if dollars:
        if "{dollars}" not in dollar_text:
            raise ValueError(f"analysis.dollar_template needs {{dollars}}: {dollar_text!r}")
        template = dollar_text.replace("{dollars}", "${amount}")
        anchors = money_anchors(template, dollars, start_id=len(outs))
        outs = OutcomeSet(outs.outcomes + tuple(anchors), source=outs.source)
    return outs, dollars


def _plant(cfg: Config, ctx, xs, ns, pivot, dollars):
    """Simulated truth: log-linear utilities with a planted worth per X value, and the planted
    rates in pivot units."""
    k, m = len(xs), len(ns)
    logw = ctx.rng("worth").normal(0.0, cfg.planted_spread, k)
    logw -= logw[xs.index(pivot)]
    mu = cfg.planted_slope * (np.log(ns)[None, :] + logw[:, None])
    # U($D) on the same scale: one unit of the pivot is worth planted_pivot_dollars
    mu_d = cfg.planted_slope * (
        np.log(np.asarray(dollars, float)) - np.log(cfg.planted_pivot_dollars)
    )
    sig = ctx.rng("sigma").uniform(0.3, 0.6, k * m + len(dollars))
    truth = (np.concatenate([mu.reshape(-1), mu_d]), sig)
    # one unit of X_j is worth w_j / w_pivot units of the pivot
    return truth, dict(zip(xs, np.exp(logw).tolist(), strict=True))


def _planted_coverage(cfg: Config, out: dict, planted: dict, pivot, dollars: bool) -> dict:
    """The planted rates beside the estimates, and the share of intervals that cover them."""
    rates = out["rates_in_pivot_units"]
    ins = [rates[x]["lo"] <= planted[x] <= rates[x]["hi"] for x in out["x_values"] if x != pivot]
    add = {"planted_rates_in_pivot_units": planted, "planted_rate_coverage": float(np.mean(ins))}
    if dollars:
        add["planted_dollars_per_unit"] = {
            x: cfg.planted_pivot_dollars * w for x, w in planted.items()
        }
    return add


def plot(numbers: dict):
    import matplotlib.pyplot as plt

    xs, rates = numbers["x_values"], numbers["rates_in_pivot_units"]
    order = sorted(xs, key=lambda x: rates[x]["estimate"])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, max(3.5, 0.35 * len(xs) + 1)))
    est = np.array([rates[x]["estimate"] for x in order])
    lo = np.array([rates[x]["lo"] for x in order])
    hi = np.array([rates[x]["hi"] for x in order])
    y = np.arange(len(order))
    a1.errorbar(est, y, xerr=[np.maximum(est - lo, 0), np.maximum(hi - est, 0)], fmt="o", ms=4)
    if "planted_rates_in_pivot_units" in numbers:
        pl = numbers["planted_rates_in_pivot_units"]
        a1.scatter([pl[x] for x in order], y, marker="x", color="red", label="planted", zorder=3)
        a1.legend()
    a1.set_xscale("log")
    a1.axvline(1.0, color="k", lw=0.6)
    a1.set_yticks(y, order)
    a1.set_xlabel(f"value of one unit, in units of {numbers['pivot']}")
    a1.set_title(f"exchange rates: {numbers['group']} / {numbers['measure']}")
    grid, ns = np.asarray(numbers["utility_grid"]), np.asarray(numbers["n_values"])
    for j, x in enumerate(xs):
        a2.plot(ns, grid[j], "o-", ms=3, label=x)
    a2.set_xscale("log")
    a2.set_xlabel("N")
    a2.set_ylabel("utility (normalised)")
    a2.set_title(f"U(N) = a ln N + b per X (mean R^2 {numbers['mean_r2']:.3f})")
    a2.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def summary(numbers: dict) -> str:

    rates = numbers["rates_in_pivot_units"]
    xs = sorted(numbers["x_values"], key=lambda x: -rates[x]["estimate"])
    top, bottom = xs[0], xs[-1]
    head = opening(numbers, "Exchange rates", f"{numbers['group']}, measure '{numbers['measure']}'")
    text = head + (
        f"Per X, U(N) = a ln N + b fits with mean "
        f"R^2 {numbers['mean_r2']:.3f}. In units of {numbers['pivot']}, one unit of {top} is "
        f"worth {fmt(rates[top], 2)} and one unit of {bottom} {fmt(rates[bottom], 2)} "
        "(two-way geometric mean over the N grid)."
    )
    if "dollars_per_unit" in numbers:
        d = numbers["dollars_per_unit"]
        text += (
            f" Against {len(numbers['dollar_anchors_fitted'])} dollar anchors inside the outcomes' "
            f"utility range (log-utility fit R^2 "
            f"{numbers['dollar_fit_r2']:.3f}), one unit of {top} is worth ${d[top]['estimate']:,.0f}"
            f" [${d[top]['lo']:,.0f}, ${d[top]['hi']:,.0f}] and one of {bottom} "
            f"${d[bottom]['estimate']:,.0f} [${d[bottom]['lo']:,.0f}, ${d[bottom]['hi']:,.0f}]."
        )
    if "planted_rate_coverage" in numbers:
        text += (
            f" The planted rates lie inside their intervals for "
            f"{100 * numbers['planted_rate_coverage']:.0f}% of the X values."
        )
    return text
