"""Smoke tests of the prior-scale and fine-tuning benchmarks (see smoke.py)."""

import pytest
from smoke import run_benchmark


@pytest.mark.slow  # cold compiles too long for CI's 20-minute budget (see smoke.py)
def test_bench_prior_scales():
    args = ["--n", "20", "--degrees", "3", "--seeds", "1"]
    run_benchmark("bench_prior_scales.py", args, "CV - best fixed")


# slow tier: a PyTorch and a JAX training worker do not fit the fast tier's time budget (CI
# under 20 minutes); tests/finetune runs the same SFT steps
@pytest.mark.slow
def test_bench_sft():
    args = [
        "--preset",
        "small",
        "--steps",
        "1",
        "--seq",
        "16",
        "--batch",
        "1",
        "--modes",
        "lora,lora_bf16",
    ]
    run_benchmark("bench_sft.py", args, "ratio JAX/PyTorch")


@pytest.mark.slow  # a fit, a bootstrap, NUTS, a 0.5B-vocabulary forward and a torch worker
def test_device_check_quick():
    out = run_benchmark("device_check.py", ["--quick"], "# total")
    assert "verified minimum" in out and "prompts/s" in out
