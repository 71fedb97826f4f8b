"""Utility control (SPEC section 6, the paper's Appendix H): steer a model's utilities toward a
citizen assembly's by supervised fine-tuning, and measure the change.

* :mod:`~utility_jax.control.config`: the run's schemas (Hydra groups ``model``, ``assembly``,
  ``sft``, ``fitter``);
* :mod:`~utility_jax.control.assembly`: citizens, personas, simulated and LLM assemblies, pooling;
* :mod:`~utility_jax.control.measure`: elicit, refit and score a model against the target;
* :mod:`~utility_jax.control.run`: the run (:func:`run_utility_control`);
* :mod:`~utility_jax.control.report`: the run folder.
"""

from utility_jax.control.assembly import citizen_preferences_llm, party_axis
from utility_jax.control.config import ControlConf, validate_control
from utility_jax.control.run import run_utility_control

__all__ = [
    "ControlConf",
    "citizen_preferences_llm",
    "party_axis",
    "run_utility_control",
    "validate_control",
]
