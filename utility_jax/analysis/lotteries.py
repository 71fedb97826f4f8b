r"""Expected utility with explicit and implicit lotteries (SPEC section 5).

A lottery is a list of base outcomes with whole-percent probabilities summing to 100, shown to the
model as ``- {outcome} with probability {p}%`` lines and fitted together with the base outcomes.
An expected-utility maximiser has :math:`U(L) = \sum_k p_k U(o_k)`; the metrics measure how close
the fitted utilities come.
"""

import dataclasses

import numpy as np
from scipy import stats

__all__ = [
    "Lottery",
    "make_lotteries",
    "lottery_text",
    "expected_utility_metrics",
    "implicit_lottery_metrics",
]


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
    """The outcome text of a lottery: one ``- {outcome} with probability {p}%`` line per branch."""
    return "\n".join(
        f"- {texts[i]} with probability {p}%"
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
