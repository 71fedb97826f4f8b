"""The analyses' pure cores, on simulated agents whose right answer is known by construction."""

import jax
import numpy as np
import pytest
from scipy import stats

import utility_jax as uj
from utility_jax.analysis import discounting as D
from utility_jax.analysis import exchange_rates as X
from utility_jax.analysis import lotteries as L


def _fit_all_pairs_subset(mu, sigma, degree, seed, **fit_kw):
    n = len(mu)
    pairs = uj.random_regular_pairs(n, degree, seed)
    d = uj.simulate_pairwise(jax.random.key(seed), mu, sigma, pairs, k=10)
    return d, uj.fit_thurstonian(d, **fit_kw)


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


def test_convergence_grows_with_capability_on_planted_models():
    """Ten models whose utilities are a shared value system plus noise that shrinks with
    capability: mean similarity to the others correlates with capability (Pearson > 0.8)."""
    from utility_jax.analysis import convergence as C

    rng = np.random.default_rng(0)
    shared = rng.normal(size=200)
    cap = {f"m{i}": 50 + 5 * i for i in range(10)}
    utils = {m: shared + (3.0 - 0.3 * i) * rng.normal(size=200) for i, m in enumerate(cap)}
    res = C.convergence_vs_capability(utils, cap)
    assert res["pearson_similarity_vs_capability"] > 0.8
    sim = C.similarity_matrices(
        {"a": np.arange(5.0), "b": 2 * np.arange(5.0) + 3, "c": -np.arange(5.0)}
    )
    np.testing.assert_allclose(sim["pearson"][0], [1, 1, -1])
    np.testing.assert_allclose(sim["cosine"][0], [1, 1, -1])


def test_capability_table_from_anchor_data():
    from conftest import ANCHOR

    from utility_jax.analysis import convergence as C

    path = ANCHOR / "utility_analysis" / "capability_scores.csv"
    cap = C.load_capability(path)
    rows = [x for x in path.read_text().splitlines()[1:] if x.strip()]
    assert len(cap) == len({r.split(",")[0] for r in rows}) >= 69 and cap[
        "gpt-4o"
    ] == pytest.approx(88.7)


def test_political_pca_places_a_planted_lean_next_to_the_right_entity():
    """Six entities on a planted left-right axis over 136 policies (plus a second, weaker axis);
    a model planted at entity "R2"'s position plus small noise is nearest to "R2"."""
    from utility_jax.analysis import political as P

    rng = np.random.default_rng(1)
    axis1, axis2 = rng.normal(size=136), rng.normal(size=136)
    pos = {
        "L1": (-2, 0.5),
        "L2": (-1, -0.5),
        "C": (0, 0),
        "R1": (1, 0.5),
        "R2": (2, -0.5),
        "R3": (3, 0.4),
    }
    names = list(pos) + ["model"]
    vecs = [p[0] * axis1 + p[1] * axis2 + 0.3 * rng.normal(size=136) for p in pos.values()]
    vecs.append(2 * axis1 - 0.5 * axis2 + 0.3 * rng.normal(size=136))
    out = P.pca(np.stack(vecs))
    assert out["explained"][0] > 0.5
    assert P.place_among(out["coords"], names, "model", k=1)[0][0] == "R2"
