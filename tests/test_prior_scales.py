"""Prior scales chosen by cross-validation (utility_jax.core.prior_scales)."""

import jax
import numpy as np
import pytest
from scipy import stats

import utility_jax as uj
from utility_jax.core.prior_scales import select_prior_scales


def test_cross_validation_picks_the_grid_minimum_and_helps_a_sparse_design():
    n, seed = 60, 3
    r = np.random.default_rng(seed)
    mu, sig = 1.5 * r.normal(size=n), r.uniform(0.3, 1.0, n)
    d = uj.simulate_pairwise(
        jax.random.key(seed), mu, sig, uj.random_regular_pairs(n, 4, seed), k=5
    )
    chosen, info = select_prior_scales(
        d, uj.FitConfig(), jax.random.key(0), n_folds=3, mu_grid=(1.0, 10.0), logvar_grid=(0.5, 2.0)
    )
    losses = [row["heldout_log_loss"] for row in info["table"]]
    assert len(losses) == 4 and info["chosen"]["heldout_log_loss"] == min(losses)
    assert (chosen.mu_prior_scale, chosen.logvar_prior_scale) == (
        info["chosen"]["mu_prior_scale"],
        info["chosen"]["logvar_prior_scale"],
    )
    # on fresh pairs (expected log loss against the true probabilities) the chosen scales do
    # no worse than the weak defaults, which overfit 4 pairs per outcome
    a = r.integers(0, n, 3000)
    b = (a + r.integers(1, n, 3000)) % n
    p = stats.norm.cdf((mu[a] - mu[b]) / np.sqrt(sig[a] ** 2 + sig[b] ** 2))

    def loss(cfg):
        q = np.asarray(uj.predict_proba(uj.fit_thurstonian(d, cfg=cfg), a, b), np.float64)
        q = np.clip(q, 1e-9, 1 - 1e-9)
        return float(np.mean(-(p * np.log(q) + (1 - p) * np.log1p(-q))))

    assert loss(chosen) <= loss(uj.FitConfig()) + 0.002


def test_too_few_pairs_for_the_folds_is_a_clear_error():
    d = uj.PairwiseData.from_counts(3, [0, 1], [1, 2], [3, 4], [5, 5])
    with pytest.raises(ValueError, match="at least 10 pairs"):
        select_prior_scales(d, uj.FitConfig(), jax.random.key(0))
