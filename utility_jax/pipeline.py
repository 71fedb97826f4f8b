"""The compute-utilities loop: held-out split, initial graph, active-learning rounds, fits.

This is the shell between an :class:`~utility_jax.elicit.Agent` and the pure core; the Hydra entry
point (``experiments/compute_utilities.py``) only builds its inputs and writes its result.
"""

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from utility_jax import graph as G
from utility_jax import metrics as M
from utility_jax.config import ComputeUtilitiesConf, bayes_config, fit_config
from utility_jax.data import PairwiseData, bucket_length
from utility_jax.elicit.base import Agent
from utility_jax.outcomes import OutcomeSet
from utility_jax.reference import fit_reference_adam
from utility_jax.simulate import pool_orders
from utility_jax.thurstonian import (
    ThurstonianFit,
    fit_bootstrap,
    fit_thurstonian,
    laplace_stderr,
    log_likelihood_pairwise,
)

__all__ = ["ComputeUtilitiesResult", "compute_utilities"]


@dataclasses.dataclass
class ComputeUtilitiesResult:
    """Everything a run produced (arrays are NumPy; ``fit`` is the final fit)."""

    outcomes: OutcomeSet
    fit: ThurstonianFit
    train: PairwiseData
    heldout: PairwiseData
    train_pairs: np.ndarray  # [E, 2]
    train_counts: np.ndarray  # [E, 2, 3] order x (A, B, refusal)
    train_round: np.ndarray  # [E] round in which each pair was asked
    heldout_pairs: np.ndarray
    heldout_counts: np.ndarray
    rounds: list[dict[str, Any]]
    metrics: dict[str, Any]
    intervals: dict[str, np.ndarray]
    true_mu: np.ndarray | None = None
    true_sigma: np.ndarray | None = None
    posterior: Any = None  # utility_jax.bayes.Posterior when cfg.bayes.method != "none"
    # [n_draws, N] normalised utility draws per interval kind ("bootstrap", "laplace",
    # "posterior"): derived numbers (analyses) get their intervals by mapping over them
    draws: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def utility_draws(self) -> tuple[str, np.ndarray]:
        """The preferred draws (posterior, else bootstrap, else Laplace) and their kind."""
        for kind in ("posterior", "bootstrap", "laplace"):
            if kind in self.draws:
                return kind, self.draws[kind]
        raise ValueError(
            "this run has no utility draws: enable uncertainty.n_bootstrap, uncertainty.laplace "
            "or bayes.method"
        )


def _to_data(n_items, pairs, counts, refusal, pad_to=None) -> PairwiseData:
    wins, total = pool_orders(counts, refusal=refusal)
    keep = total > 0
    if not keep.any():
        raise RuntimeError("every answer was a dropped refusal: no votes to fit")
    return PairwiseData.from_counts(
        n_items, pairs[keep, 0], pairs[keep, 1], wins[keep], total[keep], pad_to=pad_to
    )


def _fit(cfg: ComputeUtilitiesConf, data: PairwiseData, key, init):
    if cfg.fitter.solver == "reference_adam":
        return fit_reference_adam(data, key)
    fcfg = fit_config(cfg.fitter)
    return fit_thurstonian(data, cfg=fcfg, init=init if cfg.fitter.warm_start else None)


@jax.jit
def _random_like(key, data: PairwiseData) -> PairwiseData:
    """The same pairs answered by a 50/50 responder with the same vote totals."""
    n = jnp.round(data.n_total)
    n_a = jax.random.binomial(key, n, 0.5, shape=n.shape).astype(data.n_a.dtype)
    return data.with_votes(jnp.where(data.mask, n_a, 0.0), jnp.where(data.mask, n, 1.0))


def compute_utilities(
    outcomes: OutcomeSet,
    agent: Agent,
    cfg: ComputeUtilitiesConf,
    *,
    key: jax.Array,
    progress: Callable[..., Any] | None = None,
    true_utilities: tuple[np.ndarray, np.ndarray] | None = None,
) -> ComputeUtilitiesResult:
    """Run the elicitation/fit loop of SPEC section 2 and compute every metric.

    Args:
      outcomes: the outcome set (``N`` outcomes).
      agent: answers the pairs (both orders, ``cfg.elicitation.k`` samples each).
      cfg: the validated run config.
      key: PRNG key; per-round keys are ``fold_in(key, round)``.
      progress: optional ``tqdm``-like factory (``progress(total=..., desc=...)``).
      true_utilities: known ``(mu, sigma)`` (simulated agents) to report recovery against.
    """
    n = len(outcomes)
    if n < 3:
        raise ValueError(f"need at least 3 outcomes, got {n} ({outcomes.source})")
    g, el = cfg.graph, cfg.elicitation
    seed = int(cfg.seed)
    rng = np.random.default_rng(seed)
    k_hold, k_rounds, k_boot, k_rand = jax.random.split(key, 4)

    heldout_pairs = G.sample_holdout_pairs(
        n, g.holdout_seed, fraction=g.holdout_fraction, max_pairs=g.holdout_max
    )
    available = n * (n - 1) // 2 - len(heldout_pairs)
    budget = min(int(g.edge_multiplier * n * math.log2(n)), available)
    pad = bucket_length(min(budget + g.edges_per_round, available))
    initial = G.random_regular_pairs(n, g.initial_degree, rng, exclude=heldout_pairs)[:budget]
    n_rounds = 1 + math.ceil(max(budget - len(initial), 0) / g.edges_per_round)
    bar = progress(total=n_rounds, desc=f"{cfg.name} N={n}", unit="round") if progress else None

    heldout_counts = (
        agent.query(heldout_pairs, el.k, key=k_hold) if len(heldout_pairs) else np.zeros((0, 2, 3))
    )
    heldout = _to_data(n, heldout_pairs, heldout_counts, el.refusal) if len(heldout_pairs) else None

    pairs, counts, rounds_of = (
        initial,
        agent.query(initial, el.k, key=jax.random.fold_in(k_rounds, 0)),
        np.zeros(len(initial), int),
    )
    fit, rounds, r = None, [], 0
    while True:
        data = _to_data(n, pairs, counts, el.refusal, pad_to=pad)
        t0 = time.perf_counter()
        fit = _fit(cfg, data, jax.random.fold_in(k_rounds, 10_000 + r), fit)
        jax.block_until_ready(fit.mu)
        rec = {
            "round": r,
            "n_train_pairs": int(len(pairs)),
            "fit_seconds": time.perf_counter() - t0,
            "converged": bool(fit.converged),
            "n_iter": int(fit.n_iter),
        }
        if heldout is not None:
            ev = M.evaluate_pairwise(fit, heldout)
            rec.update(heldout_log_loss=ev["log_loss"], heldout_accuracy=ev["accuracy"])
        rounds.append(rec)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(
                pairs=len(pairs),
                answers=agent.stats.answers,
                refusals=agent.stats.refusals,
                errors=agent.stats.errors,
                cache=getattr(agent, "cache_hits", 0),
                tokens=agent.stats.tokens,
                ho_ll=f"{rec.get('heldout_log_loss', float('nan')):.3f}",
            )
        if len(pairs) >= budget:
            break
        r += 1
        # like the reference, every round adds a full batch: N=510 gives 510 + 18 x 500 = 9,510
        n_new = g.edges_per_round
        sub = jax.random.fold_in(k_rounds, r)
        sel_seed = np.random.default_rng([seed, r])
        if g.strategy == "reference":
            new = G.select_pairs_reference(
                np.asarray(fit.mu),
                pairs,
                n_new,
                sel_seed,
                exclude=heldout_pairs,
                p_percent=g.p_percent,
                q_percent=g.q_percent,
            )
        elif g.strategy == "variance":
            new = G.select_pairs_variance(
                np.asarray(fit.mu),
                np.asarray(fit.sigma),
                pairs,
                n_new,
                sel_seed,
                exclude=heldout_pairs,
                votes_per_pair=2 * el.k,
            )
        else:
            cand = G._candidates(n, pairs, heldout_pairs)
            new = cand[
                np.sort(sel_seed.choice(len(cand), size=min(n_new, len(cand)), replace=False))
            ]
        if len(new) == 0:
            break
        pairs = np.concatenate([pairs, new])
        counts = np.concatenate([counts, agent.query(new, el.k, key=sub)])
        rounds_of = np.concatenate([rounds_of, np.full(len(new), r)])
    if bar is not None:
        bar.close()

    # ---------------------------------------------------------------- metrics
    fcfg = fit_config(cfg.fitter)
    train_eval = M.evaluate_pairwise(fit, data)
    metrics: dict[str, Any] = {
        "n_outcomes": n,
        "n_train_pairs": int(len(pairs)),
        "n_heldout_pairs": int(len(heldout_pairs)),
        "budget": budget,
        "votes_per_pair": 2 * el.k,
        "train": train_eval,
        "fit": {
            "model": cfg.fitter.model,
            "solver": cfg.fitter.solver,
            "converged": bool(fit.converged),
            "n_iter": int(fit.n_iter),
            "grad_norm": float(fit.grad_norm),
            "nll": float(fit.nll),
        },
        "tie_rule": "p >= 0.5 counts as preferring the first outcome (the reference's rule)",
    }
    triads = M.sample_triads(pairs, cfg.n_triads, np.random.default_rng([seed, 7]))
    metrics["transitivity"] = M.transitivity(data, triads)
    if heldout is not None:
        metrics["heldout"] = M.evaluate_pairwise(fit, heldout)

    # the 50/50 random responder with the same graph and vote totals, fitted the same way
    kr1, kr2 = jax.random.split(k_rand)
    rtrain = _random_like(kr1, data)
    rfit = _fit(cfg, rtrain, kr1, None)
    rand = {
        "average_confidence_closed_form": M.random_responder_confidence(2 * el.k),
        "train": M.evaluate_pairwise(rfit, rtrain),
        "transitivity": M.transitivity(rtrain, triads),
    }
    if heldout is not None:
        rand["heldout"] = M.evaluate_pairwise(rfit, _random_like(kr2, heldout))
    metrics["random_responder"] = rand

    stats_ = agent.stats.as_dict()
    asked = max(stats_["answers"], 1)
    metrics["cost"] = {
        **stats_,
        "refusal_rate": stats_["refusals"] / asked,
        "error_rate": stats_["errors"] / max(stats_["answers"] + stats_["errors"], 1),
        "cache_hits": int(getattr(agent, "cache_hits", 0)),
    }
    other = getattr(agent, "other_mass", None)
    if other:
        metrics["cost"]["mean_probability_outside_AB"] = float(np.mean(other))

    # ---------------------------------------------------------------- intervals
    intervals: dict[str, np.ndarray] = {}
    draws: dict[str, np.ndarray] = {}
    u = cfg.uncertainty
    alpha = (1 - u.level) / 2
    if u.n_bootstrap > 0 and cfg.fitter.solver == "lbfgs":
        t0 = time.perf_counter()
        boots = fit_bootstrap(k_boot, data, u.n_bootstrap, cfg=fcfg, init=fit)
        mu_b = np.asarray(boots.mu_normalized)
        draws["bootstrap"] = mu_b
        intervals["bootstrap_lo"] = np.quantile(mu_b, alpha, axis=0)
        intervals["bootstrap_hi"] = np.quantile(mu_b, 1 - alpha, axis=0)
        intervals["bootstrap_sd"] = mu_b.std(axis=0)
        metrics["bootstrap"] = {
            "n": u.n_bootstrap,
            "level": u.level,
            "seconds": time.perf_counter() - t0,
            "converged_share": float(np.mean(np.asarray(boots.converged))),
        }
    if u.laplace and cfg.fitter.solver == "lbfgs":
        se = laplace_stderr(fit, data, cfg=fcfg)
        metrics["laplace"] = {
            "hessian_min_eigenvalue": float(se["min_eigenvalue"]),
            "positive_definite": bool(se["min_eigenvalue"] > 0),
        }
        sd = float(np.std(np.asarray(fit.mu))) or 1.0
        z = stats.norm.ppf(1 - alpha)
        intervals["laplace_se"] = np.asarray(se["mu"]) / sd
        mu_n = np.asarray(fit.mu_normalized)
        intervals["laplace_lo"] = mu_n - z * intervals["laplace_se"]
        intervals["laplace_hi"] = mu_n + z * intervals["laplace_se"]
        if metrics["laplace"]["positive_definite"]:
            eps = np.random.default_rng([seed, 11]).standard_normal((max(u.n_bootstrap, 200), n))
            draws["laplace"] = mu_n + eps * intervals["laplace_se"]

    # ---------------------------------------------------------------- posterior
    posterior = None
    if cfg.bayes.method != "none":
        from utility_jax import bayes as BZ

        bcfg = bayes_config(cfg.bayes, cfg.fitter.model)
        k_bayes = jax.random.fold_in(key, 99)
        if cfg.bayes.method == "nuts":
            posterior = BZ.run_nuts(
                k_bayes, data, bcfg, init=fit, progress_bar=progress is not None
            )
        else:
            posterior = BZ.run_svi(k_bayes, data, bcfg, init=fit)
        summ = BZ.summarize_posterior(posterior, cfg.bayes.hdi_prob)
        draws["posterior"] = np.asarray(posterior.normalized()[0])
        intervals["posterior_mean"] = summ["mu_normalized_mean"]
        intervals["posterior_sd"] = summ["mu_normalized_sd"]
        intervals["posterior_lo"] = summ["mu_normalized_hdi_lo"]
        intervals["posterior_hi"] = summ["mu_normalized_hdi_hi"]
        intervals["posterior_sigma_mean"] = summ["sigma_normalized_mean"]
        bm: dict[str, Any] = {
            "method": cfg.bayes.method,
            "hdi_prob": cfg.bayes.hdi_prob,
            **posterior.diagnostics,
        }
        bm["warnings"] = (
            BZ.diagnostics_ok(posterior.diagnostics) if cfg.bayes.method == "nuts" else []
        )
        if heldout is not None:
            v = heldout.valid()
            p = np.clip(
                BZ.posterior_predictive_proba(posterior, v["idx_a"], v["idx_b"]), 1e-12, 1 - 1e-12
            )
            ll = v["n_a"] * np.log(p) + (v["n_total"] - v["n_a"]) * np.log1p(-p)
            pe = v["n_a"] / v["n_total"]
            bm["heldout_log_loss_posterior_predictive"] = float(-ll.sum() / v["n_total"].sum())
            bm["heldout_accuracy_posterior_predictive"] = float(np.mean((p >= 0.5) == (pe >= 0.5)))
        metrics["bayes"] = bm

    # the three kinds of interval, side by side
    widths = {
        name: intervals[f"{name}_hi"] - intervals[f"{name}_lo"]
        for name in ("bootstrap", "laplace", "posterior")
        if f"{name}_lo" in intervals
    }
    names = sorted(widths)
    agreement = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            # outcomes with a zero or undefined interval width are left out of the comparison
            ok = (widths[b] > 0) & np.isfinite(widths[a])
            agreement[f"{a}_vs_{b}"] = {
                "median_width_ratio": float(np.median(widths[a][ok] / widths[b][ok]))
                if ok.any()
                else np.nan,
                "width_spearman": float(stats.spearmanr(widths[a][ok], widths[b][ok]).statistic)
                if ok.sum() > 2
                else np.nan,
            }
    if agreement:
        metrics["interval_agreement"] = agreement

    # ---------------------------------------------------------------- recovery
    if true_utilities is not None:
        tmu, tsig = (np.asarray(x, dtype=np.float64) for x in true_utilities)
        rec = {
            "spearman_mu": float(stats.spearmanr(np.asarray(fit.mu), tmu).statistic),
            "pearson_mu": float(np.corrcoef(np.asarray(fit.mu), tmu)[0, 1]),
        }
        if cfg.fitter.model == "case3":
            # compare on a common scale: the true sigmas divided by the true means' sd
            tn = tsig / tmu.std()
            rec["spearman_sigma"] = float(
                stats.spearmanr(np.asarray(fit.sigma_normalized), tn).statistic
            )
        if heldout is not None:
            ll_true = -float(
                log_likelihood_pairwise(
                    jnp.asarray(tmu, heldout.n_a.dtype),
                    jnp.asarray(np.log(tsig**2), heldout.n_a.dtype),
                    heldout,
                    cfg.agent.link if cfg.agent.link == "logit" else "probit",
                )
            )
            rec["heldout_log_loss_true_utilities"] = ll_true / float(
                np.asarray(heldout.n_total)[np.asarray(heldout.mask)].sum()
            )
        tz = (tmu - tmu.mean()) / tmu.std()
        for name in ("bootstrap", "laplace", "posterior"):
            if f"{name}_lo" in intervals:
                inside = (intervals[f"{name}_lo"] <= tz) & (tz <= intervals[f"{name}_hi"])
                rec[f"{name}_coverage_of_true_normalised_mu"] = float(inside.mean())
        metrics["recovery"] = rec

    metrics["rounds"] = rounds
    return ComputeUtilitiesResult(
        outcomes=outcomes,
        fit=fit,
        train=data,
        heldout=heldout,
        train_pairs=pairs,
        train_counts=counts,
        train_round=rounds_of,
        heldout_pairs=heldout_pairs,
        heldout_counts=heldout_counts,
        rounds=rounds,
        metrics=metrics,
        intervals=intervals,
        true_mu=None if true_utilities is None else np.asarray(true_utilities[0]),
        true_sigma=None if true_utilities is None else np.asarray(true_utilities[1]),
        posterior=posterior,
        draws=draws,
    )
