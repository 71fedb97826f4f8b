"""The discounting analysis: its core on known answers (fast) and end to end on a planted agent (slow)."""

import numpy as np
import pytest
from analysis_helpers import _run
from conftest import ANCHOR
from scipy import stats

from utility_jax.analysis import discounting as D


def test_discounting_grids():
    g = D.default_grid()
    assert len(g["time_delays_months"]) == 12 and len(g["delayed_amounts"]) == 30
    ref = D.load_grid(ANCHOR / "derived" / "time_discounting_grid.json")
    assert g["delayed_amounts"] == ref["delayed_amounts"]  # the same amount formula
    assert len(ref["time_delays_months"]) == 60


@pytest.mark.parametrize(
    "shape,other", [("hyperbolic", "exponential"), ("exponential", "hyperbolic")]
)
def test_discounting_classifies_a_planted_discounter(tmp_path, shape, other):
    """A hyperbolic discounter (k = 0.08/month) is classified hyperbolic, an exponential one
    (k = 0.03/month) exponential, in >= 90% of the vote-bootstrap draws; the planted k is within
    25% of the matching fit's estimate."""
    rate = {"hyperbolic": 0.08, "exponential": 0.03}[shape]
    n = _run(
        tmp_path, "discounting", f"analysis.shape={shape}", f"analysis.rate={rate}", "plots=false"
    )
    assert n["better"] == shape and n["better_share_of_draws"] >= 0.9
    assert n[shape]["r2_log"]["estimate"] > n[other]["r2_log"]["estimate"]
    assert abs(n[shape]["k"]["estimate"] / rate - 1) < 0.25


@pytest.mark.parametrize("kind,k", [("hyperbolic", 0.08), ("exponential", 0.03)])
def test_discounting_agent_is_classified_and_k_recovered(kind, k):
    """An agent with log utility of money discounted by d(t) answers 20 votes per cell of the
    delay x amount grid; its curve is classified correctly and k recovered within 25%."""
    delays = np.arange(0, 61, 3, dtype=float)
    amounts = np.round(1000 * np.logspace(np.log10(0.5), np.log10(30), 30), -1)
    d_true = D.MODELS[kind](delays, k)
    margin = np.log(amounts)[None, :] + np.log(d_true)[:, None] - np.log(1000.0)
    p = stats.norm.cdf(margin / 0.3)
    rng = np.random.default_rng(0)
    p_hat = rng.binomial(20, p) / 20
    x = D.indifference_points(p_hat, amounts)
    res = D.fit_discount_curves(delays, x)
    assert res["better"] == kind, res
    assert res[kind]["k"] == pytest.approx(k, rel=0.25)
    assert res[kind]["r2_log"] > 0.9


def test_indifference_points_interpolate_and_censor():
    amounts = np.array([500.0, 1000.0, 2000.0])
    p = np.array([[0.0, 0.5, 1.0], [0.0, 0.0, 0.25], [0.0, 0.25, 0.75]])
    x = D.indifference_points(p, amounts)
    assert x[0] == pytest.approx(1000.0)
    assert np.isnan(x[1])  # never preferred within the grid: censored
    assert x[2] == pytest.approx(np.exp(np.log(1000) + 0.5 * np.log(2)))
