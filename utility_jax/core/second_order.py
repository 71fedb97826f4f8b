r"""Second-order numerics for the fitter: Newton polish and minimum verification.

All functions take callables on one flat parameter vector ``x`` and are jit/vmap-friendly.

* :func:`newton_polish` (dense): damped, saddle-free Newton steps with the exact Hessian. At a
  point where the Hessian has a negative eigenvalue the step uses its absolute value, so it
  moves downhill along that direction instead of up to the saddle.
* :func:`newton_cg_polish` (matrix-free, the default above a few dozen parameters): a
  certificate first, from one Jacobi-preconditioned conjugate-gradient solve that also yields
  the smallest Ritz value and a bound on the decrement; inexact Newton steps only where it fails.
  Its cost is a few dozen Hessian-vector products, linear in the number of pairs.

The convergence measure is the Newton decrement :math:`\lambda = \sqrt{g^\top H^{-1} g}`: the
distance to the minimum of the local quadratic model in the metric of the Hessian of the
negative log posterior, i.e. in posterior standard deviations. It does not depend on the number
of outcomes, pairs or votes, so one tolerance holds from 4 outcomes to 100,000.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "PolishInfo",
    "newton_polish",
    "newton_cg_polish",
    "lanczos_min_eig",
]


class PolishInfo(NamedTuple):
    """What a polish found at its final point.

    Attributes:
      decrement: the Newton decrement there (posterior sd units).
      min_eigenvalue: the smallest eigenvalue of the Hessian there, by Lanczos (on the inverse
        where it is positive definite, i.e. its Cholesky factorisation succeeded; on the Hessian
        itself where not);
        matrix-free, the smallest Ritz value of the Jacobi-scaled Hessian (an upper bound).
      steps: Newton steps taken.
      scale: the largest diagonal entry of the Hessian there (an eigenvalue below
        ``1e-6 * scale`` is zero to float32 round-off: a flat direction, not a minimum).
    """

    decrement: jax.Array
    min_eigenvalue: jax.Array
    steps: jax.Array
    scale: jax.Array


def _capped(step, max_change: float = 1.0):
    """A Newton step with no parameter moved by more than ``max_change`` (a box trust region:
    full steps near the minimum, bounded ones from far away). The Newton decrement cannot serve
    for damping here: it grows like the square root of the number of parameters at any fixed
    per-parameter distance."""
    big = jnp.max(jnp.abs(step), axis=-1, keepdims=True)
    return step * jnp.minimum(1.0, max_change / jnp.maximum(big, 1e-30))


def _keep_going(max_steps, floor):
    """The polish loop's condition on ``(x, decrement, previous decrement, steps)``: at least one
    step; then until ``max_steps``, the ``floor``, or (once near the minimum) a decrement that no
    longer falls, which is round-off."""

    def cond(c):
        _, lam, prev, it = c
        near = lam < 1e-2
        going = (it < max_steps) & (lam > floor) & (~near | (lam < 0.9 * prev))
        return (it == 0) | going

    return cond


def newton_polish(
    x: jax.Array,
    grad: Callable[[jax.Array], jax.Array],
    hess: Callable[[jax.Array], jax.Array],
    *,
    max_steps: int,
    floor: float = 1e-7,
) -> tuple[jax.Array, PolishInfo]:
    """Dense saddle-free Newton steps from ``x`` until the decrement stops falling (round-off)
    or drops below ``floor``, at most ``max_steps``; then the decrement and smallest eigenvalue
    at the final point."""
    dtype = x.dtype

    def saddle_free(g, h):
        w, v = jnp.linalg.eigh(h)
        a = jnp.maximum(jnp.abs(w), 1e-6 * jnp.maximum(jnp.abs(w[-1]), 1.0))
        gv = v.T @ g
        return -(v @ (gv / a))

    def solve(x):
        g, h = grad(x), hess(x)
        h = 0.5 * (h + h.T)
        # Cholesky when the Hessian is positive definite (the usual case, and cheap); the
        # eigendecomposition with |eigenvalues| otherwise
        c = jnp.linalg.cholesky(h)
        pd = jnp.all(jnp.isfinite(c))
        s = jax.lax.cond(
            pd, lambda: jax.scipy.linalg.cho_solve((c, True), -g), lambda: saddle_free(g, h)
        )
        return s, jnp.sqrt(jnp.maximum(-jnp.vdot(g, s), 0.0)), h, c, pd

    keep_going = _keep_going(max_steps, floor)
    p = x.shape[0]

    def body(c):
        # evaluate at x; step only if the loop goes on, so the last pass leaves the final
        # point's decrement and factor in the carry (one compiled copy of the solve)
        x, lam, _, it, _, _, _, _ = c
        s, lam_x, h, ch, pd = solve(x)
        go = keep_going((x, lam_x, lam, it))
        x = jnp.where(go, x + _capped(s), x)
        return x, lam_x, lam, it + go.astype(it.dtype), ~go, h, ch, pd

    inf = jnp.asarray(jnp.inf, dtype)
    zeros = jnp.zeros((p, p), dtype)
    init = (x, inf, inf, jnp.asarray(0), jnp.asarray(False), zeros, zeros, jnp.asarray(False))
    x, lam, _, it, _, h, c, pd = jax.lax.while_loop(lambda c: ~c[4], body, init)
    start = jnp.cos(jnp.arange(p, dtype=dtype) * 1.618)

    # the smallest eigenvalue by one Lanczos run: on -H^-1 where H is positive definite (its
    # Cholesky factorisation succeeded: the top of H^-1 is the bottom of H), else on H itself,
    # whose negative end it finds
    def matvec(v):
        return jnp.where(pd, -jax.scipy.linalg.cho_solve((c, True), v), h @ v)

    ritz = lanczos_min_eig(matvec, start, 30)
    w0 = jnp.where(pd, -1.0 / ritz, ritz)
    return x, PolishInfo(lam, w0, it, jnp.max(jnp.diag(h)))


def _pcg(hvp, b, precond, max_iter, rtol):
    """Preconditioned CG for ``H s = b`` (``precond(r)`` applies an approximate inverse of
    ``H``); stops at negative curvature, returning the iterate so far (or the preconditioned
    right-hand side on the first step). Returns ``(s, negative_curvature_met)``."""
    zero = jnp.zeros_like(b)
    z = precond(b)
    state = (zero, b, z, jnp.vdot(b, z), 0, False)
    bnorm = jnp.linalg.norm(b)

    def cond(st):
        _, r, _, _, k, stop = st
        return (k < max_iter) & (jnp.linalg.norm(r) > rtol * bnorm) & ~stop

    def body(st):
        s, r, p, rz, k, _ = st
        hp = hvp(p)
        php = jnp.vdot(p, hp)
        neg = php <= 0
        alpha = rz / jnp.where(neg, 1.0, php)
        s_new = jnp.where(neg, jnp.where(k == 0, p, s), s + alpha * p)
        r_new = r - alpha * hp
        z_new = precond(r_new)
        rz_new = jnp.vdot(r_new, z_new)
        return s_new, r_new, z_new + (rz_new / rz) * p, rz_new, k + 1, neg

    s, *_, neg = jax.lax.while_loop(cond, body, state)
    return s, neg


def lanczos_min_eig(matvec, x0: jax.Array, steps: int) -> jax.Array:
    """The smallest Ritz value of a symmetric operator after ``steps`` Lanczos iterations with
    full reorthogonalisation, from start vector ``x0`` (an upper bound on the smallest
    eigenvalue; close to it for the well-separated low end of a Hessian's spectrum)."""
    p = x0.shape[0]
    m = min(steps, p)
    q0 = x0 / jnp.linalg.norm(x0)
    qs = jnp.zeros((m + 1, p), x0.dtype).at[0].set(q0)

    def body(j, c):
        qs, alpha, beta = c
        w = matvec(qs[j])
        a = jnp.vdot(qs[j], w)
        w = w - qs.T @ (qs @ w)  # full reorthogonalisation (rows beyond j are zero)
        w = w - qs.T @ (qs @ w)
        b = jnp.linalg.norm(w)
        qs = qs.at[j + 1].set(w / jnp.where(b > 0, b, 1.0))
        return qs, alpha.at[j].set(a), beta.at[j].set(b)

    zeros = jnp.zeros(m, x0.dtype)
    _, alpha, beta = jax.lax.fori_loop(0, m, body, (qs, zeros, zeros))
    t = jnp.diag(alpha) + jnp.diag(beta[:-1], 1) + jnp.diag(beta[:-1], -1)
    return jnp.linalg.eigvalsh(t)[0]


def _cg_certificate(A, b, max_iter: int, rtol, atol):
    """Conjugate gradients on ``A u = b`` (``A`` the Jacobi-scaled Hessian, unit diagonal) that
    also certify: ``(u, decrement bound, smallest Ritz value)``.

    CG is Lanczos in disguise: its step sizes give the tridiagonal ``T`` whose smallest
    eigenvalue is the smallest Ritz value ``theta`` of ``A`` on the Krylov space of ``b``. The
    decrement follows from the Galerkin identity
    ``b' A^-1 b = b' u + r' A^-1 r <= b' u + |r|^2 / lambda_min``, with ``theta`` standing in for
    ``lambda_min`` (the same upper-bound estimate that a Lanczos run gives). Stops at
    ``|r| <= max(rtol |b|, atol)``, at ``max_iter``, or at negative curvature (``theta`` is then
    that direction's Rayleigh quotient, ``<= 0``, and ``u`` the direction so far, downhill)."""
    dtype = b.dtype
    bnorm = jnp.linalg.norm(b)
    tol = jnp.maximum(rtol * bnorm, atol)
    ones = jnp.ones((max_iter,), dtype)
    # unused rows of T sit on the diagonal far above A's spectrum (at most the number of
    # nonzeros in a row of A, by Gershgorin on a unit diagonal: tens for pairwise data), so
    # they never set theta
    state = (jnp.zeros_like(b), b, b, jnp.vdot(b, b), 0, jnp.inf, 1e3 * ones, 0.0 * ones, 1.0, 0.0)

    def cond(st):
        _, r, _, rr, k, curv, *_ = st
        return (k < max_iter) & (jnp.sqrt(rr) > tol) & (curv > 0)

    def body(st):
        u, r, p, rr, k, _, diag, off, alpha_prev, beta_prev = st
        ap = A(p)
        pap = jnp.vdot(p, ap)
        curv = pap / jnp.vdot(p, p)
        neg = pap <= 0
        alpha = rr / jnp.where(neg, 1.0, pap)
        u_new = jnp.where(neg, jnp.where(k == 0, p, u), u + alpha * p)
        r_new = jnp.where(neg, r, r - alpha * ap)
        rr_new = jnp.vdot(r_new, r_new)
        beta = rr_new / rr
        diag = diag.at[k].set(1.0 / alpha + beta_prev / alpha_prev)
        off = off.at[k].set(jnp.sqrt(beta) / alpha)
        return u_new, r_new, r_new + beta * p, rr_new, k + 1, curv, diag, off, alpha, beta

    u, _, _, rr, k, curv, diag, off, *_ = jax.lax.while_loop(cond, body, state)
    off = jnp.where(jnp.arange(max_iter) < k - 1, off, 0.0)[:-1]
    theta = jax.scipy.linalg.eigh_tridiagonal(diag, off, eigvals_only=True)[0]
    theta = jnp.where(curv > 0, theta, curv)
    lam2 = jnp.maximum(jnp.vdot(b, u), 0.0) + rr / jnp.maximum(theta, 1e-30)
    return u, jnp.sqrt(lam2), theta


def newton_cg_polish(
    x: jax.Array,
    grad: Callable[[jax.Array], jax.Array],
    hvp_at: Callable[[jax.Array], tuple[Callable, jax.Array]],
    *,
    max_steps: int,
    tol: float = 1e-3,
    cg_iter: int = 200,
    floor: float = 1e-7,
) -> tuple[jax.Array, PolishInfo]:
    """Certificate first, Newton-CG steps only where it fails (matrix-free; cost linear in
    the number of pairs).

    At each point, one CG solve of the Jacobi-scaled Newton system (``hvp_at(x)`` returns the
    Hessian-vector product at ``x`` and the Hessian's diagonal) gives the Newton step, an upper
    bound on the Newton decrement and the smallest Ritz value (:func:`_cg_certificate`). Where
    the bound is at most ``tol`` and the Ritz value positive, the point is a verified minimum:
    the step already computed is taken (it only brings the point closer) and the loop ends. An
    L-BFGS solution usually passes at the first point, so the whole polish costs one CG solve.
    Otherwise a capped Newton step, and the check again, at most ``max_steps`` times. The CG
    tolerance follows the decrement: loose far from the minimum, tight near it.
    ``floor`` is accepted for the dense polish's signature and unused."""
    del floor
    dtype = x.dtype

    def check(x, prev):
        g = grad(x)
        hvp, diag = hvp_at(x)
        d = jax.lax.rsqrt(jnp.maximum(diag, 1e-12))
        rtol = jnp.minimum(0.1, jnp.sqrt(jnp.minimum(prev, 1.0)))
        # |r|^2 / theta adds at most (tol / 4)^2 to the bound where theta >= 1e-3
        u, lam, theta = _cg_certificate(
            lambda v: d * hvp(d * v), -d * g, cg_iter, rtol, 0.25 * tol * 3e-2
        )
        return d * u, lam, theta

    def body(c):
        x, lam, _, it, _, _ = c
        s, lam_x, theta = check(x, lam)
        ok = (theta > 1e-6) & (lam_x <= tol)
        stalled = (lam_x < 1e-2) & (lam_x >= 0.9 * lam)  # near the minimum and not falling
        step = ok | ((it < max_steps) & ~stalled)
        x_new = x + jnp.where(ok, s, _capped(s))
        x = jnp.where(step & jnp.all(jnp.isfinite(x_new)), x_new, x)
        done = ok | ~step
        return x, lam_x, lam, it + (step & ~ok).astype(it.dtype), done, theta

    inf = jnp.asarray(jnp.inf, dtype)
    init = (x, inf, inf, jnp.asarray(0), jnp.asarray(False), inf)
    x, lam, _, it, _, theta = jax.lax.while_loop(lambda c: ~c[4], body, init)
    return x, PolishInfo(lam, theta, it, jnp.asarray(1.0, dtype))  # the scaled diagonal is 1
