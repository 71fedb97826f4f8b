"""The paper's analyses (SPEC section 5), one module each.

Each module has a pure core over arrays (utilities, their draws, choice probabilities) with no
I/O, then its experiment shell: ``Config``, ``BOUNDS``, ``run(cfg, ctx)``, ``plot(numbers)`` and
``summary(numbers)``. :mod:`~utility_jax.analysis.registry` finds the analyses and runs one;
:mod:`~utility_jax.analysis.harness` is the shell they run in; :mod:`~utility_jax.analysis.draws`
turns utility draws into intervals.
"""
