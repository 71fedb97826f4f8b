"""Benchmark Bayesian inference on the foundation benchmark's synthetic problem.

    python benchmarks/bench_bayes.py [--n 500] [--draws 1000] [--chains 2]

N outcomes (500), mu ~ N(0, 1), sigma ~ U[0.5, 1.5], int(2 N log2 N) random pairs, 20 votes each,
10% held out (the problem of ``bench_fit.py``). Prints NUTS (vectorised chains, initialised at the
MAP) and SVI (AutoNormal, low-rank MVN) wall time, R-hat, ESS per second, held-out
posterior-predictive log loss, and the median width of the 90% intervals against the vote-level
bootstrap's and the Laplace approximation's, all measured in this process.
Targets (issue): NUTS under 5 minutes on a 2-core CPU with every R-hat < 1.01; SVI under 30 s.
"""

import argparse
import time
import warnings

import jax
import numpy as np
from bench_fit import training_data

import utility_jax as uj
from utility_jax.core import bayes as B

warnings.simplefilter("ignore", FutureWarning)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--svi-steps", type=int, default=3000)
    ap.add_argument("--skip-nuts", action="store_true")
    args = ap.parse_args()
    n = args.n
    d, (mu, sig, a, b, na, nt, p_true, ho) = training_data(n)
    tr = ~ho
    dev = jax.devices()[0]
    print(
        f"# {dev.platform.upper()} ({dev.device_kind}); N={n}, {tr.sum()} training pairs, "
        f"{ho.sum()} held out; jax {jax.__version__}"
    )
    t0 = time.perf_counter()
    fit = uj.fit_thurstonian(d)
    jax.block_until_ready(fit.mu)
    t_map = time.perf_counter() - t0
    sd = float(np.std(np.asarray(fit.mu)))
    se = np.asarray(uj.laplace_stderr(fit, d)["mu"])
    boots = np.asarray(uj.fit_bootstrap(jax.random.key(1), d, 100, init=fit).mu)
    w_boot = np.subtract(*np.quantile(boots, [0.95, 0.05], axis=0))
    w_lap = 2 * 1.6449 * se
    print(
        f"MAP fit {t_map:.2f} s (incl. compile); 100 bootstrap fits and Laplace for the interval widths"
    )

    def report(name, post, extra=""):
        lo, hi = B.hdi(post.mu, 0.9)
        w = hi - lo
        p = np.clip(B.posterior_predictive_proba(post, a[ho], b[ho]), 1e-12, 1 - 1e-12)
        ll = -(na[ho] * np.log(p) + (nt[ho] - na[ho]) * np.log1p(-p)).sum() / nt[ho].sum()
        dg = post.diagnostics
        print(
            f"{name:<26}{dg['seconds']:>9.1f}{dg.get('max_rhat', np.nan):>10.4f}"
            f"{dg.get('ess_per_second', np.nan):>10.2f}{ll:>11.5f}"
            f"{np.median(w / w_boot):>12.2f}{np.median(w / w_lap):>12.2f}  {extra}"
        )

    print(
        f"\n{'method':<26}{'wall s':>9}{'max R-hat':>10}{'ESS/s':>10}{'ho NLL':>11}"
        f"{'width/boot':>12}{'width/Lapl':>12}  notes"
    )
    if not args.skip_nuts:
        cfg = B.BayesConfig(num_warmup=args.warmup, num_samples=args.draws, num_chains=args.chains)
        post = B.run_nuts(jax.random.key(0), d, cfg, init=fit)
        dg = post.diagnostics
        report(
            f"NUTS {args.chains}x{args.draws}",
            post,
            f"min bulk ESS {dg['min_ess_bulk']:.0f}, divergences {dg['divergences']}, "
            f"leapfrog/draw {dg['mean_leapfrog_steps']:.0f}, share R-hat>1.01 "
            f"{np.mean(_rhats(post) > 1.01):.3f}",
        )
    for guide in ("normal", "lowrank"):
        cfg = B.BayesConfig(svi_guide=guide, svi_steps=args.svi_steps)
        post = B.run_svi(jax.random.key(2), d, cfg, init=fit)
        report(f"SVI {guide}", post, f"ELBO loss {post.diagnostics['final_elbo_loss']:.1f}")
    print(f"(interval widths on the model's own scale; sd of the MAP means {sd:.3f})")


def _rhats(post):
    import arviz as az

    r = az.rhat(post.inference_data)
    return np.concatenate([np.asarray(r[v]).ravel() for v in ("mu", "log_sigma") if v in r])


if __name__ == "__main__":
    main()
