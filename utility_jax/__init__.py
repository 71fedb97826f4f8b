"""utility_jax: measure and steer the emergent utility functions of LLMs.

The top-level namespace re-exports the pure JAX core only; ``import utility_jax`` never imports
torch or transformers.
"""

from utility_jax.data import PairwiseData, bucket_length, stack
from utility_jax.graph import (
    random_regular_pairs,
    sample_holdout_pairs,
    select_pairs_reference,
    select_pairs_variance,
)
from utility_jax.metrics import (
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
from utility_jax.simulate import planted_utilities, simulate_pairwise, simulate_votes
from utility_jax.thurstonian import (
    FitConfig,
    ThurstonianFit,
    bootstrap_pairwise,
    fit_bootstrap,
    fit_thurstonian,
    fit_thurstonian_batch,
    laplace_stderr,
    log_likelihood_pairwise,
    normalize_utilities,
    predict_log_proba,
    predict_proba,
)

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
