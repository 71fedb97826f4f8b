"""Transitivity on fresh uniform triads: the sampler, the definitions, their exact random
baselines (checked by Monte Carlo), and the experiment on simulated agents."""

import itertools
import math

import numpy as np
import pytest
from analysis_helpers import _run
from scipy import stats

from utility_jax.core import triads as T


def test_uniform_triads_are_distinct_sorted_and_uniform():
    rng = np.random.default_rng(0)
    t = T.sample_uniform_triads(50, 500, rng)
    assert t.shape == (500, 3) and (np.diff(t, axis=1) > 0).all()
    assert len({tuple(r) for r in t.tolist()}) == 500
    # uniform over C(6, 3) = 20 triads: chi-square on 4,000 draws of 5
    counts = np.zeros(20)
    index = {c: i for i, c in enumerate(itertools.combinations(range(6), 3))}
    for _ in range(800):
        for r in T.sample_uniform_triads(6, 5, rng).tolist():
            counts[index[tuple(r)]] += 1
    assert stats.chisquare(counts).pvalue > 0.001
    assert len(T.sample_uniform_triads(6, 20, rng)) == 20  # every triad, by rejection
    with pytest.raises(ValueError, match="only 20 triads"):
        T.sample_uniform_triads(6, 21, rng)


def test_triad_pairs_index_back_to_the_triads():
    t = np.array([[0, 1, 2], [1, 2, 5], [0, 2, 5]])
    pairs, rows = T.triad_pairs(t)
    assert len(pairs) == 6  # (0,1) (1,2) (0,2) (2,5) (1,5) (0,5); (0,2) and (1,2) shared
    np.testing.assert_array_equal(pairs[rows[:, 0]], t[:, [0, 1]])
    np.testing.assert_array_equal(pairs[rows[:, 1]], t[:, [1, 2]])
    np.testing.assert_array_equal(pairs[rows[:, 2]], t[:, [0, 2]])


def test_cycle_metrics_known_answers():
    # a > b, b > c, c > a (p_ac = 0): a sure cycle; the second triad is a sure order
    m = T.cycle_metrics([1.0, 1.0], [1.0, 1.0], [0.0, 1.0])
    assert m["mean_p_cycle"] == 0.5 and m["hard_cycle_rate"] == 0.5
    assert m["mean_log10_p_cycle"] == pytest.approx((0 + math.log10(T.LOG_FLOOR)) / 2)
    assert m["log10_odds_mean_p_cycle"] == pytest.approx(0.0)
    # an exact 50/50 pair leaves its triad out of the hard rate only; NaN leaves it out of all
    m = T.cycle_metrics([0.5, 0.9, np.nan], [0.5, 0.9, 0.5], [0.5, 0.1, 0.5])
    assert m["n_triads"] == 2 and m["n_strict_triads"] == 1 and m["hard_cycle_rate"] == 1.0
    assert m["mean_p_cycle"] == pytest.approx((0.25 + (0.9 * 0.9 * 0.9 + 0.1 * 0.1 * 0.1)) / 2)


@pytest.mark.parametrize("votes", [2, 5, 20])
def test_random_baselines_match_monte_carlo(votes):
    exact = T.random_baselines(votes)
    assert exact["mean_p_cycle"] == pytest.approx(0.25)  # any symmetric vote distribution
    assert exact["log10_odds_mean_p_cycle"] == pytest.approx(math.log10(1 / 3))
    assert exact["hard_cycle_rate"] == pytest.approx(0.25)
    rng = np.random.default_rng(votes)
    p = rng.binomial(votes, 0.5, size=(3, 400_000)) / votes
    mc = T.cycle_metrics(*p)
    for key in ("mean_log10_p_cycle", "log10_mean_p_cycle", "hard_cycle_rate"):
        assert mc[key] == pytest.approx(exact[key], abs=0.01), key
    if votes == 2:  # by hand: p in {0, 1/2, 1} w.p. 1/4, 1/2, 1/4
        probs = {0.0: 0.25, 0.5: 0.5, 1.0: 0.25}
        want = sum(
            probs[a]
            * probs[b]
            * probs[c]
            * math.log10(max(a * b * (1 - c) + (1 - a) * (1 - b) * c, T.LOG_FLOOR))
            for a, b, c in itertools.product(probs, repeat=3)
        )
        assert exact["mean_log10_p_cycle"] == pytest.approx(want)


def test_random_responder_matches_its_closed_form(tmp_path):
    # mu_scale=0: every planted utility equal, so every answer is a coin flip
    n = _run(
        tmp_path,
        "transitivity",
        "agent.mu_scale=0",
        "analysis.n_triads=400",
        "analysis.n_boot=200",
        "analysis.n_random=100",
        "plots=false",
    )
    for d in T.DEFINITIONS:
        v = n["definitions"][d]
        assert abs(v["estimate"] - v["random_closed_form"]) < 3 * v["random_simulated_sd"] + 1e-3, d
    assert "unresolved" in (tmp_path / "summary.txt").read_text()


def test_coherent_agent_separates_from_random(tmp_path):
    n = _run(
        tmp_path,
        "transitivity",
        "analysis.n_triads=300",
        "analysis.n_boot=100",
        "analysis.n_random=50",
    )
    v = n["definitions"]["log10_mean_p_cycle"]
    assert v["estimate"] < v["random_closed_form"] - 0.3
    assert v["lo"] <= v["estimate"] <= v["hi"]


def test_qwen_like_agent_separates_by_at_least_0_3(tmp_path):
    n = _run(
        tmp_path,
        "transitivity",
        "outcomes=paper",
        "agent=simulated_qwen25",
        "analysis.n_boot=100",
        "analysis.n_random=50",
        "plots=false",
    )
    v = n["definitions"]["log10_mean_p_cycle"]
    assert v["estimate"] <= v["random_closed_form"] - 0.3, v
