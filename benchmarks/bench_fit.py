"""Benchmark the fitter on SPEC's synthetic problem, against baselines run in the same process.

    python benchmarks/bench_fit.py [--n 500] [--boot 100] [--repeats 3]

Problem: N outcomes, mu ~ N(0, 1), sigma ~ U[0.5, 1.5], int(2 N log2 N) random pairs with 20 votes
each, 10% of the pairs held out. Prints one table (compile time apart from fit time; fit time;
held-out NLL per vote; Brier score against the *true* probabilities on held-out pairs; sigma
recovery) for our case III / case V / logit fits, the reference's algorithm (Adam, lr 0.01, 1000
full-batch epochs, soft-label BCE; re-written by us in JAX), choix.ilsr_pairwise_dense and
evalica.bradley_terry; then 100 vmapped bootstrap fits against one fit and against the same fits
run one after another, and the one-step bootstrap against full polished refits and a cold fit;
then the target ratios.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

import utility_jax as uj
from utility_jax.core.reference import fit_reference_adam


def problem(n, seed=0):
    r = np.random.default_rng(seed)
    mu = r.normal(size=n)
    sig = r.uniform(0.5, 1.5, n)
    e = int(2 * n * np.log2(n))
    a = r.integers(0, n, e)
    b = (a + r.integers(1, n, e)) % n
    p = stats.norm.cdf((mu[a] - mu[b]) / np.sqrt(sig[a] ** 2 + sig[b] ** 2))
    na = r.binomial(20, p).astype(float)
    ho = r.random(e) < 0.10
    return mu, sig, a, b, na, p, ho


def training_data(n):
    """The problem's training pairs as PairwiseData, plus everything else it drew."""
    mu, sig, a, b, na, p_true, ho = problem(n)
    nt = np.full(len(a), 20.0)
    tr = ~ho
    d = uj.PairwiseData.from_counts(n, a[tr], b[tr], na[tr], nt[tr])
    return d, (mu, sig, a, b, na, nt, p_true, ho)


def timed(fn, repeats):
    """(first call seconds, best of `repeats` later calls, result)."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return first, best, out


def heldout_scores(theta_a_minus_b_logit=None, p=None, na=None, nt=None, p_true=None):
    if p is None:
        p = 1 / (1 + np.exp(-theta_a_minus_b_logit))
    lp = np.log(np.clip(p, 1e-300, 1)) if p.min() > 0 else np.log(np.maximum(p, 1e-300))
    lq = np.log(np.maximum(1 - p, 1e-300))
    nll = -np.sum(na * lp + (nt - na) * lq) / nt.sum()
    return nll, float(np.mean((p - p_true) ** 2))


def polish_table(d, repeats):
    """Each polish mode on the same data: time, status and Newton decrement (the dense polish
    only up to 4,096 parameters: its cost grows as the cube of the size)."""
    size = 2 * d.n_items
    print(f"\npolish modes (case III, {size} parameters; auto = dense up to dense_max):")
    for mode in ("none", "cg", "dense", "auto"):
        if mode == "dense" and size > 4096:
            continue
        first, best, fit = timed(lambda m=mode: uj.fit_thurstonian(d, polish=m), repeats)
        dec = (
            "" if fit.newton_decrement is None else f", decrement {float(fit.newton_decrement):.1e}"
        )
        print(
            f"  polish={mode!r:8}: {1e3 * best:9.1f} ms (compile {first - best:.1f} s), "
            f"status {int(fit.status)} ({fit.reason.split(' (')[0]}){dec}"
        )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--boot", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    n = args.n
    d, (mu, sig, a, b, na, nt, p_true, ho) = training_data(n)
    tr = ~ho
    ah, bh, nah, nth, ph = a[ho], b[ho], na[ho], nt[ho], p_true[ho]
    print(
        f"# {jax.devices()[0].platform.upper()} ({jax.devices()[0].device_kind}); N={n}, "
        f"{tr.sum()} training pairs, {ho.sum()} held out, 20 votes each; jax {jax.__version__}"
    )
    rows = []

    def ours(model):
        first, best, fit = timed(lambda: uj.fit_thurstonian(d, model=model), args.repeats)
        p = np.asarray(uj.predict_proba(fit, ah, bh), dtype=np.float64)
        nll, brier = heldout_scores(p=p, na=nah, nt=nth, p_true=ph)
        srec = stats.spearmanr(np.asarray(fit.sigma), sig).statistic if model == "case3" else np.nan
        conv = f"{bool(fit.converged)}/{int(fit.n_iter)} it"
        rows.append((f"ours {model} (L-BFGS)", first - best, best, nll, brier, srec, conv))
        return best, nll

    t3, nll3 = ours("case3")
    ours("case5")
    ours("logit")

    key = jax.random.key(0)
    first, best, rf = timed(lambda: fit_reference_adam(d, key), args.repeats)
    p = np.asarray(
        stats.norm.cdf(
            (np.asarray(rf.mu)[ah] - np.asarray(rf.mu)[bh])
            / np.sqrt(np.exp(np.asarray(rf.log_var))[ah] + np.exp(np.asarray(rf.log_var))[bh])
        )
    )
    nll_ref, brier = heldout_scores(p=p, na=nah, nt=nth, p_true=ph)
    srec = stats.spearmanr(np.exp(0.5 * np.asarray(rf.log_var)), sig).statistic
    rows.append(
        (
            "reference algorithm (Adam x1000, JAX)",
            first - best,
            best,
            nll_ref,
            brier,
            srec,
            "1000 epochs",
        )
    )

    import choix

    comp = np.zeros((n, n))
    np.add.at(comp, (a[tr], b[tr]), na[tr])
    np.add.at(comp, (b[tr], a[tr]), nt[tr] - na[tr])
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        th = choix.ilsr_pairwise_dense(comp)
    t_choix = (time.perf_counter() - t0) / args.repeats
    nll, brier = heldout_scores(th[ah] - th[bh], na=nah, nt=nth, p_true=ph)
    rows.append(("choix.ilsr_pairwise_dense (logit)", np.nan, t_choix, nll, brier, np.nan, ""))

    import evalica

    X, Y = evalica.Winner.X, evalica.Winner.Y
    xs = np.concatenate([a[tr], a[tr]]).tolist()
    ys = np.concatenate([b[tr], b[tr]]).tolist()
    wins = [X] * tr.sum() + [Y] * tr.sum()
    w = np.concatenate([na[tr], nt[tr] - na[tr]]).tolist()
    ev = evalica.bradley_terry(xs, ys, wins, weights=w)  # warm-up
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        ev = evalica.bradley_terry(xs, ys, wins, weights=w)
    t_eva = (time.perf_counter() - t0) / args.repeats
    th = np.zeros(n)
    th[np.asarray(ev.scores.index, dtype=int)] = np.log(np.asarray(ev.scores.values))
    nll, brier = heldout_scores(th[ah] - th[bh], na=nah, nt=nth, p_true=ph)
    rows.append(
        ("evalica.bradley_terry (logit)", np.nan, t_eva, nll, brier, np.nan, f"{ev.iterations} it")
    )

    print(
        f"\n{'method':<40}{'compile s':>10}{'fit s':>10}{'ho NLL/vote':>13}{'Brier vs true':>15}{'sigma rho':>11}  converged"
    )
    for name, comp_s, fit_s, nll, brier, srec, conv in rows:
        cs = "" if np.isnan(comp_s) else f"{comp_s:.2f}"
        sr = "" if np.isnan(srec) else f"{srec:.3f}"
        print(f"{name:<40}{cs:>10}{fit_s:>10.4f}{nll:>13.5f}{brier:>15.6f}{sr:>11}  {conv}")

    polish_table(d, args.repeats)

    # ---- batched bootstrap fits (warm-started from the main fit, as the pipeline does)
    B = args.boot
    fit0 = uj.fit_thurstonian(d)
    boot = uj.bootstrap_pairwise(jax.random.key(1), d, B)
    binit = jax.tree.map(lambda x: jnp.broadcast_to(x, (B,) + x.shape), fit0)
    batch = {}
    # L-BFGS alone (polish="none"): this section compares batching methods, and under vmap every
    # member would run both branches of the polish's dense Hessian (it took over 10 minutes)
    for method in ("map", "vmap"):
        first, t_b, fits = timed(
            lambda m=method: uj.fit_thurstonian_batch(boot, init=binit, method=m, polish="none"),
            1,
        )
        batch[method] = (t_b, first - t_b, float(jnp.mean(fits.converged)), np.asarray(fits.n_iter))
    singles = [jax.tree.map(lambda x, i=i: x[i], boot) for i in range(B)]

    def warm_lbfgs(data):
        return uj.fit_thurstonian(data, init=fit0, polish="none")

    jax.block_until_ready(warm_lbfgs(singles[0]).mu)
    t0 = time.perf_counter()
    for s in singles:
        jax.block_until_ready(warm_lbfgs(s).mu)
    t_loop = time.perf_counter() - t0
    t1 = timed(lambda: warm_lbfgs(singles[0]), args.repeats)[1]
    print(
        f"\n{B} bootstrap fits (case III, warm-started, L-BFGS alone), one compiled call each way:"
    )
    for method, (t_b, comp_s, conv, its) in batch.items():
        print(
            f"  fit_thurstonian_batch(method={method!r}): {t_b:.3f} s (compile {comp_s:.2f} s), "
            f"converged {conv:.2f}, iterations mean {its.mean():.0f} / max {its.max()}"
        )
    print(
        f"  one after another (Python loop of fit_thurstonian): {t_loop:.3f} s; one warm fit {t1:.4f} s"
    )
    auto = "map" if jax.default_backend() == "cpu" else "vmap"
    t_batch = batch[auto][0]
    # the pipeline's default: one Newton step per resample from the estimate
    t_cold = timed(lambda: uj.fit_thurstonian(d), args.repeats)[1]
    key = jax.random.key(1)
    one = timed(lambda: uj.fit_bootstrap(key, d, B, init=fit0, refit="one_step"), args.repeats)
    full = timed(lambda: uj.fit_bootstrap(key, d, B, init=fit0), 1)
    sd_one = np.asarray(one[2].mu_normalized).std(0)
    sd_full = np.asarray(full[2].mu_normalized).std(0)
    print(
        f"  fit_bootstrap(refit='one_step'): {one[1]:.3f} s; full polished refits "
        f"(refit='full'): {full[1]:.3f} s; one cold fit {t_cold:.4f} s; per-outcome sd "
        f"one-step / full: median {np.median(sd_one / sd_full):.3f}"
    )
    # the pipeline's default members: votes redrawn from the fit, randomised prior centres
    dflt = timed(
        lambda: uj.fit_bootstrap(
            key, d, B, init=fit0, refit="one_step", resample="model", randomize_prior=True
        ),
        args.repeats,
    )
    print(
        f"  the pipeline's default (one-step, resample='model', randomized prior): {dflt[1]:.3f} s"
    )

    print("\n# targets (ratios measured in this run)")
    print(f"case-III fit time / evalica BT time        = {t3 / t_eva:.3f}   (target <= 1)")
    print(f"case-III held-out NLL - reference algorithm = {nll3 - nll_ref:+.5f} (target <= 0)")
    print(f"sequential / batched ({auto}) time for {B} fits = {t_loop / t_batch:.2f}x (target > 1)")
    print(f"{B} full bootstrap refits / one cold fit      = {full[1] / t_cold:.1f}x (target <= 30)")
    print(f"{B} one-step bootstrap members / one cold fit = {one[1] / t_cold:.1f}x (target <= 5)")
    print(f"  the same, the pipeline's default members    = {dflt[1] / t_cold:.1f}x (target <= 5)")
    print(
        f"batched (vmap) {B} fits / one warm fit       = {batch['vmap'][0] / t1:.1f}x (GPU target < 3)"
    )


if __name__ == "__main__":
    main()
