"""Multi-start projected gradient ascent on a box, shared by the designers.

Design variables live in intervals: normalised log-variances ``u ∈ [0, 1]`` with
``log σ² = log lo + (log hi − log lo) u`` and normalised means ``v ∈ [−1, 1]`` with
``μ = b v``.  :func:`ascend` runs projected Adam (a step, then a clip back into the box) on
``S`` starting points at once.  The criteria here are maximised on or near the vertices of
the box, which projection reaches in finitely many steps (a sigmoid reparametrisation only
approaches them).  A start whose objective turns NaN keeps its best finite point.

Where the work goes: a design is usually computed once per process, so XLA compilation
dominates its cost.  The objective and its gradient for all starts are one compiled program
(the caller's ``jax.jit`` of ``jax.vmap(jax.value_and_grad(objective))``, see
:func:`batched_value_and_grad`, compiled by :func:`causalid._compile.compiled`); the Adam
update is a handful of element-wise NumPy operations on the (S, ...) stack, run on the host
between calls.
Compiling the update and the iteration loop into the program as well (a ``lax.scan``)
costs about as much XLA compilation again as the objective itself, while the host loop adds
only ~0.1 ms per step.

:func:`soft_log_lambda_min` states its derivative in closed form (``jax.custom_jvp``) over the
plain-XLA kernels of :mod:`causalid._linalg`, so reverse mode never differentiates through a
loop.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from causalid._linalg import chol_logdet_inv

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


def batched_value_and_grad(objective: Callable) -> Callable:
    """``z (S, ...) → (values (S,), gradients (S, ...))`` for a scalar ``objective(z)``.

    Meant to be called inside the caller's ``jax.jit`` (one compiled program for all starts).
    """
    return jax.vmap(jax.value_and_grad(objective))


def ascend(value_and_grad: Callable, z0, num_iters: int, lr: float, lower, upper):
    """Maximise an objective over the box [lower, upper] from every row of ``z0``.

    Parameters
    ----------
    value_and_grad : callable
        ``z (S, ...) → (values (S,), gradients (S, ...))`` for a stack of points, e.g. a
        jitted :func:`batched_value_and_grad`; called ``num_iters + 1`` times with arrays of
        one shape (one compilation).
    z0 : array (S, ...)
        Starting points inside the box.
    num_iters : int
        Adam steps.
    lr : float
        Initial step size; it decays on a cosine schedule to ``lr / 10``.
    lower, upper : arrays broadcastable to ``z0.shape[1:]``
        The box; every step is clipped back into it.

    Returns
    -------
    z : ndarray (S, ...)
        The best point each start visited (by objective value, the final point included).
    value : ndarray (S,)
        Its objective value (``-inf`` if no finite value was seen).
    """
    z = np.array(z0, dtype=np.float64)
    lower, upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    S = z.shape[0]
    m1, m2 = np.zeros_like(z), np.zeros_like(z)
    best_z, best_f = z.copy(), np.full(S, -np.inf)
    t = np.arange(num_iters, dtype=np.float64)
    rate = lr * (0.1 + 0.45 * (1 + np.cos(np.pi * t / num_iters)))
    bias1, bias2 = 1 - _BETA1 ** (t + 1), 1 - _BETA2 ** (t + 1)
    per_start = (S,) + (1,) * (z.ndim - 1)
    for k in range(num_iters + 1):
        f, g = value_and_grad(z)
        f, g = np.asarray(f, np.float64), np.asarray(g, np.float64)
        ok = np.isfinite(f) & np.isfinite(g).reshape(S, -1).all(axis=1)
        better = ok & (f > best_f)
        best_z = np.where(better.reshape(per_start), z, best_z)
        best_f = np.where(better, f, best_f)
        if k == num_iters:
            break
        g = np.where(ok.reshape(per_start), g, 0.0)
        m1 = _BETA1 * m1 + (1 - _BETA1) * g
        m2 = _BETA2 * m2 + (1 - _BETA2) * g * g
        step = rate[k] * (m1 / bias1[k]) / (np.sqrt(m2 / bias2[k]) + _EPS)
        z = np.clip(z + step, lower, upper)                                     # projected ascent
    return best_z, best_f


_SQUARINGS = 4          # p = 2**4 = 16


def _power_parts(G):
    _, Ginv = chol_logdet_inv(G)
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
