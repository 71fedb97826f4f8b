"""Intervals on a run's utilities: vote bootstrap, Laplace and posterior draws.

Each kind produces one :class:`UtilityDraws` (normalised draws, interval bounds, extra per-outcome
columns and its own metrics). :data:`INTERVAL_KINDS` is the one priority order: posterior, then
bootstrap, then Laplace; the summary, the plots and the analyses all take
:func:`preferred`'s choice.
"""

import dataclasses
import time
from typing import Any

import jax
import numpy as np
from scipy import stats

from utility_jax.core.bootstrap import fit_bootstrap
from utility_jax.core.data import PairwiseData
from utility_jax.core.laplace import laplace_stderr
from utility_jax.core.model import FitConfig, ThurstonianFit, standardize_shift

__all__ = [
    "INTERVAL_KINDS",
    "UtilityDraws",
    "preferred",
    "bootstrap_draws",
    "laplace_draws",
    "posterior_draws",
    "interval_agreement",
    "coverage",
]

#: interval kinds in order of preference
INTERVAL_KINDS = ("posterior", "bootstrap", "laplace")


@dataclasses.dataclass
class UtilityDraws:
    """One kind of uncertainty on the normalised utilities.

    Attributes:
      kind: ``"bootstrap"``, ``"laplace"`` or ``"posterior"``.
      lo, hi: ``[N]`` interval bounds at ``level``.
      columns: ``[N]`` per-outcome columns for the utilities table, named ``<kind>_...``
        (the bounds included), in table order.
      draws: ``[D, N]`` normalised draws, or None when none can be drawn (a Laplace fit whose
        Hessian is not positive definite).
      metrics: this kind's entry of ``metrics.json``.
    """

    kind: str
    lo: np.ndarray
    hi: np.ndarray
    columns: dict[str, np.ndarray]
    draws: np.ndarray | None
    metrics: dict[str, Any]
    level: float = 0.9


def preferred(found: dict[str, UtilityDraws], *, need_draws: bool = False) -> UtilityDraws | None:
    """The first kind of :data:`INTERVAL_KINDS` present (with draws, if ``need_draws``)."""
    for kind in INTERVAL_KINDS:
        u = found.get(kind)
        if u is not None and (u.draws is not None or not need_draws):
            return u
    return None


def bootstrap_draws(
    key: jax.Array,
    data: PairwiseData,
    fit: ThurstonianFit,
    n: int,
    level: float,
    cfg: FitConfig,
    interval: str = "basic",
    *,
    refit: str = "full",
    randomize_prior: bool = False,
    resample: str = "votes",
) -> UtilityDraws:
    """Vote-level bootstrap: ``n`` warm-started refits on resampled votes (``refit="full"``), or
    one Newton step each from the estimate (``"one_step"``; see
    :func:`~utility_jax.core.model.fit_bootstrap`). A fit that is not a verified minimum has no
    Hessian to step with: it gets full refits, and the metrics say so. ``randomize_prior``
    (one-step only) also draws the prior's centres per member; ``resample="model"`` draws the
    votes from the fit's probabilities (see ``fit_bootstrap``).

    ``interval="basic"`` reflects the refits about the estimate (``2 * estimate - refit``: the
    bootstrap's estimate of the fit's bias is subtracted, to first order; the draws are the
    reflected ones too); ``"percentile"`` uses them as they are; ``"normal"`` is the estimate
    plus or minus z times the members' sd.
    """
    if interval not in ("basic", "percentile", "normal"):
        raise ValueError(f"interval must be basic, percentile or normal, got {interval!r}")
    t0 = time.perf_counter()
    used = refit
    if refit == "one_step" and not bool(np.all(np.asarray(fit.converged))):
        used = "full (the estimate is not a verified minimum)"
    randomize = randomize_prior and used == "one_step"
    boots = fit_bootstrap(
        key,
        data,
        n,
        cfg=cfg,
        init=fit,
        refit=used.split()[0],
        randomize_prior=randomize,
        resample=resample,
    )
    mu_b = np.asarray(boots.mu_normalized)
    if interval == "basic":
        mu_b = 2.0 * np.asarray(fit.mu_normalized)[None, :] - mu_b
    alpha = (1 - level) / 2
    if interval == "normal":  # the estimate +- z * the members' sd (no quantile noise)
        est, sd = np.asarray(fit.mu_normalized), mu_b.std(axis=0)
        z = stats.norm.ppf(1 - alpha)
        lo, hi = est - z * sd, est + z * sd
    else:
        lo, hi = np.quantile(mu_b, alpha, axis=0), np.quantile(mu_b, 1 - alpha, axis=0)
    return UtilityDraws(
        "bootstrap",
        lo,
        hi,
        {"bootstrap_lo": lo, "bootstrap_hi": hi, "bootstrap_sd": mu_b.std(axis=0)},
        mu_b,
        {
            "n": n,
            "level": level,
            "interval": interval,
            "refit": used,
            "randomized_prior": randomize,
            "resample": resample,
            "seconds": time.perf_counter() - t0,
            "converged_share": float(np.mean(np.asarray(boots.converged))),
        },
        level,
    )


def laplace_draws(
    fit: ThurstonianFit,
    data: PairwiseData,
    cfg: FitConfig,
    level: float,
    *,
    n_draws: int,
    rng: np.random.Generator,
) -> UtilityDraws:
    """Laplace standard errors on the normalised means; draws only at a positive-definite
    Hessian (otherwise the errors are NaN and no draws are made)."""
    se = laplace_stderr(fit, data, cfg=cfg)
    pd = bool(se["min_eigenvalue"] > 0)
    sd = float(np.std(np.asarray(fit.mu))) or 1.0
    z = stats.norm.ppf(1 - (1 - level) / 2)
    se_n = np.asarray(se["mu"]) / sd
    mu_n = np.asarray(fit.mu_normalized)
    lo, hi = mu_n - z * se_n, mu_n + z * se_n
    draws = None
    if pd:
        draws = mu_n + rng.standard_normal((n_draws, len(mu_n))) * se_n
    return UtilityDraws(
        "laplace",
        lo,
        hi,
        {"laplace_se": se_n, "laplace_lo": lo, "laplace_hi": hi},
        draws,
        {"hessian_min_eigenvalue": float(se["min_eigenvalue"]), "positive_definite": pd},
        level,
    )


def posterior_draws(
    key,
    data: PairwiseData,
    fit: ThurstonianFit,
    bcfg,
    method: str,
    *,
    hdi_prob: float,
    progress_bar: bool,
):
    """NUTS or SVI from the MAP fit: ``(UtilityDraws, Posterior)``."""
    from utility_jax.core import bayes as BZ

    if method == "nuts":
        post = BZ.run_nuts(key, data, bcfg, init=fit, progress_bar=progress_bar)
    else:
        post = BZ.run_svi(key, data, bcfg, init=fit)
    summ = BZ.summarize_posterior(post, hdi_prob)
    lo, hi = summ["mu_normalized_hdi_lo"], summ["mu_normalized_hdi_hi"]
    cols = {
        "posterior_mean": summ["mu_normalized_mean"],
        "posterior_sd": summ["mu_normalized_sd"],
        "posterior_lo": lo,
        "posterior_hi": hi,
        "posterior_sigma_mean": summ["sigma_normalized_mean"],
    }
    m: dict[str, Any] = {"method": method, "hdi_prob": hdi_prob, **post.diagnostics}
    if post.position_bias is not None:
        b = np.asarray(post.position_bias)
        m["position_bias"] = _draw_summary(b, hdi_prob)
        bs = np.asarray(standardize_shift(b, 2.0 * post.log_sigma))  # per draw, as the fit's
        m["position_bias_standardized"] = _draw_summary(bs, hdi_prob)
    if post.scales:  # learned prior scales (hierarchical model)
        m["prior_scales"] = {k: _draw_summary(v, hdi_prob) for k, v in post.scales.items()}
    m["warnings"] = BZ.diagnostics_ok(post.diagnostics) if method == "nuts" else []
    u = UtilityDraws("posterior", lo, hi, cols, np.asarray(post.normalized()[0]), m, hdi_prob)
    return u, post


def _draw_summary(v: np.ndarray, prob: float) -> dict[str, float]:
    """Mean and central ``prob`` interval of a scalar's draws."""
    lo, hi = np.quantile(v, [(1 - prob) / 2, (1 + prob) / 2])
    return {"mean": float(np.mean(v)), "lo": float(lo), "hi": float(hi)}


def interval_agreement(found: dict[str, UtilityDraws]) -> dict[str, dict[str, float]]:
    """Median width ratio and width rank correlation between every two kinds of interval.

    Outcomes with a zero or undefined width are left out of each comparison.
    """
    widths = {
        k: found[k].hi - found[k].lo for k in ("bootstrap", "laplace", "posterior") if k in found
    }
    names = sorted(widths)
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ok = (widths[b] > 0) & np.isfinite(widths[a])
            out[f"{a}_vs_{b}"] = {
                "median_width_ratio": float(np.median(widths[a][ok] / widths[b][ok]))
                if ok.any()
                else np.nan,
                # undefined (NaN, not a warning) with under 3 outcomes or a constant width
                "width_spearman": float(stats.spearmanr(widths[a][ok], widths[b][ok]).statistic)
                if ok.sum() > 2 and np.ptp(widths[a][ok]) > 0 and np.ptp(widths[b][ok]) > 0
                else np.nan,
            }
    return out


def coverage(found: dict[str, UtilityDraws], true_mu: np.ndarray) -> dict[str, float]:
    """Share of outcomes whose true normalised utility lies inside each kind's interval."""
    tmu = np.asarray(true_mu, dtype=np.float64)
    tz = (tmu - tmu.mean()) / tmu.std()
    return {
        f"{k}_coverage_of_true_normalised_mu": float(
            ((found[k].lo <= tz) & (tz <= found[k].hi)).mean()
        )
        for k in ("bootstrap", "laplace", "posterior")
        if k in found
    }
