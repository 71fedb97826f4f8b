"""Which pairs to ask: held-out split, the initial random-regular graph, active learning.

These run on the host between model calls, over variable-size candidate sets, so they are NumPy
functions. They are pure and seeded: randomness comes from a ``numpy.random.Generator`` (or an int
seed) passed in; no global random state is read or written.

Pairs are ``[n, 2]`` int arrays with the smaller index first.
"""

import numpy as np

from utility_jax.core.data import PairwiseData

__all__ = [
    "canonical_pairs",
    "sample_holdout_pairs",
    "random_regular_pairs",
    "select_pairs_reference",
    "select_pairs_variance",
    "select_pairs_random",
    "candidate_pairs",
    "pair_degrees",
    "pseudolabels",
    "with_pseudolabels",
]


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def canonical_pairs(pairs) -> np.ndarray:
    """``[n, 2]`` pairs with the smaller index first."""
    p = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return np.sort(p, axis=1)


def _keys(pairs: np.ndarray, n_items: int) -> np.ndarray:
    p = canonical_pairs(pairs)
    return p[:, 0] * n_items + p[:, 1]


def _unrank(k: np.ndarray, n: int) -> np.ndarray:
    """Map linear indices ``0 <= k < C(n, 2)`` to pairs (i < j) without listing all pairs."""
    k = np.asarray(k, dtype=np.int64)
    # Row i holds n-1-i pairs; first index of row i is i*n - i*(i+1)/2.
    i = (n - 2 - np.floor(np.sqrt(-8.0 * k + 4.0 * n * (n - 1) - 7) / 2.0 - 0.5)).astype(np.int64)
    start = i * n - i * (i + 1) // 2
    j = k - start + i + 1
    return np.stack([i, j], axis=1)


def sample_holdout_pairs(
    n_items: int, seed, *, fraction: float = 0.05, max_pairs: int = 1000
) -> np.ndarray:
    """Held-out pairs: ``min(fraction * C(n, 2), max_pairs)`` distinct pairs, uniformly.

    The paper holds out min(5% of all pairs, 1000) with a fixed seed (42).
    """
    if n_items < 2:
        raise ValueError(f"need at least 2 outcomes for pairs, got {n_items}")
    total = n_items * (n_items - 1) // 2
    n = min(int(fraction * total), int(max_pairs))
    if n <= 0:
        return np.zeros((0, 2), dtype=np.int64)
    k = _rng(seed).choice(total, size=n, replace=False)
    return _unrank(np.sort(k), n_items)


def random_regular_pairs(
    n_items: int, degree: int, seed, *, exclude=None, max_tries: int = 200
) -> np.ndarray:
    """Edges of a random ``degree``-regular graph avoiding the ``exclude`` pairs.

    Built as the union of ``degree // 2`` random Hamiltonian cycles (plus a random perfect
    matching when ``degree`` is odd); each one is redrawn while it repeats an edge already placed or
    an excluded pair. When that fails (dense graphs), a circulant graph on a random labelling is
    randomised by degree-preserving double-edge swaps until no excluded pair is left.
    The reference starts from a random 2-regular graph (networkx) before active learning.
    """
    if degree < 1 or degree >= n_items:
        raise ValueError(f"degree must be in [1, {n_items - 1}], got {degree}")
    if degree % 2 and n_items % 2:
        raise ValueError(f"no {degree}-regular graph on an odd number ({n_items}) of outcomes")
    rng = _rng(seed)
    excl = set() if exclude is None else set(_keys(np.asarray(exclude), n_items).tolist())
    for _ in range(20):  # restart from scratch if a component cannot be placed
        used = set(excl)
        edges = []
        parts = ["cycle"] * (degree // 2) + (["matching"] if degree % 2 else [])
        for part in parts:
            for _t in range(20):
                perm = rng.permutation(n_items)
                e = (
                    np.stack([perm, np.roll(perm, -1)], axis=1)
                    if part == "cycle"
                    else perm.reshape(-1, 2)
                )
                keys = _keys(e, n_items)
                if len(np.unique(keys)) == len(keys) and not used.intersection(keys.tolist()):
                    used.update(keys.tolist())
                    edges.append(canonical_pairs(e))
                    break
            else:
                break
        else:
            e = np.concatenate(edges)
            return e[np.argsort(_keys(e, n_items))]
    # Denser graphs: random cycles rarely avoid each other, so start from a circulant graph on a
    # random labelling and randomise it with degree-preserving double-edge swaps.
    return _switched_regular(n_items, degree, rng, excl, max_tries)


def _switched_regular(n, degree, rng, excl, max_tries) -> np.ndarray:
    perm = rng.permutation(n)
    edges = [(perm[i], perm[(i + k) % n]) for k in range(1, degree // 2 + 1) for i in range(n)]
    if degree % 2:
        edges += [(perm[i], perm[i + n // 2]) for i in range(n // 2)]
    edges = [(min(a, b), max(a, b)) for a, b in edges]
    present = {a * n + b for a, b in edges}
    m = len(edges)

    def bad_count():
        return sum((a * n + b) in excl for a, b in edges)

    attempts, limit = 0, 20 * m + 2000 * max_tries
    swaps_done, want = 0, 10 * m
    while attempts < limit and (swaps_done < want or bad_count()):
        attempts += 1
        i, j = rng.integers(m), rng.integers(m)
        (a, b), (c, d) = edges[i], edges[j]
        if rng.random() < 0.5:
            c, d = d, c
        if len({a, b, c, d}) < 4:
            continue
        e1, e2 = (min(a, d), max(a, d)), (min(c, b), max(c, b))
        k1, k2 = e1[0] * n + e1[1], e2[0] * n + e2[1]
        if k1 in present or k2 in present or k1 in excl or k2 in excl:
            continue
        present -= {edges[i][0] * n + edges[i][1], edges[j][0] * n + edges[j][1]}
        present |= {k1, k2}
        edges[i], edges[j] = e1, e2
        swaps_done += 1
    if bad_count():
        raise RuntimeError(
            f"could not draw a {degree}-regular graph on {n} outcomes avoiding "
            f"{len(excl)} excluded pairs"
        )
    e = np.array(sorted(edges), dtype=np.int64)
    return e


def pair_degrees(n_items: int, pairs) -> np.ndarray:
    """``[n_items]`` number of asked pairs each outcome is in."""
    p = canonical_pairs(pairs)
    return np.bincount(p.ravel(), minlength=n_items)


def candidate_pairs(n_items: int, queried, exclude=None) -> np.ndarray:
    """``[n, 2]`` every pair ``(i < j)`` not yet asked (``queried``) nor held out (``exclude``)."""
    i, j = np.triu_indices(n_items, k=1)
    cand = np.stack([i, j], axis=1)
    taken = []
    for x in (queried, exclude):
        if x is not None and len(x):
            taken.append(_keys(np.asarray(x), n_items))
    if taken:
        cand = cand[~np.isin(i * n_items + j, np.concatenate(taken))]
    return cand


def select_pairs_random(n_items: int, queried, n_new: int, seed, *, exclude=None) -> np.ndarray:
    """``n_new`` pairs drawn uniformly (without replacement) from the unasked, non-held-out pairs,
    in index order (the ``random`` graph strategy)."""
    cand = candidate_pairs(n_items, queried, exclude)
    rng = _rng(seed)
    return cand[np.sort(rng.choice(len(cand), size=min(n_new, len(cand)), replace=False))]


def select_pairs_reference(
    mu,
    queried,
    n_new: int,
    seed,
    *,
    exclude=None,
    p_percent: float = 10.0,
    q_percent: float = 20.0,
    widen: float = 1.5,
) -> np.ndarray:
    """The reference's active-learning rule (SPEC section 2).

    Among pairs neither queried nor excluded, take the intersection of the ``p_percent`` % with
    the smallest ``|mu_a - mu_b|`` and the ``q_percent`` % with the smallest
    ``degree(a) + degree(b)``; widen both percentages by ``widen`` until at least ``n_new`` pairs
    are in it, then draw ``n_new`` uniformly. (The reference ignores variances and is unseeded;
    this one is seeded.)

    Returns:
      ``[min(n_new, n_candidates), 2]`` pairs.
    """
    mu = np.asarray(mu, dtype=np.float64)
    n_items = mu.shape[0]
    cand = candidate_pairs(n_items, queried, exclude)
    if len(cand) == 0 or n_new <= 0:
        return np.zeros((0, 2), dtype=np.int64)
    deg = (
        pair_degrees(n_items, queried)
        if queried is not None and len(queried)
        else np.zeros(n_items)
    )
    diff = np.abs(mu[cand[:, 0]] - mu[cand[:, 1]])
    dsum = deg[cand[:, 0]] + deg[cand[:, 1]]
    p, q = p_percent, q_percent
    while True:
        sel = (diff <= np.percentile(diff, min(p, 100.0))) & (
            dsum <= np.percentile(dsum, min(q, 100.0))
        )
        if sel.sum() >= n_new or (p >= 100.0 and q >= 100.0):
            break
        p, q = p * widen, q * widen
    pool = cand[sel]
    take = min(n_new, len(pool))
    return pool[np.sort(_rng(seed).choice(len(pool), size=take, replace=False))]


def _fisher_probit(z):
    """Fisher information of one probit vote about its margin: phi(z)^2 / (Phi(z) Phi(-z))."""
    from scipy import special, stats

    logphi = stats.norm.logpdf(z)
    return np.exp(2 * logphi - special.log_ndtr(z) - special.log_ndtr(-z))


def select_pairs_variance(
    mu,
    sigma,
    queried,
    n_new: int,
    seed,
    *,
    exclude=None,
    votes_per_pair: float = 20.0,
    n_chunks: int = 10,
) -> np.ndarray:
    """Our variance-aware rule: the pairs expected to shrink the utilities' variances most.

    Each outcome's current precision is approximated by the Fisher information its asked pairs
    carry under the fitted means *and variances*,
    ``I_i = sum_{e ∋ i} n_e f(z_e) / (sigma_a^2 + sigma_b^2)`` with ``f(z) = phi(z)^2 /
    (Phi(z) Phi(-z))``. A candidate pair's value is the information it would add about the
    difference of the two utilities, ``n f(z_ab) / (sigma_a^2 + sigma_b^2)``, times that
    difference's current variance ``1/I_a + 1/I_b``: uncertain pairs (small margin ``z``, large
    ``sigma``) between poorly known outcomes come first. Pairs are chosen greedily in
    ``n_chunks`` chunks, updating the precisions after each, so one batch spreads over outcomes.
    A tiny seeded jitter breaks ties. (The reference's rule ignores the variances.)
    """
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    n_items = mu.shape[0]
    cand = candidate_pairs(n_items, queried, exclude)
    if len(cand) == 0 or n_new <= 0:
        return np.zeros((0, 2), dtype=np.int64)

    def info(a, b):
        s2 = sigma[a] ** 2 + sigma[b] ** 2
        return votes_per_pair * _fisher_probit((mu[a] - mu[b]) / np.sqrt(s2)) / s2

    prec = np.full(n_items, 1e-3)  # a weak floor so unasked outcomes have finite variance
    if queried is not None and len(queried):
        q = canonical_pairs(queried)
        np.add.at(prec, q[:, 0], info(q[:, 0], q[:, 1]))
        np.add.at(prec, q[:, 1], info(q[:, 0], q[:, 1]))
    a, b = cand[:, 0], cand[:, 1]
    gain_c = info(a, b)
    jitter = 1e-9 * _rng(seed).random(len(cand))
    take = min(n_new, len(cand))
    chosen = np.zeros(len(cand), bool)
    per_chunk = max(1, int(np.ceil(take / n_chunks)))
    while chosen.sum() < take:
        score = gain_c * (1 / prec[a] + 1 / prec[b]) + jitter
        score[chosen] = -np.inf
        k = min(per_chunk, take - int(chosen.sum()))
        idx = np.argpartition(-score, k - 1)[:k]
        chosen[idx] = True
        np.add.at(prec, a[idx], gain_c[idx])
        np.add.at(prec, b[idx], gain_c[idx])
    return cand[np.flatnonzero(chosen)]


def pseudolabels(p_first, pairs, threshold: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Hard labels where a fit is confident (the reference's final-fit pseudolabels).

    ``p_first``: ``[n]`` the fit's predicted probability that ``pairs[:, 0]`` is preferred, on
    the candidate pairs (the reference uses every unasked, non-held-out pair). Returns the pairs
    with ``p >= threshold`` or ``p <= 1 - threshold`` and their labels (1.0: the first outcome
    wins, 0.0: the second), as the reference's ``generate_pseudolabels``.
    """
    if not 0.5 < threshold <= 1.0:
        raise ValueError(f"pseudolabel threshold must be in (0.5, 1], got {threshold}")
    p = np.asarray(p_first, dtype=np.float64)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    keep = (p >= threshold) | (p <= 1.0 - threshold)
    return pairs[keep], (p[keep] >= threshold).astype(np.float64)


def with_pseudolabels(data, pairs, labels, weight: float = 1.0):
    """``data`` plus one row per pseudolabel, each weighing ``weight`` times an average asked
    pair (``weight * mean(n_total)`` votes, all for the labelled winner): with ``weight=1`` a
    pseudolabel counts as much as an asked pair, as in the reference's per-edge loss."""
    if weight <= 0:
        raise ValueError(f"pseudolabel weight must be positive, got {weight}")
    v = data.valid()
    if len(pairs) == 0:
        return data
    w = weight * float(np.mean(v["n_total"]))
    extra = PairwiseData.from_counts(
        data.n_items, pairs[:, 0], pairs[:, 1], w * np.asarray(labels), np.full(len(pairs), w)
    )
    return data.concat(extra)
