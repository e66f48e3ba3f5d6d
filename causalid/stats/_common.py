"""Shared numerical helpers of :mod:`causalid.stats`, written once and used by every test.

Everything here is pure JAX, has static output shapes and accepts a ``(sample,)`` 0/1
weight vector ``w`` that marks real rows.  Padding rows (``w == 0``) never change a
result: they are zeroed before every sum, excluded from medians and given an identity
block in every linear solve.  Linear solves use :mod:`causalid._linalg` (plain XLA loops,
see there for why).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betainc, gammaincc, ndtr

from causalid._linalg import spd_solve
from causalid.errors import DataError

Array = jax.Array

__all__ = [
    "as_columns",
    "as_weights",
    "center_kernel",
    "chi2_sf",
    "gamma_sf",
    "gaussian_kernel",
    "median_heuristic",
    "normal_sf_two_sided",
    "ridge_residuals",
    "sq_dists",
    "standardize",
    "student_t_sf_two_sided",
    "f_sf",
    "weighted_lstsq_residuals",
]


# ----------------------------------------------------------------------------- inputs


def as_columns(a, n: int | None = None, name: str = "array") -> Array:
    """Return ``a`` as a float64 ``(n, p)`` array (a ``(n,)`` vector becomes one column).

    ``None`` gives an ``(n, 0)`` array (an empty conditioning set).
    """
    if a is None:
        if n is None:
            raise DataError(f"{name}: cannot build an empty column block without n")
        return jnp.zeros((n, 0), dtype=jnp.float64)
    a = jnp.asarray(a, dtype=jnp.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise DataError(f"{name}: expected shape (n,) or (n, p), got {a.shape}")
    if n is not None and a.shape[0] != n:
        raise DataError(f"{name}: has {a.shape[0]} rows, expected {n}")
    return a


def as_weights(weights, n: int) -> Array:
    """Return the ``(n,)`` float64 row weights (all ones when ``weights`` is None)."""
    if weights is None:
        return jnp.ones((n,), dtype=jnp.float64)
    w = jnp.asarray(weights, dtype=jnp.float64)
    if w.shape != (n,):
        raise DataError(f"weights: expected shape ({n},), got {w.shape}")
    return w


# ------------------------------------------------------------------------- moments


def standardize(a: Array, w: Array) -> Array:
    r"""Weighted z-scores of the columns of ``a``; padding rows are set to 0.

    .. math:: \tilde a_{ij} = w_i (a_{ij} - \bar a_j) / s_j,\quad
              \bar a_j = \frac{\sum_i w_i a_{ij}}{n_w},\quad
              s_j^2 = \frac{\sum_i w_i (a_{ij}-\bar a_j)^2}{n_w - 1}

    with :math:`n_w = \sum_i w_i`.  A constant column (:math:`s_j = 0`) becomes all zeros.
    """
    n_eff = jnp.sum(w)
    mu = jnp.sum(w[:, None] * a, axis=0) / n_eff
    c = (a - mu) * w[:, None]
    var = jnp.sum(c * c, axis=0) / jnp.maximum(n_eff - 1.0, 1.0)
    sd = jnp.sqrt(var)
    safe = sd > 0
    return jnp.where(safe, c / jnp.where(safe, sd, 1.0), 0.0)


# ------------------------------------------------------------------------ regression


def weighted_lstsq_residuals(design: Array, targets: Array, w: Array) -> Array:
    r"""Residuals of the weighted least-squares fit of ``targets`` on :math:`[1, D]`.

    The intercept is removed by weighted centring, :math:`\tilde D = D - \bar D_w`,
    :math:`\tilde T = T - \bar T_w`, and the slopes solve the normal equations
    :math:`(\tilde D^\top W \tilde D + \delta I) B = \tilde D^\top W \tilde T` by Cholesky, with a
    negligible jitter :math:`\delta = 10^{-12}\,\overline{\operatorname{diag}}` that keeps
    collinear designs solvable.  Returns :math:`w \odot (\tilde T - \tilde D B)`.
    """
    n_eff = jnp.sum(w)
    dc = (design - jnp.sum(w[:, None] * design, axis=0) / n_eff) * w[:, None]
    tc = (targets - jnp.sum(w[:, None] * targets, axis=0) / n_eff) * w[:, None]
    if design.shape[1] == 0:
        return tc
    gram = dc.T @ dc
    jitter = 1e-12 * (jnp.trace(gram) / design.shape[1] + 1e-300)
    coef = spd_solve(gram + jitter * jnp.eye(design.shape[1]), dc.T @ tc)
    return tc - dc @ coef


def ridge_residuals(basis: Array, targets: Array, w: Array, penalty: float | Array) -> Array:
    r"""Residuals of a weighted ridge regression with an unpenalised intercept.

    With design :math:`A = [1, B]` the coefficients solve

    .. math:: (A^\top W A + \lambda n_w \operatorname{diag}(0, 1, \dots, 1))\,\beta
              = A^\top W t,

    where :math:`W = \operatorname{diag}(w)`; the residuals :math:`w \odot (t - A\beta)`
    are returned.  ``basis`` should have standardised columns so one penalty fits all.
    """
    n = basis.shape[0]
    a = jnp.concatenate([jnp.ones((n, 1), basis.dtype), basis], axis=1)
    aw = a * w[:, None]
    pen = jnp.concatenate([jnp.zeros((1,)), jnp.ones((basis.shape[1],))])
    gram = a.T @ aw + penalty * jnp.sum(w) * jnp.diag(pen)
    coef = spd_solve(gram, aw.T @ targets)
    return w[:, None] * (targets - a @ coef)


# --------------------------------------------------------------------------- kernels


def sq_dists(a: Array) -> Array:
    """Pairwise squared Euclidean distances between the rows of ``a`` (clipped at 0)."""
    sq = jnp.sum(a * a, axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (a @ a.T)
    return jnp.maximum(d2, 0.0)


def gaussian_kernel(a: Array, theta: float | Array) -> Array:
    r"""Gaussian kernel matrix :math:`K_{ij} = \exp(-\tfrac12\theta\lVert a_i - a_j\rVert^2)`."""
    return jnp.exp(-0.5 * theta * sq_dists(a))


def center_kernel(k: Array, w: Array) -> Array:
    r"""Centre a kernel matrix over the real rows and zero the padding rows / columns.

    Equals :math:`HKH` on the real rows with :math:`H = I - \tfrac1{n_w}\mathbf 1\mathbf 1^\top`,
    i.e. :math:`K_{ij} - m_i - m_j + m` with :math:`m_i = \sum_l w_l K_{il}/n_w` and
    :math:`m = \sum_{il} w_i w_l K_{il}/n_w^2`.
    """
    n_eff = jnp.sum(w)
    m = (k @ w) / n_eff
    mm = jnp.dot(w, m) / n_eff
    kc = k - m[:, None] - m[None, :] + mm
    return kc * (w[:, None] * w[None, :])


def median_heuristic(a: Array, w: Array, max_rows: int = 100) -> Array:
    r"""Median Euclidean distance between distinct real rows of ``a``.

    Uses the first ``max_rows`` real rows (in their original order), so the cost is
    bounded for large ``n`` (one sort of :math:`m(m-1)/2` distances) and padding rows never
    enter.  Returns 1 when the median is 0 or undefined (fewer than two real rows,
    constant data).
    """
    n = a.shape[0]
    m = min(n, max_rows)
    order = jnp.argsort(-w, stable=True)[:m]
    sub, ws = a[order], w[order]
    iu = np.triu_indices(m, 1)
    d = jnp.sqrt(sq_dists(sub))[iu]
    valid = (ws[:, None] * ws[None, :])[iu] > 0
    vals = jnp.sort(jnp.where(valid, d, jnp.inf))
    c = jnp.sum(valid)
    last = max(vals.shape[0] - 1, 0)
    lo = jnp.clip((c - 1) // 2, 0, last)
    hi = jnp.clip(c // 2, 0, last)
    med = 0.5 * (vals[lo] + vals[hi]) if vals.shape[0] > 0 else jnp.asarray(0.0)
    return jnp.where((c > 0) & (med > 0) & jnp.isfinite(med), med, 1.0)


# ------------------------------------------------------------------ survival functions


def normal_sf_two_sided(z: Array) -> Array:
    r"""Two-sided normal p-value :math:`2\,\Phi(-|z|)`."""
    return 2.0 * ndtr(-jnp.abs(z))


def chi2_sf(x: Array, df: Array) -> Array:
    r"""Chi-square survival function :math:`Q(\nu/2, x/2)` (regularised upper gamma)."""
    return gammaincc(0.5 * df, 0.5 * jnp.maximum(x, 0.0))


def gamma_sf(x: Array, shape: Array, scale: Array) -> Array:
    r"""Survival function of Gamma(shape, scale): :math:`Q(k, x/\theta)`."""
    return gammaincc(shape, jnp.maximum(x, 0.0) / scale)


def student_t_sf_two_sided(t: Array, df: Array) -> Array:
    r"""Two-sided Student-t p-value :math:`I_{\nu/(\nu+t^2)}(\nu/2, 1/2)`."""
    return betainc(0.5 * df, 0.5, df / (df + t * t))


def f_sf(f: Array, d1: Array, d2: Array) -> Array:
    r"""Survival function of F(d1, d2): :math:`I_{d_2/(d_2+d_1 f)}(d_2/2, d_1/2)`."""
    f = jnp.maximum(f, 0.0)
    return betainc(0.5 * d2, 0.5 * d1, d2 / (d2 + d1 * f))
