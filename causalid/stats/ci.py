r"""Conditional-independence tests in pure JAX, batched with :func:`jax.vmap`.

Every test takes ``x`` and ``y`` of shape ``(sample,)`` (``kci``, ``kci_rff`` and ``gcm``
also take ``(sample, p)``), a conditioning block ``z`` of shape ``(sample, k)`` with
``k >= 0`` (``k == 0`` or ``z=None`` gives the unconditional test) and an optional
``weights`` vector of shape ``(sample,)`` holding 1 for real rows and 0 for padding rows.
Padding rows never influence a result, so ragged data sets can be stacked to one static
shape and tested in a single ``vmap``-ed call; the effective sample size is
:math:`n_w = \sum_i w_i`.  Each test returns a :class:`CIResult` with the statistic and the
p-value for :math:`H_0: X \perp\!\!\!\perp Y \mid Z`.  All functions are jitted; arguments
that fix shapes (``num_levels``, ``num_clusters``, ``num_features``...) are static.

Null approximations
-------------------
``fisher_z``  normal, Fisher's z-transform of the partial correlation.
``g_test``    chi-square with degrees of freedom adjusted for empty rows / columns.
``kci``       gamma with the first two moments of the KCI / HSIC spectral null.
``kci_rff``   gamma (Satterthwaite-Welch) with moments from the covariance of the
              products of residual random features.
``gcm``       normal (or Student-t with ``G - 1`` d.o.f. over ``G`` clusters); chi-square /
              Hotelling F for multivariate ``x``, ``y``.

The two gamma approximations match the first two moments of a weighted sum of
:math:`\chi^2_1` variables.  Their upper tail (small p-values, where decisions are made)
is calibrated, but their lower tail is heavier than the true null's, so p-values close to
1 are rarer than uniform (the reference KCI implementation in causal-learn behaves the
same way).  Do not read large p-values as evidence *for* independence.

No function calls ``jnp.linalg`` / ``jax.scipy.linalg`` (see :mod:`causalid._linalg` for why).
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtri

from causalid._linalg import spd_inverse, spd_solve
from causalid._x64 import float64
from causalid.errors import DataError
from causalid.stats._common import (
    as_columns,
    as_weights,
    center_kernel,
    chi2_sf,
    f_sf,
    gamma_sf,
    gaussian_kernel,
    median_heuristic,
    normal_sf_two_sided,
    ridge_residuals,
    standardize,
    student_t_sf_two_sided,
    weighted_lstsq_residuals,
)

Array = jax.Array

__all__ = ["CIResult", "fisher_z", "g_test", "kci", "kci_rff", "gcm", "CI_TESTS"]

#: Internal seed of the random Fourier features used by :func:`gcm`'s regression basis.
_GCM_SEED = 20200101


class CIResult(NamedTuple):
    """Result of a conditional-independence test.

    Attributes
    ----------
    statistic : jax.Array
        The test statistic (scalar, float64).
    pvalue : jax.Array
        The p-value for :math:`H_0: X \\perp Y \\mid Z` (scalar, float64).
    """

    statistic: Array
    pvalue: Array


def _vector(a, name: str, n: int | None = None) -> Array:
    """A ``(n,)`` float64 vector from ``(n,)`` or ``(n, 1)`` input."""
    a = jnp.asarray(a, dtype=jnp.float64)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise DataError(f"{name}: expected shape (n,) or (n, 1), got {a.shape}")
    if n is not None and a.shape[0] != n:
        raise DataError(f"{name}: has {a.shape[0]} rows, expected {n}")
    return a


def _prepare(x, y, z, weights, scalar: bool = False):
    """Column blocks ``(n, p)``, ``(n, q)``, ``(n, k)`` and weights ``(n,)``; with
    ``scalar=True`` ``x`` and ``y`` must be single variables and come back as ``(n,)``."""
    if scalar:
        xc = _vector(x, "x")
        n = xc.shape[0]
        yc = _vector(y, "y", n)
    else:
        xc = as_columns(x, name="x")
        n = xc.shape[0]
        yc = as_columns(y, n, "y")
    zc = as_columns(z, n, "z")
    return xc, yc, zc, as_weights(weights, n)


# ------------------------------------------------------------------------- Fisher z


@float64
@jax.jit
def fisher_z(x, y, z, weights=None) -> CIResult:
    r"""Fisher-z test of zero partial correlation (Gaussian / linear CI test).

    The residuals :math:`r_x, r_y` of the weighted least-squares regressions of ``x`` and
    ``y`` on :math:`[1, z]` give the partial correlation

    .. math:: \hat\rho = \frac{\sum_i w_i r_{x,i} r_{y,i}}
                              {\sqrt{\sum_i w_i r_{x,i}^2 \sum_i w_i r_{y,i}^2}},

    and the statistic :math:`T = \sqrt{n_w - k - 3}\,\operatorname{artanh}(\hat\rho)`, which is
    approximately :math:`N(0, 1)` under :math:`H_0` for jointly Gaussian data.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        The two variables tested.
    z : array_like, shape (n, k) or None
        Conditioning variables (``k`` may be 0).
    weights : array_like, shape (n,), optional
        1 for real rows, 0 for padding rows.

    Returns
    -------
    CIResult
        ``statistic`` :math:`T` (signed) and the two-sided p-value :math:`2\Phi(-|T|)`.
    """
    xv, yv, zc, w = _prepare(x, y, z, weights, scalar=True)
    k = zc.shape[1]
    res = weighted_lstsq_residuals(zc, jnp.stack([xv, yv], axis=1), w)
    sxy = jnp.sum(res[:, 0] * res[:, 1])
    sxx = jnp.sum(res[:, 0] ** 2)
    syy = jnp.sum(res[:, 1] ** 2)
    denom = sxx * syy
    r = jnp.where(denom > 0, sxy / jnp.sqrt(jnp.where(denom > 0, denom, 1.0)), 0.0)
    r = jnp.clip(r, -1.0 + 1e-15, 1.0 - 1e-15)
    dof = jnp.maximum(jnp.sum(w) - k - 3.0, 0.0)
    stat = jnp.sqrt(dof) * jnp.arctanh(r)
    return CIResult(stat, normal_sf_two_sided(stat))


# --------------------------------------------------------------------------- G test


@float64
@partial(jax.jit, static_argnames=("num_levels",))
def g_test(x, y, z, num_levels: int = 2, weights=None) -> CIResult:
    r"""Likelihood-ratio (G) test of conditional independence for discrete data.

    ``x``, ``y`` and every column of ``z`` hold integer codes ``0 .. num_levels - 1``.
    Rows are split into the :math:`S = L^k` strata of :math:`z` (``L = num_levels``); in
    stratum :math:`s` the observed counts :math:`O_{sab} = \sum_i w_i [z_i = s, x_i = a,
    y_i = b]` are compared with :math:`E_{sab} = O_{sa\cdot} O_{s\cdot b} / O_{s\cdot\cdot}`:

    .. math:: G = 2 \sum_{s,a,b} O_{sab} \log\frac{O_{sab}}{E_{sab}}, \qquad 0 \log 0 = 0.

    Degrees of freedom are adjusted for empty cells as in bnlearn / pgmpy:
    :math:`\nu = \max\bigl(1, \sum_s (r_s - 1)^+ (c_s - 1)^+\bigr)`, where :math:`r_s`,
    :math:`c_s` count the non-empty rows and columns of stratum :math:`s`.  The p-value is
    the chi-square survival :math:`Q(\nu/2, G/2)`.

    Parameters
    ----------
    x, y : array_like of int, shape (n,)
        Codes in ``0 .. num_levels - 1``.
    z : array_like of int, shape (n, k) or None
        Conditioning codes in ``0 .. num_levels - 1``.
    num_levels : int, static
        Number of levels ``L`` shared by all variables.
    weights : array_like, shape (n,), optional
        1 for real rows, 0 for padding rows.

    Returns
    -------
    CIResult
        ``statistic`` :math:`G` and its p-value.  Both are NaN if a real row holds a code
        outside ``0 .. num_levels - 1``.

    Notes
    -----
    Cost is :math:`O(n + L^{k+2})`; the strata are counted with one ``segment_sum``.
    """
    lv = int(num_levels)
    if lv < 2:
        raise DataError(f"g_test: num_levels must be >= 2, got {num_levels}")
    xi, yi, zi, w = _prepare(x, y, z, weights, scalar=True)
    n, k = zi.shape
    xi, yi, zi = (jnp.round(a).astype(jnp.int32) for a in (xi, yi, zi))
    in_range = (xi >= 0) & (xi < lv) & (yi >= 0) & (yi < lv)
    in_range &= jnp.all((zi >= 0) & (zi < lv), axis=1)
    bad = jnp.any((~in_range) & (w > 0))
    num_strata = lv**k
    strides = jnp.asarray([lv**j for j in range(k)], dtype=jnp.int32)
    stratum = zi @ strides if k > 0 else jnp.zeros((n,), jnp.int32)
    cell = (stratum * lv + xi) * lv + yi
    cell = jnp.where(in_range, cell, num_strata * lv * lv)  # out of range: dropped
    obs = jax.ops.segment_sum(w, cell, num_segments=num_strata * lv * lv)
    obs = obs.reshape(num_strata, lv, lv)
    rows = obs.sum(axis=2)
    cols = obs.sum(axis=1)
    tot = rows.sum(axis=1)
    exp_ = rows[:, :, None] * cols[:, None, :] / jnp.where(tot > 0, tot, 1.0)[:, None, None]
    pos = obs > 0
    ratio = jnp.where(pos, obs, 1.0) / jnp.where(pos, exp_, 1.0)
    g = 2.0 * jnp.sum(jnp.where(pos, obs * jnp.log(ratio), 0.0))
    nr = jnp.sum(rows > 0, axis=1)
    nc = jnp.sum(cols > 0, axis=1)
    dof = jnp.sum(jnp.maximum(nr - 1, 0) * jnp.maximum(nc - 1, 0))
    dof = jnp.maximum(dof, 1).astype(jnp.float64)
    g = jnp.maximum(g, 0.0)
    p = chi2_sf(g, dof)
    return CIResult(jnp.where(bad, jnp.nan, g), jnp.where(bad, jnp.nan, p))


# ------------------------------------------------------------------------------ KCI


def _gamma_result(stat: Array, mean: Array, var: Array) -> CIResult:
    """Gamma(mean^2/var, var/mean) survival p-value; p = 1 when the null has no spread
    (a constant variable: nothing can be detected)."""
    ok = (mean > 0) & (var > 0)
    mean, var = jnp.where(ok, mean, 1.0), jnp.where(ok, var, 1.0)
    p = gamma_sf(stat, mean**2 / var, var / mean)
    return CIResult(jnp.where(ok, stat, 0.0), jnp.where(ok, p, 1.0))


def _kci_width(n_eff: Array, small: float, mid: float, large: float) -> Array:
    """The sample-size rule of KCI: kernel width for n < 200, n < 1200, otherwise."""
    return jnp.where(n_eff < 200, small, jnp.where(n_eff < 1200, mid, large))


@float64
@jax.jit
def kci(x, y, z, weights=None) -> CIResult:
    r"""Kernel conditional-independence test (KCI) of Zhang, Peters, Janzing & Schölkopf.

    All variables are standardised (weighted z-scores) and Gaussian kernels
    :math:`k(a, b) = \exp(-\tfrac12\theta\lVert a-b\rVert^2)` are used, with the widths of
    KCI's sample-size rule (as in the reference implementation).

    *Unconditional* (``k = 0``; HSIC): width :math:`\sigma = 0.8, 0.5, 0.3` for
    :math:`n_w < 200, < 1200, \ge 1200` and :math:`\theta = d/\sigma^2` (``d`` the dimension
    of the variable).  With centred kernels :math:`\tilde K = HKH`

    .. math:: T = \operatorname{tr}(\tilde K_x \tilde K_y),\quad
              \mathbb E_0 T \approx \operatorname{tr}\tilde K_x\operatorname{tr}\tilde K_y/n,\quad
              \operatorname{Var}_0 T \approx 2\lVert\tilde K_x\rVert_F^2
                                         \lVert\tilde K_y\rVert_F^2/n^2.

    *Conditional*: :math:`\sigma = 1.2, 0.7, 0.4` and :math:`\theta = 1/(k\sigma^2)` for all
    three kernels (``k`` counts the non-constant columns of ``z``, so all-zero padding
    columns change nothing); :math:`K_x` is built on :math:`[x, z/2]`, :math:`K_y` on :math:`y`,
    :math:`K_z` on :math:`z`; all are centred, and with
    :math:`R = \varepsilon(\tilde K_z + \varepsilon I)^{-1}` (:math:`\varepsilon = 10^{-3}`)

    .. math:: T = \operatorname{tr}(R\tilde K_x R\; R\tilde K_y R),\quad
              \mathbb E_0 T \approx \sum_i (K_{x|z})_{ii}(K_{y|z})_{ii},\quad
              \operatorname{Var}_0 T \approx 2\sum_{ij}(K_{x|z})_{ij}^2(K_{y|z})_{ij}^2,

    where :math:`K_{\cdot|z} = R\tilde K R`.  These are the trace and twice the squared
    Frobenius norm of the "uu" product matrix of the KCI paper (the eigen-expansion of
    :math:`K_{x|z}` and :math:`K_{y|z}`), computed without the eigendecomposition and
    without KCI's truncation of eigenvalues below :math:`10^{-5}\lambda_{\max}`.

    In both cases the null is approximated by a gamma law with those two moments:
    shape :math:`\kappa = \mu^2/v`, scale :math:`\vartheta = v/\mu`, p-value
    :math:`Q(\kappa, T/\vartheta)`.

    Parameters
    ----------
    x, y : array_like, shape (n,) or (n, p)
    z : array_like, shape (n, k) or None
    weights : array_like, shape (n,), optional
        1 for real rows, 0 for padding rows.

    Returns
    -------
    CIResult

    Notes
    -----
    :math:`O(n^3)` time and :math:`O(n^2)` memory; meant for :math:`n \lesssim 1000`.  Use
    :func:`kci_rff` for larger samples.
    """
    xc, yc, zc, w = _prepare(x, y, z, weights)
    n_eff = jnp.sum(w)
    xs, ys = standardize(xc, w), standardize(yc, w)
    k = zc.shape[1]
    if k == 0:
        width = _kci_width(n_eff, 0.8, 0.5, 0.3)
        kx = center_kernel(gaussian_kernel(xs, xc.shape[1] / width**2), w)
        ky = center_kernel(gaussian_kernel(ys, yc.shape[1] / width**2), w)
        stat = jnp.sum(kx * ky)
        mean = jnp.trace(kx) * jnp.trace(ky) / n_eff
        var = 2.0 * jnp.sum(kx * kx) * jnp.sum(ky * ky) / n_eff**2
    else:
        zs = standardize(zc, w)
        # k counts the non-constant columns, so all-zero padding columns change nothing
        k_eff = jnp.maximum(jnp.sum(jnp.any(zs != 0, axis=0)), 1)
        width = _kci_width(n_eff, 1.2, 0.7, 0.4)
        theta = 1.0 / (width**2 * k_eff)
        kx = center_kernel(gaussian_kernel(jnp.concatenate([xs, 0.5 * zs], axis=1), theta), w)
        ky = center_kernel(gaussian_kernel(ys, theta), w)
        kz = center_kernel(gaussian_kernel(zs, theta), w)
        eps = 1e-3
        n = xc.shape[0]
        # Padding rows of kz are zero, so (kz + eps I) is block diagonal and r has an identity
        # block there; kx, ky have zero padding rows, so the residualised kernels do too.
        r = eps * spd_inverse(kz + eps * jnp.eye(n))
        kxr = r @ kx @ r
        kyr = r @ ky @ r
        prod = kxr * kyr
        stat = jnp.sum(prod)
        mean = jnp.sum(jnp.diagonal(kxr) * jnp.diagonal(kyr))
        var = 2.0 * jnp.sum(prod * prod)
    return _gamma_result(stat, mean, var)


# ----------------------------------------------------------------------- KCI (RFF)


def _frequencies(key: Array, dim: int, num_features: int) -> tuple[Array, Array]:
    r"""Gaussian frequencies :math:`\Omega` (dim x D) and phases :math:`b \sim U(0, 2\pi)`.

    One uniform draw of shape ``(1 + dim, D)``: row 0 gives the phases, rows ``1..dim`` the
    frequencies through the normal quantile function.  With JAX's default partitionable
    Threefry every element depends only on its flat index, so the frequencies of the first
    columns do not depend on how many columns follow: all-zero padding columns appended to
    ``z`` leave the features unchanged.  (One draw also keeps compile times down.)
    """
    tiny = jnp.finfo(jnp.float64).tiny
    u = jax.random.uniform(key, (1 + dim, num_features), dtype=jnp.float64, minval=tiny)
    return ndtri(u[1:]), 2.0 * jnp.pi * u[0]


def _fourier_features(a: Array, w: Array, key: Array, num_features: int) -> Array:
    r"""Standardised random Fourier features of the (standardised) rows of ``a``.

    :math:`\phi(a) = \sqrt2\cos(a\Omega/\sigma + b)` with :math:`\Omega_{jl} \sim N(0, 1)`,
    :math:`b_l \sim U(0, 2\pi)` and :math:`\sigma` the median heuristic; the features are
    then weighted-standardised (padding rows are 0).
    """
    omega, b = _frequencies(key, a.shape[1], num_features)
    sigma = median_heuristic(a, w)
    feats = jnp.sqrt(2.0) * jnp.cos(a @ omega / sigma + b)
    return standardize(feats, w)


@float64
@partial(jax.jit, static_argnames=("num_features", "num_features_z"))
def kci_rff(
    x,
    y,
    z,
    key,
    num_features: int = 5,
    weights=None,
    num_features_z: int = 100,
    ridge: float = 1e-6,
) -> CIResult:
    r"""Random-Fourier-feature approximation of KCI (in the spirit of RCoT; linear in n).

    Following Strobl, Zhang & Visweswaran (2019): standardise ``x``, ``y``, ``z``; draw
    ``num_features`` random Fourier features :math:`f_x, f_y` of ``x`` and ``y`` and
    ``num_features_z`` features :math:`f_z` of ``z`` (Gaussian-kernel frequencies scaled by
    the median heuristic), standardise and centre them, and ridge-regress :math:`f_x`,
    :math:`f_y` on :math:`f_z`:

    .. math:: e_x = f_x - f_z(C_{zz} + \lambda I)^{-1}C_{zx}, \qquad
              e_y = f_y - f_z(C_{zz} + \lambda I)^{-1}C_{zy},

    with :math:`C` the (weighted, :math:`1/n_w`) covariance matrices.  The statistic is
    :math:`T = n_w \lVert \hat C_{e_x e_y} \rVert_F^2`.  Under :math:`H_0` it is
    approximately :math:`\sum_j \lambda_j \chi^2_1` with :math:`\lambda_j` the eigenvalues of
    :math:`\Sigma = \operatorname{Cov}(e_{x,i} \otimes e_{y,i})`; the null is
    moment-matched by a gamma law (Satterthwaite-Welch): mean :math:`\operatorname{tr}\Sigma`,
    variance :math:`2\operatorname{tr}\Sigma^2`.  Unconditional (``k = 0``): no regression.

    Parameters
    ----------
    x, y : array_like, shape (n,) or (n, p)
    z : array_like, shape (n, k) or None
    key : jax.random.PRNGKey
        Seeds the random features (the test is a deterministic function of ``key``).
    num_features : int, static
        Features for ``x`` and for ``y`` (RCoT's default 5; :math:`\Sigma` is 25 x 25).
    weights : array_like, shape (n,), optional
        1 for real rows, 0 for padding rows.
    num_features_z : int, static
        Features for ``z`` (RCoT's default 100).
    ridge : float
        Ridge :math:`\lambda` added to :math:`C_{zz}` (features are standardised, so
        :math:`C_{zz}` has unit diagonal; RCoT uses :math:`10^{-10}`, a little more keeps the
        Cholesky solve well conditioned when the features of ``z`` are nearly collinear).

    Returns
    -------
    CIResult

    Notes
    -----
    Cost :math:`O(n\,(D_z^2 + D^4))` plus a median over the first 100 real rows.
    """
    xc, yc, zc, w = _prepare(x, y, z, weights)
    n_eff = jnp.sum(w)
    kx, ky, kz = jax.random.split(key, 3)
    fx = _fourier_features(standardize(xc, w), w, kx, num_features)
    fy = _fourier_features(standardize(yc, w), w, ky, num_features)
    if zc.shape[1] > 0:
        fz = _fourier_features(standardize(zc, w), w, kz, num_features_z)
        czz = fz.T @ fz / n_eff + ridge * jnp.eye(num_features_z)
        coef = spd_solve(czz, fz.T @ jnp.concatenate([fx, fy], axis=1) / n_eff)
        res = jnp.concatenate([fx, fy], axis=1) - fz @ coef
        ex, ey = res[:, :num_features], res[:, num_features:]
    else:
        ex, ey = fx, fy
    cxy = ex.T @ ey / n_eff
    stat = n_eff * jnp.sum(cxy * cxy)
    prods = (ex[:, :, None] * ey[:, None, :]).reshape(ex.shape[0], -1)
    mu = jnp.sum(prods, axis=0) / n_eff
    cen = (prods - mu) * w[:, None]
    sigma = cen.T @ cen / n_eff
    return _gamma_result(stat, jnp.trace(sigma), 2.0 * jnp.sum(sigma * sigma))


# ------------------------------------------------------------------------------ GCM


def _gcm_basis(zs: Array, w: Array, key: Array, num_features: int, bandwidth=None) -> Array:
    """Regression basis for GCM: z, z^2, z^3 per coordinate and random Fourier features."""
    sigma = median_heuristic(zs, w) if bandwidth is None else bandwidth
    omega, b = _frequencies(key, zs.shape[1], num_features)
    rff = jnp.cos(zs @ omega / sigma + b)
    return standardize(jnp.concatenate([zs, zs**2, zs**3, rff], axis=1), w)


@float64
@partial(jax.jit, static_argnames=("num_clusters", "num_features"))
def gcm(
    x,
    y,
    z,
    cluster=None,
    num_clusters: int | None = None,
    weights=None,
    *,
    key=None,
    num_features: int = 20,
    ridge: float = 1e-3,
    bandwidth=None,
) -> CIResult:
    r"""Generalised covariance measure (GCM) test of Shah & Peters (2020).

    ``x`` and ``y`` (standardised; the test is scale invariant) are regressed on ``z`` by
    weighted ridge regression with an unpenalised intercept on the basis: standardised :math:`z_j`, :math:`z_j^2`,
    :math:`z_j^3` for every coordinate, and ``num_features`` random Fourier features
    :math:`\cos(z\Omega/\sigma + b)` (median-heuristic :math:`\sigma`, frequencies drawn
    from ``key``, by default a fixed internal key, so the test is deterministic); each
    basis column is standardised and the penalty is :math:`\lambda n_w`.  With residuals
    :math:`r_x, r_y` and products :math:`R_i = r_{x,i} r_{y,i}`:

    .. math:: T = \sqrt{n_w}\,\frac{\bar R}{\sqrt{\overline{R^2} - \bar R^2}}
              \;\xrightarrow{H_0}\; N(0, 1),

    and the p-value is :math:`2\Phi(-|T|)`.

    *Clustered* (``cluster`` given): rows in the same cluster may be dependent, clusters
    are the independent units.  The cluster totals :math:`S_g = \sum_{i \in g} w_i R_i` of
    the :math:`G` non-empty clusters enter a t statistic
    :math:`T = \bar S / \sqrt{c\, s_S^2/G}` with the CR1 factor :math:`c = G/(G-1)` (the
    residuals are centred over all rows, which lowers the spread of the totals by
    :math:`(G-1)/G` when cluster effects dominate) and a Student-t(:math:`G-1`) p-value.
    With few clusters and heavy-tailed totals the t reference is only approximate.

    *Multivariate* ``x`` (p columns) and ``y`` (q columns): :math:`R_i \in \mathbb R^{pq}`
    holds all residual products and the Wald statistic
    :math:`T = n_w \bar R^\top \hat\Sigma_R^{-1} \bar R` is referred to
    :math:`\chi^2_{pq}`; clustered, Hotelling's :math:`T^2 = G\,\bar S^\top (c\hat\Sigma_S)^{-1}
    \bar S` with :math:`\tfrac{G-pq}{pq(G-1)}T^2 \sim F(pq, G-pq)` (needs :math:`G > pq`).

    Parameters
    ----------
    x, y : array_like, shape (n,) or (n, p)
    z : array_like, shape (n, k) or None
        With ``k = 0`` only the intercept is fitted (test of zero covariance).
    cluster : array_like of int, shape (n,), optional
        Cluster ids ``0 .. num_clusters - 1``.
    num_clusters : int, static
        Required with ``cluster``.
    weights : array_like, shape (n,), optional
        1 for real rows, 0 for padding rows.
    key : jax.random.PRNGKey, optional
        Seed of the random Fourier features (default: a fixed internal key).
    num_features : int, static
        Number of random Fourier features in the basis.
    ridge : float
        Ridge penalty per unit of effective sample size.
    bandwidth : float, optional
        Width :math:`\sigma` of the random Fourier features on the standardised ``z``; by
        default the median heuristic (a sort of up to 4,950 distances per test).  Callers
        that know the scale (``sqrt(2k)`` for ``k`` standard-normal columns, the expected
        distance of two rows) can pass it and skip the sort.

    Returns
    -------
    CIResult
        Signed :math:`T` for scalar ``x``, ``y``; :math:`T^2`-type statistic otherwise.
    """
    xc, yc, zc, w = _prepare(x, y, z, weights)
    n = xc.shape[0]
    n_eff = jnp.sum(w)
    if key is None:
        key = jax.random.PRNGKey(_GCM_SEED)
    if zc.shape[1] > 0:
        basis = _gcm_basis(standardize(zc, w), w, key, num_features, bandwidth)
    else:
        basis = jnp.zeros((n, 0))
    # the statistic is invariant to rescaling x and y; standardising makes a constant
    # column exactly zero (then T = 0, p = 1) instead of rounding noise
    xy = standardize(jnp.concatenate([xc, yc], axis=1), w)
    res = ridge_residuals(basis, xy, w, ridge)
    rx, ry = res[:, : xc.shape[1]], res[:, xc.shape[1] :]
    prods = (rx[:, :, None] * ry[:, None, :]).reshape(n, -1)  # zero on padding rows
    d = prods.shape[1]

    if cluster is None:
        if num_clusters is not None:
            raise DataError("gcm: num_clusters given without cluster ids")
        mean = jnp.sum(prods, axis=0) / n_eff
        cen = (prods - mean) * w[:, None]
        cov = cen.T @ cen / n_eff
        if d == 1:
            sd = jnp.sqrt(cov[0, 0])
            stat = jnp.where(sd > 0, jnp.sqrt(n_eff) * mean[0] / jnp.where(sd > 0, sd, 1.0), 0.0)
            return CIResult(stat, normal_sf_two_sided(stat))
        stat = n_eff * mean @ spd_solve(_jittered(cov), mean)
        return CIResult(stat, chi2_sf(stat, float(d)))

    if num_clusters is None:
        raise DataError("gcm: num_clusters (static) is required with cluster ids")
    cl = jnp.asarray(cluster).astype(jnp.int32)
    if cl.shape != (n,):
        raise DataError(f"gcm: cluster must have shape ({n},), got {cl.shape}")
    totals = jax.ops.segment_sum(prods, cl, num_segments=num_clusters)
    present = jax.ops.segment_sum(w, cl, num_segments=num_clusters) > 0
    g = jnp.sum(present).astype(jnp.float64)
    pm = present[:, None].astype(jnp.float64)
    mean = jnp.sum(totals * pm, axis=0) / g
    cen = (totals - mean) * pm
    # CR1 small-sample factor G/(G-1): the residuals are centred over all rows, which makes
    # the cluster totals negatively correlated (their sample variance is low by (G-1)/G
    # when cluster effects dominate).
    cov = cen.T @ cen / (g - 1.0) * (g / (g - 1.0))
    if d == 1:
        se = jnp.sqrt(cov[0, 0] / g)
        stat = jnp.where(se > 0, mean[0] / jnp.where(se > 0, se, 1.0), 0.0)
        return CIResult(stat, student_t_sf_two_sided(stat, g - 1.0))
    t2 = g * mean @ spd_solve(_jittered(cov), mean)
    d2 = g - d
    fstat = d2 / (d * (g - 1.0)) * t2
    p = jnp.where(d2 > 0, f_sf(fstat, float(d), d2), jnp.nan)
    return CIResult(t2, p)


def _jittered(cov: Array) -> Array:
    """``cov`` plus a negligible ridge, so degenerate (e.g. constant) columns give T = 0."""
    d = cov.shape[0]
    return cov + (1e-12 * jnp.trace(cov) / d + 1e-300) * jnp.eye(d)


#: The tests by the names used across causalid (see ``causalid._typing.CIMethod``).
#: Note the extra arguments: ``g_test`` takes ``num_levels``, ``kci_rff`` a PRNG ``key``.
CI_TESTS: dict[str, Callable[..., CIResult]] = {
    "fisherz": fisher_z,
    "gtest": g_test,
    "kci": kci,
    "rff": kci_rff,
    "gcm": gcm,
}
