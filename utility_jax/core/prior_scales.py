"""Prior scales chosen from the data: K-fold cross-validation of held-out log loss.

The fitter's priors, ``mu ~ N(0, s_mu^2)`` and ``log var ~ N(0, s_lv^2)``, matter little at paper
density (about 37 pairs per outcome) but a lot in sparse designs (a few pairs per outcome), where
the weak defaults overfit. :func:`select_prior_scales` fits every pair of scales on a grid to
``K - 1`` folds of the pairs and scores the held-out fold's votes; the scales with the smallest
mean held-out log loss per vote win. Pure and deterministic given ``key``.
"""

import dataclasses
import itertools

import jax
import numpy as np

from utility_jax.core.data import PairwiseData
from utility_jax.core.fit import fit_thurstonian
from utility_jax.core.likelihood import (
    _dense_hessian,
    _neg_log_posterior,
    _weighted,
    log_likelihood_pairwise,
)
from utility_jax.core.model import FitConfig, _flatten, _params_of

__all__ = ["MU_GRID", "LOGVAR_GRID", "select_prior_scales", "log_evidence"]

#: default grids (the fixed defaults, 10 and 2, are on them)
MU_GRID = (1.0, 3.0, 10.0)
LOGVAR_GRID = (0.5, 1.0, 2.0)


def _folds(data: PairwiseData, n_folds: int, key) -> np.ndarray:
    """``[n_rows]`` a fold id per row (-1 on padding); the two orders of a pair (adjacent
    presentation rows share outcomes) are not split apart: folds are drawn per outcome pair."""
    mask = np.asarray(data.mask)
    a, b = np.asarray(data.idx_a), np.asarray(data.idx_b)
    pair = np.minimum(a, b).astype(np.int64) * data.n_items + np.maximum(a, b)
    uniq, inv = np.unique(pair[mask], return_inverse=True)
    perm = np.asarray(jax.random.permutation(key, len(uniq)))
    fold_of_pair = np.empty(len(uniq), np.int64)
    fold_of_pair[perm] = np.arange(len(uniq)) % n_folds
    out = np.full(len(mask), -1)
    out[mask] = fold_of_pair[inv]
    return out


def log_evidence(data: PairwiseData, cfg: FitConfig) -> tuple[float, object]:
    """The Laplace approximation to the log marginal likelihood of ``cfg``'s prior scales, up to
    a constant that does not depend on them: ``log p(D | theta*) + log p(theta* | s)
    - 1/2 log det H``, at the MAP ``theta*`` (verified minimum, positive-definite ``H``).
    Returns ``(log evidence, fit)``; NaN where the fit is not a verified minimum."""
    fit = fit_thurstonian(data, cfg=cfg)
    if not bool(fit.converged):
        return float("nan"), fit
    params, wdata = _params_of(fit, cfg), _weighted(data, cfg)
    h = _dense_hessian(_flatten(params, cfg), wdata, cfg)
    chol = np.linalg.cholesky(np.asarray(h, np.float64))
    n = data.n_items
    obj = float(_neg_log_posterior(params, wdata, cfg))
    # the priors' normalising constants (the quadratic parts are in obj)
    norm = 0.0 if cfg.mu_prior_scale is None else n * np.log(cfg.mu_prior_scale)
    if cfg.utility_model.learns_variance and cfg.logvar_prior_scale is not None:
        norm += n * np.log(cfg.logvar_prior_scale)
    return -obj - norm - float(np.sum(np.log(np.diag(chol)))), fit


def select_prior_scales(
    data: PairwiseData,
    cfg: FitConfig,
    key: jax.Array,
    *,
    method: str = "cv",
    n_folds: int = 5,
    mu_grid=MU_GRID,
    logvar_grid=LOGVAR_GRID,
) -> tuple[FitConfig, dict]:
    """The config with the prior scales of least K-fold held-out log loss, and the table.

    Args:
      data: the fit's data (pooled or presentation rows).
      cfg: the fit config whose ``mu_prior_scale`` / ``logvar_prior_scale`` are chosen (the
        log-variance grid only for case III).
      key: PRNG key for the folds.

    Returns:
      ``(cfg with the chosen scales, {"chosen": {...}, "n_folds": K, "table": [{"mu_prior_scale",
      "logvar_prior_scale", "heldout_log_loss"}, ...]})``; the log loss is per vote, mean over
      folds.

    ``method="evidence"`` ranks the grid by :func:`log_evidence` (type-II maximum likelihood,
    one fit per grid point) instead; the table then holds ``log_evidence``.

    Raises:
      ValueError: fewer pairs than folds.
    """
    if method == "evidence":
        return _by_evidence(data, cfg, mu_grid, logvar_grid)
    if method != "cv":
        raise ValueError(f"method must be cv or evidence, got {method!r}")
    folds = _folds(data, n_folds, key)
    if (folds >= 0).sum() < 2 * n_folds:
        raise ValueError(
            f"prior-scale cross-validation needs at least {2 * n_folds} pairs, got "
            f"{int((folds >= 0).sum())}"
        )
    lv = logvar_grid if cfg.utility_model.learns_variance else (cfg.logvar_prior_scale,)
    votes = np.asarray(data.n_total)
    table = []
    for s_mu, s_lv in itertools.product(mu_grid, lv):
        c = dataclasses.replace(cfg, mu_prior_scale=s_mu, logvar_prior_scale=s_lv)
        nll, n = 0.0, 0.0
        for k in range(n_folds):
            train = dataclasses.replace(data, mask=jax.numpy.asarray(folds >= 0) & (folds != k))
            test = dataclasses.replace(data, mask=jax.numpy.asarray(folds == k))
            fit = fit_thurstonian(train, cfg=c)
            nll -= float(
                log_likelihood_pairwise(fit.mu, fit.log_var, test, fit.link, fit.position_bias)
            )
            n += float(votes[folds == k].sum())
        table.append(
            {"mu_prior_scale": s_mu, "logvar_prior_scale": s_lv, "heldout_log_loss": nll / n}
        )
    best = min(table, key=lambda r: r["heldout_log_loss"])
    chosen = dataclasses.replace(
        cfg, mu_prior_scale=best["mu_prior_scale"], logvar_prior_scale=best["logvar_prior_scale"]
    )
    return chosen, {"chosen": best, "n_folds": n_folds, "table": table}


def _by_evidence(data, cfg, mu_grid, logvar_grid):
    lv = logvar_grid if cfg.utility_model.learns_variance else (cfg.logvar_prior_scale,)
    table = []
    for s_mu, s_lv in itertools.product(mu_grid, lv):
        c = dataclasses.replace(cfg, mu_prior_scale=s_mu, logvar_prior_scale=s_lv)
        ev, _ = log_evidence(data, c)
        table.append({"mu_prior_scale": s_mu, "logvar_prior_scale": s_lv, "log_evidence": ev})
    ok = [r for r in table if np.isfinite(r["log_evidence"])]
    if not ok:
        raise ValueError("no prior scale on the grid gives a verified minimum: no evidence")
    best = max(ok, key=lambda r: r["log_evidence"])
    chosen = dataclasses.replace(
        cfg, mu_prior_scale=best["mu_prior_scale"], logvar_prior_scale=best["logvar_prior_scale"]
    )
    return chosen, {"chosen": best, "method": "evidence", "table": table}
