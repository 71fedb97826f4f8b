"""Convergence of value systems across models (SPEC section 5).

For every pair of models, the Pearson correlation and the cosine similarity of their utility
vectors over shared outcomes; then, per model, its mean similarity to the others against a
capability score (the MMLU table in the anchor data).
"""

import csv
from pathlib import Path

import numpy as np
from scipy import stats

__all__ = ["similarity_matrices", "convergence_vs_capability", "load_capability"]


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
