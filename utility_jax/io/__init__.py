"""Files in and out, below every shell: outcome sets (:mod:`~utility_jax.io.outcomes`), the
paper's data and its importers (:mod:`~utility_jax.io.datasets`), prompt templates and the one
chat renderer (:mod:`~utility_jax.io.prompts`) and the lookup of shipped files
(:mod:`~utility_jax.io.assets`). It imports only from :mod:`utility_jax.core`.
"""
