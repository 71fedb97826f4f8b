"""Political values (SPEC section 5): PCA of utility vectors over policies.

The model's utilities over policies and those it attributes to politicians and platforms are
stacked (rows: entities, columns: policies), standardised per entity, and projected on their first
principal components; the model is placed among the entities by its nearest neighbours there.
"""

import numpy as np

__all__ = ["pca", "place_among"]


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
