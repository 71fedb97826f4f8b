"""The fitter: golden cases, oracles (choix, scipy), recovery, and JAX invariants."""

import json
from pathlib import Path

import choix
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import synthetic_problem
from scipy import optimize, stats
from tolerances import MC_REL, ORACLE_F32, ORACLE_X64

import utility_jax as uj

GOLDEN = json.loads((Path(__file__).parent / "data" / "golden_pairwise.json").read_text())
ML = dict(mu_prior_scale=None, logvar_prior_scale=None)


def _golden_data(case):
    c = GOLDEN[case]
    p = np.array(c["pairs"])
    return uj.PairwiseData.from_counts(c["n_items"], p[:, 0], p[:, 1], c["n_a"], c["n_total"])


@pytest.mark.parametrize(
    "case,model",
    [(c, m) for c in GOLDEN if not c.startswith("_") for m in GOLDEN[c]["expected"]],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_golden_cases(case, model, dtype):
    with jax.enable_x64(dtype == "float64"):
        fit = uj.fit_thurstonian(_golden_data(case), model=model, **ML)
        tol = ORACLE_X64 if dtype == "float64" else ORACLE_F32
        expected = GOLDEN[case]["expected"][model]
        np.testing.assert_allclose(np.asarray(fit.mu), expected["mu"], atol=tol)
        if expected.get("not_minimum"):
            # stationary but not a strict minimum: a saddle (the case III likelihood of a perfect
            # 3-cycle rises along a mean/variance direction) or flat (all ties: without a prior
            # the variances are free): the fit must say so
            assert not bool(fit.converged) and int(fit.status) == 2
            tol_eig = 1e-4 if expected["not_minimum"] == "flat" else 0.0
            assert fit.min_eigenvalue <= tol_eig
        else:
            assert bool(fit.converged) and fit.reason.startswith("verified minimum")
        assert fit.mu.dtype == jnp.dtype(dtype)


def test_two_items_case3_with_logvar_prior_equals_case5(x64):
    # symmetric log-variance prior -> equal sigmas = 1 (gauge), so case III reduces to case V
    d = _golden_data("two_items")
    f3 = uj.fit_thurstonian(d, model="case3", mu_prior_scale=None, logvar_prior_scale=1.0)
    np.testing.assert_allclose(
        np.asarray(f3.mu), GOLDEN["two_items"]["expected"]["case5"]["mu"], atol=ORACLE_X64
    )
    np.testing.assert_allclose(np.asarray(f3.sigma), [1.0, 1.0], atol=ORACLE_X64)


def test_perfect_separation_stays_finite_with_prior():
    d = uj.PairwiseData.from_counts(3, [0, 1], [1, 2], [20, 20], [20, 20])
    for model in ("case3", "case5", "logit"):
        fit = uj.fit_thurstonian(d, model=model)
        assert bool(fit.converged), model
        assert np.all(np.isfinite(np.asarray(fit.mu))) and np.all(
            np.isfinite(np.asarray(fit.sigma))
        )
        assert float(fit.mu[0]) > float(fit.mu[1]) > float(fit.mu[2])
        assert float(uj.predict_proba(fit, 0, 2)) > 0.99
        assert np.abs(np.asarray(fit.mu)).max() < 100.0  # the N(0, 10^2) prior binds


def test_perfect_separation_without_prior_reports_nonconvergence():
    d = uj.PairwiseData.from_counts(2, [0], [1], [20], [20])
    fit = uj.fit_thurstonian(d, model="logit", mu_prior_scale=None, max_iter=50)
    # the ML estimate is at infinity: the solver must say so instead of raising
    assert float(fit.mu[0] - fit.mu[1]) > 5.0
    assert not bool(fit.converged) or float(fit.grad_norm) < 1e-3


def test_logit_matches_choix(x64, rng):
    n = 12
    comps = []
    a = rng.integers(0, n, 600)
    b = (a + rng.integers(1, n, 600)) % n
    strength = 0.5 * rng.normal(size=n)
    for i, j in zip(a, b, strict=True):
        comps.append(
            (i, j) if rng.random() < 1 / (1 + np.exp(strength[j] - strength[i])) else (j, i)
        )
    winners, losers = {c[0] for c in comps}, {c[1] for c in comps}
    assert (
        winners == losers == set(range(n))
    )  # every item wins and loses: the ML estimate is finite
    want = choix.opt_pairwise(n, comps, alpha=0.0, tol=1e-10)
    w = np.array([c[0] for c in comps])
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    d = uj.PairwiseData.from_counts(n, lo, hi, (w == lo).astype(float), np.ones(len(w)))
    fit = uj.fit_thurstonian(d, model="logit", **ML)
    np.testing.assert_allclose(np.asarray(fit.mu), want - want.mean(), atol=ORACLE_X64)


def test_case5_matches_scipy_optimize_float64(x64):
    mu0, sig, a, b, na, nt = synthetic_problem(10, seed=3, edges=80)
    d = uj.PairwiseData.from_counts(10, a, b, na, nt)

    def nll(x):  # free parameters: the first n-1 means; the last makes the mean zero
        m = np.append(x, -x.sum())
        z = (m[a] - m[b]) / np.sqrt(2.0)
        return -np.sum(na * stats.norm.logcdf(z) + (nt - na) * stats.norm.logcdf(-z))

    res = optimize.minimize(nll, np.zeros(9), method="BFGS", options={"gtol": 1e-10})
    want = np.append(res.x, -res.x.sum())
    fit = uj.fit_thurstonian(d, model="case5", **ML)
    np.testing.assert_allclose(np.asarray(fit.mu), want, atol=ORACLE_X64)
    assert float(fit.nll) == pytest.approx(res.fun, rel=1e-9)


@pytest.mark.parametrize("model", ["case3", "case5", "logit"])
def test_recovers_known_utilities(model):
    """N=200, 20 votes per pair, 2 N log2 N pairs (the paper's design), fixed seed."""
    mu, sig, a, b, na, nt = synthetic_problem(200, seed=1)
    d = uj.PairwiseData.from_counts(200, a, b, na, nt)
    fit = uj.fit_thurstonian(d, model=model)
    assert bool(fit.converged)
    rho = stats.spearmanr(np.asarray(fit.mu), mu).statistic
    assert rho > 0.97, rho
    if model == "case3":
        # the (well-specified) fit explains the training votes at least as well as the truth
        true_nll = -float(
            uj.log_likelihood_pairwise(
                jnp.asarray(mu, jnp.float32), jnp.asarray(np.log(sig**2), jnp.float32), d
            )
        )
        assert float(fit.nll) <= true_nll * (1 + 1e-4)
        assert stats.spearmanr(np.asarray(fit.sigma), sig).statistic > 0.6
        # on the normalised scale sigma/sd(mu) is recovered on average within 7%
        s_true = sig / mu.std()
        ratio = np.median(np.asarray(fit.sigma_normalized)) / np.median(s_true)
        assert abs(ratio - 1) < MC_REL * 2, ratio


def test_heldout_nll_close_to_truth():
    mu, sig, a, b, na, nt = synthetic_problem(150, seed=2, edges=int(2 * 150 * np.log2(150)) + 2000)
    tr = slice(0, -2000)
    ho = slice(-2000, None)
    dtr = uj.PairwiseData.from_counts(150, a[tr], b[tr], na[tr], nt[tr])
    dho = uj.PairwiseData.from_counts(150, a[ho], b[ho], na[ho], nt[ho])
    fit = uj.fit_thurstonian(dtr)
    got = uj.evaluate_pairwise(fit, dho)["log_loss"]
    truth = -float(
        uj.log_likelihood_pairwise(
            jnp.asarray(mu, jnp.float32), jnp.asarray(np.log(sig**2), jnp.float32), dho
        )
    ) / float(nt[ho].sum())
    assert got <= truth * 1.03, (got, truth)


@pytest.mark.parametrize("method", ["vmap", "map"])
def test_vmap_equals_loop(method):
    ds = []
    for s in range(3):
        mu, sig, a, b, na, nt = synthetic_problem(40, seed=10 + s, edges=300)
        ds.append(uj.PairwiseData.from_counts(40, a, b, na, nt, pad_to=512))
    batched = uj.fit_thurstonian_batch(uj.stack(ds), method=method)
    for i, d in enumerate(ds):
        one = uj.fit_thurstonian(d)
        np.testing.assert_allclose(np.asarray(batched.mu[i]), np.asarray(one.mu), atol=1e-4)
        np.testing.assert_allclose(np.asarray(batched.sigma[i]), np.asarray(one.sigma), atol=1e-4)
        assert bool(batched.converged[i]) == bool(one.converged)


def test_second_call_same_shape_does_not_recompile():
    from utility_jax.core import fit as th

    d1 = uj.PairwiseData.from_counts(30, *synthetic_problem(30, seed=5, edges=100)[2:], pad_to=256)
    d2 = uj.PairwiseData.from_counts(30, *synthetic_problem(30, seed=6, edges=120)[2:], pad_to=256)
    uj.fit_thurstonian(d1, model="case5")
    before = th._fit_jit._cache_size()
    uj.fit_thurstonian(d2, model="case5")
    uj.fit_thurstonian(d1, model="case5", init=uj.fit_thurstonian(d2, model="case5"))
    assert th._fit_jit._cache_size() <= before + 1  # the warm-start signature may add one entry
    uj.fit_thurstonian(d2, model="case5", init=uj.fit_thurstonian(d1, model="case5"))
    after = th._fit_jit._cache_size()
    uj.fit_thurstonian(d1, model="case5", init=uj.fit_thurstonian(d2, model="case5"))
    assert th._fit_jit._cache_size() == after


@pytest.mark.slow  # CI budget: the fast tier must stay under 20 minutes cold
def test_jit_equals_eager_fit():
    mu, sig, a, b, na, nt = synthetic_problem(8, seed=4, edges=40)
    d = uj.PairwiseData.from_counts(8, a, b, na, nt)
    jitted = uj.fit_thurstonian(d, model="case5")
    with jax.disable_jit():
        eager = uj.fit_thurstonian(d, model="case5")
    np.testing.assert_allclose(np.asarray(jitted.mu), np.asarray(eager.mu), atol=ORACLE_F32)


def test_warm_start_converges_immediately():
    mu, sig, a, b, na, nt = synthetic_problem(60, seed=7)
    d = uj.PairwiseData.from_counts(60, a, b, na, nt)
    cold = uj.fit_thurstonian(d)
    warm = uj.fit_thurstonian(d, init=cold)
    assert int(warm.n_iter) <= 2 < int(cold.n_iter)
    np.testing.assert_allclose(np.asarray(warm.mu), np.asarray(cold.mu), atol=ORACLE_F32)


def test_random_init_key_reaches_same_optimum():
    mu, sig, a, b, na, nt = synthetic_problem(40, seed=8)
    d = uj.PairwiseData.from_counts(40, a, b, na, nt)
    f0 = uj.fit_thurstonian(d, key=jax.random.key(0))
    f1 = uj.fit_thurstonian(d, key=jax.random.key(1))
    np.testing.assert_allclose(np.asarray(f0.mu), np.asarray(f1.mu), atol=5 * ORACLE_F32)


def test_normalised_view():
    mu, sig, a, b, na, nt = synthetic_problem(50, seed=9)
    fit = uj.fit_thurstonian(uj.PairwiseData.from_counts(50, a, b, na, nt))
    z = np.asarray(fit.mu_normalized)
    assert abs(z.mean()) < 1e-5 and abs(z.std() - 1) < 1e-5
    ratio = np.asarray(fit.sigma_normalized) / np.asarray(fit.sigma)
    np.testing.assert_allclose(ratio, 1 / np.asarray(fit.mu).std(), rtol=1e-5)
    # predictions are invariant to the normalisation
    p1 = uj.predict_proba(fit, np.arange(10), np.arange(10, 20))
    f2 = uj.ThurstonianFit(
        fit.mu_normalized,
        2 * jnp.log(fit.sigma_normalized),
        fit.converged,
        fit.n_iter,
        fit.grad_norm,
        fit.nll,
    )
    np.testing.assert_allclose(
        np.asarray(uj.predict_proba(f2, np.arange(10), np.arange(10, 20))),
        np.asarray(p1),
        atol=1e-5,
    )


def test_uniform_edge_weight_ignores_vote_counts():
    # same proportions, different totals -> identical fits under the reference's uniform weights
    d1 = uj.PairwiseData.from_counts(3, [0, 1], [1, 2], [6, 3], [8, 4])
    d2 = uj.PairwiseData.from_counts(3, [0, 1], [1, 2], [15, 15], [20, 20])
    f1 = uj.fit_thurstonian(d1, model="case5", edge_weight="uniform")
    f2 = uj.fit_thurstonian(d2, model="case5", edge_weight="uniform")
    np.testing.assert_allclose(np.asarray(f1.mu), np.asarray(f2.mu), atol=ORACLE_F32)
    f3 = uj.fit_thurstonian(d1, model="case5")
    assert not np.allclose(np.asarray(f1.mu), np.asarray(f3.mu), atol=1e-2)


def test_logvar_prior_tames_incoherent_outcomes():
    # outcome 0 is answered at random against everything, the rest are coherent
    r = np.random.default_rng(0)
    n = 30
    mu = np.linspace(-2, 2, n)
    pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n)])
    p = stats.norm.cdf((mu[pairs[:, 0]] - mu[pairs[:, 1]]) / 0.3)
    p[pairs[:, 0] == 0] = 0.5
    na = r.binomial(20, p).astype(float)
    d = uj.PairwiseData.from_counts(n, pairs[:, 0], pairs[:, 1], na, np.full(len(na), 20.0))
    free = uj.fit_thurstonian(d, mu_prior_scale=None, logvar_prior_scale=None)
    tamed = uj.fit_thurstonian(d)
    assert (
        float(free.sigma_normalized[0])
        > float(tamed.sigma_normalized[0])
        > float(np.median(np.asarray(tamed.sigma_normalized)))
    )


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="model"):
        uj.FitConfig(model="case4")
    with pytest.raises(ValueError, match="mu_prior_scale"):
        uj.FitConfig(mu_prior_scale=0.0)
    d = uj.PairwiseData.from_counts(2, [0], [1], [1], [2])
    with pytest.raises(ValueError, match="batch"):
        uj.fit_thurstonian(uj.stack([d, d]))
