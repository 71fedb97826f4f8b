"""The compute-utilities loop: held-out split, initial graph, active-learning rounds, fits.

This module holds the elicitation loop only (:func:`elicit_and_fit`); :func:`compute_utilities`
composes it with :mod:`~utility_jax.run.evaluation` (metrics, random responder, recovery),
:mod:`~utility_jax.run.uncertainty` (bootstrap, Laplace, posterior) and :mod:`~utility_jax.run.cost`.
The Hydra entry point (``utility-jax compute`` / ``experiments/compute_utilities.py``) only builds
its inputs and writes its result (:mod:`~utility_jax.run.runner`).
"""

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from utility_jax.core import graph as G
from utility_jax.core import metrics as M
from utility_jax.core.data import PairwiseData, bucket_length, pool_orders
from utility_jax.core.fit import fit_thurstonian
from utility_jax.core.laplace import laplace_stderr
from utility_jax.core.likelihood import predict_proba
from utility_jax.core.model import FitConfig, ThurstonianFit, component_labels
from utility_jax.core.reference import fit_reference_adam
from utility_jax.elicit.base import Agent
from utility_jax.io.outcomes import OutcomeSet
from utility_jax.run import evaluation as E
from utility_jax.run import uncertainty as U
from utility_jax.run.config import (
    ComputeUtilitiesConf,
    bayes_config,
    fit_config,
    with_position_bias,
)
from utility_jax.run.cost import cost_metrics
from utility_jax.run.incidents import (
    NoVotesError,
    graph_components,
    no_votes_reason,
    run_incidents,
    vote_incidents,
)

__all__ = [
    "ComputeUtilitiesResult",
    "Elicited",
    "compute_utilities",
    "elicit_and_fit",
    "pair_plan",
    "planned_pairs",
]

log = logging.getLogger("utility_jax")


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
    posterior: Any = None  # utility_jax.core.bayes.Posterior when cfg.bayes.method != "none"
    # [n_draws, N] normalised utility draws per interval kind ("bootstrap", "laplace",
    # "posterior"): derived numbers (analyses) get their intervals by mapping over them
    draws: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    uncertainty: dict[str, U.UtilityDraws] = dataclasses.field(default_factory=dict)

    def utility_draws(self) -> tuple[str, np.ndarray]:
        """The preferred draws (see :data:`~utility_jax.run.uncertainty.INTERVAL_KINDS`)."""
        u = U.preferred(self.uncertainty, need_draws=True)
        if u is None:
            raise ValueError(
                "this run has no utility draws: enable uncertainty.n_bootstrap, "
                "uncertainty.laplace or bayes.method"
            )
        return u.kind, u.draws


@dataclasses.dataclass
class Elicited:
    """What the elicitation loop asked and the final fit (input of the metrics)."""

    fit: ThurstonianFit
    train: PairwiseData
    heldout: PairwiseData | None
    pairs: np.ndarray
    counts: np.ndarray
    rounds_of: np.ndarray
    heldout_pairs: np.ndarray
    heldout_counts: np.ndarray
    rounds: list[dict[str, Any]]
    budget: int
    fit_data: PairwiseData | None = None  # presentation rows the fit saw (position_bias)


def _to_data(n_items, pairs, counts, refusal, pad_to=None, *, agent=None, what="the pairs"):
    """Pairs with votes as data; pairs left without votes are dropped (and reported by
    :mod:`~utility_jax.run.incidents`); no vote at all is a :class:`NoVotesError` naming the cause."""
    wins, total = pool_orders(counts, refusal=refusal)
    keep = total > 0
    if not keep.any():
        reason = no_votes_reason(agent, refusal, what) if agent is not None else "no votes"
        raise NoVotesError(f"{what}: {reason}")
    return PairwiseData.from_counts(
        n_items, pairs[keep, 0], pairs[keep, 1], wins[keep], total[keep], pad_to=pad_to
    )


def _fitter(cfg: ComputeUtilitiesConf, fcfg: FitConfig) -> Callable[..., ThurstonianFit]:
    """``fit(data, key, init=None)`` with the run's solver and core config (built once)."""

    def fit(data: PairwiseData, key, init=None) -> ThurstonianFit:
        if cfg.fitter.solver == "reference_adam":
            return fit_reference_adam(data, key)
        return fit_thurstonian(data, cfg=fcfg, init=init if cfg.fitter.warm_start else None)

    return fit


def _next_pairs(cfg: ComputeUtilitiesConf, fit, pairs, heldout_pairs, r: int, n: int):
    """The pairs of round ``r`` by the configured strategy (seeded by the run seed and ``r``)."""
    g = cfg.graph
    rng = np.random.default_rng([int(cfg.seed), r])
    n_rand = int(round(g.random_share * g.edges_per_round)) if g.strategy != "random" else 0
    chosen = _strategy_pairs(cfg, fit, pairs, heldout_pairs, rng, n, g.edges_per_round - n_rand)
    if n_rand == 0:
        return chosen
    explore = G.select_pairs_random(
        n, np.concatenate([pairs, chosen]), n_rand, rng, exclude=heldout_pairs
    )
    return np.concatenate([chosen, explore])


def _strategy_pairs(cfg: ComputeUtilitiesConf, fit, pairs, heldout_pairs, rng, n: int, n_new):
    g = cfg.graph
    if n_new <= 0:
        return np.zeros((0, 2), dtype=np.int64)
    if g.strategy == "reference":
        return G.select_pairs_reference(
            np.asarray(fit.mu),
            pairs,
            n_new,
            rng,
            exclude=heldout_pairs,
            p_percent=g.p_percent,
            q_percent=g.q_percent,
        )
    if g.strategy == "variance":
        return G.select_pairs_variance(
            np.asarray(fit.mu),
            np.asarray(fit.sigma),
            pairs,
            n_new,
            rng,
            exclude=heldout_pairs,
            votes_per_pair=2 * cfg.elicitation.k,
        )
    return G.select_pairs_random(n, pairs, n_new, rng, exclude=heldout_pairs)


def _prior_scales(cfg: ComputeUtilitiesConf, el: Elicited, fcfg: FitConfig, fit_fn, key):
    """``fitter.prior_scales=cv``: choose the prior scales by K-fold cross-validation on the
    final data and refit with them; ``fixed``: the configured ones. Returns the elicitation
    (with the final fit), the config and fit function every later fit uses, and the report."""
    used = {"mu_prior_scale": fcfg.mu_prior_scale, "logvar_prior_scale": fcfg.logvar_prior_scale}
    if cfg.fitter.prior_scales != "cv" or cfg.fitter.solver != "lbfgs":
        return el, fcfg, fit_fn, {"method": "fixed", **used}
    from utility_jax.core.prior_scales import select_prior_scales

    data = el.fit_data if el.fit_data is not None else el.train
    t0 = time.perf_counter()
    fcfg, info = select_prior_scales(data, fcfg, key)
    fit_fn = _fitter(cfg, fcfg)
    el = dataclasses.replace(el, fit=fit_fn(data, key, el.fit))
    chosen = {k: info["chosen"][k] for k in used}
    log.info("prior scales by %d-fold cross-validation: %s", info["n_folds"], chosen)
    report = {"method": "cv", **chosen, "fixed_were": used, **info}
    return el, fcfg, fit_fn, {**report, "seconds": time.perf_counter() - t0}


def _fit_metrics(cfg: ComputeUtilitiesConf, fit: ThurstonianFit) -> dict[str, Any]:
    """The final fit's entry of ``metrics.json``: solver, convergence and why, and the polish's
    verification numbers where the fit has them."""
    out = {
        "model": cfg.fitter.model,
        "solver": cfg.fitter.solver,
        "position_bias": bool(cfg.fitter.position_bias),
        "converged": bool(fit.converged),
        "reason": fit.reason,
        "n_iter": int(fit.n_iter),
        "grad_norm": float(fit.grad_norm),
        "nll": float(fit.nll),
    }
    if fit.newton_decrement is not None:
        out["newton_decrement"] = float(fit.newton_decrement)
        out["hessian_min_eigenvalue"] = float(fit.min_eigenvalue)
    return out


def _round_record(r, pairs, fit, seconds, heldout) -> dict[str, Any]:
    rec = {
        "round": r,
        "n_train_pairs": int(len(pairs)),
        "fit_seconds": seconds,
        "converged": bool(fit.converged),
        "n_iter": int(fit.n_iter),
    }
    if heldout is not None:
        ev = M.evaluate_pairwise(fit, heldout)
        rec.update(heldout_log_loss=ev["log_loss"], heldout_accuracy=ev["accuracy"])
    return rec


def _ask_heldout(n: int, agent: Agent, el, heldout_pairs, key):
    """The held-out pairs' counts and data (empty counts and None without held-out pairs)."""
    if not len(heldout_pairs):
        return np.zeros((0, 2, 3)), None
    counts = agent.query(heldout_pairs, el.k, key=key)
    data = _to_data(n, heldout_pairs, counts, el.refusal, agent=agent, what="the held-out pairs")
    return counts, data


def _show(bar, agent: Agent, rec: dict, n_pairs: int) -> None:
    """One log line per round, and the progress bar's step."""
    log.info(
        "round %d: %d pairs, %d answers (%d refusals, %d errors), held-out log loss %.4f",
        rec["round"],
        n_pairs,
        agent.stats.answers,
        agent.stats.refusals,
        agent.stats.errors,
        rec.get("heldout_log_loss", float("nan")),
    )
    if bar is None:
        return
    bar.update(1)
    bar.set_postfix(
        pairs=n_pairs,
        answers=agent.stats.answers,
        refusals=agent.stats.refusals,
        errors=agent.stats.errors,
        cache=agent.cache_hits,
        tokens=agent.stats.tokens,
        ho_ll=f"{rec.get('heldout_log_loss', float('nan')):.3f}",
    )


def pair_plan(n: int, cfg: ComputeUtilitiesConf) -> tuple[np.ndarray, np.ndarray, int]:
    """A run's held-out pairs, its initial random-regular graph and its edge budget (SPEC
    section 2), seeded as :func:`elicit_and_fit` draws them."""
    g = cfg.graph
    heldout = G.sample_holdout_pairs(
        n, g.holdout_seed, fraction=g.holdout_fraction, max_pairs=g.holdout_max
    )
    available = n * (n - 1) // 2 - len(heldout)
    budget = min(int(g.edge_multiplier * n * math.log2(n)), available)
    rng = np.random.default_rng(int(cfg.seed))
    initial = G.random_regular_pairs(n, g.initial_degree, rng, exclude=heldout)[:budget]
    return heldout, initial, budget


def planned_pairs(n: int, cfg: ComputeUtilitiesConf) -> tuple[np.ndarray, np.ndarray]:
    """The held-out and training pairs a run asks, for a plan that fits nothing: the real
    held-out pairs and initial graph, then random pairs standing in for the rounds' choices.
    Every round of :func:`elicit_and_fit` adds a full batch until the budget (or until no pair
    is left), so the count is the run's own; which pairs (hence the prompts' lengths) differ."""
    heldout, initial, budget = pair_plan(n, cfg)
    per_round = cfg.graph.edges_per_round
    more = math.ceil(max(budget - len(initial), 0) / per_round) * per_round
    rng = np.random.default_rng([int(cfg.seed), 1])
    extra = G.select_pairs_random(n, initial, more, rng, exclude=heldout)
    return heldout, np.concatenate([initial, extra])


def elicit_and_fit(
    n: int,
    agent: Agent,
    cfg: ComputeUtilitiesConf,
    fit_fn: Callable[..., ThurstonianFit],
    *,
    key_heldout: jax.Array,
    key_rounds: jax.Array,
    progress: Callable[..., Any] | None = None,
) -> Elicited:
    """SPEC section 2: held-out pairs, a random regular graph, then rounds of new pairs chosen by
    the graph strategy, refitting (warm-started) after each round until the edge budget.

    ``fit_fn(data, key, init)`` fits one round; round ``r`` asks with ``fold_in(key_rounds, r)``.
    """
    g, el = cfg.graph, cfg.elicitation
    k_hold, k_rounds = key_heldout, key_rounds
    heldout_pairs, initial, budget = pair_plan(n, cfg)
    available = n * (n - 1) // 2 - len(heldout_pairs)
    pad = bucket_length(min(budget + g.edges_per_round, available))
    n_rounds = 1 + math.ceil(max(budget - len(initial), 0) / g.edges_per_round)
    bar = progress(total=n_rounds, desc=f"{cfg.name} N={n}", unit="round") if progress else None

    heldout_counts, heldout = _ask_heldout(n, agent, el, heldout_pairs, k_hold)

    pairs, rounds_of = initial, np.zeros(len(initial), int)
    counts = agent.query(initial, el.k, key=jax.random.fold_in(k_rounds, 0))
    fit, rounds, r = None, [], 0
    while True:
        data = _to_data(
            n, pairs, counts, el.refusal, pad_to=pad, agent=agent, what="the training pairs"
        )
        fit_data = data
        if cfg.fitter.position_bias:  # one row per presentation order: the shift is estimable
            fit_data = PairwiseData.from_order_counts(
                n, pairs, counts, refusal=el.refusal, pad_to=2 * pad
            )
        t0 = time.perf_counter()
        fit = fit_fn(fit_data, jax.random.fold_in(k_rounds, 10_000 + r), fit)
        jax.block_until_ready(fit.mu)
        rec = _round_record(r, pairs, fit, time.perf_counter() - t0, heldout)
        rounds.append(rec)
        _show(bar, agent, rec, len(pairs))
        if len(pairs) >= budget:
            break
        r += 1
        # like the reference, every round adds a full batch: N=510 gives 510 + 18 x 500 = 9,510
        new = _next_pairs(cfg, fit, pairs, heldout_pairs, r, n)
        if len(new) == 0:
            break
        pairs = np.concatenate([pairs, new])
        counts = np.concatenate(
            [counts, agent.query(new, el.k, key=jax.random.fold_in(k_rounds, r))]
        )
        rounds_of = np.concatenate([rounds_of, np.full(len(new), r)])
    if bar is not None:
        bar.close()
    return Elicited(
        fit,
        data,
        heldout,
        pairs,
        counts,
        rounds_of,
        heldout_pairs,
        heldout_counts,
        rounds,
        budget,
        fit_data if cfg.fitter.position_bias else None,
    )


#: candidate pairs above this count make pseudolabels refuse (the reference lists them all)
MAX_PSEUDOLABEL_CANDIDATES = 50_000_000


def _point_metrics(fit, train, heldout) -> dict[str, float]:
    tr = M.evaluate_pairwise(fit, train)
    out = {"train_accuracy": tr["accuracy"], "train_log_loss": tr["log_loss"]}
    if heldout is not None:
        ho = M.evaluate_pairwise(fit, heldout)
        out.update(heldout_accuracy=ho["accuracy"], heldout_log_loss=ho["log_loss"])
    return out


def _pseudolabel_fit(cfg, el: Elicited, fit_fn, key) -> tuple[Elicited, dict[str, Any]]:
    """The reference's final fit: the asked data plus hard labels on every unasked, non-held-out
    pair the fit predicts with ``p >= threshold``. Returns the elicitation with that fit and data
    (for the intervals) and the metrics with and without pseudolabels."""
    f, n = cfg.fitter, el.train.n_items
    if n * (n - 1) // 2 > MAX_PSEUDOLABEL_CANDIDATES:
        raise ValueError(
            f"fitter.pseudolabels: {n} outcomes have {n * (n - 1) // 2} pairs, more than "
            f"{MAX_PSEUDOLABEL_CANDIDATES} candidates; turn pseudolabels off"
        )
    cand = G.candidate_pairs(n, el.pairs, el.heldout_pairs)
    p = np.asarray(predict_proba(el.fit, cand[:, 0], cand[:, 1]), dtype=np.float64)
    pairs, labels = G.pseudolabels(p, cand, f.pseudolabel_threshold)
    train_pl = G.with_pseudolabels(el.train, pairs, labels, f.pseudolabel_weight)
    t0 = time.perf_counter()
    fit_pl = fit_fn(train_pl, key, el.fit)
    with_pl = _point_metrics(fit_pl, el.train, el.heldout)
    with_pl["train_accuracy_with_pseudolabels"] = M.evaluate_pairwise(fit_pl, train_pl)["accuracy"]
    info = {
        "threshold": f.pseudolabel_threshold,
        "weight": f.pseudolabel_weight,
        "n_candidates": int(len(cand)),
        "n_added": int(len(pairs)),
        "fit_seconds": time.perf_counter() - t0,
        "converged": bool(fit_pl.converged),
        "without": _point_metrics(el.fit, el.train, el.heldout),
        "with": with_pl,
    }
    return dataclasses.replace(el, fit=fit_pl, train=train_pl), info


def _uncertainty(cfg, el: Elicited, fcfg, k_boot, key, progress):
    """Every configured kind of interval: ``({kind: UtilityDraws}, posterior or None)``."""
    u, found, post = cfg.uncertainty, {}, None
    lbfgs = cfg.fitter.solver == "lbfgs"
    if el.fit_data is not None:  # the intervals of a position-biased fit come from its rows
        el = dataclasses.replace(el, train=el.fit_data)
    if u.n_bootstrap > 0 and lbfgs:
        found["bootstrap"] = U.bootstrap_draws(
            k_boot,
            el.train,
            el.fit,
            u.n_bootstrap,
            u.level,
            fcfg,
            u.bootstrap_interval,
            refit=u.bootstrap_refit,
            randomize_prior=u.bootstrap_randomize_prior,
            resample=u.bootstrap_resample,
        )
    if u.laplace and lbfgs:
        found["laplace"] = U.laplace_draws(
            el.fit,
            el.train,
            fcfg,
            u.level,
            n_draws=max(u.n_bootstrap, 200),
            rng=np.random.default_rng([int(cfg.seed), 11]),
        )
    if cfg.bayes.method != "none":
        found["posterior"], post = U.posterior_draws(
            jax.random.fold_in(key, 99),
            el.train,
            el.fit,
            bayes_config(
                cfg.bayes,
                cfg.fitter.model,
                position_bias=bool(cfg.fitter.position_bias),
                bias_prior_scale=cfg.fitter.bias_prior_scale,
            ),
            cfg.bayes.method,
            hdi_prob=cfg.bayes.hdi_prob,
            progress_bar=progress is not None,
        )
        if el.heldout is not None:
            found["posterior"].metrics.update(E.posterior_predictive_metrics(post, el.heldout))
    return found, post


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
    k_hold, k_rounds, k_boot, k_rand = jax.random.split(key, 4)
    cfg = with_position_bias(cfg)  # a config built in code may still say auto
    fcfg = fit_config(cfg.fitter)  # the core config, built once for every fit of the run
    fit_fn = _fitter(cfg, fcfg)
    el = elicit_and_fit(
        n, agent, cfg, fit_fn, key_heldout=k_hold, key_rounds=k_rounds, progress=progress
    )
    el, fcfg, fit_fn, scales = _prior_scales(cfg, el, fcfg, fit_fn, jax.random.fold_in(key, 23))
    pl_info, el_fit = None, el  # el_fit: the data and fit the intervals are drawn around
    if cfg.fitter.pseudolabels:
        el_fit, pl_info = _pseudolabel_fit(cfg, el, fit_fn, jax.random.fold_in(key, 17))
        el = dataclasses.replace(el, fit=el_fit.fit)  # metrics on the asked pairs, final fit
    votes = 2 * cfg.elicitation.k
    # triads among the pairs that kept votes (a pair without votes has no empirical probability)
    v = el.train.valid()
    voted = np.stack([v["idx_a"], v["idx_b"]], 1)
    triads = M.sample_triads(voted, cfg.n_triads, np.random.default_rng([int(cfg.seed), 7]))
    ev = E.evaluate_run(el.fit, el.train, el.heldout, triads)
    metrics: dict[str, Any] = {
        "n_outcomes": n,
        "n_train_pairs": int(len(el.pairs)),
        "n_heldout_pairs": int(len(el.heldout_pairs)),
        "budget": el.budget,
        "votes_per_pair": votes,
        "train": ev.pop("train"),
        "fit": {**_fit_metrics(cfg, el.fit), "prior_scales": scales},
        **ev,
    }
    metrics["random_responder"] = E.random_responder(
        k_rand, lambda d, k: fit_fn(d, k, None), el.train, el.heldout, triads, votes
    )
    metrics["order"] = _order_metrics(cfg, el, fcfg, n)
    metrics["cost"] = cost_metrics(agent)
    metrics["incidents"] = _incident_metrics(cfg, el, agent, n)
    if pl_info is not None:
        metrics["pseudolabels"] = pl_info
    found, posterior = _uncertainty(cfg, el_fit, fcfg, k_boot, key, progress)
    for kind, u in found.items():
        metrics["bayes" if kind == "posterior" else kind] = u.metrics
    if len(found) > 1:
        metrics["interval_agreement"] = U.interval_agreement(found)
    if true_utilities is not None:
        rec = E.recovery(
            el.fit,
            el.heldout,
            *true_utilities,
            model=cfg.fitter.model,
            link=cfg.agent.link,
        )
        metrics["recovery"] = {**rec, **U.coverage(found, true_utilities[0])}
    metrics["warnings"] = E.degenerate_warnings(metrics, el.fit, cfg.fitter.model)
    metrics["rounds"] = el.rounds
    return _result(outcomes, el, metrics, found, posterior, true_utilities)


def _order_metrics(cfg: ComputeUtilitiesConf, el: Elicited, fcfg: FitConfig, n: int) -> dict:
    """``metrics.order``: first-shown share, order consistency, per-presentation held-out log
    loss, and the position shift with its 90% Laplace intervals where it was fitted."""
    ho_pres = None
    if len(el.heldout_pairs) and el.heldout_counts[:, :, :2].sum() > 0:
        ho_pres = PairwiseData.from_order_counts(
            n, el.heldout_pairs, el.heldout_counts, refusal=cfg.elicitation.refusal
        )
    order = E.order_metrics(el.counts, el.fit, ho_pres)
    if el.fit_data is not None and cfg.fitter.solver == "lbfgs":
        se = laplace_stderr(el.fit, el.fit_data, cfg=fcfg)
        for name in ("position_bias", "position_bias_standardized"):  # 90% Laplace intervals
            b, s = order[name], float(se[name])
            order.update({f"{name}_se": s, f"{name}_lo": b - 1.6449 * s})
            order[f"{name}_hi"] = b + 1.6449 * s
    return order


def _incident_metrics(cfg: ComputeUtilitiesConf, el: Elicited, agent: Agent, n: int) -> dict:
    """``metrics.incidents``: pairs without votes and why, components, error rates."""
    refusal = cfg.elicitation.refusal
    train_inc = vote_incidents(n, el.pairs, el.counts, refusal)
    train_inc["components"] = graph_components(np.asarray(component_labels(el.train)))
    heldout_inc = vote_incidents(n, el.heldout_pairs, el.heldout_counts, refusal)
    return run_incidents(
        agent,
        {"train": train_inc, "heldout": heldout_inc},
        cfg.agent.max_error_rate,
        cfg.agent.max_refusal_rate,
    )


def _result(outcomes, el: Elicited, metrics, found, posterior, true_utilities):
    return ComputeUtilitiesResult(
        outcomes=outcomes,
        fit=el.fit,
        train=el.train,
        heldout=el.heldout,
        train_pairs=el.pairs,
        train_counts=el.counts,
        train_round=el.rounds_of,
        heldout_pairs=el.heldout_pairs,
        heldout_counts=el.heldout_counts,
        rounds=el.rounds,
        metrics=metrics,
        intervals={k: v for u in found.values() for k, v in u.columns.items()},
        true_mu=None if true_utilities is None else np.asarray(true_utilities[0]),
        true_sigma=None if true_utilities is None else np.asarray(true_utilities[1]),
        posterior=posterior,
        draws={k: u.draws for k, u in found.items() if u.draws is not None},
        uncertainty=found,
    )
