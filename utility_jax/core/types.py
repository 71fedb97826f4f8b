"""Named array shapes used across the core (jaxtyping aliases).

They document the fields of :class:`~utility_jax.core.data.PairwiseData`; nothing checks them at
run time. ``tests/test_api_checks.py`` checks that real data matches them (``isinstance``).
"""

from jaxtyping import Array, Bool, Float, Int

Utilities = Float[Array, "n_items"]
LogVariances = Float[Array, "n_items"]
PairIdx = Int[Array, "n_pairs"]
VoteCounts = Float[Array, "n_pairs"]
PairMask = Bool[Array, "n_pairs"]
Probabilities = Float[Array, "n_pairs"]

__all__ = ["LogVariances", "PairIdx", "PairMask", "Probabilities", "Utilities", "VoteCounts"]
