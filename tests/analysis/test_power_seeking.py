"""The power seeking analysis: its core on known answers (fast) and end to end on a planted agent (slow)."""

import numpy as np
import pytest
from analysis_helpers import _run
from scipy import stats

from utility_jax.analysis import power as W


def test_subset_correlations_match_scipy():
    rng = np.random.default_rng(2)
    u, s = rng.normal(size=30), rng.normal(size=30)
    m = np.arange(30) < 12
    out = W.subset_correlations(
        u, s, {"all": np.ones(30, bool), "first": m, "tiny": np.arange(30) < 2}
    )
    assert out["all"] == pytest.approx(stats.pearsonr(u, s).statistic)
    assert out["first"] == pytest.approx(stats.pearsonr(u[m], s[m]).statistic)
    assert np.isnan(out["tiny"])


@pytest.mark.slow
@pytest.mark.parametrize("beta_c,beta_n", [(-1.0, 1.0), (1.0, -1.0)])
def test_power_seeking_recovers_planted_signs(tmp_path, beta_c, beta_n):
    """The sign of the planted utility-power relation on each subset is recovered with its 90%
    interval excluding 0; fitness-related r > 0.5 (planted beta_fitness = 1)."""
    n = _run(
        tmp_path,
        "power_seeking",
        f"analysis.beta_coercive={beta_c}",
        f"analysis.beta_non_coercive={beta_n}",
    )
    c, nc = n["power"]["coercive"], n["power"]["non_coercive"]
    assert np.sign(c["estimate"]) == np.sign(beta_c) and np.sign(nc["estimate"]) == np.sign(beta_n)
    assert c["hi"] < 0 if beta_c < 0 else c["lo"] > 0
    assert nc["hi"] < 0 if beta_n < 0 else nc["lo"] > 0
    assert n["fitness"]["fitness_related"]["estimate"] > 0.5
