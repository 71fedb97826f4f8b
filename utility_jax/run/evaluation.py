"""How good a run's fit is: coherence metrics, the random-responder baseline, recovery of known
utilities and posterior-predictive scores. Every number goes through :mod:`utility_jax.core.metrics`
(log space, no clipping)."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from utility_jax.core import metrics as M
from utility_jax.core.data import PairwiseData
from utility_jax.core.likelihood import log_likelihood_pairwise
from utility_jax.core.model import ThurstonianFit, get_model

__all__ = [
    "TIE_RULE",
    "random_like",
    "evaluate_run",
    "random_responder",
    "recovery",
    "posterior_predictive_metrics",
    "degenerate_warnings",
]

TIE_RULE = "p >= 0.5 counts as preferring the first outcome (the reference's rule)"


@jax.jit
def random_like(key, data: PairwiseData) -> PairwiseData:
    """The same pairs answered by a 50/50 responder with the same vote totals."""
    n = jnp.round(data.n_total)
    n_a = jax.random.binomial(key, n, 0.5, shape=n.shape).astype(data.n_a.dtype)
    return data.with_votes(jnp.where(data.mask, n_a, 0.0), jnp.where(data.mask, n, 1.0))


def evaluate_run(
    fit: ThurstonianFit, train: PairwiseData, heldout: PairwiseData | None, triads: np.ndarray
) -> dict[str, Any]:
    """Training and held-out metrics and transitivity (on ``triads``) of the final fit."""
    out: dict[str, Any] = {"train": M.evaluate_pairwise(fit, train), "tie_rule": TIE_RULE}
    out["training_graph_transitivity"] = M.transitivity(train, triads)
    if heldout is not None:
        out["heldout"] = M.evaluate_pairwise(fit, heldout)
    return out


SIGMA_BLOWUP = 10.0  # a normalised sd above this: the outcome's utility is not identified


def degenerate_warnings(metrics: dict[str, Any], fit: ThurstonianFit, model: str) -> list[str]:
    """Results that look fine but are not: predictions tied at 0.5, sigma blow-ups, a fit that
    did not converge. Each is one sentence for ``summary.txt`` and ``metrics.json``."""
    out = []
    ho = metrics.get("heldout")
    if ho and ho["n_pairs"] and ho["n_model_ties"] / ho["n_pairs"] > 0.5:
        out.append(
            f"{ho['n_model_ties']} of {ho['n_pairs']} held-out predictions tie at 0.5 (a model "
            f"with no preferences): the reference's tie rule counts them as correct "
            f"(accuracy {ho['accuracy']:.4f}); with ties as half it is {ho['accuracy_ties_half']:.4f}"
        )
    if get_model(model).learns_variance:
        s = np.asarray(fit.sigma_normalized)
        big = np.flatnonzero(~np.isfinite(s) | (s > SIGMA_BLOWUP))
        if big.size:
            out.append(
                f"sigma blow-up: {big.size} outcomes have a normalised sd above {SIGMA_BLOWUP:g} "
                f"(max {np.nanmax(s):.3g}; e.g. outcomes {big[:10].tolist()}): their utilities are "
                "not identified (incoherent answers, or too few comparisons)"
            )
    if not bool(fit.converged):
        out.append(
            f"the final fit did not converge: {fit.reason} (grad norm {float(fit.grad_norm):.2e} "
            f"after {int(fit.n_iter)} L-BFGS iterations); raise fitter.max_iter or "
            "fitter.polish_steps, or check the data"
        )
    return out


def random_responder(
    key: jax.Array,
    fit_fn: Callable[[PairwiseData, jax.Array], ThurstonianFit],
    train: PairwiseData,
    heldout: PairwiseData | None,
    triads: np.ndarray,
    votes_per_pair: int,
) -> dict[str, Any]:
    """The 50/50 responder on the same graph and vote totals, fitted with ``fit_fn``."""
    kr1, kr2 = jax.random.split(key)
    rtrain = random_like(kr1, train)
    rfit = fit_fn(rtrain, kr1)
    rand = {
        "average_confidence_closed_form": M.random_responder_confidence(votes_per_pair),
        "train": M.evaluate_pairwise(rfit, rtrain),
        "training_graph_transitivity": M.transitivity(rtrain, triads),
    }
    if heldout is not None:
        rand["heldout"] = M.evaluate_pairwise(rfit, random_like(kr2, heldout))
    return rand


def recovery(
    fit: ThurstonianFit,
    heldout: PairwiseData | None,
    true_mu: np.ndarray,
    true_sigma: np.ndarray,
    *,
    model: str,
    link: str,
) -> dict[str, float]:
    """How well a fit recovers known utilities (simulated agents).

    ``model`` is the fitter's model (sigmas are compared for case III); ``link`` the simulated
    agent's, used to score the true utilities on the held-out pairs.
    """
    tmu, tsig = (np.asarray(x, dtype=np.float64) for x in (true_mu, true_sigma))
    rec = {
        "spearman_mu": float(stats.spearmanr(np.asarray(fit.mu), tmu).statistic),
        "pearson_mu": float(np.corrcoef(np.asarray(fit.mu), tmu)[0, 1]),
    }
    if get_model(model).learns_variance:
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
                link,
            )
        )
        rec["heldout_log_loss_true_utilities"] = ll_true / float(
            np.asarray(heldout.n_total)[np.asarray(heldout.mask)].sum()
        )
    return rec


def posterior_predictive_metrics(posterior, heldout: PairwiseData) -> dict[str, float]:
    """Held-out log loss and accuracy of the posterior-predictive probabilities."""
    from utility_jax.core.bayes import posterior_predictive_log_proba

    v = heldout.valid()
    lp, lq = posterior_predictive_log_proba(posterior, v["idx_a"], v["idx_b"])
    return {
        "heldout_log_loss_posterior_predictive": float(
            M.log_loss_per_vote(lp, lq, v["n_a"], v["n_total"])
        ),
        "heldout_accuracy_posterior_predictive": float(
            M.heldout_accuracy(np.exp(lp), v["n_a"] / v["n_total"])
        ),
    }


def order_metrics(counts: np.ndarray, fit: ThurstonianFit, heldout_pres=None) -> dict[str, Any]:
    """How presentation order shaped the answers (``[n, 2, 3]`` order counts): the share of
    decided answers choosing the option shown first (0.5 without position bias, with its 90%
    Wilson interval), the share of pairs whose two orders' majorities agree (ties left out),
    the fit's shift (when estimated) and, given held-out presentation rows, the held-out log loss
    per presentation next to the order-averaged one."""
    c = np.asarray(counts, dtype=np.float64)
    first = c[:, 0, 0].sum() + c[:, 1, 0].sum()  # "A" is always the option shown first
    decided = c[:, :, :2].sum()
    share = float(first / decided) if decided else float("nan")
    lo, hi = M.wilson_interval(share, decided)
    p0 = c[:, 0, 0] / np.maximum(c[:, 0, :2].sum(1), 1e-12)  # first outcome, shown first
    p1 = c[:, 1, 1] / np.maximum(c[:, 1, :2].sum(1), 1e-12)  # first outcome, shown second
    both = (c[:, 0, :2].sum(1) > 0) & (c[:, 1, :2].sum(1) > 0) & (p0 != 0.5) & (p1 != 0.5)
    out: dict[str, Any] = {
        "share_choosing_first_shown": share,
        "share_choosing_first_shown_lo": lo,
        "share_choosing_first_shown_hi": hi,
        "order_consistency": float(np.mean((p0 > 0.5)[both] == (p1 > 0.5)[both]))
        if both.any()
        else float("nan"),
        "n_pairs_both_orders": int(both.sum()),
    }
    if fit.position_bias is not None:
        out["position_bias"] = float(fit.position_bias)
        out["position_bias_normalized"] = float(fit.position_bias_normalized)
        out["position_bias_standardized"] = float(fit.position_bias_standardized)
    if heldout_pres is not None:
        out["heldout_log_loss_per_presentation"] = float(
            M.evaluate_pairwise(fit, heldout_pres)["log_loss"]
        )
    return out
