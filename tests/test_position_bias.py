"""Order-aware fits: a position-bias term (the home-advantage model) estimated with the
utilities from presentation rows, recovered when planted, and predictions per presentation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import utility_jax as uj
from utility_jax.core.data import PairwiseData
from utility_jax.core.simulate import simulate_votes

N = 60


def _data(bias, seed, pairs=None, n=N):
    r = np.random.default_rng(seed)
    mu, sig = r.normal(0, 1.5, n), r.uniform(0.3, 1.0, n)
    pairs = uj.random_regular_pairs(n, 10, seed) if pairs is None else pairs
    c = simulate_votes(
        jax.random.key(seed),
        jnp.asarray(mu),
        jnp.asarray(sig),
        jnp.asarray(pairs[:, 0]),
        jnp.asarray(pairs[:, 1]),
        10,
        position_bias=bias,
    )
    return mu, np.asarray(c), pairs


def test_presentation_rows_from_order_counts_known_answer():
    counts = np.array([[[7, 2, 1], [3, 6, 1]]], float)  # order 0: 0 shown first; order 1: 1 first
    d = PairwiseData.from_order_counts(3, [[0, 1]], counts)
    v = d.valid()
    np.testing.assert_array_equal(v["idx_a"], [0, 1])
    np.testing.assert_array_equal(v["idx_b"], [1, 0])
    np.testing.assert_allclose(v["n_a"], [7.5, 3.5])  # "A" votes + half the refusals
    np.testing.assert_allclose(v["n_total"], [10, 10])
    np.testing.assert_allclose(v["position"], [1, 1])
    pooled = PairwiseData.from_counts(3, [0], [1], [7.5 + 6.5], [20])
    both = pooled.concat(d)
    np.testing.assert_allclose(both.valid()["position"], [0, 1, 1])


@pytest.mark.parametrize("bias", [0.0, 0.5, 1.0])
def test_planted_position_bias_recovered_within_its_interval(bias):
    """The shift on its standardized scale, ``b / sqrt(2 mean(sigma^2))`` (free of the gauge),
    against the planted value on the same scale: its 90% Laplace interval (delta method) covers
    it in at least 9 of 10 seeds at planted 0, 0.5 and 1 (the issue's target; measured 9, 10 and
    9 of 10 here, and 27, 29 and 29 of 30 over seeds 0-29)."""
    hits = 0
    for seed in range(10):
        r = np.random.default_rng(seed)
        _, sig = r.normal(0, 1.5, N), r.uniform(0.3, 1.0, N)
        mu, c, pairs = _data(bias, seed)
        d = PairwiseData.from_order_counts(N, pairs, c)
        f = uj.fit_thurstonian(d, position_bias=True)
        se = uj.laplace_stderr(f, d, position_bias=True)
        assert bool(f.converged)
        target = bias / np.sqrt(2 * np.mean(sig**2))
        est = float(f.position_bias_standardized)
        hits += abs(est - target) <= 1.6449 * float(se["position_bias_standardized"])
    assert hits >= 9, hits


@pytest.mark.parametrize("bias", [0.0, 0.7])
def test_per_presentation_heldout_log_loss_beats_the_pooled_fit_when_biased(bias):
    mu, c, pairs = _data(bias, 3, n=80)
    held = uj.sample_holdout_pairs(80, seed=1, fraction=0.2)
    keep = ~np.isin(pairs[:, 0] * 80 + pairs[:, 1], held[:, 0] * 80 + held[:, 1])
    train = PairwiseData.from_order_counts(80, pairs[keep], c[keep])
    pooled_train = PairwiseData.from_counts(
        80,
        pairs[keep, 0],
        pairs[keep, 1],
        c[keep, 0, 0] + c[keep, 1, 1],
        c[keep, :, :2].sum((1, 2)),
    )
    _, ch, _ = _data(bias, 4, pairs=held, n=80)
    # the same utilities: planted by seed 3, answered again on the held-out pairs
    r = np.random.default_rng(3)
    mu3, sig3 = r.normal(0, 1.5, 80), r.uniform(0.3, 1.0, 80)
    ch = np.asarray(
        simulate_votes(
            jax.random.key(9),
            jnp.asarray(mu3),
            jnp.asarray(sig3),
            jnp.asarray(held[:, 0]),
            jnp.asarray(held[:, 1]),
            10,
            position_bias=bias,
        )
    )
    test = PairwiseData.from_order_counts(80, held, ch)
    f_bias = uj.fit_thurstonian(train, position_bias=True)
    f_pool = uj.fit_thurstonian(pooled_train)
    ll_bias = uj.evaluate_pairwise(f_bias, test)["log_loss"]
    ll_pool = uj.evaluate_pairwise(f_pool, test)["log_loss"]
    if bias == 0:
        assert ll_bias == pytest.approx(ll_pool, abs=0.01)
    else:
        assert ll_bias < ll_pool - 0.02, (ll_bias, ll_pool)
    # utilities no worse than the pooled fit's
    rho_b = stats.spearmanr(np.asarray(f_bias.mu), mu3).statistic
    rho_p = stats.spearmanr(np.asarray(f_pool.mu), mu3).statistic
    assert rho_b >= rho_p - 0.01


def test_presented_and_order_averaged_predictions():
    mu, c, pairs = _data(0.8, 5)
    d = PairwiseData.from_order_counts(N, pairs, c)
    f = uj.fit_thurstonian(d, position_bias=True)
    a, b = jnp.array([0, 1, 2]), jnp.array([3, 4, 5])
    first = uj.predict_proba(f, a, b, presented=True)
    second = 1 - uj.predict_proba(f, b, a, presented=True)
    avg = uj.predict_proba(f, a, b)
    np.testing.assert_allclose(avg, 0.5 * (first + second), atol=1e-6)
    assert (first > avg).all() and (second < avg).all()  # a positive bias favours slot A
    # jit == eager, and a fit without the term has no bias and unchanged predictions
    f0 = uj.fit_thurstonian(d)
    assert f0.position_bias is None
    np.testing.assert_allclose(
        uj.predict_proba(f0, a, b, presented=True), uj.predict_proba(f0, a, b)
    )
    boots = uj.fit_bootstrap(jax.random.key(0), d, 8, init=f, position_bias=True)
    assert boots.position_bias.shape == (8,)
    assert float(jnp.std(boots.position_bias)) > 0


@pytest.mark.slow  # CI budget: the fast tier must stay under 20 minutes cold
def test_compute_run_reports_order_metrics_and_fits_the_shift(tmp_path):
    from test_configs import _compose

    from utility_jax.run.runner import run_compute_utilities

    base = [
        "outcomes.limit=30",
        "agent.position_bias=0.6",
        "progress=false",
        "plots=false",
        "uncertainty.n_bootstrap=20",
    ]
    # on by default when both orders are asked; false is the reference's pooled fit
    on = run_compute_utilities(_compose(*base), tmp_path / "on")
    off = run_compute_utilities(_compose(*base, "fitter.position_bias=false"), tmp_path / "off")
    assert on.metrics["fit"]["position_bias"] and not off.metrics["fit"]["position_bias"]
    o1, o0 = on.metrics["order"], off.metrics["order"]
    assert 0.55 < o0["share_choosing_first_shown"] < 0.8  # the planted pull of slot A
    assert o1["position_bias_lo"] < o1["position_bias"] < o1["position_bias_hi"]
    assert o1["position_bias"] > 0.3
    assert "position_bias" not in o0
    assert o1["heldout_log_loss_per_presentation"] < o0["heldout_log_loss_per_presentation"] - 0.02
    assert "fitted first-slot shift" in (tmp_path / "on" / "summary.txt").read_text()
    # the NumPyro model carries the shift too: with the MAP's fixed priors (not learned
    # scales, which move the sigmas and so the shift) its posterior agrees with the MAP's. The
    # mean-field guide's intervals are too narrow (docs/uncertainty.md), so the check is that
    # the two intervals overlap and the centres are close, not that one holds the other's centre
    svi = run_compute_utilities(
        _compose(
            *base,
            "uncertainty.n_bootstrap=0",
            "bayes=svi",
            "bayes.svi_steps=1500",
            "bayes.hierarchical=none",
        ),  # fmt: skip
        tmp_path / "svi",
    )
    pb = svi.metrics["bayes"]["position_bias"]
    assert pb["lo"] < o1["position_bias_hi"] and o1["position_bias_lo"] < pb["hi"]
    assert abs(pb["mean"] - o1["position_bias"]) < 0.1 and pb["lo"] > 0.3
    with pytest.raises(ValueError, match="needs both presentation orders"):
        run_compute_utilities(
            _compose(*base, "fitter.position_bias=true", "elicitation.orders=first"), tmp_path / "x"
        )
