r"""Small symmetric positive-definite (SPD) linear algebra, written once for every engine.

Why not ``jnp.linalg`` / ``jax.scipy.linalg``: on CPU those call batched LAPACK kernels that
fan out onto XLA's intra-op thread pool and block waiting for it.  Two such calls running
concurrently inside one ``vmap``-ed program can occupy every pool thread and deadlock
(observed with jaxlib 0.10.2 on a 2-core machine); they also compile slowly and, for the
small matrices causalid factorises (regression bases, parent sets, state and output
covariances of a few to a few dozen rows), run slower than plain XLA loops.  Every kernel
here is therefore plain XLA arithmetic with static shapes, ``jit``/``vmap``/``grad``-safe:

* :func:`cholesky`, :func:`solve_lower`, :func:`solve_upper_t`, :func:`spd_solve`,
  :func:`spd_inverse` — ``fori_loop`` forms (compact programs for matrices up to ~1000 rows);
* :func:`chol_factor`, :func:`chol_forward`, :func:`chol_logdet_quad`, :func:`chol_solve` —
  fully unrolled scalar recurrences over arbitrary batch axes (a few rows: much faster on CPU
  than batched LAPACK, and they differentiate cleanly);
* :func:`spd_inv_logdet` — inverse and log-determinant by pivot-free Gauss–Jordan elimination
  after Jacobi scaling, with closed-form derivatives (the Kalman filter and Gaussian HMM
  emissions: reverse mode sees only matrix products);
* :func:`logdet_spd`, :func:`spd_inv` — Cholesky forward pass with closed-form derivatives
  (``jax.custom_jvp``: reverse mode never differentiates through a loop);
* :func:`solve_general` — a small non-symmetric solve with partial pivoting (masked arithmetic).

A matrix that is not numerically positive definite gives NaN / inf, never an exception.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array

__all__ = [
    "chol_factor",
    "chol_forward",
    "chol_logdet_inv",
    "chol_logdet_quad",
    "chol_solve",
    "cholesky",
    "logdet_spd",
    "solve_general",
    "solve_lower",
    "solve_upper_t",
    "spd_inv",
    "spd_inv_logdet",
    "spd_inv_logdet_unrolled",
    "spd_inverse",
    "spd_solve",
    "symmetrize",
]


def cholesky(a: Array) -> Array:
    r"""Lower Cholesky factor :math:`L L^\top = A` of a symmetric positive-definite matrix.

    Left-looking column algorithm in a ``fori_loop`` (``n`` steps of :math:`O(n^2)`).
    A matrix that is not numerically positive definite gives NaNs.
    """
    n = a.shape[-1]
    idx = jnp.arange(n)

    def column(j, low):
        v = a[:, j] - low @ low[j, :]
        d = jnp.sqrt(v[j])
        col = jnp.where(idx > j, v / d, jnp.where(idx == j, d, 0.0))
        return low.at[:, j].set(col)

    return jax.lax.fori_loop(0, n, column, jnp.zeros_like(a))


def solve_lower(low: Array, b: Array) -> Array:
    """Forward substitution: solve :math:`L X = B` for lower-triangular ``L``."""
    n = low.shape[-1]

    def row(i, x):
        return x.at[i].set((b[i] - low[i, :] @ x) / low[i, i])

    return jax.lax.fori_loop(0, n, row, jnp.zeros_like(b))


def solve_upper_t(low: Array, b: Array) -> Array:
    r"""Back substitution: solve :math:`L^\top X = B` for lower-triangular ``L``."""
    n = low.shape[-1]

    def row(k, x):
        i = n - 1 - k
        return x.at[i].set((b[i] - low[:, i] @ x) / low[i, i])

    return jax.lax.fori_loop(0, n, row, jnp.zeros_like(b))


def spd_solve(a: Array, b: Array) -> Array:
    """Solve :math:`A X = B` for symmetric positive-definite ``A`` by Cholesky factorisation."""
    low = cholesky(a)
    return solve_upper_t(low, solve_lower(low, b))


def spd_inverse(a: Array) -> Array:
    r"""Inverse of a symmetric positive-definite matrix, :math:`L^{-\top} L^{-1}`."""
    linv = solve_lower(cholesky(a), jnp.eye(a.shape[-1], dtype=a.dtype))
    return linv.T @ linv


def chol_factor(lam):
    """Lower Cholesky factor of a small SPD ``lam`` (..., p, p) as nested lists of batch arrays.

    ``p`` is static and small (at most ``max_parents + 1``): the factorisation written as
    scalar recurrences over the batch axes is much faster on CPU than batched LAPACK calls,
    compiles quickly and differentiates cleanly.
    """
    p = lam.shape[-1]
    low = [[None] * p for _ in range(p)]
    for j in range(p):
        low[j][j] = jnp.sqrt(lam[..., j, j] - sum(low[j][k] ** 2 for k in range(j)))
        for i in range(j + 1, p):
            low[i][j] = (lam[..., i, j] - sum(low[i][k] * low[j][k] for k in range(j))) / low[j][j]
    return low


def chol_forward(low, rhs):
    """``w = L^{-1} rhs`` for the factor of :func:`chol_factor`, as a list of batch arrays."""
    w = []
    for j in range(len(low)):
        w.append((rhs[..., j] - sum(low[j][k] * w[k] for k in range(j))) / low[j][j])
    return w


def chol_logdet_quad(lam, rhs):
    """``log|lam|`` and ``rhs' lam^{-1} rhs`` for small SPD ``lam`` (..., p, p)."""
    low = chol_factor(lam)
    logdet = sum(2.0 * jnp.log(low[j][j]) for j in range(len(low)))
    return logdet, sum(wj**2 for wj in chol_forward(low, rhs))


def chol_solve(lam, rhs):
    """``lam^{-1} rhs`` for small SPD ``lam`` (..., p, p) and ``rhs`` (..., p)."""
    low = chol_factor(lam)
    w = chol_forward(low, rhs)
    p = len(low)
    x = [None] * p
    for j in reversed(range(p)):
        x[j] = (w[j] - sum(low[k][j] * x[k] for k in range(j + 1, p))) / low[j][j]
    return jnp.stack(x, axis=-1)


def symmetrize(a: Array) -> Array:
    return 0.5 * (a + jnp.swapaxes(a, -1, -2))


def spd_inv_logdet_unrolled(s: Array) -> tuple[Array, Array]:
    r"""``(S^{-1}, log det S)`` of a small SPD matrix by unrolled, pivot-free elimination.

    ``S`` is first scaled to unit diagonal, :math:`S = D^{1/2}\tilde S D^{1/2}` with
    :math:`D = \operatorname{diag}(S)` (Jacobi scaling), then Gauss-Jordan elimination of
    :math:`[\tilde S \mid I]` runs without pivoting: for an SPD matrix the pivots are the
    squared diagonal of its Cholesky factor, :math:`\pi_j = L_{jj}^2 \in (0, 1]`, so
    :math:`\log\det S = \sum_j \log D_{jj} + \sum_j \log \pi_j` and
    :math:`S^{-1} = D^{-1/2}\tilde S^{-1} D^{-1/2}`.  Each step is one fused rank-one
    update (the pivot row is rescaled by the same update, free of cancellation because
    :math:`\pi_j \le 1`).  A matrix that is not numerically positive definite gives
    NaN / inf.
    """
    k = s.shape[-1]
    if k == 0:
        return s, jnp.zeros((), s.dtype)
    diag = jnp.diagonal(s)
    scale = lax.rsqrt(diag)
    eye = jnp.eye(k, dtype=s.dtype)
    work = jnp.concatenate([s * scale[:, None] * scale[None, :], eye], axis=-1)
    logdet = jnp.sum(jnp.log(diag))
    for j in range(k):
        piv = work[j, j]
        logdet = logdet + jnp.log(piv)
        # rows i != j: row_i -= (a_ij / piv) row_j ;  row j: row_j -= ((piv - 1) / piv) row_j
        factor = (work[:, j] - eye[:, j]) / piv
        work = work - factor[:, None] * work[j][None, :]
    inv = work[:, k:] * scale[:, None] * scale[None, :]
    return symmetrize(inv), logdet


@jax.custom_jvp
def spd_inv_logdet(s: Array) -> tuple[Array, Array]:
    r"""Inverse and log-determinant of a small SPD matrix, with closed-form derivatives.

    .. math:: d(S^{-1}) = -S^{-1}\,dS\,S^{-1},\qquad d\log\det S = \operatorname{tr}(S^{-1}dS).
    """
    return spd_inv_logdet_unrolled(s)


@spd_inv_logdet.defjvp
def _spd_inv_logdet_jvp(primals, tangents):
    (s,), (ds,) = primals, tangents
    si, logdet = spd_inv_logdet(s)
    return (si, logdet), (-(si @ ds @ si), jnp.sum(si * ds))


def solve_general(a: Array, rhs: Array) -> Array:
    r"""Solve :math:`A X = B` for a small square non-symmetric ``A``.

    Gauss-Jordan elimination with partial (row) pivoting in a ``fori_loop`` (compact code:
    the combine of the parallel scan is instantiated once per scan level).  Row swaps are
    masked arithmetic, so it vectorises under ``vmap``.
    """
    k = a.shape[-1]
    idx = jnp.arange(k)
    work = jnp.concatenate([a, rhs], axis=-1)

    def body(j, work):
        col = jnp.where(idx >= j, jnp.abs(work[:, j]), -1.0)
        piv_row = jnp.argmax(col)
        is_p = (idx == piv_row)[:, None]
        is_j = (idx == j)[:, None]
        row_p = work[piv_row]
        row_j = work[j]
        work = jnp.where(is_p, row_j[None, :], jnp.where(is_j, row_p[None, :], work))  # swap
        row = row_p / row_p[j]
        return jnp.where(is_j, row[None, :], work - work[:, j][:, None] * row[None, :])

    return lax.fori_loop(0, k, body, work)[:, k:]


def chol_logdet_inv(F):
    """(log det F, F⁻¹) of a symmetric positive-definite F."""
    L = cholesky(F)
    Linv = solve_lower(L, jnp.eye(F.shape[-1], dtype=F.dtype))
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(L))), Linv.T @ Linv


@jax.custom_jvp
def logdet_spd(F):
    """log det of a symmetric positive-definite matrix; d log det F = tr(F⁻¹ dF)."""
    return chol_logdet_inv(F)[0]


@logdet_spd.defjvp
def _logdet_spd_jvp(primals, tangents):
    (F,), (dF,) = primals, tangents
    value, Finv = chol_logdet_inv(F)
    return value, jnp.sum(Finv * dF)


@jax.custom_jvp
def spd_inv(S):
    """Inverse of a symmetric positive-definite matrix; d(S⁻¹) = −S⁻¹ dS S⁻¹."""
    return chol_logdet_inv(S)[1]


@spd_inv.defjvp
def _spd_inv_jvp(primals, tangents):
    (S,), (dS,) = primals, tangents
    X = chol_logdet_inv(S)[1]
    return X, -X @ dS @ X
