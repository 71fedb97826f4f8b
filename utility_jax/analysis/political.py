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
from utility_jax.outcomes import Outcome, OutcomeSet

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
    truths = {}
    if ctx.simulated:
        rng = ctx.rng("political-plant")
        load = rng.normal(size=(len(items), 2))
        known = read_input("default", "political.yaml", "political inputs")[1].get(
            "simulated_positions", {}
        )
        pos = {e: np.asarray(known.get(e, rng.normal(size=2) * 1.5), float) for e in names}
        lean = cfg.planted_lean
        if lean is not None and lean not in pos:
            raise ValueError(f"analysis.planted_lean={lean!r} is not one of the entities {names}")
        pos[cfg.model_name] = (
            pos[lean] + rng.normal(size=2) * 0.1 if lean else rng.normal(size=2) * 1.5
        )
        for e, p in pos.items():
            mu = load @ p + cfg.planted_noise * rng.standard_normal(len(items))
            truths[e] = (mu, rng.uniform(0.3, 0.8, len(items)))
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
    share = {n: float(np.mean([x == n for x in near])) for n in sorted(set(near))}
    out = {
        "interval_kind": results[0].interval_kind,
        "n_policies": len(items),
        "entities": labels,
        "coords": pc["coords"],
        "explained_variance": pc["explained"],
        "nearest_to_model": [{"entity": n, "distance": d} for n, d in nearest],
        "nearest_share_of_draws": share,
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


def plot(numbers: dict):
    import matplotlib.pyplot as plt

    c = np.asarray(numbers["coords"])
    labels = numbers["entities"]
    ev = numbers["explained_variance"]
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.scatter(c[1:, 0], c[1:, 1], s=25, color="tab:blue")
    ax.scatter(c[:1, 0], c[:1, 1], s=80, color="tab:red", marker="*")
    for (x, y), n in zip(c, labels, strict=True):
        ax.annotate(n, (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"PC1 ({100 * ev[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * ev[1]:.0f}% of variance)")
    ax.set_title(f"policy utilities: {numbers['model_name']} among {len(labels) - 1} entities")
    fig.tight_layout()
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
