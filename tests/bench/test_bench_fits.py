"""Smoke tests of the fit benchmarks (see smoke.py)."""

import pytest
from conftest import ANCHOR
from smoke import run_benchmark


@pytest.mark.slow  # cold compiles too long for CI's 20-minute budget (see smoke.py)
def test_bench_fit():
    out = run_benchmark("bench_fit.py", ["--n", "20", "--boot", "2", "--repeats", "1"], "# targets")
    assert "case-III fit time / evalica BT time" in out


def test_bench_convergence():
    run_benchmark("bench_convergence.py", ["--sizes", "4,50"], "N=     50")


@pytest.mark.skipif(not ANCHOR.exists(), reason="needs the reference's data (../shared)")
@pytest.mark.slow  # cold compiles too long for CI's 20-minute budget (see smoke.py)
def test_bench_coverage():
    args = ["--agents", "simulated_llama2", "--seeds", "0", "--methods", "laplace"]
    run_benchmark(
        "bench_coverage.py",
        [*args, "--", "outcomes.limit=20"],
        "mean coverage of nominal 90% intervals",
        env={"UTILITY_JAX_DATA": str(ANCHOR)},
    )
