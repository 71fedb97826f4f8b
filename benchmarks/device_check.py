"""One short check on whatever accelerator is present (GPU or TPU; a CPU runs it too, slowly).

    python benchmarks/device_check.py              # about 5-8 minutes on one H100
    python benchmarks/device_check.py --quick      # a smoke run (the test suite uses it)

Prints, each with its time on this device:

* the fitter (case III, default settings, a verified minimum) at N = 10,000 and N = 100,000
  (``--quick``: 200 and 1,000), against L-BFGS alone in the same process;
* 100 bootstrap fits in one vectorised call against one fit;
* NUTS on the fitter's N = 500 problem (4 chains, 500 + 1,000 draws; ``--quick``: tiny);
* prompts per second of the jax log-prob backend on a random model of Qwen2.5-0.5B's shape
  (``--quick``: a 2-layer model), batch 32;
* SFT steps, full and LoRA, float32 and bfloat16, against PyTorch on the same device
  (``benchmarks/bench_sft.py``'s workers; skipped where torch is not installed).
"""

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from bench_fit import timed, training_data  # noqa: E402

import utility_jax as uj  # noqa: E402


def check_fits(sizes):
    for n in sizes:
        d, _ = training_data(n)
        _, t_lbfgs, _ = timed(lambda d=d: uj.fit_thurstonian(d, polish="none"), 1)
        first, t, fit = timed(lambda d=d: uj.fit_thurstonian(d), 1)
        print(
            f"fit N={n:>7,}: {t:8.3f} s (compile+run {first:.1f} s), {fit.reason.split(' (')[0]}; "
            f"L-BFGS alone {t_lbfgs:.3f} s, ratio {t / t_lbfgs:.2f}",
            flush=True,
        )


def check_bootstrap(n, boot):
    d, _ = training_data(n)
    fit = uj.fit_thurstonian(d)
    _, t1, _ = timed(lambda: uj.fit_thurstonian(d), 2)
    key = jax.random.key(0)
    _, tb, fits = timed(lambda: uj.fit_bootstrap(key, d, boot, init=fit), 1)
    conv = float(jnp.mean(fits.converged))
    print(
        f"{boot} bootstrap refits N={n}: {tb:.3f} s = {tb / t1:.1f}x one fit; converged {conv:.2f}"
    )


def check_nuts(n, warmup, draws, chains):
    from utility_jax.core import bayes as B
    from utility_jax.core.bayes_config import BayesConfig

    d, _ = training_data(n)
    cfg = BayesConfig(num_warmup=warmup, num_samples=draws, num_chains=chains)
    fit = uj.fit_thurstonian(d)
    t0 = time.perf_counter()
    post = B.run_nuts(jax.random.key(0), d, cfg, init=fit)
    jax.block_until_ready(post.mu)
    print(f"NUTS N={n}, {chains} chains, {warmup}+{draws} draws: {time.perf_counter() - t0:.1f} s")


def check_logprob(layers, batch, n_prompts):
    from flax import nnx

    from utility_jax.finetune.config import LMConfig
    from utility_jax.finetune.model import CausalLM, last_logits_jit

    cfg = LMConfig(
        "qwen2", 151936, 896, 4864, layers, 14, 2, 64, 1e-6, 1e6, None, True, True, False
    )
    model = CausalLM(cfg, nnx.Rngs(0), param_dtype=jnp.bfloat16, compute_dtype=jnp.bfloat16)
    r = np.random.default_rng(0)
    ids = jnp.asarray(r.integers(0, 1000, (batch, 96)), jnp.int32)
    mask = jnp.ones_like(ids)
    jax.block_until_ready(last_logits_jit(model, ids, mask))
    t0 = time.perf_counter()
    for _ in range(n_prompts // batch):
        out = last_logits_jit(model, ids, mask)
    jax.block_until_ready(out)
    rate = (n_prompts // batch) * batch / (time.perf_counter() - t0)
    print(
        f"jax log-prob, Qwen2.5-0.5B shape x {layers} layers, bf16, batch {batch}: {rate:.0f} prompts/s"
    )


def check_sft(preset, modes):
    if importlib.util.find_spec("torch") is None:
        print("SFT against PyTorch: skipped (torch is not installed)")
        return
    import subprocess

    cmd = [sys.executable, str(HERE / "bench_sft.py"), "--preset", preset, "--modes", modes]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [
        ln for ln in out.stdout.splitlines() if "ratio" in ln or ln.startswith(("full", "lora"))
    ]
    print("\n".join(lines) if out.returncode == 0 else f"bench_sft failed: {out.stderr[-2000:]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    dev = jax.devices()[0]
    print(
        f"# {dev.platform.upper()} ({dev.device_kind}) x {jax.device_count()}; jax {jax.__version__}"
    )
    t0 = time.perf_counter()
    if a.quick:
        check_fits([200, 1000])
        check_bootstrap(100, 10)
        check_nuts(30, 20, 20, 2)
        check_logprob(2, 8, 16)
        check_sft("small", "lora")
    else:
        check_fits([10_000, 100_000])
        check_bootstrap(500, 100)
        check_nuts(500, 500, 1000, 4)
        check_logprob(24, 32, 512)
        check_sft("0.5b", "full,lora,full_bf16,lora_bf16")
    print(f"# total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
