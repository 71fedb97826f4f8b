"""Political values (SPEC section 5): PCA of utility vectors over policies.

The model's utilities over policies and those it attributes to politicians and platforms are
stacked (rows: entities, columns: policies), standardised per entity, and projected on their first
principal components; the model is placed among the entities by its nearest neighbours there.
"""

import dataclasses

import numpy as np

from utility_jax.analysis.draws import map_draws, paired_draws
from utility_jax.analysis.harness import Task, opening
from utility_jax.analysis.inputs import read_input
from utility_jax.io.outcomes import Outcome, OutcomeSet

__all__ = ["pca", "place_among", "load_political", "Config", "run", "plot", "summary"]

#: natural range of each reported number (intervals are clipped to it)
BOUNDS = {"share": (0.0, 1.0), "correlation": (-1.0, 1.0)}


def pca(vectors, n_components: int = 2) -> dict[str, np.ndarray]:
    """PCA of ``[n_entities, n_policies]`` utility vectors, each z-scored first (scale-free).

    Returns ``coords`` ``[n_entities, n_components]``, ``components`` and ``explained`` variance
    ratios. Signs are fixed so each component's largest loading is positive (deterministic).
    """
    x = np.asarray(vectors, dtype=np.float64)
    z = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    zc = z - z.mean(0, keepdims=True)
    u, s, vt = np.linalg.svd(zc, full_matrices=False)
    signs = np.sign(vt[np.arange(len(vt)), np.argmax(np.abs(vt), axis=1)])
    vt = vt * signs[:, None]
    coords = zc @ vt[:n_components].T
    ev = s**2 / np.sum(s**2)
    return {"coords": coords, "components": vt[:n_components], "explained": ev[:n_components]}


def place_among(coords, names: list[str], who: str, k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` entities nearest to ``who`` in PCA coordinates, with their distances."""
    c = np.asarray(coords)
    i = names.index(who)
    d = np.linalg.norm(c - c[i], axis=1)
    order = [j for j in np.argsort(d) if j != i][:k]
    return [(names[j], float(d[j])) for j in order]


def load_political(policies: str = "default", entities: str = "default") -> tuple[dict, dict]:
    """``(policies, entities)``: category -> proposals, and {"politicians", "platforms"}.

    ``"default"`` reads the project's own file; else the reference's ``policy_options.json`` /
    ``entities.json`` paths. The reference's placeholder entity ``citizenassembly1`` is dropped.
    """
    own = read_input("default", "political.yaml", "political inputs")[1]
    pol = own["policies"] if policies == "default" else read_input(policies, "", "policy file")[1]
    ent = own["entities"] if entities == "default" else read_input(entities, "", "entity file")[1]
    if not isinstance(pol, dict) or not all(isinstance(v, list) for v in pol.values()):
        raise ValueError(f"{policies}: expected an object mapping categories to proposal lists")
    if not isinstance(ent, dict) or not {"politicians", "platforms"} & set(ent):
        raise ValueError(f"{entities}: expected 'politicians' and/or 'platforms' lists")
    ent = {
        k: [e for e in ent.get(k, []) if not e.startswith("citizenassembly")]
        for k in ("politicians", "platforms")
    }
    return pol, ent


# ---------------------------------------------------------------------------- experiment shell


@dataclasses.dataclass
class Config:
    name: str = "political"
    policies: str = "default"  # or the reference's policy_options.json
    entities: str = "default"  # or the reference's entities.json
    max_policies: int | None = None
    max_entities: int | None = None  # keep the first politicians/platforms (null: all)
    model_name: str = "model"
    # simulated agent: entities and policies live in a 2-D space; the model sits next to this one
    planted_lean: str | None = "the Green Party"
    planted_noise: float = 0.3


def run(cfg: Config, ctx) -> dict:

    pol, ent = load_political(cfg.policies, cfg.entities)
    items = [(c, t) for c, ts in pol.items() for t in ts][: cfg.max_policies]
    outs = OutcomeSet(
        tuple(Outcome(k, t, c) for k, (c, t) in enumerate(items)), source=str(cfg.policies)
    )
    who = [(e, "policy_politician") for e in ent["politicians"]] + [
        (e, "policy_platform") for e in ent["platforms"]
    ]
    who = who[: cfg.max_entities]
    names = [e for e, _ in who]
    truths = _plant(cfg, ctx, len(items), names) if ctx.simulated else {}
    tasks = [
        Task(
            cfg.model_name,
            outs,
            template="policy_ai",
            system="political",
            truth=truths.get(cfg.model_name),
        )
    ]
    tasks += [
        Task(e, outs, template=t, fields={"entity": e}, system="political", truth=truths.get(e))
        for e, t in who
    ]
    results = [ctx.fit(t) for t in tasks]
    labels = [cfg.model_name] + names
    u = np.stack([r.mu for r in results])
    pc = pca(u)
    draws = paired_draws(*results)
    near = [
        place_among(pca(np.stack([d[i] for d in draws]))["coords"], labels, cfg.model_name, 1)[0][0]
        for i in range(len(draws[0]))
    ]
    nearest = place_among(pc["coords"], labels, cfg.model_name, k=min(5, len(names)))
    draw_coords = _draw_coords(results, draws, pc["components"])
    share = {n: float(np.mean([x == n for x in near])) for n in sorted(set(near))}
    out = {
        "interval_kind": results[0].interval_kind,
        "n_policies": len(items),
        "entities": labels,
        "coords": pc["coords"],
        "explained_variance": pc["explained"],
        "nearest_to_model": [{"entity": n, "distance": d} for n, d in nearest],
        "nearest_share_of_draws": share,
        "draw_coords": draw_coords,
        "correlation_with_model": {
            n: float(np.corrcoef(u[0], u[i + 1])[0, 1]) for i, n in enumerate(names)
        },
        "correlation_with_model_intervals": map_draws(
            lambda *us: {
                n: float(np.corrcoef(us[0], us[i + 1])[0, 1]) for i, n in enumerate(names)
            },
            ctx.level,
            tuple(r.mu for r in results),
            tuple(draws),
            results[0].interval_kind,
            bounds=BOUNDS["correlation"],
        ),
        "model_name": cfg.model_name,
    }
    if ctx.simulated:
        out["planted_lean"] = cfg.planted_lean
    return out


def _plant(cfg: Config, ctx, n_items: int, names) -> dict:
    """Simulated truth: every entity (and the model, near its planted lean) a point in a 2-D
    political space, and each policy's utility a noisy projection of it."""
    rng = ctx.rng("political-plant")
    load = rng.normal(size=(n_items, 2))
    known = read_input("default", "political.yaml", "political inputs")[1].get(
        "simulated_positions", {}
    )
    pos = {e: np.asarray(known.get(e, rng.normal(size=2) * 1.5), float) for e in names}
    lean = cfg.planted_lean
    if lean is not None and lean not in pos:
        raise ValueError(f"analysis.planted_lean={lean!r} is not one of the entities {names}")
    pos[cfg.model_name] = pos[lean] + rng.normal(size=2) * 0.1 if lean else rng.normal(size=2) * 1.5
    truths = {}
    for e, p in pos.items():
        mu = load @ p + cfg.planted_noise * rng.standard_normal(n_items)
        truths[e] = (mu, rng.uniform(0.3, 0.8, n_items))
    return truths


def _draw_coords(results, draws, components) -> np.ndarray:
    """Every draw projected on the point estimate's axes: each entity's cloud of positions."""
    x0 = np.stack([r.mu for r in results])
    z0 = (x0 - x0.mean(1, keepdims=True)) / x0.std(1, keepdims=True)
    centre = z0.mean(0, keepdims=True)
    draw_coords = []
    for i in range(len(draws[0])):
        x = np.stack([d[i] for d in draws])
        z = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
        draw_coords.append((z - centre) @ components.T)
    return np.asarray(draw_coords)


def _repel(xy: np.ndarray, sizes: np.ndarray, iters: int = 300) -> np.ndarray:
    """Label positions near ``xy`` (``[n, 2]``) whose boxes (``sizes``: half widths and
    heights, data units) do not overlap: pairwise pushes, then a pull back to the point."""
    pos = xy + sizes * np.array([1.0, 1.2])
    for _ in range(iters):
        moved = False
        for i in range(len(pos)):
            for j in range(i + 1, len(pos)):
                d = pos[i] - pos[j]
                over = sizes[i] + sizes[j] - np.abs(d)
                if (over > 0).all():
                    k = int(np.argmin(over / (sizes[i] + sizes[j])))
                    step = np.zeros(2)
                    step[k] = (over[k] / 2 + 1e-9) * (1 if d[k] >= 0 else -1)
                    pos[i] += step
                    pos[j] -= step
                    moved = True
        if not moved:
            break
    return pos


def _ellipse(ax, pts: np.ndarray, color, level: float = 0.9):
    """The ``level`` normal-theory ellipse of 2-D points."""
    from matplotlib.patches import Ellipse
    from scipy import stats

    if len(pts) < 5:
        return
    cov = np.cov(pts.T)
    vals, vecs = np.linalg.eigh(cov)
    r = np.sqrt(stats.chi2.ppf(level, 2) * np.maximum(vals, 0))
    ang = np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1]))
    ax.add_patch(
        Ellipse(
            pts.mean(0), 2 * r[1], 2 * r[0], angle=ang, fill=True, alpha=0.12, color=color, lw=0
        )
    )


def plot(numbers: dict):
    import matplotlib.pyplot as plt

    c = np.asarray(numbers["coords"])
    labels = numbers["entities"]
    ev = numbers["explained_variance"]
    fig, (ax, a2) = plt.subplots(1, 2, figsize=(13, 6), width_ratios=[1.5, 1])
    dc = np.asarray(numbers.get("draw_coords", np.zeros((0, len(labels), 2))))
    for i in range(len(labels)):
        col = "tab:red" if i == 0 else "tab:blue"
        if len(dc):
            _ellipse(ax, dc[:, i, :], col)
    ax.scatter(c[1:, 0], c[1:, 1], s=25, color="tab:blue", zorder=3, label="entities")
    ax.scatter(
        c[:1, 0],
        c[:1, 1],
        s=110,
        color="tab:red",
        marker="*",
        zorder=4,
        label=numbers["model_name"],
    )
    span = np.ptp(c, axis=0) + 1e-9
    sizes = np.stack(
        [[0.0075 * len(n) * span[0] + 0.01 * span[0], 0.025 * span[1]] for n in labels]
    )
    pos = _repel(c.copy(), sizes)
    lo_ = np.minimum(c.min(0), (pos - sizes).min(0)) - 0.05 * span
    hi_ = np.maximum(c.max(0), (pos + sizes).max(0)) + 0.05 * span
    ax.set_xlim(lo_[0], hi_[0])
    ax.set_ylim(lo_[1], hi_[1])
    for (x, y), (tx, ty), n in zip(c, pos, labels, strict=True):
        ax.annotate(
            n,
            (x, y),
            xytext=(tx, ty),
            fontsize=7,
            ha="center",
            va="center",
            arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5},
        )
    ax.set_xlabel(f"PC1 ({100 * ev[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * ev[1]:.0f}% of variance)")
    ax.set_title(
        f"policy utilities: {numbers['model_name']} among {len(labels) - 1} entities "
        "(shaded: 90% of the draws)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.08), ncols=2, frameon=False)
    civ = numbers.get("correlation_with_model_intervals") or {}
    names = sorted(civ, key=lambda n: civ[n]["estimate"]) if civ else []
    if names:
        est = np.array([civ[n]["estimate"] for n in names])
        lo = np.array([civ[n]["lo"] for n in names])
        hi = np.array([civ[n]["hi"] for n in names])
        y = np.arange(len(names))
        a2.errorbar(
            est,
            y,
            xerr=[np.clip(est - lo, 0, None), np.clip(hi - est, 0, None)],
            fmt="o",
            ms=3,
            capsize=2,
        )
        a2.set_yticks(y, names, fontsize=7)
        a2.axvline(0, color="0.7", lw=0.6)
        a2.set_xlabel(f"correlation with {numbers['model_name']}'s utilities (90% interval)")
    fig.set_layout_engine("constrained")
    return fig


def summary(numbers: dict) -> str:
    n0 = numbers["nearest_to_model"][0]["entity"]
    share = numbers["nearest_share_of_draws"].get(n0, 0.0)
    corr = numbers["correlation_with_model"]
    best = max(corr, key=corr.get)
    ev = numbers["explained_variance"]
    head = opening(
        numbers,
        "Political values",
        f"{numbers['n_policies']} policies",
        f"{len(numbers['entities']) - 1} politicians and platforms",
    )
    return head + (
        f"The first two principal components of the standardised utility "
        f"vectors explain {100 * ev[0]:.0f}% and {100 * ev[1]:.0f}% of the variance. The model's "
        f"nearest neighbour in that plane is {n0} (in {100 * share:.0f}% of the draws); its "
        f"utilities correlate most with those attributed to {best} (r = {corr[best]:.2f})."
    )
