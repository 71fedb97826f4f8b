"""`converged` means a verified minimum, at every size: the fitter's default settings (float32)
from N = 4 to N = 100,000 outcomes.

    python benchmarks/bench_convergence.py [--sizes 4,500,10000,100000]

For each N: the problem of ``bench_fit.py`` (mu ~ N(0, 1), sigma ~ U[0.5, 1.5], 2 N log2 N random
pairs, 20 votes each), one case III fit: status, Newton decrement, the Hessian's smallest
eigenvalue, Spearman against the truth and wall time (first call, compilation included; then a
second call). N = 4: a Bradley-Terry maximum-likelihood fit against scipy's float64 solution.
"""

import argparse
import time

import jax
import numpy as np
from bench_fit import problem
from scipy import optimize, stats

import utility_jax as uj


def four_item_bt(seeds=10) -> float:
    worst = 0.0
    a, b = np.triu_indices(4, 1)
    for seed in range(seeds):
        r = np.random.default_rng(seed)
        mu = r.normal(size=4)
        nt = np.full(6, 20.0)
        na = np.clip(r.binomial(20, 1 / (1 + np.exp(-(mu[a] - mu[b])))), 1, 19).astype(float)
        fit = uj.fit_thurstonian(
            uj.PairwiseData.from_counts(4, a, b, na, nt), model="logit", mu_prior_scale=None
        )

        def nll(m, na=na, nt=nt):
            d = m[a] - m[b]
            return np.sum(na * np.logaddexp(0, -d) + (nt - na) * np.logaddexp(0, d)) + m.sum() ** 2

        ref = optimize.minimize(nll, np.zeros(4), method="BFGS", options=dict(gtol=1e-12)).x
        worst = max(worst, float(np.abs(np.asarray(fit.mu, float) - (ref - ref.mean())).max()))
    return worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="4,500,10000,100000")
    args = ap.parse_args()
    print(f"device: {jax.devices()[0]}")
    print(
        f"4-item Bradley-Terry, default float32 vs float64 MLE: max |diff| {four_item_bt():.2e} "
        "(target 1e-4)"
    )
    for n in [int(s) for s in args.sizes.split(",")]:
        mu, _, a, b, na, _, _ = problem(n)
        d = uj.PairwiseData.from_counts(n, a, b, na, np.full(len(a), 20.0))
        t0 = time.perf_counter()
        fit = jax.block_until_ready(uj.fit_thurstonian(d))
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        jax.block_until_ready(uj.fit_thurstonian(d).mu)
        second = time.perf_counter() - t0
        rho = stats.spearmanr(np.asarray(fit.mu), mu).statistic
        print(
            f"N={n:>7} pairs={len(a):>8} converged={bool(fit.converged)} "
            f"decrement={float(fit.newton_decrement):.1e} "
            f"min eig={float(fit.min_eigenvalue):.3g} spearman={rho:.4f} "
            f"first {first:.1f} s, again {second:.2f} s  ({fit.reason})",
            flush=True,
        )


if __name__ == "__main__":
    main()
