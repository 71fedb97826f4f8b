"""Metrics against hand-computed answers and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from tolerances import EXACT

import utility_jax as uj


def test_accuracy_tie_rule():
    pm = jnp.array([0.7, 0.5, 0.2, 0.5])
    pe = jnp.array([0.6, 0.5, 0.5, 0.4])
    # 0.5 counts as "A" on both sides: agree, agree, disagree, disagree
    assert float(uj.heldout_accuracy(pm, pe)) == pytest.approx(0.5)
    assert float(uj.heldout_accuracy(pm, pe, jnp.array([True, True, False, False]))) == 1.0


def test_log_loss_per_vote_known_value():
    p = jnp.array([0.8, 0.5])
    got = uj.log_loss_per_vote(
        jnp.log(p), jnp.log1p(-p), jnp.array([3.0, 1.0]), jnp.array([4.0, 2.0])
    )
    want = -(3 * np.log(0.8) + np.log(0.2) + np.log(0.5) * 2) / 6
    assert float(got) == pytest.approx(want, rel=1e-6)


def test_brier_and_calibration():
    assert float(uj.brier_score(jnp.array([0.9, 0.1]), jnp.array([1.0, 0.3]))) == pytest.approx(
        (0.01 + 0.04) / 2
    )
    # perfectly calibrated bins -> 0; a constant 0.9 prediction on 50/50 data -> 0.4
    assert float(
        uj.calibration_error(jnp.array([0.25, 0.75]), jnp.array([1.0, 3.0]), jnp.array([4.0, 4.0]))
    ) == pytest.approx(0.0, abs=1e-6)
    assert float(
        uj.calibration_error(jnp.array([0.9, 0.9]), jnp.array([1.0, 1.0]), jnp.array([2.0, 2.0]))
    ) == pytest.approx(0.4, abs=1e-6)


def test_random_responder_confidence_closed_form():
    assert uj.random_responder_confidence(20) == pytest.approx(0.5881, abs=1e-4)  # paper: 58.7%
    # brute force over all 2^4 answer patterns for 4 votes
    pats = np.array(np.meshgrid(*[[0, 1]] * 4)).reshape(4, -1).sum(0)
    assert uj.random_responder_confidence(4) == pytest.approx(
        np.mean(np.maximum(pats, 4 - pats) / 4), abs=EXACT
    )


def test_random_responder_confidence_monte_carlo():
    d = uj.simulate_pairwise(
        jax.random.key(0), np.zeros(50), np.ones(50), np.stack(np.triu_indices(50, 1), 1), k=10
    )
    got = float(uj.average_confidence(d.empirical_proba(), d.mask))
    assert got == pytest.approx(uj.random_responder_confidence(20), abs=0.01)


def test_cycle_probability_and_transitivity():
    assert float(uj.cycle_probability(0.5, 0.5, 0.5)) == pytest.approx(0.25)
    assert float(uj.cycle_probability(1.0, 1.0, 0.0)) == 0.0
    # a strict 3-cycle: 0>1, 1>2, 2>0
    d = uj.PairwiseData.from_counts(3, [0, 1, 0], [1, 2, 2], [18, 18, 2], [20, 20, 20])
    t = uj.transitivity(d, np.array([[0, 1, 2]]))
    want = 0.9 * 0.9 * 0.9 + 0.1**3
    assert t["log10_p_cycle"] == pytest.approx(np.log10(want))
    assert t["hard_cycle_rate"] == 1.0
    d2 = uj.PairwiseData.from_counts(3, [0, 1, 0], [1, 2, 2], [18, 18, 18], [20, 20, 20])
    assert uj.transitivity(d2, np.array([[0, 1, 2]]))["hard_cycle_rate"] == 0.0


def test_sample_triads_finds_exactly_the_triangles():
    pairs = np.array([[0, 1], [1, 2], [0, 2], [2, 3], [3, 4], [2, 4], [4, 5]])
    tri = uj.sample_triads(pairs, 100, 0)
    assert {tuple(t) for t in tri.tolist()} == {(0, 1, 2), (2, 3, 4)}
    assert len(uj.sample_triads(pairs, 1, 0)) == 1
    # on a random graph, compare with brute force
    r = np.random.default_rng(0)
    n = 25
    i, j = np.triu_indices(n, 1)
    keep = r.random(len(i)) < 0.3
    e = np.stack([i[keep], j[keep]], 1)
    s = set(map(tuple, e.tolist()))
    brute = {
        (a, b, c)
        for a in range(n)
        for b in range(a + 1, n)
        for c in range(b + 1, n)
        if {(a, b), (b, c), (a, c)} <= s
    }
    assert {tuple(t) for t in uj.sample_triads(e, 10**6, 0).tolist()} == brute


def test_random_responder_cycle_baseline():
    n = 40
    pairs = np.stack(np.triu_indices(n, 1), 1)
    d = uj.simulate_pairwise(jax.random.key(1), np.zeros(n), np.ones(n), pairs, k=10)
    t = uj.transitivity(d, uj.sample_triads(pairs, 2000, 0))
    # E[P(cycle)] = 1/4 exactly for independent 50/50 pairs
    assert t["log10_p_cycle"] == pytest.approx(np.log10(0.25), abs=0.02)


def test_evaluate_pairwise_on_true_model_matches_scipy():
    mu = np.array([0.0, 1.0, -1.0])
    fit = uj.ThurstonianFit(
        jnp.asarray(mu, jnp.float32),
        jnp.zeros(3),
        jnp.asarray(True),
        jnp.asarray(0),
        jnp.asarray(0.0),
        jnp.asarray(0.0),
    )
    d = uj.PairwiseData.from_counts(3, [0, 1], [1, 2], [5, 15], [20, 20])
    ev = uj.evaluate_pairwise(fit, d)
    p = stats.norm.cdf(np.array([-1.0, 2.0]) / np.sqrt(2))
    assert ev["accuracy"] == 1.0
    want = (
        -(5 * np.log(p[0]) + 15 * np.log(1 - p[0]) + 15 * np.log(p[1]) + 5 * np.log(1 - p[1])) / 40
    )
    assert ev["log_loss"] == pytest.approx(want, rel=1e-5)
    assert ev["n_pairs"] == 2 and ev["n_ties"] == 0
