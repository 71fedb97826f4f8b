"""The run shell: from a config to a run folder.

Typed Hydra schemas (:mod:`~utility_jax.run.config`), the agent factory
(:mod:`~utility_jax.run.agents`), the elicitation loop (:mod:`~utility_jax.run.pipeline`), its
metrics, intervals, costs and incidents, the run folder (:mod:`~utility_jax.run.report`,
:mod:`~utility_jax.run.runner`) and the tools that read run folders back
(:mod:`~utility_jax.run.collect`, :mod:`~utility_jax.run.compare`,
:mod:`~utility_jax.run.tracking`).
"""
