"""Prior scales from the data (cross-validation) against every fixed scale, on sparse designs.

    python benchmarks/bench_prior_scales.py [--n 200] [--degrees 3,6,37] [--seeds 5]

N outcomes with planted case III utilities (mu ~ N(0, 1.5^2), sigma ~ U[0.3, 1.0], the simulated
agent's defaults); each outcome in ``degree`` random pairs (3 and 6: sparse designs such as triad
studies; 37: about the paper's density), 10 votes per pair. For every fixed pair of prior scales
on the grid and for the cross-validated choice (5 folds), prints the expected held-out log loss
per vote on 5,000 fresh pairs (cross-entropy against the true probabilities, so no vote noise),
averaged over seeds. Target (issue): the CV choice no worse than the best fixed scales within
noise (the printed standard error over seeds).
"""

import argparse
import time

import jax
import numpy as np
from scipy import stats

import utility_jax as uj
from utility_jax.core.prior_scales import LOGVAR_GRID, MU_GRID, select_prior_scales


def expected_log_loss(fit, a, b, p_true):
    q = np.clip(np.asarray(uj.predict_proba(fit, a, b), np.float64), 1e-12, 1 - 1e-12)
    return float(np.mean(-(p_true * np.log(q) + (1 - p_true) * np.log(1 - q))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--degrees", default="3,6,37")
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    n = args.n
    for degree in [int(d) for d in args.degrees.split(",")]:
        rows: dict[str, list[float]] = {}
        t_cv = 0.0
        for seed in range(args.seeds):
            r = np.random.default_rng(seed)
            mu, sig = 1.5 * r.normal(size=n), r.uniform(0.3, 1.0, n)
            pairs = uj.random_regular_pairs(n, degree, seed)
            d = uj.simulate_pairwise(jax.random.key(seed), mu, sig, pairs, k=5)
            ta = r.integers(0, n, 5000)
            tb = (ta + r.integers(1, n, 5000)) % n
            p_true = stats.norm.cdf((mu[ta] - mu[tb]) / np.sqrt(sig[ta] ** 2 + sig[tb] ** 2))
            base = uj.FitConfig()
            for s_mu in MU_GRID:
                for s_lv in LOGVAR_GRID:
                    f = uj.fit_thurstonian(d, mu_prior_scale=s_mu, logvar_prior_scale=s_lv)
                    rows.setdefault(f"fixed mu {s_mu:g}, logvar {s_lv:g}", []).append(
                        expected_log_loss(f, ta, tb, p_true)
                    )
            t0 = time.perf_counter()
            chosen, info = select_prior_scales(d, base, jax.random.key(100 + seed))
            t_cv += time.perf_counter() - t0
            f = uj.fit_thurstonian(d, cfg=chosen)
            rows.setdefault("cross-validated", []).append(expected_log_loss(f, ta, tb, p_true))
        print(f"\nN={n}, {degree} pairs per outcome, {args.seeds} seeds (CV {t_cv:.1f} s in all)")
        best_fixed = min((np.mean(v), k) for k, v in rows.items() if k.startswith("fixed"))
        for k, v in rows.items():
            v = np.asarray(v)
            mark = "  <- best fixed" if k == best_fixed[1] else ""
            default = "  (the default)" if k == "fixed mu 10, logvar 2" else ""
            print(
                f"  {k:30s} {v.mean():.4f} +- {v.std(ddof=1) / np.sqrt(len(v)):.4f}{mark}{default}"
            )
        cv = np.asarray(rows["cross-validated"])
        best = np.asarray(rows[best_fixed[1]])
        diff = cv - best
        print(
            f"  CV - best fixed: {diff.mean():+.4f} +- {diff.std(ddof=1) / np.sqrt(len(diff)):.4f}"
            " (paired over seeds)"
        )


if __name__ == "__main__":
    main()
