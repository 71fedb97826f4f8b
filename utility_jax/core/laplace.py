"""Laplace (inverse-Hessian) standard errors at a fit, on the gauge's tangent space."""

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from utility_jax.core.data import PairwiseData
from utility_jax.core.fit import _config
from utility_jax.core.likelihood import _neg_log_posterior, _weighted
from utility_jax.core.model import FitConfig, ThurstonianFit, _params_of, standardize_shift

__all__ = ["laplace_stderr"]


def laplace_stderr(
    fit: ThurstonianFit, data: PairwiseData, *, cfg: FitConfig | None = None, **overrides
) -> dict[str, jax.Array]:
    """Laplace (inverse-Hessian) standard errors at a fit, on the model's own scale.

    Returns a dict with ``mu`` and (case III) ``log_var`` and ``sigma`` (delta method) standard
    errors, and ``min_eigenvalue`` of the gauge-projected Hessian: when it is not positive (the
    fit stopped on a flat or saddle direction) every error is NaN. The Hessian is that of the
    negative log posterior (likelihood and priors) restricted to the gauge (mean-zero means, and
    mean-zero log-variances for case III), so the errors are those of the representative the
    fitter reports. Dense: O(n_items^2) memory, O(n_items^3) time.
    """
    cfg = _config(cfg, overrides)
    if fit.link != cfg.link:
        raise ValueError(
            f"the fit is a {fit.link} fit but the config's model is {cfg.model!r}: pass the "
            f"config (or model=...) the fit was made with"
        )
    if fit.mu.shape[-1] != data.n_items:
        raise ValueError(f"the fit has {fit.mu.shape[-1]} items but the data {data.n_items}")
    return _laplace_jit(fit, data, cfg)


@jax.jit(static_argnames=("cfg",))
def _laplace_jit(fit, data, cfg):
    def _lv(p):  # case V and the logit model: unit variances
        return p["log_var"] if "log_var" in p else jnp.zeros_like(p["mu"])

    params = _params_of(fit, cfg, solver=False)  # derivatives with respect to log sigma^2
    wdata = _weighted(data, cfg)
    flat, unravel = ravel_pytree(params)
    h = jax.hessian(lambda x: _neg_log_posterior(unravel(x), wdata, cfg))(flat)
    # Covariance on the gauge's tangent space (mean(mu) = 0 and, for case III,
    # mean(log_var) = 0): cov = P (P H P + I - P)^-1 P with P the projector onto it. Inverting
    # H itself would add the gauge penalty's own (arbitrary) variance along the constant direction.
    # (ravel_pytree orders a dict's blocks by key; the bias is a free scalar.)
    n = data.n_items
    center = jnp.eye(n, dtype=h.dtype) - 1.0 / n
    blocks = {"mu": center, "log_var": center, "bias": jnp.eye(1, dtype=h.dtype)}
    proj = jax.scipy.linalg.block_diag(*[blocks[k] for k in sorted(params)])
    eye = jnp.eye(proj.shape[0], dtype=h.dtype)
    a = proj @ h @ proj + eye - proj
    w, v = jnp.linalg.eigh(0.5 * (a + a.T))
    # a fit stopped where the Hessian is not positive definite (a flat or saddle direction) has
    # no Laplace approximation: NaN, never a misleading zero
    ok = w[0] > 0
    cov = proj @ (v / jnp.where(ok, w, 1.0)) @ v.T @ proj
    se = unravel(jnp.where(ok, jnp.sqrt(jnp.clip(jnp.diag(cov), 0.0)), jnp.nan))
    out = {"mu": se["mu"], "min_eigenvalue": w[0]}
    if cfg.position_bias:
        out["position_bias"] = se["bias"]
        # delta method, with the covariance of the shift and the log-variances
        grad = jax.grad(lambda x: standardize_shift(unravel(x)["bias"], _lv(unravel(x))))(flat)
        out["position_bias_standardized"] = jnp.where(
            ok, jnp.sqrt(jnp.clip(grad @ cov @ grad, 0.0)), jnp.nan
        )
    if cfg.utility_model.learns_variance:
        out["log_var"] = se["log_var"]
        out["sigma"] = 0.5 * fit.sigma * se["log_var"]
    return out
