r"""Exact Kalman filtering and RTS smoothing for linear-Gaussian state-space models.

The model (time-invariant, float64) is

.. math::

    x_0 &\sim \mathcal N(m_0, P_0), \\
    x_{t+1} &= A x_t + B u_t + b + w_t, \qquad w_t \sim \mathcal N(0, Q), \\
    y_t &= C x_t + D u_t + d + v_t, \qquad v_t \sim \mathcal N(0, R),

for :math:`t = 0, \dots, T-1`, with state dimension ``n``, input dimension ``m`` (possibly
0) and output dimension ``p``.  ``x_0`` is the state at the time of ``y_0``; the input
``u_t`` drives the transition to ``x_{t+1}`` and enters ``y_t`` through ``D``.

Every function comes in two exact twins selected by ``method`` (identical signatures and,
up to rounding, identical results):

* ``"sequential"``: one ``lax.scan`` over time (depth and work :math:`O(T)`);
* ``"parallel"``: the associative-operator formulation of Särkkä & García-Fernández,
  "Temporal parallelization of Bayesian smoothers", IEEE TAC 66(1), 2021, for both the
  filter and the RTS smoother, evaluated by a log-depth prefix scan (:func:`causalid.dynamics.scan.prefix_scan`;
  depth :math:`O(\log T)`, work :math:`O(T\log T)`; pays off on GPUs / TPUs).  Its
  log-likelihood sums the per-step Gaussian terms of the parallel predicted moments;
* ``"auto"``: :func:`choose_method`, a static (Python-level) rule.

Missing data: any NaN entry of ``y`` is missing.  A partially observed row is handled
exactly by masking: the missing components get a zero row of ``C`` / ``D`` / ``d``, a zero
observation and a unit, uncorrelated noise variance, which makes them independent
standard-normal dummies observed at 0; their constant :math:`-\tfrac12\log 2\pi` is removed
again, so the log-likelihood is the marginal density of the observed entries only.  Shapes
stay static, so everything works under ``jit`` / ``vmap`` / ``grad``.  Inputs must be
finite.

Numerics (float64 throughout): Joseph-form covariance updates, symmetrised covariances,
and small SPD solves by an unrolled elimination after Jacobi scaling whose pivots are the
squared diagonal of the Cholesky factor (so :math:`\log\det S = \sum_j \log L_{jj}^2`); see
:func:`spd_inv_logdet_unrolled` (:mod:`causalid._linalg`).  Its derivative is supplied in closed form
(:math:`d S^{-1} = -S^{-1}\,dS\,S^{-1}`, :math:`d\log\det S = \operatorname{tr}(S^{-1}
dS)`), so reverse-mode gradients only see matrix products, and the scans recompute each
step in the backward pass instead of storing it.  Only plain XLA operations are used, no
LAPACK custom calls (see :mod:`causalid._linalg` for why).

Covariance conditions: ``R`` (or every :math:`C P C^\top + R`) and the predicted state
covariances :math:`A P^f A^\top + Q` (for the smoother) must be positive definite.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from causalid._linalg import solve_general, spd_inv_logdet, symmetrize
from causalid._x64 import float64
from causalid.dynamics.scan import choose_method, prefix_scan
from causalid.errors import DataError

Array = jax.Array

__all__ = [
    "LGSSMParams",
    "FilterResult",
    "SmootherResult",
    "make_params",
    "kalman_filter",
    "kalman_smoother",
    "log_likelihood",
    "dense_log_likelihood",
]

_LOG2PI = math.log(2.0 * math.pi)


# ------------------------------------------------------------------------ containers


class LGSSMParams(NamedTuple):
    r"""Parameters of the linear-Gaussian state-space model.

    .. math::

        x_0 \sim \mathcal N(m_0, P_0),\quad
        x_{t+1} = A x_t + B u_t + b + w_t,\ w_t \sim \mathcal N(0, Q),\quad
        y_t = C x_t + D u_t + d + v_t,\ v_t \sim \mathcal N(0, R).

    Build with :func:`make_params`, which fills the optional blocks with zeros.
    """

    m0: Array  # (n,)
    P0: Array  # (n, n)
    A: Array  # (n, n)
    B: Array  # (n, m), m may be 0
    b: Array  # (n,) constant state drift
    Q: Array  # (n, n)
    C: Array  # (p, n)
    D: Array  # (p, m)
    d: Array  # (p,)
    R: Array  # (p, p)


class FilterResult(NamedTuple):
    r"""Output of :func:`kalman_filter`.

    ``filtered_*[t]`` are the moments of :math:`p(x_t \mid y_{0:t})`, ``predicted_*[t]``
    those of :math:`p(x_t \mid y_{0:t-1})` (``predicted_*[0]`` is the prior
    :math:`(m_0, P_0)`), and ``log_likelihood`` is :math:`\log p(y_{0:T-1})` over the
    observed entries.
    """

    log_likelihood: Array  # ()
    filtered_means: Array  # (T, n)
    filtered_covs: Array  # (T, n, n)
    predicted_means: Array  # (T, n)
    predicted_covs: Array  # (T, n, n)


class SmootherResult(NamedTuple):
    r"""Output of :func:`kalman_smoother`.

    ``smoothed_*[t]`` are the moments of :math:`p(x_t \mid y_{0:T-1})` and
    ``smoothed_cross_covs[t]`` is :math:`\operatorname{Cov}(x_{t+1}, x_t \mid y_{0:T-1})`
    (the lag-one term of the EM sufficient statistics).
    """

    log_likelihood: Array  # ()
    filtered_means: Array  # (T, n)
    filtered_covs: Array  # (T, n, n)
    smoothed_means: Array  # (T, n)
    smoothed_covs: Array  # (T, n, n)
    smoothed_cross_covs: Array  # (T-1, n, n)


def _f64(a) -> Array:
    return jnp.asarray(a, dtype=jnp.float64)


@float64
def make_params(A, C, Q, R, *, B=None, D=None, b=None, d=None, m0=None, P0=None) -> LGSSMParams:
    r"""Assemble :class:`LGSSMParams`, filling the optional blocks.

    Parameters
    ----------
    A : (n, n) array
        State transition matrix.
    C : (p, n) array
        Observation matrix.
    Q, R : (n, n), (p, p) arrays
        Process and observation noise covariances.  ``R`` (or :math:`C P C^\top + R`) and
        the predicted state covariances must be positive definite.
    B, D : (n, m), (p, m) arrays, optional
        Input matrices.  Missing ones are zeros; with neither given, ``m = 0``.
    b, d : (n,), (p,) arrays, optional
        Constant drifts of the state and observation equations (default 0).
    m0, P0 : (n,), (n, n) arrays, optional
        Prior of :math:`x_0` (default :math:`\mathcal N(0, I)`).

    Works on traced values (inside ``jit`` / NumPyro models); only static shapes are checked.
    """
    A, C, Q, R = _f64(A), _f64(C), _f64(Q), _f64(R)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise DataError(f"A must be a square matrix; got shape {A.shape}")
    n = A.shape[0]
    if C.ndim != 2 or C.shape[1] != n:
        raise DataError(f"C must have shape (p, {n}); got {C.shape}")
    p = C.shape[0]
    if Q.shape != (n, n):
        raise DataError(f"Q must have shape ({n}, {n}); got {Q.shape}")
    if R.shape != (p, p):
        raise DataError(f"R must have shape ({p}, {p}); got {R.shape}")
    if B is not None:
        B = _f64(B)
        if B.ndim != 2 or B.shape[0] != n:
            raise DataError(f"B must have shape ({n}, m); got {B.shape}")
    if D is not None:
        D = _f64(D)
        if D.ndim != 2 or D.shape[0] != p:
            raise DataError(f"D must have shape ({p}, m); got {D.shape}")
    m = B.shape[1] if B is not None else (D.shape[1] if D is not None else 0)
    B = jnp.zeros((n, m)) if B is None else B
    D = jnp.zeros((p, m)) if D is None else D
    if B.shape[1] != D.shape[1]:
        raise DataError(f"B and D must have the same number of columns; got {B.shape}, {D.shape}")
    b = jnp.zeros((n,)) if b is None else _f64(b)
    d = jnp.zeros((p,)) if d is None else _f64(d)
    m0 = jnp.zeros((n,)) if m0 is None else _f64(m0)
    P0 = jnp.eye(n) if P0 is None else _f64(P0)
    for name, val, shape in (("b", b, (n,)), ("d", d, (p,)), ("m0", m0, (n,)), ("P0", P0, (n, n))):
        if val.shape != shape:
            raise DataError(f"{name} must have shape {shape}; got {val.shape}")
    return LGSSMParams(m0=m0, P0=P0, A=A, B=B, b=b, Q=Q, C=C, D=D, d=d, R=R)



class _Prepared(NamedTuple):
    """Per-step arrays shared by both twins (all with a leading time axis)."""

    e: Array  # (T, p) centred observations y - D u - d, 0 where missing
    w: Array  # (T, p) 1.0 observed / 0.0 missing
    cx: Array  # (T, n) state drift B u_t + b  (drives x_{t+1})


def _prepare(params: LGSSMParams, y, inputs) -> _Prepared:
    y = _f64(y)
    n, p, m = params.A.shape[0], params.C.shape[0], params.B.shape[1]
    if y.ndim == 1 and p == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[1] != p:
        raise DataError(f"y must have shape (T, {p}); got {y.shape}")
    T = y.shape[0]
    if T < 1:
        raise DataError("y must have at least one time step")
    if inputs is None:
        if m > 0:
            raise DataError(f"the model has {m} inputs (B, D have {m} columns) but inputs=None")
        u = jnp.zeros((T, 0))
    else:
        u = _f64(inputs)
        if u.ndim == 1 and m == 1:
            u = u[:, None]
        if u.shape != (T, m):
            raise DataError(f"inputs must have shape ({T}, {m}); got {u.shape}")
    observed = ~jnp.isnan(y)
    w = observed.astype(jnp.float64)
    cy = params.d + (u @ params.D.T if m > 0 else 0.0)
    e = jnp.where(observed, y - cy, 0.0)
    cx = params.b + (u @ params.B.T if m > 0 else jnp.zeros((T, n)))
    return _Prepared(e=e, w=w, cx=jnp.broadcast_to(cx, (T, n)))


def _canonical(params: LGSSMParams) -> LGSSMParams:
    """Symmetrise the covariances once on entry (so gradients w.r.t. them are symmetric)."""
    return params._replace(P0=symmetrize(params.P0), Q=symmetrize(params.Q), R=symmetrize(params.R))


def _masked_obs(params: LGSSMParams, w: Array) -> tuple[Array, Array]:
    r"""Masked :math:`C_w = \operatorname{diag}(w) C` and
    :math:`R_w = R \circ ww^\top + \operatorname{diag}(1-w)`."""
    cm = params.C * w[:, None]
    rm = params.R * (w[:, None] * w[None, :]) + jnp.diag(1.0 - w)
    return cm, rm


def _update(m: Array, P: Array, e: Array, w: Array, cm: Array, rm: Array):
    r"""Condition :math:`\mathcal N(m, P)` on one (masked) observation row.

    .. math::

        S &= C_w P C_w^\top + R_w, \quad K = P C_w^\top S^{-1}, \quad r = e - C_w m, \\
        m^f &= m + K r, \quad
        P^f = (I - K C_w) P (I - K C_w)^\top + K R_w K^\top \ \text{(Joseph form)}, \\
        \ell &= -\tfrac12\left(r^\top S^{-1} r + \log\det S + n_{obs}\log 2\pi\right).

    Returns ``(m^f, P^f, \ell)``.
    """
    n = P.shape[-1]
    cpm = cm @ jnp.concatenate([P, m[:, None]], axis=1)  # [C_w P, C_w m]
    cp, r = cpm[:, :n], e - cpm[:, n]
    si, logdet = spd_inv_logdet(symmetrize(cp @ cm.T + rm))
    ksr = si @ jnp.concatenate([cp, r[:, None]], axis=1)  # [K^T, S^{-1} r]
    k, sir = ksr[:, :n].T, ksr[:, n]
    ll = -0.5 * (r @ sir + logdet + jnp.sum(w) * _LOG2PI)
    x = jnp.concatenate([jnp.eye(n, dtype=P.dtype) - k @ cm, k], axis=1)  # [I - K C_w, K]
    mf = m + k @ r
    pf = symmetrize(x @ _block_diag(P, rm) @ x.T)
    return mf, pf, ll


def _block_diag(a: Array, b: Array) -> Array:
    top = jnp.concatenate([a, jnp.zeros((a.shape[0], b.shape[1]), a.dtype)], axis=1)
    bottom = jnp.concatenate([jnp.zeros((b.shape[0], a.shape[1]), a.dtype), b], axis=1)
    return jnp.concatenate([top, bottom], axis=0)


# -------------------------------------------------------------------- sequential twin

# Reverse-mode through the scans recomputes each step from its carry instead of storing
# its intermediates: on CPU, writing a dozen (T, n, n) residual stacks costs more than
# recomputing a step (measured ~2x faster value-and-grad at n = p = 10, T = 10^4).
_remat = jax.checkpoint_policies.nothing_saveable


def _loglik_sequential(params: LGSSMParams, prep: _Prepared) -> Array:
    r"""Log-likelihood by the one-step-predictor form of the filter (fewest matrix products).

    With :math:`K_t = P^p_t C_w^\top S_t^{-1}` and :math:`F_t = A (I - K_t C_w)`:

    .. math::

        m^p_{t+1} = F_t m^p_t + A K_t e_t + \mu_t,\qquad
        P^p_{t+1} = F_t P^p_t F_t^\top + (A K_t) R_w (A K_t)^\top + Q,

    i.e. the Joseph-form update followed by the prediction, fused.
    """
    A, Q = params.A, params.Q
    n = A.shape[0]

    @functools.partial(jax.checkpoint, policy=_remat)
    def step(carry, xs):
        ll, m, P = carry
        e, w, cx = xs
        cm, rm = _masked_obs(params, w)
        cpm = cm @ jnp.concatenate([P, m[:, None]], axis=1)
        cp, r = cpm[:, :n], e - cpm[:, n]
        si, logdet = spd_inv_logdet(symmetrize(cp @ cm.T + rm))
        ksr = si @ jnp.concatenate([cp, r[:, None]], axis=1)
        ak = A @ ksr[:, :n].T  # A K
        x = jnp.concatenate([A - ak @ cm, ak], axis=1)  # [F, A K]
        llt = -0.5 * (r @ ksr[:, n] + logdet + jnp.sum(w) * _LOG2PI)
        mp = x @ jnp.concatenate([m, e]) + cx
        pp = symmetrize(x @ _block_diag(P, rm) @ x.T + Q)
        return (ll + llt, mp, pp), None

    init = (jnp.zeros((), jnp.float64), params.m0, params.P0)
    (ll, _, _), _ = lax.scan(step, init, (prep.e, prep.w, prep.cx))
    return ll


def _filter_sequential(params: LGSSMParams, prep: _Prepared):
    A, Q = params.A, params.Q

    @functools.partial(jax.checkpoint, policy=_remat)
    def step(carry, xs):
        ll, m, P = carry
        e, w, cx = xs
        cm, rm = _masked_obs(params, w)
        mf, pf, llt = _update(m, P, e, w, cm, rm)
        mp = A @ mf + cx
        pp = symmetrize(A @ pf @ A.T + Q)
        return (ll + llt, mp, pp), (mf, pf, m, P)

    init = (jnp.zeros((), jnp.float64), params.m0, params.P0)
    (ll, _, _), out = lax.scan(step, init, (prep.e, prep.w, prep.cx))
    return ll, out


def _smoother_gain(pf: Array, pp_next: Array, A: Array) -> Array:
    r"""RTS gain :math:`G_t = P^f_t A^\top (P^p_{t+1})^{-1}`."""
    si, _ = spd_inv_logdet(pp_next)
    return pf @ A.T @ si


def _smooth_sequential(params: LGSSMParams, fm, fc, pm, pc):
    A = params.A

    def step(carry, xs):
        ms_next, ps_next = carry
        mf, pf, mp_next, pp_next = xs
        g = _smoother_gain(pf, pp_next, A)
        ms = mf + g @ (ms_next - mp_next)
        ps = symmetrize(pf + g @ (ps_next - pp_next) @ g.T)
        cross = ps_next @ g.T
        return (ms, ps), (ms, ps, cross)

    init = (fm[-1], fc[-1])
    _, (ms, ps, cross) = lax.scan(step, init, (fm[:-1], fc[:-1], pm[1:], pc[1:]), reverse=True)
    ms = jnp.concatenate([ms, fm[-1:]], axis=0)
    ps = jnp.concatenate([ps, fc[-1:]], axis=0)
    return ms, ps, cross


# ---------------------------------------------------------------------- parallel twin



def _filter_elements(params: LGSSMParams, prep: _Prepared):
    r"""Associative filtering elements :math:`(F_t, c_t, \Sigma_t, \eta_t, J_t)`.

    Element ``t`` holds the conditional :math:`p(x_t \mid x_{t-1}, y_t) = \mathcal N(F_t
    x_{t-1} + c_t, \Sigma_t)` and the information-form likelihood :math:`p(y_t \mid x_{t-1})
    \propto \exp(-\tfrac12 x_{t-1}^\top J_t x_{t-1} + \eta_t^\top x_{t-1})`.  With prior
    covariance :math:`\Pi = Q`, drift :math:`\mu = B u_{t-1} + b`, :math:`S = C_w \Pi C_w^\top
    + R_w`, :math:`K = \Pi C_w^\top S^{-1}` and :math:`r = e_t - C_w \mu`:

    .. math::

        F_t = (I - K C_w) A,\quad c_t = \mu + K r,\quad
        \Sigma_t = (I - K C_w)\Pi(I - K C_w)^\top + K R_w K^\top,\quad
        \eta_t = A^\top C_w^\top S^{-1} r,\quad J_t = A^\top C_w^\top S^{-1} C_w A.

    Element 0 conditions the prior itself (:math:`\Pi = P_0`, :math:`\mu = m_0`) on
    :math:`y_0`, with :math:`F_0 = 0,\ \eta_0 = 0,\ J_0 = 0`.
    """
    A, Q = params.A, params.Q
    n = A.shape[0]
    T = prep.e.shape[0]
    first = jnp.arange(T) == 0
    mu = jnp.concatenate([params.m0[None], prep.cx[:-1]], axis=0)  # (T, n)

    def element(first, e, w, mu):
        cm, rm = _masked_obs(params, w)
        prior = jnp.where(first, params.P0, Q)
        cp = cm @ prior
        si, _ = spd_inv_logdet(symmetrize(cp @ cm.T + rm))
        k = cp.T @ si
        r = e - cm @ mu
        ikc = jnp.eye(n, dtype=A.dtype) - k @ cm
        x = jnp.concatenate([ikc, k], axis=1)
        sigma = symmetrize(x @ _block_diag(prior, rm) @ x.T)
        ca = cm @ A
        zero = jnp.zeros_like(A)
        F = jnp.where(first, zero, ikc @ A)
        eta = jnp.where(first, 0.0, ca.T @ (si @ r))
        J = jnp.where(first, zero, symmetrize(ca.T @ si @ ca))
        return F, mu + k @ r, sigma, eta, J

    return jax.vmap(element)(first, prep.e, prep.w, mu)


def _filter_combine(ei, ej):
    r"""Associative filtering operator of Särkkä & García-Fernández (2021), Lemma 8.

    ``ei`` is the earlier element.  With :math:`M = (I + \Sigma_i J_j)^{-1}`:

    .. math::

        F_{ij} &= F_j M F_i, \quad c_{ij} = F_j M (c_i + \Sigma_i \eta_j) + c_j, \quad
        \Sigma_{ij} = F_j M \Sigma_i F_j^\top + \Sigma_j, \\
        \eta_{ij} &= F_i^\top M^\top (\eta_j - J_j c_i) + \eta_i, \quad
        J_{ij} = F_i^\top M^\top J_j F_i + J_i.

    One pivoted solve with :math:`I + \Sigma_i J_j` gives :math:`M F_i`, :math:`M(c_i +
    \Sigma_i\eta_j)` and :math:`M\Sigma_i`; :math:`M^\top = (I + J_j\Sigma_i)^{-1} = I -
    J_j M \Sigma_i` follows without a second solve.
    """
    Fi, ci, Si, etai, Ji = ei
    Fj, cj, Sj, etaj, Jj = ej
    n = Fi.shape[-1]
    # products are batched into few matrix multiplications (fewer kernels to compile / run)
    sj = Si @ jnp.concatenate([Jj, etaj[:, None]], axis=1)  # [S_i J_j, S_i eta_j]
    rhs = jnp.concatenate([Fi, (ci + sj[:, n])[:, None], Si], axis=1)
    # M [F_i, c_i + S_i eta_j, S_i]
    sol = solve_general(jnp.eye(n, dtype=Fi.dtype) + sj[:, :n], rhs)
    fsol = Fj @ sol
    ms = sol[:, n + 1 :]  # M S_i
    jm = Jj @ jnp.concatenate([ms, ci[:, None]], axis=1)  # [J_j M S_i, J_j c_i]
    z = etaj - jm[:, n]
    v = jm[:, :n] @ jnp.concatenate([Jj, z[:, None]], axis=1)  # J_j M S_i [J_j, z]
    mt = jnp.concatenate([Jj, z[:, None]], axis=1) - v  # M^T [J_j, z]
    fmt = Fi.T @ mt
    F = fsol[:, :n]
    c = fsol[:, n] + cj
    S = symmetrize(fsol[:, n + 1 :] @ Fj.T + Sj)
    eta = fmt[:, n] + etai
    J = symmetrize(fmt[:, :n] @ Fi + Ji)
    return F, c, S, eta, J


def _filter_parallel(params: LGSSMParams, prep: _Prepared):
    r"""Parallel filter; the log-likelihood sums the per-step terms of the predicted moments

    .. math:: m^p_t = A m^f_{t-1} + \mu_t,\quad P^p_t = A P^f_{t-1} A^\top + Q,\quad
              \ell_t = \log\mathcal N(e_t;\ C_w m^p_t,\ C_w P^p_t C_w^\top + R_w)
              + \tfrac12 (p - n^{obs}_t) \log 2\pi.
    """
    A, Q = params.A, params.Q
    n = A.shape[0]
    eye, zn, znn = jnp.eye(n), jnp.zeros((n,)), jnp.zeros((n, n))
    elems = _filter_elements(params, prep)
    _, fm, fc, _, _ = prefix_scan(_filter_combine, elems, (eye, zn, znn, zn, znn))
    pm = jnp.concatenate([params.m0[None], fm[:-1] @ A.T + prep.cx[:-1]], axis=0)
    pc = jnp.concatenate([params.P0[None], symmetrize(A @ fc[:-1] @ A.T + Q)], axis=0)

    def step_ll(m, P, e, w):
        cm, rm = _masked_obs(params, w)
        si, logdet = spd_inv_logdet(symmetrize(cm @ P @ cm.T + rm))
        r = e - cm @ m
        return -0.5 * (r @ si @ r + logdet + jnp.sum(w) * _LOG2PI)

    ll = jnp.sum(jax.vmap(step_ll)(pm, pc, prep.e, prep.w))
    return ll, fm, fc, pm, pc


def _smooth_combine(ei, ej):
    r""":math:`(E_i,g_i,L_i)\otimes(E_j,g_j,L_j) = (E_iE_j,\ E_ig_j+g_i,\ E_iL_jE_i^\top+L_i)`
    (``ei`` earlier in time)."""
    Ei, gi, Li = ei
    Ej, gj, Lj = ej
    return Ei @ Ej, Ei @ gj + gi, symmetrize(Ei @ Lj @ Ei.T + Li)


def _smooth_parallel(params: LGSSMParams, fm, fc, pm, pc):
    r"""Parallel RTS smoother (Särkkä & García-Fernández 2021, Sect. IV).

    Elements :math:`(E_t, g_t, L_t) = (G_t,\ m^f_t - G_t m^p_{t+1},\ P^f_t - G_t P^p_{t+1}
    G_t^\top)` for ``t < T-1`` and :math:`(0, m^f_{T-1}, P^f_{T-1})` last, with the RTS gain
    :math:`G_t = P^f_t A^\top (P^p_{t+1})^{-1}`; the suffix products
    :math:`a_t \otimes \dots \otimes a_{T-1}` give :math:`(\cdot, m^s_t, P^s_t)`.
    """
    A = params.A
    n = A.shape[0]
    gains = jax.vmap(lambda pf, pp: _smoother_gain(pf, pp, A))(fc[:-1], pc[1:])  # (T-1, n, n)
    E = jnp.concatenate([gains, jnp.zeros((1, n, n))], axis=0)
    g = jnp.concatenate([fm[:-1] - jnp.einsum("tij,tj->ti", gains, pm[1:]), fm[-1:]], axis=0)
    L = jnp.concatenate([symmetrize(fc[:-1] - gains @ pc[1:] @ jnp.swapaxes(gains, 1, 2)), fc[-1:]])
    flip = functools.partial(jax.tree.map, lambda x: jnp.flip(x, axis=0))
    # suffix scan = prefix scan of the time-reversed sequence with the operands swapped
    ident = (jnp.eye(n), jnp.zeros((n,)), jnp.zeros((n, n)))
    out = prefix_scan(lambda later, early: _smooth_combine(early, later), flip((E, g, L)), ident)
    _, ms, ps = flip(out)
    cross = ps[1:] @ jnp.swapaxes(gains, 1, 2)
    return ms, ps, cross


# ---------------------------------------------------------------------- public API


def _setup(params, y, inputs, method):
    if method not in ("auto", "sequential", "parallel"):
        raise ValueError(f"method must be 'auto', 'sequential' or 'parallel'; got {method!r}")
    params = _canonical(params)
    prep = _prepare(params, y, inputs)
    return params, prep, _resolve(method, prep.e.shape[0])


def _resolve(method: str, num_steps: int) -> str:
    if method == "auto":
        return choose_method(num_steps)
    if method not in ("sequential", "parallel"):
        raise ValueError(f"method must be 'auto', 'sequential' or 'parallel'; got {method!r}")
    return method


@float64
def kalman_filter(params: LGSSMParams, y, inputs=None, *, method: str = "auto") -> FilterResult:
    r"""Kalman filter: filtered / predicted moments and the marginal log-likelihood.

    Recursion (prediction, then update with the masked row of ``y_t``):

    .. math::

        m^p_0 = m_0,\ P^p_0 = P_0;\qquad
        m^p_{t+1} = A m^f_t + B u_t + b,\quad P^p_{t+1} = A P^f_t A^\top + Q, \\
        S_t = C_w P^p_t C_w^\top + R_w,\ K_t = P^p_t C_w^\top S_t^{-1},\
        r_t = y_t - C_w m^p_t - D_w u_t - d_w, \\
        m^f_t = m^p_t + K_t r_t,\quad
        P^f_t = (I - K_t C_w) P^p_t (I - K_t C_w)^\top + K_t R_w K_t^\top, \\
        \log p(y) = -\tfrac12 \sum_t \left(r_t^\top S_t^{-1} r_t + \log\det S_t
        + n^{obs}_t \log 2\pi\right).

    Parameters
    ----------
    params : LGSSMParams
    y : (T, p) array
        Observations; NaN entries are missing.
    inputs : (T, m) array, optional
        Inputs ``u_t`` (required when ``m > 0``).
    method : {"auto", "sequential", "parallel"}
        Static choice of the twin; see :func:`choose_method`.

    Returns
    -------
    FilterResult
    """
    params, prep, method = _setup(params, y, inputs, method)
    if method == "parallel":
        ll, fm, fc, pm, pc = _filter_parallel(params, prep)
        return FilterResult(ll, fm, fc, pm, pc)
    ll, (fm, fc, pm, pc) = _filter_sequential(params, prep)
    return FilterResult(ll, fm, fc, pm, pc)


@float64
def kalman_smoother(params: LGSSMParams, y, inputs=None, *, method: str = "auto") -> SmootherResult:
    r"""Rauch-Tung-Striebel smoother on top of :func:`kalman_filter`.

    .. math::

        G_t = P^f_t A^\top (P^p_{t+1})^{-1},\quad
        m^s_t = m^f_t + G_t (m^s_{t+1} - m^p_{t+1}),\quad
        P^s_t = P^f_t + G_t (P^s_{t+1} - P^p_{t+1}) G_t^\top,

    starting from :math:`(m^s_{T-1}, P^s_{T-1}) = (m^f_{T-1}, P^f_{T-1})`, and the lag-one
    cross-covariance :math:`\operatorname{Cov}(x_{t+1}, x_t \mid y) = P^s_{t+1} G_t^\top`.
    The parallel twin obtains the same moments as suffix products of the elements
    :math:`(G_t,\ m^f_t - G_t m^p_{t+1},\ P^f_t - G_t P^p_{t+1} G_t^\top)`.

    Parameters
    ----------
    params : LGSSMParams
    y : (T, p) array
        Observations; NaN entries are missing.
    inputs : (T, m) array, optional
        Inputs ``u_t`` (required when ``m > 0``).
    method : {"auto", "sequential", "parallel"}
        Static choice of the twin; see :func:`choose_method`.

    Returns
    -------
    SmootherResult
        Log-likelihood, filtered moments, smoothed moments and the ``(T-1, n, n)`` lag-one
        cross-covariances.
    """
    params, prep, method = _setup(params, y, inputs, method)
    if method == "parallel":
        ll, fm, fc, pm, pc = _filter_parallel(params, prep)
        ms, ps, cross = _smooth_parallel(params, fm, fc, pm, pc)
    else:
        ll, (fm, fc, pm, pc) = _filter_sequential(params, prep)
        ms, ps, cross = _smooth_sequential(params, fm, fc, pm, pc)
    return SmootherResult(ll, fm, fc, ms, ps, cross)


@float64
def log_likelihood(params: LGSSMParams, y, inputs=None, *, method: str = "auto") -> Array:
    r"""Marginal log-likelihood :math:`\log p(y_{0:T-1})` of the observed entries of ``y``.

    .. math::

        \log p(y) = -\tfrac12 \sum_{t=0}^{T-1} \left(r_t^\top S_t^{-1} r_t + \log\det S_t
        + n^{obs}_t \log 2\pi\right)

    with the innovations :math:`r_t` and their covariances :math:`S_t` of
    :func:`kalman_filter`.  The sequential twin carries only the running sum through the
    fused one-step-predictor recursion; the parallel twin sums the per-step terms of the
    parallel predicted moments (``vmap`` over time).

    Parameters
    ----------
    params : LGSSMParams
    y : (T, p) array
        Observations; NaN entries are missing.
    inputs : (T, m) array, optional
        Inputs ``u_t`` (required when ``m > 0``).
    method : {"auto", "sequential", "parallel"}
        Static choice of the twin; see :func:`choose_method`.

    Returns
    -------
    Array
        Scalar log-likelihood.  Jit-able, differentiable in ``params``, ``y`` and
        ``inputs`` (forward and reverse mode, any order), and ``vmap``-able, e.g. over
        trajectories with ``jax.vmap(log_likelihood, in_axes=(None, 0, 0))``.
    """
    params, prep, method = _setup(params, y, inputs, method)
    if method == "parallel":
        return _filter_parallel(params, prep)[0]
    return _loglik_sequential(params, prep)


@float64
def dense_log_likelihood(params: LGSSMParams, y, inputs=None) -> Array:
    r"""Oracle log-likelihood from the dense joint Gaussian of all observations.

    Writes the states as :math:`\operatorname{vec}(x) = L\,\xi` with
    :math:`\xi = (x_0, w_0 + \mu_0, \dots, w_{T-2} + \mu_{T-2})`, drifts
    :math:`\mu_t = B u_t + b` and the block lower-triangular :math:`L_{st} = A^{s-t}`
    (:math:`s \ge t`), so

    .. math::

        \operatorname{vec}(y) \sim \mathcal N\big(\bar C L\,\mathbb E\xi
        + \operatorname{vec}(D u + d),\;
        \bar C L \operatorname{blkdiag}(P_0, Q, \dots, Q) L^\top \bar C^\top + I_T \otimes R\big),
        \qquad \bar C = I_T \otimes C,

    and evaluates the density of the observed entries (missing ones are replaced by
    independent standard-normal dummies at 0 whose constant is removed).  Uses LAPACK and
    costs :math:`O((Tn)^3 + (Tp)^3)`: for tests and tiny problems only.

    Parameters
    ----------
    params : LGSSMParams
    y : (T, p) array
        Observations; NaN entries are missing.
    inputs : (T, m) array, optional
        Inputs ``u_t`` (required when ``m > 0``).

    Returns
    -------
    Array
        Scalar log-likelihood, equal to :func:`log_likelihood` up to rounding.
    """
    params = _canonical(params)
    prep = _prepare(params, y, inputs)
    A, Q, C, R = params.A, params.Q, params.C, params.R
    T = prep.e.shape[0]
    n = A.shape[0]

    def power(acc, _):
        return A @ acc, acc

    _, powers = lax.scan(power, jnp.eye(n, dtype=A.dtype), None, length=T)  # A^0 .. A^{T-1}
    lag = jnp.arange(T)[:, None] - jnp.arange(T)[None, :]
    lower = jnp.where((lag >= 0)[:, :, None, None], powers[jnp.clip(lag, 0)], 0.0)
    lower = lower.transpose(0, 2, 1, 3).reshape(T * n, T * n)
    noise = jnp.concatenate([params.P0[None], jnp.broadcast_to(Q, (T - 1, n, n))], axis=0)
    eye_t = jnp.eye(T, dtype=A.dtype)
    noise = (eye_t[:, :, None, None] * noise[:, None]).transpose(0, 2, 1, 3).reshape(T * n, T * n)
    xi_mean = jnp.concatenate([params.m0, prep.cx[:-1].reshape(-1)])
    cbig = jnp.kron(eye_t, C)
    mu = cbig @ (lower @ xi_mean)
    cl = cbig @ lower
    sy = cl @ noise @ cl.T + jnp.kron(eye_t, R)
    w = prep.w.reshape(-1)
    resid = prep.e.reshape(-1) - w * mu
    sy = sy * (w[:, None] * w[None, :]) + jnp.diag(1.0 - w)
    low = jnp.linalg.cholesky(symmetrize(sy))
    z = jax.scipy.linalg.solve_triangular(low, resid, lower=True)
    return -0.5 * (z @ z + 2.0 * jnp.sum(jnp.log(jnp.diag(low))) + jnp.sum(w) * _LOG2PI)
