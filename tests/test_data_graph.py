"""PairwiseData builders and validation; held-out split, initial graph, active learning."""

import numpy as np
import pytest

import utility_jax as uj
from utility_jax.core import graph as G


def test_from_counts_pads_to_bucket_and_masks():
    d = uj.PairwiseData.from_counts(5, [0, 1, 2], [1, 2, 3], [1, 2, 3.5], [4, 4, 4])
    assert d.n_rows == 64 and d.n_pairs == 3
    assert np.asarray(d.mask).sum() == 3
    assert (
        uj.bucket_length(65) == 128
        and uj.bucket_length(1000) == 1024
        and uj.bucket_length(1024) == 1024
    )
    np.testing.assert_allclose(d.valid()["n_a"], [1, 2, 3.5])


@pytest.mark.parametrize(
    "args,match",
    [
        ((3, [0], [3], [1], [2]), "row 0.*outside"),
        ((3, [1], [1], [1], [2]), "row 0.*itself"),
        ((3, [0, 1], [1, 2], [1, 3], [2, 2]), r"row 1.*\[0, votes_total\]"),
        ((3, [0], [1], [0], [0]), "positive"),
        ((3, [0], [1], [np.nan], [2]), "non-finite"),
        ((3, [0, 1], [1], [1], [2]), "idx_b has 1 rows"),
        ((0, [], [], [], []), "n_items"),
    ],
)
def test_from_counts_errors_name_the_row(args, match):
    with pytest.raises(ValueError, match=match):
        uj.PairwiseData.from_counts(*args)


def test_from_records_pools_both_orders_and_half_votes():
    recs = [
        (0, 1, "A"),
        (0, 1, "A"),
        (0, 1, "B"),
        (0, 1, "refusal"),  # 0 shown first
        (1, 0, "B"),
        (1, 0, "A"),  # 1 shown first: "B" is a vote for 0
        (2, 1, "A"),
    ]
    d = uj.PairwiseData.from_records(3, recs)
    v = d.valid()
    np.testing.assert_array_equal(v["idx_a"], [0, 1])
    np.testing.assert_array_equal(v["idx_b"], [1, 2])
    np.testing.assert_allclose(v["n_a"], [2 + 0.5 + 1, 0])  # pair (1, 2): 2 won once
    np.testing.assert_allclose(v["n_total"], [6, 1])
    dropped = uj.PairwiseData.from_records(3, recs, refusal="drop").valid()
    np.testing.assert_allclose(dropped["n_a"], [3, 0])
    np.testing.assert_allclose(dropped["n_total"], [5, 1])
    with pytest.raises(ValueError, match="record 0.*'C'"):
        uj.PairwiseData.from_records(3, [(0, 1, "C")])


def test_unrank_lists_every_pair_once():
    for n in (2, 3, 7, 20):
        k = np.arange(n * (n - 1) // 2)
        p = G._unrank(k, n)
        i, j = np.triu_indices(n, 1)
        np.testing.assert_array_equal(p, np.stack([i, j], 1))


def test_holdout_pairs_seeded_distinct_and_sized():
    h1 = uj.sample_holdout_pairs(510, 42)
    h2 = uj.sample_holdout_pairs(510, 42)
    np.testing.assert_array_equal(h1, h2)
    assert len(h1) == 1000  # min(5% of 129,795, 1000)
    assert len({tuple(p) for p in h1.tolist()}) == 1000
    assert np.all(h1[:, 0] < h1[:, 1]) and h1.max() < 510
    assert len(uj.sample_holdout_pairs(86, 42)) == int(0.05 * 86 * 85 / 2)
    assert not np.array_equal(uj.sample_holdout_pairs(100, 1), uj.sample_holdout_pairs(100, 2))


@pytest.mark.parametrize("n,degree", [(10, 2), (51, 2), (40, 3), (30, 6), (86, 20), (40, 25)])
def test_random_regular_graph(n, degree):
    excl = uj.sample_holdout_pairs(n, 0, fraction=0.1)
    e = uj.random_regular_pairs(n, degree, np.random.default_rng(3), exclude=excl)
    assert len(e) == n * degree // 2
    np.testing.assert_array_equal(G.pair_degrees(n, e), np.full(n, degree))
    keys = set(map(tuple, e.tolist()))
    assert len(keys) == len(e) and not keys & set(map(tuple, excl.tolist()))
    with pytest.raises(ValueError, match="odd"):
        uj.random_regular_pairs(5, 3, 0)


def test_reference_rule_prefers_close_and_rarely_asked_pairs():
    n = 60
    mu = np.linspace(-3, 3, n)
    queried = uj.random_regular_pairs(n, 2, 0)
    excl = uj.sample_holdout_pairs(n, 42)
    new = uj.select_pairs_reference(mu, queried, 50, np.random.default_rng(1), exclude=excl)
    assert len(new) == 50 and len(set(map(tuple, new.tolist()))) == 50
    taken = set(map(tuple, np.concatenate([queried, excl]).tolist()))
    assert not set(map(tuple, new.tolist())) & taken
    i, j = np.triu_indices(n, 1)
    all_diff = np.abs(mu[i] - mu[j])
    new_diff = np.abs(mu[new[:, 0]] - mu[new[:, 1]])
    # the widened P% threshold still selects far closer pairs than average
    assert new_diff.mean() < 0.25 * all_diff.mean()
    again = uj.select_pairs_reference(mu, queried, 50, np.random.default_rng(1), exclude=excl)
    np.testing.assert_array_equal(new, again)


def test_reference_rule_returns_all_when_few_remain():
    n = 6
    queried = np.array([(i, j) for i in range(n) for j in range(i + 1, n)][:-3])
    new = uj.select_pairs_reference(np.zeros(n), queried, 10, 0)
    assert len(new) == 3


def test_variance_rule_prefers_uncertain_pairs_between_poorly_known_outcomes():
    n = 60
    mu = np.linspace(-3, 3, n)
    sigma = np.ones(n)
    # outcomes 0..14 are well known (asked against each other many times), 15..29 barely
    known = np.array([(i, j) for i in range(15) for j in range(i + 1, 15)])
    queried = np.concatenate([known, uj.random_regular_pairs(n, 2, 0)])
    queried = np.unique(np.sort(queried, 1), axis=0)
    new = uj.select_pairs_variance(mu, sigma, queried, 40, 0)
    assert len(new) == 40 and not set(map(tuple, new.tolist())) & set(map(tuple, queried.tolist()))
    assert np.mean(new.min(1) >= 15) > 0.8  # mostly pairs among the poorly known outcomes
    i, j = np.triu_indices(n, 1)
    assert np.abs(mu[new[:, 0]] - mu[new[:, 1]]).mean() < 0.5 * np.abs(mu[i] - mu[j]).mean()
    # chunked greedy updates spread one batch over outcomes
    assert np.bincount(new.ravel(), minlength=n).max() <= 8
    np.testing.assert_array_equal(new, uj.select_pairs_variance(mu, sigma, queried, 40, 0))
    # the fitted variances enter the choice (the reference's rule ignores them)
    s2 = sigma.copy()
    s2[20] = 5.0
    assert not np.array_equal(uj.select_pairs_variance(mu, s2, queried, 40, 0), new)


def test_pseudolabel_counts_on_a_planted_fit_match_scipy():
    import jax.numpy as jnp
    from scipy import stats

    rng = np.random.default_rng(3)
    n = 40
    mu, sigma = rng.normal(0, 1.5, n), rng.uniform(0.3, 1.0, n)
    fit = uj.ThurstonianFit(
        jnp.asarray(mu, jnp.float32),
        jnp.asarray(np.log(sigma**2), jnp.float32),
        jnp.asarray(True),
        jnp.asarray(0),
        jnp.asarray(0.0),
        jnp.asarray(0.0),
    )
    asked = uj.random_regular_pairs(n, 3, 0)
    cand = G.candidate_pairs(n, asked)
    p = np.asarray(uj.predict_proba(fit, cand[:, 0], cand[:, 1]))
    pairs, labels = G.pseudolabels(p, cand, 0.95)
    # the reference's rule, written out with scipy: Phi((mu_a - mu_b) / sqrt(var_a + var_b))
    z = (mu[cand[:, 0]] - mu[cand[:, 1]]) / np.sqrt(sigma[cand[:, 0]] ** 2 + sigma[cand[:, 1]] ** 2)
    q = stats.norm.cdf(z)
    sure = (q >= 0.95) | (q <= 0.05)
    margin = np.abs(np.abs(q - 0.5) - 0.45) > 1e-4  # float32 may flip a pair on the threshold
    assert abs(len(pairs) - sure.sum()) <= (~margin).sum()
    assert 0 < len(pairs) < len(cand)
    got = {tuple(r): lab for r, lab in zip(pairs.tolist(), labels.tolist(), strict=True)}
    for (a, b), qq, m in zip(cand.tolist(), q, margin, strict=True):
        if m and (qq >= 0.95 or qq <= 0.05):
            assert got[(a, b)] == float(qq >= 0.95)
    d = uj.simulate_pairwise(__import__("jax").random.key(0), mu, sigma, asked, k=10)
    d2 = G.with_pseudolabels(d, pairs, labels, weight=2.0)
    v = d2.valid()
    assert len(v["idx_a"]) == len(asked) + len(pairs)
    np.testing.assert_allclose(v["n_total"][len(asked) :], 2.0 * 20)  # 2 x an asked pair's votes
    with pytest.raises(ValueError, match="threshold"):
        G.pseudolabels(p, cand, 0.4)


def test_pseudolabel_run_reports_both_fits(tmp_path):
    from test_configs import _compose

    from utility_jax.run.runner import run_compute_utilities

    # position bias off in both (pseudolabels turn its default off): the same "without" fit
    over = (
        "progress=false",
        "plots=false",
        "uncertainty.n_bootstrap=0",
        "outcomes.limit=60",
        "fitter.position_bias=false",
    )
    r = run_compute_utilities(_compose(*over, "fitter.pseudolabels=true"), tmp_path / "pl")
    pl = r.metrics["pseudolabels"]
    n = 60
    assert (
        pl["n_candidates"]
        == n * (n - 1) // 2 - r.metrics["n_train_pairs"] - r.metrics["n_heldout_pairs"]
    )
    assert 0 < pl["n_added"] <= pl["n_candidates"]
    # the reported training accuracy counting pseudolabels is the reference's inflated number
    assert pl["with"]["train_accuracy_with_pseudolabels"] > pl["with"]["train_accuracy"]
    assert r.metrics["heldout"]["accuracy"] == pytest.approx(pl["with"]["heldout_accuracy"])
    assert (
        "pseudolabels (the reference's final fit)" in (tmp_path / "pl" / "summary.txt").read_text()
    )
    # off: no pseudolabel block, and the held-out metrics are the "without" fit's
    r0 = run_compute_utilities(_compose(*over), tmp_path / "nopl")
    assert "pseudolabels" not in r0.metrics
    assert r0.metrics["heldout"]["log_loss"] == pytest.approx(pl["without"]["heldout_log_loss"])
