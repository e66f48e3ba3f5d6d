"""Multi-start projected gradient ascent on a box, shared by the designers.

Design variables live in intervals: normalised log-variances ``u ∈ [0, 1]`` with
``log σ² = log lo + (log hi − log lo) u`` and normalised means ``v ∈ [−1, 1]`` with
``μ = b v``.  :func:`ascend` runs projected Adam (a step, then a clip back into the box) on
``S`` starting points at once: one ``jax.vmap`` over starts, one ``jax.lax.scan`` over
iterations, inside the caller's ``jax.jit``.  The criteria here are maximised on or near the
vertices of the box, which projection reaches in finitely many steps (a sigmoid
reparametrisation only approaches them).  A start whose objective turns NaN keeps its best
finite point.

Matrix functions that need a factorisation (:func:`logdet_spd`, :func:`spd_inv`,
:func:`soft_log_lambda_min`) use the plain-XLA loops of
:mod:`causalid.stats._linalg` forward only, and state their derivatives in closed form
(``jax.custom_jvp``): reverse mode then never differentiates through a loop, which keeps
compilation fast, and no batched LAPACK call runs inside a vmapped CPU program (see
:mod:`causalid.stats._linalg` for why that matters).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from causalid.stats._linalg import cholesky, solve_lower

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


def ascend(objective, z0, num_iters: int, lr: float, lower, upper):
    """Maximise ``objective(z)`` over the box [lower, upper] from every row of ``z0``.

    Parameters
    ----------
    objective : callable
        z (shape ``z0.shape[1:]``) → scalar, traceable by JAX.
    z0 : array (S, ...)
        Starting points inside the box.
    num_iters : int
        Adam steps (static).
    lr : float
        Initial step size; it decays on a cosine schedule to ``lr / 10``.
    lower, upper : arrays broadcastable to ``z0.shape[1:]``
        The box; every step is clipped back into it.

    Returns
    -------
    z : array (S, ...)
        The best point each start visited (by objective value; the point after the last
        step is not evaluated).
    value : array (S,)
        Its objective value (``-inf`` if no finite value was seen).
    """
    value_and_grad = jax.value_and_grad(objective)

    def one(z_init):
        def step(carry, t):
            z, m, v, best_z, best_f = carry
            f, g = value_and_grad(z)
            ok = jnp.isfinite(f) & jnp.all(jnp.isfinite(g))
            better = ok & (f > best_f)
            best_z = jnp.where(better, z, best_z)
            best_f = jnp.where(better, f, best_f)
            g = jnp.where(ok, g, 0.0)
            m = _BETA1 * m + (1 - _BETA1) * g
            v = _BETA2 * v + (1 - _BETA2) * g * g
            mhat = m / (1 - _BETA1 ** (t + 1))
            vhat = v / (1 - _BETA2 ** (t + 1))
            rate = lr * (0.1 + 0.45 * (1 + jnp.cos(jnp.pi * t / num_iters)))
            z = jnp.clip(z + rate * mhat / (jnp.sqrt(vhat) + _EPS), lower, upper)   # projected ascent
            return (z, m, v, best_z, best_f), None

        zeros = jnp.zeros_like(z_init)
        init = (z_init, zeros, zeros, z_init, jnp.asarray(-jnp.inf, z_init.dtype))
        (_, _, _, best_z, best_f), _ = jax.lax.scan(step, init, jnp.arange(num_iters, dtype=z_init.dtype))
        return best_z, best_f

    return jax.vmap(one)(z0)


def _chol_inv(F):
    """(log det F, F⁻¹) of a symmetric positive-definite F."""
    L = cholesky(F)
    Linv = solve_lower(L, jnp.eye(F.shape[-1], dtype=F.dtype))
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(L))), Linv.T @ Linv


@jax.custom_jvp
def logdet_spd(F):
    """log det of a symmetric positive-definite matrix; d log det F = tr(F⁻¹ dF)."""
    return _chol_inv(F)[0]


@logdet_spd.defjvp
def _logdet_spd_jvp(primals, tangents):
    (F,), (dF,) = primals, tangents
    value, Finv = _chol_inv(F)
    return value, jnp.sum(Finv * dF)


@jax.custom_jvp
def spd_inv(S):
    """Inverse of a symmetric positive-definite matrix; d(S⁻¹) = −S⁻¹ dS S⁻¹."""
    return _chol_inv(S)[1]


@spd_inv.defjvp
def _spd_inv_jvp(primals, tangents):
    (S,), (dS,) = primals, tangents
    X = _chol_inv(S)[1]
    return X, -X @ dS @ X


_SQUARINGS = 4          # p = 2**4 = 16


def _power_parts(G):
    _, Ginv = _chol_inv(G)
    t = jnp.trace(Ginv)
    M = Ginv / t                       # eigenvalues in (0, 1]: powers cannot overflow
    for _ in range(_SQUARINGS):
        M = M @ M
    p = 2.0 ** _SQUARINGS
    return -(p * jnp.log(t) + jnp.log(jnp.trace(M))) / p, Ginv, M


@jax.custom_jvp
def soft_log_lambda_min(G):
    r"""Smooth lower bound of log λ_min(G) for symmetric positive-definite G:

        −(1/p) log tr(G^{−p}),  p = 16,

    which lies in [log λ_min − (log m)/p, log λ_min].  Its derivative is
    G^{−(p+1)} / tr(G^{−p}).
    """
    return _power_parts(G)[0]


@soft_log_lambda_min.defjvp
def _soft_log_lambda_min_jvp(primals, tangents):
    (G,), (dG,) = primals, tangents
    value, Ginv, M = _power_parts(G)
    W = M @ Ginv / jnp.trace(M)          # G^{-(p+1)} / tr(G^{-p})
    return value, jnp.sum(W * dG)
