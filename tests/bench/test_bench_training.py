"""Smoke tests of the prior-scale and fine-tuning benchmarks (see smoke.py)."""

from smoke import run_benchmark


def test_bench_prior_scales():
    args = ["--n", "20", "--degrees", "3", "--seeds", "1"]
    run_benchmark("bench_prior_scales.py", args, "CV - best fixed")


def test_bench_sft():
    args = ["--preset", "small", "--steps", "1", "--seq", "16", "--batch", "1"]
    run_benchmark("bench_sft.py", args, "ratio JAX/PyTorch")
