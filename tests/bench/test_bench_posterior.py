"""Smoke tests of the posterior and elicitation benchmarks (see smoke.py)."""

import pytest
from smoke import run_benchmark


# slow tier: the fast tier's time budget (CI under 20 minutes) has no room for its NUTS and SVI
# compiles; tests/test_bayes.py runs the same samplers
@pytest.mark.slow
def test_bench_bayes():
    args = ["--n", "10", "--draws", "20", "--warmup", "20", "--chains", "1", "--svi-steps", "50"]
    run_benchmark("bench_bayes.py", args, "SVI lowrank")


@pytest.mark.slow  # CI budget: the fast tier must stay under 20 minutes cold
def test_bench_elicit():
    args = ["--pairs", "2", "--hidden", "32", "--layers", "1", "--batch", "2", "--k-agree", "2"]
    run_benchmark("bench_elicit.py", [*args, "--seeds", "1", "--outcomes", "12"], "variance")
