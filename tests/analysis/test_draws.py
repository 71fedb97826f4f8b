"""Intervals on derived numbers (utility_jax.analysis.draws): known answers."""

import numpy as np
import pytest

from utility_jax.analysis.draws import interval, map_draws


def test_interval_and_map_draws_known_answers():
    d = np.linspace(0, 1, 101)
    iv = interval(0.5, d, 0.9)
    assert iv == {
        "estimate": 0.5,
        "lo": pytest.approx(0.05),
        "hi": pytest.approx(0.95),
        "draws_shift": 0.0,
    }
    # bootstrap draws: the spread re-centred on the estimate, the shift reported
    iv = interval(0.8, d, 0.9, "bootstrap", bounds=(0.0, 1.0))
    assert (
        iv["lo"] == pytest.approx(0.35)
        and iv["hi"] == 1.0
        and iv["draws_shift"] == pytest.approx(-0.3)
    )
    # posterior draws: the equal-tailed posterior interval itself
    iv = interval(0.8, d, 0.9, "posterior")
    assert (iv["lo"], iv["hi"]) == (pytest.approx(0.05), pytest.approx(0.95))
    # log scale for positive numbers: a factor of e either side stays a factor of e
    iv = interval(2.0, np.exp(np.linspace(-1, 1, 101)), 1.0, log=True)
    assert (iv["lo"], iv["hi"]) == (pytest.approx(2 / np.e), pytest.approx(2 * np.e))
    rng = np.random.default_rng(0)
    u = rng.normal(size=(200, 10))
    out = map_draws(lambda x: {"mean": float(x.mean()), "n": len(x)}, 0.8, (u[0],), (u,))
    assert out["n"] == 10 and out["mean"]["estimate"] == pytest.approx(u[0].mean())
    means = u.mean(1)
    want = u[0].mean() + np.quantile(means, 0.1) - np.median(means)
    assert out["mean"]["lo"] == pytest.approx(want)


def test_map_draws_clips_each_named_number_to_its_bounds():
    """A dict of bounds clips the numbers it names and leaves the others open (the lotteries'
    correlation cannot pass 1, its z-scored MAE cannot go below 0)."""
    from utility_jax.analysis import lotteries

    draws = np.linspace(-3.0, 3.0, 21)[:, None]

    def fn(x):
        return {
            "pearson_r": 0.99 + 0.01 * float(x[0]),
            "mae_z": 0.01 * float(x[0]),
            "free": float(x[0]),
        }

    out = map_draws(fn, 0.9, (np.zeros(1),), (draws,), bounds=lotteries.BOUNDS)
    assert out["pearson_r"]["hi"] == 1.0 and out["pearson_r"]["lo"] < 0.99
    assert out["mae_z"]["lo"] == 0.0
    assert out["free"]["lo"] < -2 and out["free"]["hi"] > 2
