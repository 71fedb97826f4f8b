"""The shared log-likelihood: scipy oracles in float64, tails, gradients, jit == eager."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, special, stats
from tolerances import EXACT, JIT_F32

import utility_jax as uj


def _data(rng, n=7, e=30, votes=20):
    a = rng.integers(0, n, e)
    b = (a + rng.integers(1, n, e)) % n
    return uj.PairwiseData.from_counts(n, a, b, rng.integers(0, votes + 1, e), np.full(e, votes))


def test_probit_matches_scipy_float64(x64, rng):
    d = _data(rng)
    mu, lv = rng.normal(size=7), rng.normal(size=7) * 0.5
    got = float(uj.log_likelihood_pairwise(jnp.asarray(mu), jnp.asarray(lv), d, "probit"))
    v = d.valid()
    z = (mu[v["idx_a"]] - mu[v["idx_b"]]) / np.sqrt(np.exp(lv[v["idx_a"]]) + np.exp(lv[v["idx_b"]]))
    want = np.sum(
        v["n_a"] * stats.norm.logcdf(z) + (v["n_total"] - v["n_a"]) * stats.norm.logcdf(-z)
    )
    assert got == pytest.approx(want, rel=EXACT)


def test_logit_matches_scipy_float64(x64, rng):
    d = _data(rng)
    mu = rng.normal(size=7) * 2
    got = float(uj.log_likelihood_pairwise(jnp.asarray(mu), jnp.zeros(7), d, "logit"))
    v = d.valid()
    dd = mu[v["idx_a"]] - mu[v["idx_b"]]
    want = np.sum(
        v["n_a"] * special.log_expit(dd) + (v["n_total"] - v["n_a"]) * special.log_expit(-dd)
    )
    assert got == pytest.approx(want, rel=EXACT)


@pytest.mark.parametrize("z", [-40.0, -15.0, 15.0, 40.0])
def test_extreme_margins_stay_finite_and_exact(x64, z):
    # two outcomes, sigma^2 = 1/2 each so the margin is exactly z
    d = uj.PairwiseData.from_counts(2, [0], [1], [3.0], [4.0])
    mu = jnp.array([z, 0.0])
    lv = jnp.log(jnp.array([0.5, 0.5]))
    got = float(uj.log_likelihood_pairwise(mu, lv, d, "probit"))
    want = 3 * stats.norm.logcdf(z) + 1 * stats.norm.logcdf(-z)
    assert np.isfinite(got)
    assert got == pytest.approx(want, rel=1e-9)
    g = jax.grad(lambda m: uj.log_likelihood_pairwise(m, lv, d, "probit"))(mu)
    assert np.all(np.isfinite(np.asarray(g)))


def test_padding_rows_do_not_count(rng):
    d = _data(rng)
    v = d.valid()
    d2 = uj.PairwiseData.from_counts(
        7, v["idx_a"], v["idx_b"], v["n_a"], v["n_total"], pad_to=d.n_rows * 4
    )
    mu, lv = jnp.asarray(rng.normal(size=7), jnp.float32), jnp.zeros(7)
    a = uj.log_likelihood_pairwise(mu, lv, d)
    b = uj.log_likelihood_pairwise(mu, lv, d2)
    assert float(a) == pytest.approx(float(b), rel=JIT_F32)


@pytest.mark.parametrize("link", ["probit", "logit"])
def test_gradient_matches_finite_differences(x64, rng, link):
    d = _data(rng)
    x0 = rng.normal(size=14) * 0.5

    def f(x):
        return -float(uj.log_likelihood_pairwise(jnp.asarray(x[:7]), jnp.asarray(x[7:]), d, link))

    def g(x):
        gg = jax.grad(lambda y: -uj.log_likelihood_pairwise(y[:7], y[7:], d, link))(jnp.asarray(x))
        return np.asarray(gg)

    err = optimize.check_grad(f, g, x0, epsilon=1e-6)
    assert err / max(np.linalg.norm(g(x0)), 1.0) < 1e-5


def test_jit_equals_eager(rng):
    d = _data(rng)
    mu, lv = (
        jnp.asarray(rng.normal(size=7), jnp.float32),
        jnp.asarray(rng.normal(size=7) * 0.3, jnp.float32),
    )
    with jax.disable_jit():
        eager = float(uj.log_likelihood_pairwise(mu, lv, d))
    jitted = float(uj.log_likelihood_pairwise(mu, lv, d))
    assert jitted == pytest.approx(eager, rel=JIT_F32)
