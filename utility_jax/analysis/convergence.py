"""Convergence of value systems across models (SPEC section 5).

For every pair of models, the Pearson correlation and the cosine similarity of their utility
vectors over shared outcomes; then, per model, its mean similarity to the others against a
capability score (the MMLU table in the anchor data).
"""

import csv
import dataclasses
from pathlib import Path

import numpy as np
from scipy import stats

from utility_jax.analysis.draws import interval
from utility_jax.analysis.harness import Task, opening
from utility_jax.analysis.inputs import read_input
from utility_jax.core.metrics import fisher_interval
from utility_jax.core.simulate import planted_utilities
from utility_jax.io.outcomes import load_outcomes

__all__ = [
    "similarity_matrices",
    "convergence_vs_capability",
    "load_capability",
    "load_run_utilities",
    "Config",
    "run",
    "plot",
    "summary",
]

#: natural range of each reported number (intervals are clipped to it)
BOUNDS = {
    "mean_similarity": (-1.0, 1.0),
    "pearson_similarity_vs_capability": (-1.0, 1.0),
    "spearman_similarity_vs_capability": (-1.0, 1.0),
}


def similarity_matrices(utilities: dict[str, np.ndarray]) -> dict:
    """``{"names", "pearson", "cosine"}`` for ``{model: [n_outcomes] utilities}`` on shared outcomes.

    Cosine is computed on each vector centred at its mean (utilities are defined up to a shift).
    """
    names = list(utilities)
    if len(names) < 2:
        raise ValueError("need the utilities of at least two models")
    u = np.stack([np.asarray(utilities[k], dtype=np.float64) for k in names])
    if u.ndim != 2:
        raise ValueError("every model needs a 1-D utility vector over the same outcomes")
    c = u - u.mean(1, keepdims=True)
    unit = c / np.linalg.norm(c, axis=1, keepdims=True)
    cosine = unit @ unit.T
    pearson = np.corrcoef(u)
    return {"names": names, "pearson": pearson, "cosine": cosine}


def convergence_vs_capability(
    utilities: dict[str, np.ndarray], capability: dict[str, float]
) -> dict:
    """Mean similarity of each model to the others, and its correlation with capability."""
    sim = similarity_matrices(utilities)
    names, p = sim["names"], sim["pearson"]
    k = len(names)
    mean_sim = {n: float((p[i].sum() - 1.0) / (k - 1)) for i, n in enumerate(names)}
    scored = [n for n in names if n in capability]
    out = {"mean_similarity": mean_sim, "n_models_with_capability": len(scored)}
    if len(scored) >= 3:
        x = np.array([capability[n] for n in scored])
        y = np.array([mean_sim[n] for n in scored])
        out["pearson_similarity_vs_capability"] = float(stats.pearsonr(x, y).statistic)
        out["spearman_similarity_vs_capability"] = float(stats.spearmanr(x, y).statistic)
    return out


def load_capability(path: str | Path) -> dict[str, float]:
    """``Model Name,MMLU`` rows (the reference's ``capability_scores.csv``) as a dict."""
    path = Path(path)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or {"Model Name", "MMLU"} - set(rows[0]):
        raise ValueError(f"{path}: expected columns 'Model Name' and 'MMLU'")
    out = {}
    for k, r in enumerate(rows):
        try:
            out[r["Model Name"]] = float(r["MMLU"])
        except ValueError as e:
            raise ValueError(f"{path}: row {k + 2}: MMLU {r['MMLU']!r} is not a number") from e
    return out


def load_run_utilities(path: str | Path) -> tuple[dict[str, float], dict[str, float] | None]:
    """``({outcome text: normalised utility}, {text: sd} or None)`` from a saved run.

    Accepts a utility_jax run folder (or its ``utilities.json``) and the reference's
    ``results_utilities_*.json`` (means already normalised; no uncertainty).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "utilities.json"
    path, obj = read_input(path, "", "saved utilities")
    if isinstance(obj, list):  # ours
        try:
            # an outcome no voted pair compared has no utility (null): left out
            u = {
                r["text"]: float(r["mu_normalized"]) for r in obj if r["mu_normalized"] is not None
            }
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path}: utilities.json rows need 'text' and 'mu_normalized'") from e
        sd_key = next(
            (k for k in ("posterior_sd", "bootstrap_sd", "laplace_se") if k in obj[0]), None
        )
        sd = {r["text"]: float(r[sd_key]) for r in obj} if sd_key else None
        return u, sd
    try:
        texts = {str(o["id"]): o["description"] for o in obj["options"]}
        return {texts[k]: float(v["mean"]) for k, v in obj["utilities"].items()}, None
    except (KeyError, TypeError) as e:
        raise ValueError(
            f"{path}: neither a utility_jax utilities.json nor a reference results file"
        ) from e


# ---------------------------------------------------------------------------- experiment shell


@dataclasses.dataclass
class Config:
    name: str = "convergence"
    # saved runs: {name: run folder, utilities.json or reference results_utilities_*.json}
    runs: dict[str, str] | None = None
    capability: str | None = None  # a `Model Name,MMLU` csv (the reference's capability_scores.csv)
    capability_names: dict[str, str] | None = None  # run name -> the csv's model name
    fit_agent: bool | None = None  # also fit the configured agent (null: when it is an LLM)
    # simulated: models whose utilities share a planted vector with weight = their "capability"
    n_models: int = 5
    capability_range: list[float] = dataclasses.field(default_factory=lambda: [0.2, 0.95])
    n_draws: int = 200  # draws from saved runs' per-outcome sd


def _keep(r, name, outs, vectors, draws, kinds) -> None:
    """Record one fitted model's utilities, draws and interval kind."""
    vectors[name] = dict(zip(outs.texts, r.mu, strict=True))
    draws[name] = r.draws
    kinds.append(r.interval_kind)


def _fit_planted_models(cfg: Config, ctx, outs, vectors, draws, kinds) -> dict[str, float]:
    """Simulated models whose utilities share a planted vector to a degree that grows with a
    planted capability; each is fitted, and the capabilities returned by model name."""
    lo, hi = cfg.capability_range
    c = np.linspace(lo, hi, cfg.n_models)
    shared, sig = planted_utilities(outs, ctx.task_key("plant:shared"))
    shared = (shared - shared.mean()) / shared.std()
    rng = ctx.rng("convergence")
    planted_cap = {}
    for m, cm in enumerate(c):
        own = rng.standard_normal(len(outs))
        mu = 1.5 * (cm * shared + np.sqrt(1 - cm**2) * own)
        name = f"sim-{m} (c={cm:.2f})"
        _keep(ctx.fit(Task(name, outs, truth=(mu, sig))), name, outs, vectors, draws, kinds)
        planted_cap[name] = float(cm)
    return planted_cap


def _shared_draws(ctx, outs, shared_texts, point, draws, sds, n_d) -> dict[str, np.ndarray]:
    """Draws over the shared outcomes: the fits' own, or normal draws from saved per-outcome
    sds, or the point repeated where nothing was saved (reference files)."""
    rng = ctx.rng("convergence-draws")
    dr = {}
    for n in point:
        if n in draws:
            idx = [outs.texts.index(t) for t in shared_texts]
            dr[n] = draws[n][:n_d, idx]
        elif sds.get(n):
            sd = np.array([sds[n][t] for t in shared_texts])
            dr[n] = point[n] + rng.standard_normal((n_d, len(shared_texts))) * sd
        else:
            dr[n] = np.repeat(point[n][None], n_d, 0)
    return dr


def _capability_correlations(cv, cvs, n_models: int, certain: bool, level, kind) -> dict:
    """Similarity against capability (Pearson, Spearman), each with the draws' interval and the
    Fisher-z interval over the models."""
    out = {}
    for k in ("pearson_similarity_vs_capability", "spearman_similarity_vs_capability"):
        if k in cv:
            iv = interval(cv[k], [c[k] for c in cvs], level, kind, bounds=BOUNDS[k])
            if certain:
                iv["lo"] = iv["hi"] = float("nan")
            # the draws carry the utilities' measurement noise only; with a handful of models
            # the correlation's own sampling error dominates: the Fisher-z interval over them
            iv["models_lo"], iv["models_hi"] = fisher_interval(cv[k], n_models, level)
            out[k] = iv
    return out


def run(cfg: Config, ctx) -> dict:

    vectors: dict[str, dict[str, float]] = {}
    sds: dict[str, dict[str, float] | None] = {}
    for name, path in (cfg.runs or {}).items():
        vectors[name], sds[name] = load_run_utilities(path)
    cap = load_capability(cfg.capability) if cfg.capability else {}
    cap = {
        n: cap[(cfg.capability_names or {}).get(n, n)]
        for n in vectors
        if (cfg.capability_names or {}).get(n, n) in cap
    }
    draws: dict[str, np.ndarray] = {}
    kinds: list[str] = []
    fit_agent = (not ctx.simulated) if cfg.fit_agent is None else cfg.fit_agent
    outs = load_outcomes(ctx.conf.outcomes.path, limit=ctx.conf.outcomes.limit)
    planted_cap = None
    if ctx.simulated and not cfg.runs:
        planted_cap = _fit_planted_models(cfg, ctx, outs, vectors, draws, kinds)
        cap = dict(planted_cap)
    elif fit_agent:
        name = ctx.conf.agent.model or ctx.conf.agent.kind
        _keep(ctx.fit(Task(str(name), outs)), name, outs, vectors, draws, kinds)
    if len(vectors) < 2:
        raise ValueError(
            "convergence needs at least two models: give analysis.runs={name: path, ...} "
            "(saved runs) or use the simulated agent"
        )
    shared_texts = sorted(set.intersection(*(set(v) for v in vectors.values())))
    if len(shared_texts) < 3:
        raise ValueError(f"the runs share only {len(shared_texts)} outcomes; need at least 3")
    names = list(vectors)
    point = {n: np.array([vectors[n][t] for t in shared_texts]) for n in names}
    n_d = min([len(d) for d in draws.values()] + [cfg.n_draws])
    dr = _shared_draws(ctx, outs, shared_texts, point, draws, sds, n_d)
    # a model with no uncertainty at all (a reference results file) has no interval: every
    # number that involves it says so instead of collapsing to a point
    certain = [n for n in names if n not in draws and not sds.get(n)]
    kind = kinds[0] if kinds else "saved sd"
    if certain:
        kind = f"not computable: no uncertainty saved for {', '.join(certain)}"
    sim = similarity_matrices(point)
    sims = [similarity_matrices({n: dr[n][d] for n in names}) for d in range(n_d)]
    cv = convergence_vs_capability(point, cap)
    cvs = [convergence_vs_capability({n: dr[n][d] for n in names}, cap) for d in range(n_d)]
    p_lo = np.quantile([s["pearson"] for s in sims], (1 - ctx.level) / 2, axis=0)
    p_hi = np.quantile([s["pearson"] for s in sims], 1 - (1 - ctx.level) / 2, axis=0)
    no_iv = np.array([n in certain for n in names])
    no_iv = no_iv[:, None] | no_iv[None, :]
    out = {
        "interval_kind": kind,
        "models_without_uncertainty": certain,
        "models": names,
        "n_shared_outcomes": len(shared_texts),
        "pearson": sim["pearson"],
        "cosine": sim["cosine"],
        "pearson_lo": np.where(no_iv, np.nan, p_lo),
        "pearson_hi": np.where(no_iv, np.nan, p_hi),
        "mean_similarity": {
            n: interval(
                cv["mean_similarity"][n],
                [c["mean_similarity"][n] for c in cvs],
                ctx.level,
                kind,
                bounds=BOUNDS["mean_similarity"],
            )
            for n in names
        },
        "capability": cap,
    }
    if certain:
        for iv in out["mean_similarity"].values():
            iv["lo"] = iv["hi"] = float("nan")
    out.update(_capability_correlations(cv, cvs, len(cap), bool(certain), ctx.level, kind))
    if planted_cap is not None:
        out["planted_capability"] = planted_cap
    return out


def plot(numbers: dict):
    import matplotlib.pyplot as plt

    names = numbers["models"]
    p = np.asarray(numbers["pearson"], dtype=np.float64)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 5))
    im = a1.imshow(p, vmin=-1, vmax=1, cmap="RdBu_r")
    a1.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    a1.set_yticks(range(len(names)), names, fontsize=7)
    for i in range(len(names)):
        for j in range(len(names)):
            a1.text(j, i, f"{p[i, j]:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=a1)
    a1.set_title(f"utility correlation ({numbers['n_shared_outcomes']} shared outcomes)")
    cap = numbers["capability"]
    ms = numbers["mean_similarity"]
    have = [n for n in names if n in cap]
    if have:
        x = np.array([cap[n] for n in have])
        y = np.array([ms[n]["estimate"] for n in have])
        e = np.array(
            [[ms[n]["estimate"] - ms[n]["lo"], ms[n]["hi"] - ms[n]["estimate"]] for n in have]
        ).T
        a2.errorbar(x, y, yerr=np.nan_to_num(np.maximum(e, 0)), fmt="o")  # no bar: no interval
        for xi, yi, n in zip(x, y, have, strict=True):
            a2.annotate(n, (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        a2.set_xlabel("capability (MMLU or planted)")
        a2.set_ylabel("mean correlation with the other models")
        t = numbers.get("pearson_similarity_vs_capability")
        a2.set_title("convergence vs capability" + (f": r = {t['estimate']:.2f}" if t else ""))
    else:
        a2.axis("off")
    fig.tight_layout()
    return fig


def summary(numbers: dict) -> str:

    names = numbers["models"]
    p = np.asarray(numbers["pearson"], dtype=np.float64)
    off = p[~np.eye(len(names), dtype=bool)]
    text = opening(
        numbers,
        "Convergence",
        f"{len(names)} models",
        f"{numbers['n_shared_outcomes']} shared outcomes",
    ) + (
        f"Pairwise utility correlations range from {off.min():.2f} to {off.max():.2f} "
        f"(mean {off.mean():.2f})."
    )
    t = numbers.get("pearson_similarity_vs_capability")
    if t:
        k = len(numbers["capability"])
        text += (
            f" A model's mean correlation with the others correlates with its capability at "
            f"r = {t['estimate']:.3f} ({k} models with a capability score; over which models "
            f"were sampled, Fisher-z {_bounds(t.get('models_lo'), t.get('models_hi'))}; from the "
            f"utilities' measurement noise alone {_bounds(t['lo'], t['hi'])})."
        )
    if numbers.get("models_without_uncertainty"):
        text += (
            " No interval involving "
            + ", ".join(numbers["models_without_uncertainty"])
            + " can be computed: no uncertainty was saved for it (a reference results file)."
        )
    return text


def _bounds(lo, hi) -> str:
    """``[lo, hi]``, or why there is none."""
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return "not computable"
    return f"[{lo:.3f}, {hi:.3f}]"
