"""Shared helpers of the analysis tests (composed configs, end-to-end runs, small fits)."""

import json

import jax
from conftest import ANCHOR
from test_configs import _compose

import utility_jax as uj
from utility_jax.analysis.registry import run_analysis

EXP = ANCHOR / "utility_analysis" / "experiments"


def templates_json() -> dict:
    """The paper's prompt templates as extracted from the reference's source (derived/)."""
    return json.loads((ANCHOR / "derived" / "prompt_templates.json").read_text())


def _run(tmp_path, name, *overrides):
    cfg = _compose(f"experiment={name}", "progress=false", "uncertainty.n_bootstrap=40", *overrides)
    numbers = run_analysis(cfg, tmp_path)
    assert (tmp_path / "analysis.json").exists() and (tmp_path / "summary.txt").exists()
    if cfg.plots:
        assert (tmp_path / f"{name}.png").stat().st_size > 5000
    return numbers


def _fit_all_pairs_subset(mu, sigma, degree, seed, **fit_kw):
    n = len(mu)
    pairs = uj.random_regular_pairs(n, degree, seed)
    d = uj.simulate_pairwise(jax.random.key(seed), mu, sigma, pairs, k=10)
    return d, uj.fit_thurstonian(d, **fit_kw)
