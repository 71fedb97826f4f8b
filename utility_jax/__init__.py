"""utility_jax: measure and steer the emergent utility functions of LLMs.

The top-level namespace re-exports the pure JAX core only; ``import utility_jax`` never imports
torch or transformers.

The package is laid out by layer, each folder importing only from those below it: ``core/``
(pure JAX), ``io/`` (files), ``finetune/`` (the NNX model), ``elicit/`` (agents and backends),
``run/`` (config to run folder), then ``analysis/`` and ``control/``, and the command line
(``cli.py``) at the top.
"""

from utility_jax import _compat
from utility_jax.core.bootstrap import bootstrap_pairwise, fit_bootstrap
from utility_jax.core.data import PairwiseData, bucket_length, stack
from utility_jax.core.fit import fit_thurstonian, fit_thurstonian_batch
from utility_jax.core.graph import (
    random_regular_pairs,
    sample_holdout_pairs,
    select_pairs_reference,
    select_pairs_variance,
)
from utility_jax.core.laplace import laplace_stderr
from utility_jax.core.likelihood import log_likelihood_pairwise, predict_log_proba, predict_proba
from utility_jax.core.metrics import (
    average_confidence,
    brier_score,
    calibration_error,
    cycle_probability,
    evaluate_pairwise,
    heldout_accuracy,
    log_loss_per_vote,
    random_responder_confidence,
    sample_triads,
    transitivity,
)
from utility_jax.core.model import FitConfig, ThurstonianFit, normalize_utilities
from utility_jax.core.simulate import planted_utilities, simulate_pairwise, simulate_votes

_compat.install()  # old import paths, with a DeprecationWarning, for one release

__version__ = "0.1.0"

__all__ = [
    "FitConfig",
    "PairwiseData",
    "ThurstonianFit",
    "average_confidence",
    "bootstrap_pairwise",
    "brier_score",
    "bucket_length",
    "calibration_error",
    "cycle_probability",
    "evaluate_pairwise",
    "fit_bootstrap",
    "fit_thurstonian",
    "fit_thurstonian_batch",
    "heldout_accuracy",
    "laplace_stderr",
    "log_likelihood_pairwise",
    "log_loss_per_vote",
    "normalize_utilities",
    "planted_utilities",
    "predict_log_proba",
    "predict_proba",
    "random_regular_pairs",
    "random_responder_confidence",
    "sample_holdout_pairs",
    "sample_triads",
    "select_pairs_reference",
    "select_pairs_variance",
    "simulate_pairwise",
    "simulate_votes",
    "stack",
    "transitivity",
]
