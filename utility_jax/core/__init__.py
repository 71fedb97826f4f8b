"""The pure core: arrays in, arrays out, no I/O, keys passed in.

Pairwise data (:mod:`~utility_jax.core.data`), the utility models and their likelihood, the
fitter with its second-order check, Laplace and bootstrap intervals, the NumPyro posterior, the
coherence metrics, pair selection, triads and simulation. Nothing here imports from
:mod:`utility_jax.io` or any room above it; ``tests/package/test_architecture.py`` checks it.
"""
