"""The simulated agent, reference-results import, vote-level bootstrap and Laplace errors."""

import jax
import numpy as np
import pytest
from conftest import LLAMA2_RESULTS, OPTIONS_HIERARCHICAL, synthetic_problem
from scipy import stats

import utility_jax as uj
from utility_jax.elicit import SimulatedAgent, reference_utilities
from utility_jax.io.outcomes import OutcomeSet, OutcomeSetError, load_outcomes


def test_simulated_frequencies_match_probabilities_in_both_orders():
    mu, sigma = np.array([0.0, 0.5]), np.array([1.0, 0.5])
    agent = SimulatedAgent(mu, sigma, position_bias=0.3, refusal_rate=0.1)
    c = agent.query(np.tile([[0, 1]], (4000, 1)), 10, key=jax.random.key(0)).sum(0)
    assert c.sum() == 80000
    s = np.sqrt(1.25)
    p_a_first = stats.norm.cdf((0 - 0.5 + 0.3) / s)  # outcome 0 shown as A
    p_b_first = stats.norm.cdf((0.5 - 0 + 0.3) / s)  # outcome 1 shown as A
    answered = c[:, :2].sum(1)
    np.testing.assert_allclose(c[:, 0] / answered, [p_a_first, p_b_first], atol=0.01)
    assert c[:, 2].sum() / c.sum() == pytest.approx(0.1, abs=0.005)
    assert agent.stats.answers == 80000


def test_simulate_pairwise_half_votes():
    d = uj.simulate_pairwise(
        jax.random.key(0), np.zeros(3), np.ones(3), [[0, 1], [1, 2]], k=5, refusal_rate=1.0
    )
    v = d.valid()
    np.testing.assert_allclose(v["n_a"], [5, 5])
    np.testing.assert_allclose(v["n_total"], [10, 10])


def test_reference_results_match_outcomes_by_text():
    o = load_outcomes(OPTIONS_HIERARCHICAL)
    mu, sigma = reference_utilities(LLAMA2_RESULTS, o)
    assert mu.shape == (510,) and np.all(sigma > 0)
    assert abs(mu.mean()) < 1e-3 and mu.std() == pytest.approx(1.0, abs=0.01)
    assert sigma.max() ** 2 == pytest.approx(596.7, abs=0.1)  # the blown-up variance SPEC mentions
    sub = o.subset([5, 3])
    mu2, _ = reference_utilities(LLAMA2_RESULTS, sub)
    np.testing.assert_allclose(mu2, mu[[5, 3]])
    with pytest.raises(OutcomeSetError, match="has no utility for outcome 0"):
        reference_utilities(LLAMA2_RESULTS, OutcomeSet.from_texts(["not an outcome of the paper"]))


def test_bootstrap_resamples_votes_not_rows():
    d = uj.PairwiseData.from_counts(3, [0, 1], [1, 2], [15, 2], [20, 20])
    b = uj.bootstrap_pairwise(jax.random.key(0), d, 4000)
    assert b.n_a.shape == (4000, d.n_rows)
    np.testing.assert_array_equal(np.asarray(b.idx_a[0]), np.asarray(d.idx_a))
    assert np.all(np.asarray(b.n_total)[:, :2] == 20)
    m = np.asarray(b.n_a)[:, :2]
    np.testing.assert_allclose(m.mean(0), [15, 2], atol=0.1)
    np.testing.assert_allclose(m.var(0), [20 * 0.75 * 0.25, 20 * 0.1 * 0.9], rtol=0.1)
    assert np.all(np.asarray(b.n_a)[:, 2:] == 0)


def test_laplace_matches_bootstrap_and_fisher_information(x64):
    # two outcomes, logit: se(mu0 - mu1) = 1 / sqrt(n p (1-p)) exactly; each mu is half the difference
    d = uj.PairwiseData.from_counts(2, [0], [1], [15], [20])
    fit = uj.fit_thurstonian(d, model="logit", mu_prior_scale=None)
    se = uj.laplace_stderr(fit, d, model="logit", mu_prior_scale=None)
    want = 0.5 / np.sqrt(20 * 0.75 * 0.25)
    np.testing.assert_allclose(np.asarray(se["mu"]), [want, want], rtol=1e-6)


def test_laplace_and_bootstrap_agree_on_simulated_data():
    mu, sig, a, b, na, nt = synthetic_problem(40, seed=11)
    d = uj.PairwiseData.from_counts(40, a, b, na, nt)
    fit = uj.fit_thurstonian(d)
    se = np.asarray(uj.laplace_stderr(fit, d)["mu"])
    boots = uj.fit_bootstrap(jax.random.key(0), d, 200, init=fit)
    assert np.mean(np.asarray(boots.converged)) > 0.95
    sd = np.asarray(boots.mu).std(0)
    ratio = np.median(se / sd)
    assert 0.8 < ratio < 1.25, ratio


def test_bootstrap_intervals_cover_truth():
    """Over 4 independent datasets x 60 outcomes, 90% vote-bootstrap intervals (on the model's
    own scale, with the scale fixed by case V) cover the true means 80-97% of the time."""
    covered = []
    for s in range(4):
        mu, sig, a, b, na, nt = synthetic_problem(60, seed=20 + s, sigma=(1.0, 1.0))
        d = uj.PairwiseData.from_counts(60, a, b, na, nt)
        fit = uj.fit_thurstonian(d, model="case5", mu_prior_scale=None)
        boots = np.asarray(
            uj.fit_bootstrap(
                jax.random.key(s), d, 200, model="case5", mu_prior_scale=None, init=fit
            ).mu
        )
        lo, hi = np.quantile(boots, [0.05, 0.95], axis=0)
        t = mu - mu.mean()
        covered.append((lo <= t) & (t <= hi))
    rate = np.mean(covered)
    assert 0.80 <= rate <= 0.97, rate


def test_fit_bootstrap_batch_equals_individual_fits(x64):
    mu, sig, a, b, na, nt = synthetic_problem(20, seed=12, edges=120)
    d = uj.PairwiseData.from_counts(20, a, b, na, nt)
    key = jax.random.key(3)
    boots = uj.fit_bootstrap(key, d, 3, gtol=1e-10)
    data = uj.bootstrap_pairwise(key, d, 3)
    for i in range(3):
        one = uj.fit_thurstonian(jax.tree.map(lambda x, i=i: x[i], data), gtol=1e-10)
        # float64 and a tight gtol: both reach the same optimum (one outcome is nearly separated,
        # so its mean sits in a flat valley where a looser gtol leaves ~1e-3 of slack)
        np.testing.assert_allclose(np.asarray(boots.mu[i]), np.asarray(one.mu), atol=1e-5)
    assert np.all(np.asarray(boots.grad_norm) < 1e-7)
