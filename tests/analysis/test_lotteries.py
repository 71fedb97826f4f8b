"""The lotteries analysis: its core on known answers (fast) and end to end on a planted agent (slow)."""

import json

import numpy as np
import pytest
from analysis_helpers import EXP, _fit_all_pairs_subset, _run

from utility_jax.analysis import lotteries as L


def test_implicit_lotteries_reference_and_shipped():
    ref = L.load_implicit_lotteries(
        EXP / "expected_utility_implicit" / "implicit_lotteries" / "options.json"
    )
    assert len(ref) == 20 and sum(len(e["sub_options"]) for e in ref) == 150
    own = L.load_implicit_lotteries("default")
    assert len(own) >= 5
    ref_texts = {e["option"] for e in ref} | {s["option"] for e in ref for s in e["sub_options"]}
    assert not ref_texts & (
        {e["option"] for e in own} | {s["option"] for e in own for s in e["sub_options"]}
    )


def test_implicit_lottery_probabilities_must_sum_to_one(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "base_options": [
                    {"option": "e", "sub_options": [{"option": "a", "probability": 0.3}]}
                ]
            }
        )
    )
    with pytest.raises(ValueError, match=r"bad.json: base_options\[0\] probabilities sum to 0.3"):
        L.load_implicit_lotteries(bad)


@pytest.mark.slow
@pytest.mark.parametrize("distortion", [0.0, 1.0])
def test_lotteries_expected_utility_agent_vs_distortion(tmp_path, distortion):
    """An exactly expected-utility agent: r > 0.97 (explicit) and > 0.9 (implicit, 8 events);
    a planted distortion of sd 1 (units of sd U_base): explicit r < 0.9."""
    n = _run(tmp_path, "lotteries", f"analysis.distortion={distortion}")
    r = n["explicit"]["pearson_r"]["estimate"]
    if distortion == 0:
        assert r > 0.97 and n["implicit"]["pearson_r"]["estimate"] > 0.9
        assert n["explicit"]["pair_agreement"]["estimate"] > 0.9
    else:
        assert r < 0.9


def test_make_lotteries_whole_percents_and_text():
    lots = L.make_lotteries(10, 50, 0)
    assert len(lots) == 50 and len({(lo.outcomes, lo.percents) for lo in lots}) == 50
    for lo in lots:
        assert (
            sum(lo.percents) == 100
            and min(lo.percents) >= 1
            and len(set(lo.outcomes)) == len(lo.outcomes)
        )
        assert len(lo.outcomes) in (2, 3)
    txt = L.lottery_text(L.Lottery((0, 1), (30, 70)), ["You get a cat.", "You get a dog."])
    assert txt == "- You get a cat. with probability 30.0%\n- You get a dog. with probability 70.0%"


@pytest.mark.parametrize("distortion,lo,hi", [(0.0, 0.97, 1.0), (1.0, 0.0, 0.8)])
def test_expected_utility_agent_vs_planted_distortion(distortion, lo, hi):
    """An agent whose lottery utilities are exactly their expected utilities gives r > 0.97;
    adding noise of sd 1 (in units of the base utilities' sd) to them brings r below 0.8."""
    rng = np.random.default_rng(0)
    n_base, n_lot = 20, 40
    u_base = rng.normal(size=n_base)
    lots = L.make_lotteries(n_base, n_lot, 1)
    eu = np.array([lo_.probs @ u_base[list(lo_.outcomes)] for lo_ in lots])
    u_lot = eu + distortion * rng.normal(size=n_lot)
    mu = np.concatenate([u_base, u_lot])
    _, fit = _fit_all_pairs_subset(mu, np.full(len(mu), 0.3), 30, 2, model="case5")
    m = L.expected_utility_metrics(np.asarray(fit.mu[n_base:]), np.asarray(fit.mu[:n_base]), lots)
    assert lo <= m["pearson_r"] <= hi, m
    if distortion == 0:
        assert m["mae_z"] < 0.25 and m["pair_agreement"] > 0.9


def test_implicit_lottery_metrics_known_answer():
    u_sub = np.array([0.0, 1.0, 2.0, -1.0])
    groups, probs = [[0, 1], [2, 3], [1, 2]], [[0.5, 0.5], [0.25, 0.75], [0.9, 0.1]]
    u_event = np.array([0.5, -0.25, 1.1])
    m = L.implicit_lottery_metrics(u_event, u_sub, groups, probs)
    assert m["pearson_r"] == pytest.approx(1.0) and m["mae_z"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.slow
def test_implicit_lotteries_fitted_with_background_outcomes(tmp_path):
    n = _run(
        tmp_path,
        "lotteries",
        "analysis.implicit_background=default",
        "analysis.n_lotteries=10",
        "plots=false",
        "uncertainty.n_bootstrap=20",
    )
    utilities = (tmp_path / "tasks" / "implicit" / "utilities.csv").read_text().splitlines()
    assert n["implicit_n_background"] > 50  # the shipped 86 outcomes, less any shared text
    assert sum("Background:" in row for row in utilities) == n["implicit_n_background"]
    assert n["implicit"]["pearson_r"]["estimate"] > 0.9  # expected utility still recovered
