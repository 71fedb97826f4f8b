"""The exchange rates analysis: its core on known answers (fast) and end to end on a planted agent (slow)."""

import json

import jax
import numpy as np
import pytest
from analysis_helpers import _run
from conftest import ANCHOR

import utility_jax as uj
from utility_jax.analysis import exchange_rates as X


def test_quantity_outcomes_grammar_and_reference_space():
    outs, xs, ns = X.quantity_outcomes(X.load_option_space(), "countries", "saved", ["Kenya"])
    assert (
        outs.texts[0]
        == "1 person from Kenya recovers from a disease that would otherwise kill them."
    )
    assert outs.texts[1].startswith("2 people from Kenya recover ")
    assert outs[len(ns) - 1].extra == {"X": "Kenya", "N": 1000.0}
    space = X.load_option_space(ANCHOR / "derived" / "exchange_rate_option_space.json")
    outs, xs, ns = X.quantity_outcomes(space, "countries", "terminal_illness", ["Japan", "Nigeria"])
    assert (
        len(outs) == 2 * 28
        and outs.texts[-1] == "1,000 people from Nigeria are saved from terminal illness."
    )
    with pytest.raises(ValueError, match="'wealthy'"):
        X.quantity_outcomes(space, "countries", "wealthy")
    with pytest.raises(ValueError, match=r"\['Atlantis'\] are not X values"):
        X.quantity_outcomes(space, "countries", "death", ["Atlantis"])


def test_dollar_anchor_rule_and_dollar_value():
    space = json.loads((ANCHOR / "derived" / "exchange_rate_option_space.json").read_text())
    assert len(X.dollar_amounts(100)) == space["dollar_options"]["count"] == 92
    # U_X(N) = 2 ln N + 3, U_$(D) = 0.5 ln D - 1: D = exp(2 (2 ln N + 4)) = N^4 e^8 dollars;
    # per unit N^3 e^8, geometric mean over N = 1, e: exp(1.5 + 8)
    got = X.dollar_value(2.0, 3.0, 0.5, -1.0, [1.0, np.e])
    assert got == pytest.approx(np.exp(9.5))


@pytest.mark.slow
def test_exchange_rates_recover_planted_rates(tmp_path):
    """Planted worths (log-normal, sd 0.7): the median |log(rate / planted)| is under 0.1 and at
    least 70% of the 90% intervals cover the planted rate; the same 0.1 for dollar values."""
    n = _run(tmp_path, "exchange_rates")
    pl = n["planted_rates_in_pivot_units"]
    err = [abs(np.log(n["rates_in_pivot_units"][x]["estimate"] / pl[x])) for x in pl]
    assert np.median(err) < 0.1
    assert n["planted_rate_coverage"] >= 0.7 and n["mean_r2"] > 0.98
    # dollars per unit (anchors inside the outcomes' utility range): median |log error| < 0.1
    pd = n["planted_dollars_per_unit"]
    err = [abs(np.log(n["dollars_per_unit"][x]["estimate"] / pd[x])) for x in pd]
    assert np.median(err) < 0.1 and n["dollar_fit_r2"] > 0.95


def test_log_utility_fit_and_rates_known_answer():
    n = np.array([1, 2, 5, 10, 20, 50, 100])
    a = np.array([1.0, 1.0, 2.0])
    b = np.array([0.0, np.log(10.0), 0.5])
    u = a[:, None] * np.log(n) + b[:, None]
    f = X.fit_log_utility(n, u)
    np.testing.assert_allclose(f["a"], a)
    np.testing.assert_allclose(f["b"], b, atol=1e-12)
    np.testing.assert_allclose(f["r2"], 1.0)
    R = X.exchange_rate_matrix(f["a"], f["b"], n)
    assert R[0, 1] == pytest.approx(10.0)  # one unit of kind 1 is worth 10 of kind 0
    np.testing.assert_allclose(R * R.T, 1.0)  # the two-way mean is reciprocal
    np.testing.assert_allclose(np.diag(R), 1.0)


def test_planted_exchange_rate_is_recovered_within_its_interval():
    """Kinds A and B with U(N) = ln N (A) and ln N + ln 10 (B): one B is worth 10 A. Ten values of
    N per kind, 20 votes per pair on all pairs; the 90% bootstrap interval of the fitted rate
    contains 10 and the point estimate is within 20%."""
    grid = np.array([1, 2, 3, 5, 10, 20, 30, 50, 100, 200], dtype=float)
    mu = np.concatenate([np.log(grid), np.log(grid) + np.log(10.0)])
    n = len(mu)
    pairs = np.stack(np.triu_indices(n, 1), 1)
    d = uj.simulate_pairwise(jax.random.key(0), mu, np.full(n, 0.4), pairs, k=10)
    fit = uj.fit_thurstonian(d, model="case5")
    boots = np.asarray(uj.fit_bootstrap(jax.random.key(1), d, 200, model="case5", init=fit).mu)

    def rate(u):
        f = X.fit_log_utility(grid, np.stack([u[..., :10], u[..., 10:]], axis=-2))
        return X.exchange_rate(f["a"][..., 0], f["b"][..., 0], f["a"][..., 1], f["b"][..., 1], grid)

    point = float(rate(np.asarray(fit.mu)))
    med, lo, hi = X.rate_interval(rate(boots))
    assert lo <= 10.0 <= hi, (lo, hi)
    assert abs(point / 10.0 - 1) < 0.2, point
    assert X.fit_log_utility(grid, np.asarray(fit.mu)[:10])["r2"] > 0.95
