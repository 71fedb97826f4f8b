"""Calibration of the utility intervals at paper scale, against planted truth.

    UTILITY_JAX_DATA=../shared/anchor-data/emergent-values \\
        python benchmarks/bench_coverage.py [--agents simulated_llama2,simulated_qwen25]
            [--seeds 0,1] [--methods bootstrap,bootstrap_full,bootstrap_votes,laplace,svi,nuts] [--chains 4] [-- overrides...]

Each run is ``experiment=paper`` (the paper's 510 outcomes, active learning, 18 rounds, K=10 per
order, 1,000 held-out pairs) with a simulated agent that answers from a reference model's fitted
utilities (the planted truth). For every agent x seed x method it prints the share of outcomes
whose true normalised utility lies inside the nominal 90% interval (target 0.85-0.95), the
interval's median width, the fit's convergence (a verified minimum?) and the seconds each method
took; then a breakdown of the misses (bias of the point estimate against the interval's width).
Needs the paper's data (``UTILITY_JAX_DATA``); extra Hydra overrides go after ``--``.
"""

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

from utility_jax.run.runner import run_compute_utilities

warnings.simplefilter("ignore", FutureWarning)
CONF = Path(__file__).resolve().parents[1] / "conf"


def run(agent: str, seed: int, method: str, chains: int, extra: list[str]):
    over = [
        "experiment=paper",
        f"agent={agent}",
        f"seed={seed}",
        "plots=false",
        "progress=false",
        "uncertainty.level=0.9",
    ]
    if method.startswith("bootstrap"):  # bootstrap[_full][_votes][_basic|_percentile]
        parts = method.split("_")[1:]
        kind = next((p for p in parts if p in ("basic", "percentile")), "normal")
        refit = "full" if "full" in parts else "one_step"
        resample = "votes" if "votes" in parts else "model"
        over += ["uncertainty.laplace=false", f"uncertainty.bootstrap_interval={kind}"]
        over += [
            f"uncertainty.bootstrap_refit={refit}",
            f"uncertainty.bootstrap_resample={resample}",
        ]
    elif method == "laplace":
        over += ["uncertainty.n_bootstrap=0"]
    else:
        over += ["uncertainty.n_bootstrap=0", "uncertainty.laplace=false", f"bayes={method}"]
        over += ["bayes.hdi_prob=0.9"]
        if method == "nuts":
            over += [f"bayes.num_chains={chains}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=over + extra)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = run_compute_utilities(cfg, tmp)
        seconds = time.perf_counter() - t0
    return res, seconds


def miss_breakdown(res, kind: str) -> str:
    u = res.uncertainty[kind]
    tmu = res.true_mu
    tz = (tmu - tmu.mean()) / tmu.std()
    est = np.asarray(res.fit.mu_normalized)
    half = 0.5 * (u.hi - u.lo)
    err = est - tz
    centre = 0.5 * (u.hi + u.lo)
    return (
        f"rmse(point - truth) {np.sqrt(np.mean(err**2)):.3f}, median half-width {np.median(half):.3f}, "
        f"slope(point on truth) {np.polyfit(tz, est, 1)[0]:.3f}, "
        f"|interval centre - point| median {np.median(np.abs(centre - est)):.3f}"
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", default="simulated_llama2,simulated_qwen25")
    ap.add_argument("--seeds", default="0")
    # bootstrap: the defaults (one-step members, votes drawn from the fit, randomised prior,
    # normal interval); _full: full refits; _votes: votes drawn from the observed shares;
    # _basic / _percentile: that interval instead
    ap.add_argument(
        "--methods", default="bootstrap,bootstrap_full,bootstrap_votes,laplace,svi,nuts"
    )
    ap.add_argument("--chains", type=int, default=4)
    args, extra = ap.parse_known_args()
    extra = [e for e in extra if e != "--"]
    if not os.environ.get("UTILITY_JAX_DATA"):
        sys.exit(
            "set UTILITY_JAX_DATA to the paper's data (the anchor-data/emergent-values folder)"
        )
    rows = []
    for agent in args.agents.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            for method in args.methods.split(","):
                res, sec = run(agent, seed, method, args.chains, extra)
                kind = {"laplace": "laplace", "svi": "posterior", "nuts": "posterior"}.get(
                    method, "bootstrap"
                )
                rec = res.metrics["recovery"]
                cov = rec[f"{kind}_coverage_of_true_normalised_mu"]
                u = res.uncertainty[kind]
                fit = res.metrics["fit"]
                m = res.metrics.get("bayes" if kind == "posterior" else kind, {})
                extra_info = ""
                if method == "nuts":
                    extra_info = f" max R-hat {m.get('max_rhat', float('nan')):.4f}"
                if method == "laplace":
                    extra_info = f" min eig {m.get('hessian_min_eigenvalue', float('nan')):.4g}"
                rows.append((agent, seed, method, cov))
                print(
                    f"{agent:18s} seed {seed} {method:9s} coverage {cov:.3f}  median width "
                    f"{np.nanmedian(u.hi - u.lo):.3f}  verified={fit['converged']} "
                    f"({fit.get('reason', '')[:24]})  run {sec:.0f} s{extra_info}",
                    flush=True,
                )
                print("    " + miss_breakdown(res, kind), flush=True)
    print("\nmean coverage of nominal 90% intervals (target 0.85-0.95):")
    for method in args.methods.split(","):
        for agent in args.agents.split(","):
            c = [r[3] for r in rows if r[0] == agent and r[2] == method]
            print(f"  {method:9s} {agent:18s} {np.mean(c):.3f} over {len(c)} seed(s)")


if __name__ == "__main__":
    main()
