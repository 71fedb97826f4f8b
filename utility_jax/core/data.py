"""Pairwise preference data as a JAX pytree.

A :class:`PairwiseData` holds one row per *unordered* pair of outcomes that was asked
(both presentation orders are pooled into the row): the two outcome indices, the votes
for the first outcome, the total votes, and a mask. Rows are padded to a bucketed
length so that one compiled fitter serves many runs of slightly different sizes.

Votes may be fractional: under the paper's rule an unparseable answer (a refusal)
counts as half a vote to each side.
"""

import dataclasses
import math
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from utility_jax.core.types import PairIdx, PairMask, VoteCounts

__all__ = ["PairwiseData", "bucket_length", "Label", "REFUSAL_RULES", "pool_orders"]

#: Answer labels a response record may carry.
Label = str  # "A", "B", "refusal" (transport errors are never votes: drop them before)

_MIN_BUCKET = 64

#: How refusals (unparseable answers) count: ``"half"`` gives each side half a vote (the
#: paper's rule), ``"drop"`` ignores them. The one place this rule is written.
REFUSAL_RULES = ("half", "drop")


def _int_index(x, name: str) -> np.ndarray:
    """``x`` as int64 indices; a float that is not a whole number is an error (never truncated)."""
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(arr.reshape(-1)) | (arr.reshape(-1) % 1 != 0))
        if bad.size:
            r = int(bad[0])
            raise ValueError(
                f"{name} row {r}: {float(arr.reshape(-1)[r])!r} is not an integer index"
            )
    elif arr.size and arr.dtype.kind not in "iub":
        raise ValueError(f"{name}: indices must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64).reshape(-1)


def pool_orders(counts, *, refusal: str = "half") -> tuple[np.ndarray, np.ndarray]:
    """Votes for the first outcome and total votes from ``[n, 2, 3]`` order counts.

    Order 0 shows the first outcome as A, order 1 shows it as B; the last axis counts answers
    A, B and refusals. ``refusal`` is one of :data:`REFUSAL_RULES`.
    """
    if refusal not in REFUSAL_RULES:
        raise ValueError(f"refusal must be 'half' or 'drop', got {refusal!r}")
    c = np.asarray(counts, dtype=np.float64)
    wins = c[:, 0, 0] + c[:, 1, 1]
    total = c[:, :, 0].sum(1) + c[:, :, 1].sum(1)
    if refusal == "half":
        refusals = c[:, :, 2].sum(1)
        wins, total = wins + 0.5 * refusals, total + refusals
    return wins, total


def bucket_length(n: int, min_bucket: int = _MIN_BUCKET) -> int:
    """Padded length for ``n`` rows: the next of ``min_bucket * 2**k`` (k >= 0).

    Powers of two waste at most half the rows and keep the number of distinct
    compiled shapes logarithmic in the largest run.
    """
    if n <= min_bucket:
        return min_bucket
    return int(min_bucket * 2 ** math.ceil(math.log2(n / min_bucket)))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PairwiseData:
    """Vote counts on pairs of outcomes, padded and masked.

    Attributes:
      idx_a: ``[n_rows]`` int32 index of the first outcome of each pair.
      idx_b: ``[n_rows]`` int32 index of the second outcome.
      n_a: ``[n_rows]`` float votes for ``idx_a`` (half-votes allowed).
      n_total: ``[n_rows]`` float total votes on the pair (both orders together).
      mask: ``[n_rows]`` bool, False on padding rows.
      n_items: number of outcomes (static: part of the tree structure, not a leaf).
      position: ``[n_rows]`` float, 1 where the row holds one presentation order with ``idx_a``
        shown first, 0 for a pooled row; None when every row is pooled (:meth:`from_counts`).
        A fit with ``position_bias=True`` adds its order shift on these rows.

    Batched data (for ``vmap``) carries extra leading axes on every leaf.
    """

    idx_a: PairIdx
    idx_b: PairIdx
    n_a: VoteCounts
    n_total: VoteCounts
    mask: PairMask
    n_items: int = dataclasses.field(metadata=dict(static=True))
    # [n_rows] +1.0 where the row is one presentation order with idx_a shown first ("A"), 0.0
    # for pooled rows; None: every row pooled (see from_presentations)
    position: VoteCounts | None = None

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_counts(
        cls,
        n_items: int,
        idx_a: Sequence[int] | np.ndarray,
        idx_b: Sequence[int] | np.ndarray,
        votes_a: Sequence[float] | np.ndarray,
        votes_total: Sequence[float] | np.ndarray,
        *,
        pad_to: int | None = None,
        dtype=None,
    ) -> "PairwiseData":
        """Build from per-pair counts, validating every row.

        Args:
          n_items: number of outcomes; indices must lie in ``[0, n_items)``.
          idx_a, idx_b: ``[n_pairs]`` outcome indices, ``idx_a != idx_b``.
          votes_a: ``[n_pairs]`` votes for ``idx_a`` (may be fractional).
          votes_total: ``[n_pairs]`` total votes, ``0 < votes_total`` and
            ``0 <= votes_a <= votes_total``.
          pad_to: padded length; defaults to :func:`bucket_length`.
          dtype: float dtype of the vote arrays (default: JAX's default float).

        Raises:
          ValueError: naming the first offending row.
        """
        n_items = int(n_items)
        if n_items < 1:
            raise ValueError(f"n_items must be >= 1, got {n_items}")
        a, b = _int_index(idx_a, "idx_a"), _int_index(idx_b, "idx_b")
        na = np.asarray(votes_a, dtype=np.float64).reshape(-1)
        nt = np.asarray(votes_total, dtype=np.float64).reshape(-1)
        n = a.shape[0]
        for name, arr in (("idx_b", b), ("votes_a", na), ("votes_total", nt)):
            if arr.shape[0] != n:
                raise ValueError(f"{name} has {arr.shape[0]} rows but idx_a has {n}")

        def _bad(cond, what):
            rows = np.flatnonzero(cond)
            if rows.size:
                r = int(rows[0])
                raise ValueError(
                    f"row {r} (idx_a={a[r]}, idx_b={b[r]}, votes_a={na[r]}, "
                    f"votes_total={nt[r]}): {what} ({rows.size} bad rows in all)"
                )

        _bad((a < 0) | (a >= n_items) | (b < 0) | (b >= n_items), f"index outside [0, {n_items})")
        _bad(a == b, "an outcome compared with itself")
        _bad(~np.isfinite(na) | ~np.isfinite(nt), "non-finite vote count")
        _bad(nt <= 0, "total votes must be positive")
        _bad((na < 0) | (na > nt), "votes_a must lie in [0, votes_total]")

        length = bucket_length(n) if pad_to is None else int(pad_to)
        if length < n:
            raise ValueError(f"pad_to={length} is shorter than the {n} pairs")
        pad = length - n
        fdtype = dtype or jnp.zeros(()).dtype
        return cls(
            idx_a=jnp.asarray(np.pad(a, (0, pad)), dtype=jnp.int32),
            idx_b=jnp.asarray(np.pad(b, (0, pad), constant_values=min(1, n_items - 1)), jnp.int32),
            n_a=jnp.asarray(np.pad(na, (0, pad)), dtype=fdtype),
            n_total=jnp.asarray(np.pad(nt, (0, pad), constant_values=1.0), dtype=fdtype),
            mask=jnp.asarray(np.arange(length) < n),
            n_items=n_items,
        )

    @classmethod
    def from_presentations(
        cls,
        n_items: int,
        idx_first,
        idx_second,
        votes_first,
        votes_total,
        *,
        pad_to: int | None = None,
        dtype=None,
    ) -> "PairwiseData":
        """One row per presentation order: ``idx_first`` was shown as "A", ``idx_second`` as
        "B", ``votes_first`` of ``votes_total`` chose "A". A pair asked in both orders gives two
        rows (first/second swapped); the rows keep the order (``position`` = 1), so a fit with
        ``position_bias=True`` can separate the utilities from the pull of the first slot."""
        d = cls.from_counts(
            n_items, idx_first, idx_second, votes_first, votes_total, pad_to=pad_to, dtype=dtype
        )
        return dataclasses.replace(d, position=d.mask.astype(d.n_a.dtype))

    @classmethod
    def from_order_counts(
        cls, n_items: int, pairs, counts, *, refusal: str = "half", pad_to: int | None = None
    ) -> "PairwiseData":
        """Presentation rows from ``[n, 2, 3]`` order counts (order 0 shows ``pairs[:, 0]`` as
        "A"; answers A, B, refusal), refusals by ``refusal``; orders without votes are left out."""
        c = np.asarray(counts, dtype=np.float64)
        p = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        half = 0.5 if refusal == "half" else 0.0
        if refusal not in REFUSAL_RULES:
            raise ValueError(f"refusal must be 'half' or 'drop', got {refusal!r}")
        first = np.concatenate([p[:, 0], p[:, 1]])
        second = np.concatenate([p[:, 1], p[:, 0]])
        va = np.concatenate([c[:, 0, 0], c[:, 1, 0]]) + half * np.concatenate(
            [c[:, 0, 2], c[:, 1, 2]]
        )
        tot = np.concatenate([c[:, 0, :2].sum(1), c[:, 1, :2].sum(1)]) + 2 * half * np.concatenate(
            [c[:, 0, 2], c[:, 1, 2]]
        )
        keep = tot > 0
        return cls.from_presentations(
            n_items, first[keep], second[keep], va[keep], tot[keep], pad_to=pad_to
        )

    @classmethod
    def from_records(
        cls,
        n_items: int,
        records: Iterable[tuple[int, int, Label]],
        *,
        refusal: str = "half",
        pad_to: int | None = None,
    ) -> "PairwiseData":
        """Pool per-response records into per-pair counts.

        Each record is ``(shown_as_A, shown_as_B, label)`` with label ``"A"``, ``"B"`` or
        ``"refusal"``. Both presentation orders of a pair are pooled into one row keyed by
        the unordered pair (smaller index first).

        Args:
          refusal: ``"half"`` counts a refusal as half a vote to each side (the paper's
            rule); ``"drop"`` ignores it.
        """
        if refusal not in REFUSAL_RULES:
            raise ValueError(f"refusal must be 'half' or 'drop', got {refusal!r}")
        # [pair, order, answer] counts keyed by the unordered pair; order 0 shows the smaller
        # index as "A". The refusal rule is applied once, by pool_orders.
        counts: dict[tuple[int, int], np.ndarray] = {}
        for k, (i, j, label) in enumerate(records):
            i, j = int(i), int(j)
            if label not in ("A", "B", "refusal"):
                raise ValueError(f"record {k} ({i}, {j}): unknown label {label!r}")
            lo, hi = (i, j) if i < j else (j, i)
            c = counts.setdefault((lo, hi), np.zeros((2, 3)))
            c[0 if i == lo else 1, ("A", "B", "refusal").index(label)] += 1
        keys = sorted(counts)
        wins, total = pool_orders(
            np.stack([counts[k] for k in keys]) if keys else np.zeros((0, 2, 3)), refusal=refusal
        )
        keep = total > 0
        if not keep.any():
            raise ValueError("no usable records: every record was dropped or none was given")
        pairs = np.array(keys)[keep]
        return cls.from_counts(
            n_items, pairs[:, 0], pairs[:, 1], wins[keep], total[keep], pad_to=pad_to
        )

    # ------------------------------------------------------------------ views
    @property
    def n_rows(self) -> int:
        """Padded length (last axis)."""
        return int(self.idx_a.shape[-1])

    @property
    def n_pairs(self) -> int:
        """Number of real (unmasked) pairs; only for unbatched data."""
        return int(np.asarray(self.mask).sum())

    def valid(self) -> dict[str, np.ndarray]:
        """The unpadded rows as NumPy arrays (unbatched data only)."""
        m = np.asarray(self.mask)
        out = {
            "idx_a": np.asarray(self.idx_a)[m],
            "idx_b": np.asarray(self.idx_b)[m],
            "n_a": np.asarray(self.n_a)[m],
            "n_total": np.asarray(self.n_total)[m],
        }
        if self.position is not None:
            out["position"] = np.asarray(self.position)[m]
        return out

    def empirical_proba(self) -> jax.Array:
        """``[n_rows]`` empirical P(idx_a > idx_b) = n_a / n_total."""
        return self.n_a / self.n_total

    def with_votes(self, n_a: VoteCounts, n_total: VoteCounts | None = None) -> "PairwiseData":
        """Same pairs, new vote counts (used by the bootstrap and the random responder)."""
        return dataclasses.replace(
            self, n_a=n_a, n_total=self.n_total if n_total is None else n_total
        )

    def concat(self, other: "PairwiseData", *, pad_to: int | None = None) -> "PairwiseData":
        """Rows of both datasets (unbatched), re-padded."""
        if other.n_items != self.n_items:
            raise ValueError(f"n_items differ: {self.n_items} vs {other.n_items}")
        x, y = self.valid(), other.valid()
        out = PairwiseData.from_counts(
            self.n_items,
            np.concatenate([x["idx_a"], y["idx_a"]]),
            np.concatenate([x["idx_b"], y["idx_b"]]),
            np.concatenate([x["n_a"], y["n_a"]]),
            np.concatenate([x["n_total"], y["n_total"]]),
            pad_to=pad_to,
        )
        if self.position is None and other.position is None:
            return out
        pos = np.concatenate([d.get("position", np.zeros(len(d["idx_a"]))) for d in (x, y)])
        pad = np.zeros(out.n_rows)
        pad[: len(pos)] = pos
        return dataclasses.replace(out, position=jnp.asarray(pad, out.n_a.dtype))


def stack(datasets: Sequence[PairwiseData]) -> PairwiseData:
    """Stack equally padded datasets along a new leading axis (for ``vmap``)."""
    if not datasets:
        raise ValueError("stack() needs at least one dataset")
    return jax.tree.map(lambda *xs: jnp.stack(xs), *datasets)
