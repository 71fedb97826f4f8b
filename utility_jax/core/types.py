"""Named array shapes used across the core (jaxtyping aliases, checked only in tests)."""

from jaxtyping import Array, Bool, Float, Int

Utilities = Float[Array, "n_items"]
LogVariances = Float[Array, "n_items"]
PairIdx = Int[Array, "n_pairs"]
VoteCounts = Float[Array, "n_pairs"]
PairMask = Bool[Array, "n_pairs"]
Probabilities = Float[Array, "n_pairs"]

__all__ = ["LogVariances", "PairIdx", "PairMask", "Probabilities", "Utilities", "VoteCounts"]
