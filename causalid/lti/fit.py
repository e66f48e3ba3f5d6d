"""Identification engines for multi-environment LTI systems; front door :func:`identify_lti`.

Model (Rajendran et al. 2024, arXiv 2311.18048): x_{t+1} = A x_t + B u_t + w_t,  y_t = C x_t + v_t, with A, B, C
shared by all environments and, per environment e, either a designed input law
u_t ~ N(μ_e, diag σ²_e) or measured inputs.

Engines
-------
``pem``     measured inputs (the default there): prediction-error identification in
            innovations form with offsets, one least-squares initial state per record and
            automatic order selection (:mod:`causalid.lti.pem`).
``moment``  closed form.  Full-state data with designed input laws: Ã by pooled least
            squares of y_{t+1} on [y_t, one-hot(e)]; the per-environment residual
            covariances S_e = B̃ diag(σ²_e) B̃ᵀ are jointly diagonalised (whitening by their
            average, then Jacobi rotations) to give B̃ and the sources.  Measured inputs: OLS
            of y_{t+1} on [y_t, u_t].
``mle``     maximum likelihood with the log-determinant ("volume") term.  Noise-free
            full-state data: the exact Gaussian transition likelihood from sufficient
            statistics; with observation/process noise or missing values: the Kalman
            likelihood in observed coordinates; measured inputs and partial observation:
            the Kalman likelihood of (A, B, C, D, Q, R, x_0) initialised by N4SID.
``bayes``   NUTS over (Ã, B̃, noise) of the NumPyro program ``causalid.models.lti``.
``markov``  partial observation: Markov parameters C A^k B from the multi-environment data
            (OKID/ARX for measured inputs; step responses to the designed means otherwise),
            then Ho–Kalman/ERA for (A, B, C) up to similarity.
"""

from __future__ import annotations

import functools
import time
import warnings
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from jax.flatten_util import ravel_pytree
from scipy.optimize import linear_sum_assignment

from causalid._checks import check_channels
from causalid._linalg import cholesky, solve_lower, solve_upper_t, spd_inverse
from causalid._progress import show_progress
from causalid._x64 import float64
from causalid.dynamics.kalman import kalman_smoother, log_likelihood, make_params
from causalid.dynamics.system import InputDesign
from causalid.errors import ConvergenceWarning, DataError, IdentifiabilityError
from causalid.lti.data import LTIData
from causalid.lti.identifiability import check_lti
from causalid.lti.params import (
    DesignedInputParams,
    StateSpaceParams,
    designed_input_params,
    state_space_params,
)
from causalid.lti.result import LTIResult
from causalid.lti.subspace import era, n4sid, okid_markov, select_order
from causalid.models import lti as lti_models

__all__ = ["identify_lti", "joint_diagonalize", "pair_statistics"]

Method = Literal["pem", "moment", "mle", "bayes", "markov"]


# ====================================================================== statistics
@float64
def pair_statistics(data: LTIData):
    """Per-environment sufficient statistics of the pairs (y_t, y_{t+1}) with both observed.

    Returns a dict of float64 arrays: ``n`` (E,), ``sz``/``sw`` (E, p) sums of y_t / y_{t+1},
    ``Szz``, ``Swz``, ``Sww`` (E, p, p) sums of outer products.  Computed in one vectorised
    pass over every environment and trajectory.
    """
    y = jnp.asarray(data.y)
    z, w = y[:, :, :-1], y[:, :, 1:]
    ok = (jnp.isfinite(z).all(-1) & jnp.isfinite(w).all(-1)).astype(y.dtype)     # (E, N, T-1)
    z = jnp.where(ok[..., None] > 0, z, 0.0)
    w = jnp.where(ok[..., None] > 0, w, 0.0)
    out = {
        "n": ok.sum((1, 2)),
        "sz": jnp.einsum("entp,ent->ep", z, ok),
        "sw": jnp.einsum("entp,ent->ep", w, ok),
        "Szz": jnp.einsum("entp,entq->epq", z, z),
        "Swz": jnp.einsum("entp,entq->epq", w, z),
        "Sww": jnp.einsum("entp,entq->epq", w, w),
    }
    return {k: np.asarray(v) for k, v in out.items()}


def _within_env_ols(st):
    """Ã and intercepts c_e from OLS of y_{t+1} on [y_t, one-hot(e)] (within-environment centring)."""
    n = np.maximum(st["n"], 1)[:, None, None]
    mz, mw = st["sz"] / n[..., 0], st["sw"] / n[..., 0]
    Czz = st["Szz"] - n * mz[:, :, None] * mz[:, None, :]
    Cwz = st["Swz"] - n * mw[:, :, None] * mz[:, None, :]
    A = np.linalg.solve(Czz.sum(0).T, Cwz.sum(0).T).T
    c = mw - mz @ A.T
    return A, c


def _residual_scatter(st, A, c):
    """Per-environment Σ_t r_t r_tᵀ of r_t = y_{t+1} − A y_t − c_e, from the sufficient statistics (JAX-traceable)."""
    n = st["n"][:, None, None]
    S = st["Sww"] - A @ jnp.swapaxes(st["Swz"], 1, 2) - st["Swz"] @ A.T + A @ st["Szz"] @ A.T
    rs = st["sw"] - st["sz"] @ A.T                              # Σ r_t before the intercept
    return S - c[:, :, None] * rs[:, None, :] - rs[:, :, None] * c[:, None, :] + n * c[:, :, None] * c[:, None, :]


def _residual_covs(st, A, c):
    """Per-environment residual covariances of y_{t+1} − A y_t − c_e (divided by n_e)."""
    return np.asarray(_residual_scatter(st, A, c)) / np.maximum(st["n"], 1)[:, None, None]


# ====================================================================== joint diagonalisation
@jax.jit
def _jacobi_jd(M, weights, tol=1e-13, max_sweeps=200):
    """Orthogonal U with Uᵀ M_k U as diagonal as possible (weighted Jacobi sweeps, Cardoso–Souloumiac)."""
    m = M.shape[-1]
    pairs = jnp.asarray([(i, j) for i in range(m) for j in range(i + 1, m)], dtype=jnp.int32).reshape(-1, 2)
    eye = jnp.eye(m, dtype=M.dtype)

    def rotate(carry, pq):
        Mk, U, biggest = carry
        p, q = pq[0], pq[1]
        g0 = Mk[:, p, p] - Mk[:, q, q]
        g1 = Mk[:, p, q] + Mk[:, q, p]
        G11, G22, G12 = (weights * g0 * g0).sum(), (weights * g1 * g1).sum(), (weights * g0 * g1).sum()
        ton, toff = G11 - G22, 2 * G12
        theta = 0.5 * jnp.arctan2(toff, ton + jnp.sqrt(ton * ton + toff * toff))
        c, s = jnp.cos(theta), jnp.sin(theta)
        R = eye.at[p, p].set(c).at[q, q].set(c).at[p, q].set(-s).at[q, p].set(s)
        Mk = jnp.einsum("ji,kjl,lm->kim", R, Mk, R)
        return (Mk, U @ R, jnp.maximum(biggest, jnp.abs(s))), None

    def sweep(state):
        Mk, U, _, it = state
        (Mk, U, biggest), _ = jax.lax.scan(rotate, (Mk, U, jnp.zeros((), M.dtype)), pairs)
        return Mk, U, biggest, it + 1

    def cont(state):
        return (state[2] > tol) & (state[3] < max_sweeps)

    Mk, U, biggest, it = jax.lax.while_loop(cont, sweep, (M, eye, jnp.ones((), M.dtype), 0))
    return U, it, biggest


@float64
def joint_diagonalize(mats, weights=None, rank: int | None = None):
    """Approximate joint diagonalisation of symmetric positive (semi)definite matrices.

    Finds W (k × p) with W S_e Wᵀ ≈ diag(λ_e) for all e.  The weighted average S̄ is
    whitened first (its top-``rank`` eigenspace, k = rank), then an orthogonal joint
    diagonaliser of the whitened matrices is found by Jacobi rotations.  Exact when
    S_e = M diag(λ_e) Mᵀ with M of full column rank k and the profiles λ_{·j} pairwise
    non-proportional.

    Returns
    -------
    W : (k, p) demixing matrix,  M : (p, k) mixing matrix (pseudo-inverse of W),
    lam : (E, k) diagonal profiles, info : dict
    """
    S = np.asarray(mats, dtype=np.float64)
    E, p, _ = S.shape
    w = np.ones(E) / E if weights is None else np.asarray(weights, float) / np.sum(weights)
    k = p if rank is None else int(rank)
    Sbar = np.einsum("e,eij->ij", w, S)
    ev, P = np.linalg.eigh((Sbar + Sbar.T) / 2)
    ev, P = ev[::-1][:k], P[:, ::-1][:, :k]
    if ev[-1] <= 1e-14 * ev[0]:
        raise IdentifiabilityError(
            f"the residual covariance has rank below {k}; the inputs do not reach {k} independent directions"
        )
    V = (P / np.sqrt(ev)).T                               # (k, p) whitener
    Mw = np.einsum("ip,epq,jq->eij", V, S, V)
    U, sweeps, off = _jacobi_jd(jnp.asarray(Mw), jnp.asarray(w))
    U = np.asarray(U)
    W = U.T @ V
    M = (P * np.sqrt(ev)) @ U
    lam = np.einsum("ip,epq,iq->ei", W, S, W)
    return W, M, lam, {"sweeps": int(sweeps), "last_rotation": float(off)}


# ====================================================================== helpers on B̃
def _match_design(M, lam, var):
    """Order/scale columns of M to the known variance profiles; returns M scaled (p, m) and permutation."""
    loglam = np.log(np.maximum(lam, 1e-300))
    logvar = np.log(var)
    diff = loglam[:, :, None] - logvar[:, None, :]               # (E, k, m)
    cost = diff.var(axis=0)
    rows, cols = linear_sum_assignment(cost)
    out = np.zeros((M.shape[0], var.shape[1]))
    for r, c in zip(rows, cols):
        out[:, c] = M[:, r] * np.sqrt(np.exp(diff[:, r, c].mean()))
    return out, cost[rows, cols]


def _fix_signs(B, intercepts=None, means=None):
    """Sign of each column: by the designed means when informative, else largest entry positive."""
    B = B.copy()
    signs = np.sign(B[np.argmax(np.abs(B), axis=0), np.arange(B.shape[1])])
    signs[signs == 0] = 1
    if intercepts is not None and means is not None and np.abs(means).max() > 0:
        # intercepts c_e ≈ B diag(s) μ_e : least squares for the column weights s
        X = np.einsum("pj,ej->epj", B, means).reshape(-1, B.shape[1])
        beta = np.linalg.lstsq(X, intercepts.reshape(-1), rcond=None)[0]
        strong = np.abs(beta) > 0.5
        signs = np.where(strong, np.sign(beta), signs)
    return B * signs


def _sources(data, A, B):
    """û_t = B̃⁺ (y_{t+1} − Ã y_t) for every environment/trajectory (NaN where unobserved)."""
    y = data.y
    r = y[:, :, 1:] - np.einsum("ij,entj->enti", A, y[:, :, :-1])
    return np.einsum("jp,entp->entj", np.linalg.pinv(B), r)


@jax.jit
def _smoothed_sources_jit(A, B, V, mean, q, r, y, m0, P0):
    p = A.shape[0]
    Qe = jnp.einsum("pj,ej,qj->epq", B, V, B) + (q + 1e-12) * jnp.eye(p)
    R = (r + 1e-12) * jnp.eye(p)

    def env(Q, mu, v, m0_e, P0_e, y_e):
        b = B @ mu
        gain = (v[:, None] * B.T) @ spd_inverse(Q)                   # Σ_e B̃ᵀ Q_e⁻¹

        def traj(m0_i, P0_i, y_i):
            params = make_params(A, jnp.eye(p), Q, R, b=b, m0=m0_i, P0=jnp.diag(jnp.where(P0_i > 0, P0_i, r + 1e-12)))
            ms = kalman_smoother(params, y_i).smoothed_means
            delta = ms[1:] - ms[:-1] @ A.T - b
            return mu + delta @ gain.T
        return jax.vmap(traj)(m0_e, P0_e, y_e)

    return jax.vmap(env)(Qe, mean, V, m0, P0, y)


def _smoothed_sources(data, A, B, V, mean, q, r, m0, P0):
    """E[u_t | all y] under the fitted model: μ_e + Σ_e B̃ᵀ Q_e⁻¹ E[x_{t+1} − Ã x_t − B̃ μ_e | y].

    With observation noise this (the posterior mean of each input) is the best estimate
    of the sources; the plain B̃⁺(y_{t+1} − Ã y_t) would amplify the noise.
    """
    return np.asarray(_smoothed_sources_jit(jnp.asarray(A), jnp.asarray(B), jnp.asarray(V), jnp.asarray(mean),
                                            float(q), float(r), jnp.asarray(data.y), jnp.asarray(m0),
                                            jnp.asarray(P0)))


# ====================================================================== moment engine
def _moment(data: LTIData):
    p = data.obs_dim
    st = pair_statistics(data)
    if data.has_measured_inputs:
        return _moment_measured(data)
    A, c = _within_env_ols(st)
    S = _residual_covs(st, A, c)
    m = data.input_dim
    if m > p:
        raise IdentifiabilityError(
            f"{m} inputs drive only {p} outputs: B̃ and the sources cannot be separated from second moments; "
            "use measured inputs or more outputs"
        )
    W, M, lam, info = joint_diagonalize(S, weights=st["n"], rank=m)
    if data.input_var is not None:
        B, cost = _match_design(M, lam, data.input_var)
        B = _fix_signs(B, c, data.input_mean)
        info["profile_misfit"] = cost.tolist()
        source_var = np.einsum("ip,epq,iq->ei", np.linalg.pinv(B), S, np.linalg.pinv(B))
    else:
        norms = np.linalg.norm(M, axis=0)
        B = _fix_signs(M / norms)
        source_var = lam * norms**2
    src = _sources(data, A, B)
    input_mean = c @ np.linalg.pinv(B).T
    return dict(A=A, B=B, C=np.eye(p), D=np.zeros((p, B.shape[1])), sources=src, source_var=source_var,
                input_mean=input_mean, coordinates="observed", info=info)


def _moment_measured(data: LTIData):
    """Full-state data with measured inputs: OLS of y_{t+1} on [y_t, u_t]."""
    y, u = data.y, data.inputs
    z = np.concatenate([y[:, :, :-1], u[:, :, :-1]], axis=-1)
    w = y[:, :, 1:]
    ok = (np.isfinite(z).all(-1) & np.isfinite(w).all(-1))[..., None]
    z, w = np.where(ok, z, 0.0), np.where(ok, w, 0.0)
    G = np.einsum("entp,entq->pq", z, z)
    H = np.einsum("entp,entq->pq", w, z)
    coef = np.linalg.solve(G, H.T).T
    p = data.obs_dim
    A, B = coef[:, :p], coef[:, p:]
    r = np.where(ok, w - z @ coef.T, 0.0)
    Q = np.einsum("entp,entq->pq", r, r) / max(ok.sum() - z.shape[-1], 1)
    return dict(A=A, B=B, C=np.eye(p), D=np.zeros((p, B.shape[1])), Q=Q, coordinates="observed",
                info={"regression": "ols"})


# ====================================================================== MLE, full state, sufficient statistics
def _design_loglik(params: DesignedInputParams, st, var, means):
    """Exact log-likelihood Σ_e Σ_t log N(y_{t+1}; Ã y_t + c_e, B̃ diag(σ²_e) B̃ᵀ + qI)."""
    A, B = params.A, params.B
    E, p = st["sz"].shape
    V = jnp.exp(params.log_input_var) if var is None else var
    c = means @ B.T if means is not None else params.drift
    cov = jnp.einsum("pj,ej,qj->epq", B, V, B)
    if params.log_process_var is not None:
        cov = cov + jnp.exp(params.log_process_var) * jnp.eye(p)
    n = st["n"]
    Rm = _residual_scatter(st, A, c)
    # Loop-based Cholesky: batched LAPACK under jax.hessian's vmap can deadlock XLA's CPU pool.
    L = jax.vmap(cholesky)(cov)
    logdet = 2 * jnp.log(jnp.diagonal(L, axis1=1, axis2=2)).sum(-1)
    quad = jnp.trace(jax.vmap(lambda l, r: solve_upper_t(l, solve_lower(l, r)))(L, Rm), axis1=1, axis2=2)
    return -0.5 * (n * (p * jnp.log(2 * jnp.pi) + logdet) + quad).sum()


class _Objective:
    """A scalar objective f(params, *args) of a parameter container, with the jitted value-and-gradient
    and Hessian of its flat form θ ↦ f(unravel(θ), *args) (:func:`jax.flatten_util.ravel_pytree`).

    Built once per objective at import, so that repeated fits of same-shaped problems reuse
    the compiled code: the container passed as ``template`` fixes the layout (its fields'
    shapes and which are None), ``static`` names hashable arguments among ``args``.
    """

    def __init__(self, fun, static=()):
        def flat(theta, template, *args):
            return fun(ravel_pytree(template)[1](theta), *args)

        static = tuple(s + 2 for s in static)
        self.vg = jax.jit(jax.value_and_grad(flat), static_argnums=static)
        self.hess = jax.jit(jax.hessian(flat), static_argnums=static)

    def hessian(self, params, *args) -> np.ndarray:
        """The Hessian with respect to the flat parameter vector of ``params``."""
        return np.asarray(self.hess(ravel_pytree(params)[0], params, *args))


def _lbfgs(obj: _Objective, params0, args, max_iters, tol, what, precondition=True, hessian=None, rounds=4,
           gauge=None):
    """Minimise ``obj`` over a parameter container with scipy's L-BFGS-B (float64 values, JAX gradients).

    The container ``params0`` is flattened with :func:`jax.flatten_util.ravel_pytree`.  With
    ``precondition`` the problem is rescaled by the Hessian at the current point,
    θ = θ_k + V diag(|λ|)^{-1/2} φ (eigenvalues floored at 1e-6 of the largest), so that
    curvatures spanning many orders of magnitude — designs with variances from 1e-4 to 1,
    noise variances next to dynamics — look alike to the optimiser.  The Hessian is
    refreshed up to ``rounds`` times (each round gets ``max_iters / rounds`` iterations);
    ``hessian`` may supply a cheaper approximation (of the flat vector) for the first round.
    Returns (θ̂ as a container like ``params0``, scipy result); ``result.converged`` is True
    when scipy reports success or when its line search can make no further progress with a
    gradient below ``sqrt(tol)``.  ``gauge(params)`` may return directions (columns, in the
    flat layout) along which the objective is invariant — similarity transforms of the
    state — that are then removed from the search space.
    """
    flat0, unravel = ravel_pytree(params0)
    theta = np.asarray(flat0, float)
    total_iters = 0
    for k in range(rounds if precondition else 1):
        Z = np.eye(theta.size)
        if gauge is not None:
            U, sv, _ = np.linalg.svd(gauge(unravel(theta)), full_matrices=True)
            Z = U[:, int((sv > 1e-10 * max(sv.max(), 1e-300)).sum()):]       # complement of the gauge
        P = Z
        if precondition:
            H = np.asarray(obj.hess(jnp.asarray(theta), params0, *args) if (hessian is None or k > 0) else hessian)
            Hz = Z.T @ ((H + H.T) / 2) @ Z
            lam, V = np.linalg.eigh(Hz)
            # Floor: flat directions — the scale of unknown variances — must not be blown
            # up into huge steps.
            floor = max(np.abs(lam).max(), 1e-300) * 1e-6
            P = Z @ (V / np.sqrt(np.maximum(np.abs(lam), floor)))

        def f(phi, theta=theta, P=P):
            v, g = obj.vg(jnp.asarray(theta + P @ phi), params0, *args)
            v = float(v)
            if not np.isfinite(v):
                return 1e300, np.zeros_like(phi)
            return v, P.T @ np.asarray(g, dtype=np.float64)

        res = scipy.optimize.minimize(
            f, np.zeros(P.shape[1]), jac=True, method="L-BFGS-B",
            options={"maxiter": max(max_iters // (rounds if precondition else 1), 1), "gtol": tol,
                     "ftol": 1e-13, "maxcor": 30})
        theta = theta + P @ res.x
        total_iters += res.nit
        res.converged = bool(res.success or ("ABNORMAL" in str(res.message) and np.abs(res.jac).max() < np.sqrt(tol)))
        # Accept only when a round started from a fresh Hessian finds nothing left to do: a
        # stale preconditioner can make L-BFGS stop early (e.g. as a noise variance shrinks).
        if res.converged and (not precondition or res.nit <= 5 or k == rounds - 1):
            break
    res.nit = total_iters
    if not res.converged:
        warnings.warn(f"{what}: the optimiser stopped before converging ({res.message}); "
                      "raise max_iters or check the data", ConvergenceWarning, stacklevel=3)
    return unravel(jnp.asarray(theta)), res


def _design_nll(params, st, var, means, total):
    return -_design_loglik(params, st, var, means) / total


_DESIGN = _Objective(_design_nll)


def _design_readout(params: DesignedInputParams, var, means, H):
    """Estimates in the documented coordinates, with standard errors from the Hessian H of −log L.

    Unknown variances: each input scaled to unit geometric-mean variance.  Signs of B̃'s
    columns: set by the designed means when they are known and non-zero (the likelihood then
    fixes them), else by the largest-entry-positive convention.  B̃'s standard errors only
    when the variances are known (otherwise its scale is a gauge).  H is over the flat
    parameter vector, whose leading entries are vec Ã and vec B̃.
    """
    A, B = np.asarray(params.A), np.asarray(params.B)
    p, m = B.shape
    se = np.sqrt(np.clip(np.diag(np.linalg.pinv((H + H.T) / 2)), 0, None))
    A_se = se[: p * p].reshape(p, p)
    B_se = se[p * p: p * p + p * m].reshape(p, m) if var is not None else None
    if var is None:
        V = np.exp(np.asarray(params.log_input_var))
        scale = np.exp(np.log(V).mean(0))
        B, V = B * np.sqrt(scale), V / scale
    else:
        V = np.asarray(var)
    if means is None or np.abs(np.asarray(means)).max() == 0:
        B = _fix_signs(B)
    mu = np.asarray(means) if means is not None else np.asarray(params.drift) @ np.linalg.pinv(B).T
    return A, B, V, mu, A_se, B_se


def _design_start(init: dict, var, means, process_var=None, obs_var=None) -> DesignedInputParams:
    """The moment estimate as the starting point of the designed-input likelihoods."""
    sv = np.maximum(init["source_var"], 1e-12)
    return designed_input_params(init["A"], init["B"], input_var=None if var is not None else sv,
                                 drift=None if means is not None else init["input_mean"] @ init["B"].T,
                                 process_var=process_var, obs_var=obs_var)


def _mle_full_state(data: LTIData, init: dict, process_noise: bool, max_iters: int, tol: float):
    st = {k: jnp.asarray(v) for k, v in pair_statistics(data).items()}
    p = data.obs_dim
    m = init["B"].shape[1]
    var = None if data.input_var is None else jnp.asarray(data.input_var)
    means = None if data.input_mean is None else jnp.asarray(data.input_mean)
    params0 = _design_start(init, var, means, process_var=1e-3 * np.nanvar(data.y) if process_noise else None)
    total = float(st["n"].sum())
    args = (st, var, means, total)
    params, res = _lbfgs(_DESIGN, params0, args, max_iters, tol, "identify_lti(method='mle')")
    A, B, V, mu, A_se, B_se = _design_readout(params, var, means, total * _DESIGN.hessian(params, *args))
    ll = -float(res.fun) * total
    k = int(ravel_pytree(params)[0].size) - (m if var is None else 0)       # scale gauge of unknown variances
    q = None if params.process_var is None else float(params.process_var)
    info = {"converged": res.converged, "iterations": int(res.nit), "message": str(res.message)}
    _refuse_collapsed_noise(info, {"process-noise": q}, float(np.nanvar(data.y)))
    return dict(A=A, B=B, C=np.eye(p), D=np.zeros((p, m)), A_se=A_se, B_se=B_se, source_var=V, input_mean=mu,
                Q=None if q is None else q * np.eye(p), sources=_sources(data, A, B), log_likelihood=ll,
                num_params=k, num_obs=int(total), coordinates="observed", info=info)


COLLAPSED_NOISE = 1e-10
"""A fitted noise variance below this fraction of the outputs' variance has collapsed."""


def _refuse_collapsed_noise(info: dict, variances: dict, scale: float) -> None:
    """Mark a designed-input fit whose estimated noise variance collapsed as not converged.

    When the outputs are (nearly) noise-free along some direction — fewer inputs than outputs
    and no noise, for example — the likelihood grows without bound as the variance goes to 0:
    the maximum does not exist, and the optimiser's stopping rule (relative reduction of a
    huge objective) would otherwise report convergence at an arbitrary point.
    """
    for name, v in variances.items():
        if v is not None and info["converged"] and v < COLLAPSED_NOISE * scale:
            info["converged"] = False
            info["message"] = (f"the {name} variance collapsed to {v:.2e} ({v / scale:.1e} of the outputs' "
                               "variance): the likelihood is unbounded, so its maximum does not exist")
            warnings.warn(f"identify_lti(method='mle'): {info['message']}; the data are (nearly) noise-free "
                          "along some direction — use method='moment' (closed form), or fix the noise "
                          "(obs_noise=VARIANCE)", ConvergenceWarning, stacklevel=3)


# ====================================================================== MLE, Kalman likelihood
def _design_kalman_nll(params: DesignedInputParams, y, m0, P0_missing, var, means, fixed_r, total):
    """−(1/total) Σ_e Σ_i log p(y_{e,i}) with x in observed coordinates (C = I), latent inputs marginalised."""
    p = y.shape[-1]
    A, B = params.A, params.B
    r = jnp.exp(params.log_obs_var) if params.log_obs_var is not None else fixed_r
    V = jnp.exp(params.log_input_var) if var is None else var
    c = means @ B.T if means is not None else params.drift
    q = jnp.exp(params.log_process_var) if params.log_process_var is not None else 0.0
    Qe = jnp.einsum("pj,ej,qj->epq", B, V, B) + q * jnp.eye(p)
    Qe = Qe + 1e-12 * jnp.eye(p)
    R = (r + 1e-12) * jnp.eye(p)

    def env_ll(Q, b, m0_e, P0_e, y_e):
        def traj_ll(m0_i, P0_i, y_i):
            # x_0 | y_0 ≈ N(y_0, r I) when y_0 is observed; a broad prior on missing components.
            params = make_params(A, jnp.eye(p), Q, R, b=b, m0=m0_i, P0=jnp.diag(jnp.where(P0_i > 0, P0_i, r + 1e-12)))
            return log_likelihood(params, y_i)
        return jax.vmap(traj_ll)(m0_e, P0_e, y_e).sum()

    return -jax.vmap(env_ll)(Qe, c, m0, P0_missing, y).sum() / total


_DESIGN_KALMAN = _Objective(_design_kalman_nll)


def _kalman_design(data: LTIData, init: dict, obs_noise, process_noise: bool, max_iters: int, tol: float):
    """Observation noise / missing values: Kalman likelihood in observed coordinates (C = I)."""
    E, N, T, p = data.y.shape
    m = init["B"].shape[1]
    var = None if data.input_var is None else jnp.asarray(data.input_var)
    means = None if data.input_mean is None else jnp.asarray(data.input_mean)
    estimate_r = obs_noise in (True, "estimate")
    fixed_r = 0.0 if estimate_r else float(obs_noise)
    pooled = np.nanvar(data.y.reshape(-1, p), axis=0)
    y0 = data.y[:, :, 0]
    m0 = np.where(np.isnan(y0), np.nanmean(data.y, axis=2), y0)
    P0_missing = np.where(np.isnan(y0), pooled, 0.0)
    params0 = _design_start(init, var, means, process_var=1e-3 * pooled.mean() if process_noise else None,
                            obs_var=1e-2 * pooled.mean() if estimate_r else None)
    base0 = params0._replace(log_obs_var=None)
    n_base = int(ravel_pytree(base0)[0].size)
    size = int(ravel_pytree(params0)[0].size)
    total = float(np.isfinite(data.y).sum())
    args = (jnp.asarray(data.y), jnp.asarray(m0), jnp.asarray(P0_missing), var, means, fixed_r, total)
    # Precondition with the noise-free transition likelihood's Hessian (cheap: sufficient statistics),
    # plus unit curvature for log r (the last entry of the flat vector).
    st = {k: jnp.asarray(v) for k, v in pair_statistics(data).items()}
    H0 = np.eye(size)
    H0[:n_base, :n_base] = _DESIGN.hessian(base0, st, var, means, float(st["n"].sum()))
    if not np.isfinite(H0).all():
        H0 = None   # noise-free transition covariance is singular (m < p): use the Kalman Hessian itself
    params, res = _lbfgs(_DESIGN_KALMAN, params0, args, max_iters, tol, "identify_lti(method='mle')", hessian=H0)
    A, B, V, mu, A_se, B_se = _design_readout(params, var, means, total * _DESIGN_KALMAN.hessian(params, *args))
    r = float(params.obs_var) if estimate_r else fixed_r
    q = float(params.process_var) if params.process_var is not None else 0.0
    sources = _smoothed_sources(data, A, B, V, mu, q, r, m0, P0_missing)
    info = {"converged": res.converged, "iterations": int(res.nit), "message": str(res.message),
            "likelihood": "kalman", "sources": "smoothed posterior means",
            "obs_noise": "estimated" if estimate_r else fixed_r}
    if estimate_r or params.process_var is not None:  # unbounded only when every noise term vanishes
        _refuse_collapsed_noise(info, {"noise": max(q, r)}, float(pooled.mean()))
    return dict(A=A, B=B, C=np.eye(p), D=np.zeros((p, m)), A_se=A_se, B_se=B_se,
                source_var=V, input_mean=mu, R=r * np.eye(p),
                Q=None if params.process_var is None else q * np.eye(p),
                log_likelihood=-float(res.fun) * total, num_params=size - (m if var is None else 0),
                num_obs=int(total), coordinates="observed", sources=sources, info=info)


def _measured_nll(params: StateSpaceParams, ys, us, total):
    A, B, C, D, Q, R, x0 = params.system()
    n = A.shape[0]

    def one(x0_k, y_k, u_k):
        return log_likelihood(make_params(A, C, Q, R, B=B, D=D, m0=x0_k, P0=1e-8 * jnp.eye(n)), y_k, u_k)

    return -jax.vmap(one)(x0, ys, us).sum() / total


_MEASURED = _Objective(_measured_nll)


def _similarity_directions(params: StateSpaceParams):
    """Tangent directions of the flat parameters under x → (I + εX) x:
    dA = XA − AX, dB = XB, dC = −CX, dQ = XQ + QXᵀ, dx0 = X x0 (columns, one per entry of X)."""
    A, B, C, D, Q, R, x0 = (np.asarray(a) for a in params.system())
    n = A.shape[0]
    L = np.linalg.cholesky(Q)
    Linv = np.linalg.inv(L)
    tril = np.tril_indices(n)
    diag = tril[0] == tril[1]
    cols = []
    for i in range(n):
        for j in range(n):
            X = np.zeros((n, n))
            X[i, j] = 1.0
            dQ = X @ Q + Q @ X.T
            M = Linv @ dQ @ Linv.T
            Phi = np.tril(M) - 0.5 * np.diag(np.diag(M))
            dL = L @ Phi
            dl = dL[tril].copy()
            dl[diag] = dL[tril][diag] / np.diag(L)                          # log-diagonal entries
            tangent = StateSpaceParams(X @ A - A @ X, X @ B, -C @ X, None if params.D is None else np.zeros(D.shape),
                                       dl, np.zeros(R.shape[0]), x0 @ X.T)
            cols.append(np.asarray(ravel_pytree(tangent)[0]))
    return np.stack(cols, axis=1)


def _kalman_measured(data: LTIData, state_dim: int, feedthrough: bool, max_iters: int, tol: float):
    """Measured inputs, any observation: Kalman likelihood of (A, B, C, D, Q, R, x_0) from an N4SID start.

    Outputs and inputs are scaled to unit variance for the optimiser and the estimate is
    mapped back to the data's units.
    """
    E, N, T, p = data.y.shape
    m, n = data.input_dim, int(state_dim)
    K = E * N
    sy = np.nanstd(data.y.reshape(-1, p), axis=0)
    su = np.std(data.inputs.reshape(-1, m)[data.step_mask.reshape(-1)], axis=0)
    su, sy = np.where(su > 0, su, 1.0), np.where(sy > 0, sy, 1.0)
    ys = np.where(data.step_mask[..., None], data.y / sy, np.nan)
    us = data.inputs / su
    scaled = LTIData(ys, us, None, None, data.lengths, data.dt, data.output_names, data.input_names, data.env_names)
    init = n4sid(scaled, n, feedthrough=feedthrough) if not data.has_missing else None
    if init is None:
        raise DataError("method='mle' with measured inputs and missing outputs needs a complete record "
                        "to initialise from (N4SID); impute the gaps or trim the recordings")
    r0 = np.maximum(np.diag(init["residual_cov"]), 1e-6)
    params0 = state_space_params(init["A"], init["B"], init["C"], D=init["D"] if feedthrough else None,
                                 Q=1e-2 * np.eye(n), R=r0, x0=np.asarray(init["x0"]))   # L = 0.1 I
    total = float(np.isfinite(ys).sum())
    args = (jnp.asarray(ys.reshape(K, T, p)), jnp.asarray(us.reshape(K, T, m)), total)
    params, res = _lbfgs(_MEASURED, params0, args, max_iters, tol, "identify_lti(method='mle')",
                         gauge=_similarity_directions)
    A, B, C, D, Q, R, x0 = (np.asarray(a) for a in params.system())
    B, C, D = B / su, C * sy[:, None], D * sy[:, None] / su
    R = R * np.outer(sy, sy)
    counts = np.isfinite(ys).reshape(-1, p).sum(0)
    ll = -float(res.fun) * total - float(counts @ np.log(sy))
    return dict(A=A, B=B, C=C, D=D, Q=Q, R=R, x0=x0.reshape(E, N, n), log_likelihood=ll,
                num_params=int(ravel_pytree(params)[0].size) - n * n, num_obs=int(total), coordinates="similarity",
                info={"converged": res.converged, "iterations": int(res.nit), "message": str(res.message),
                      "likelihood": "kalman", "init": "n4sid"})


# ====================================================================== Markov engine
def _markov(data: LTIData, state_dim: int, horizon: int | None):
    n = int(state_dim)
    K = horizon or max(4 * n + 2, 20)
    if data.has_measured_inputs:
        Y = okid_markov(data, K)
        how = "okid"
    else:
        Y = _step_response_markov(data, K)
        how = "step-response"
    A, B, C, D, s = era(Y, n)
    return dict(A=A, B=B, C=C, D=D, coordinates="similarity",
                info={"markov_from": how, "horizon": K, "hankel_singular_values": s[: 2 * n + 2].tolist()})


def _step_response_markov(data: LTIData, K: int) -> np.ndarray:
    """Markov parameters from the mean response to the designed input means (trajectories from rest).

    With x_0 = 0, E[y_t | e] = S_t μ_e with the step-response blocks S_t = Σ_{k=1}^{t} C A^{k-1} B;
    least squares over environments gives S_t, and Y_k = S_k − S_{k-1}.
    """
    if data.input_mean is None or data.input_var is None:
        raise IdentifiabilityError(
            "partial observation with unrecorded inputs needs known, diverse input means per environment "
            "(input_mean) or measured inputs; with unknown means the Markov parameters are not identified "
            "from first moments"
        )
    mu = data.input_mean
    if np.linalg.matrix_rank(mu, tol=1e-10 * max(np.abs(mu).max(), 1e-300)) < mu.shape[1]:
        raise IdentifiabilityError(
            f"the designed input means span fewer than {mu.shape[1]} directions across the "
            f"{data.num_envs} environments; the step responses (and Markov parameters) are not identified — "
            "give each input its own non-zero mean in some environment"
        )
    if data.num_steps <= K:
        raise DataError(f"trajectories have {data.num_steps} steps; the Markov horizon needs more than {K}")
    ybar = np.nanmean(data.y[:, :, : K + 1], axis=1)                   # (E, K+1, p)
    S = np.einsum("em,etp->tpm", np.linalg.pinv(mu).T, ybar)          # (K+1, p, m)
    Y = np.diff(S, axis=0)
    return np.concatenate([np.zeros((1,) + Y.shape[1:]), Y])[:K]


# ====================================================================== Bayes engine
def _bayes(data: LTIData, init: dict, obs_noise, process_noise, num_warmup, num_samples, num_chains, key, progress):
    import arviz as az
    from numpyro.infer import MCMC, NUTS, init_to_value

    p, m = data.obs_dim, init["B"].shape[1]
    law = ("known" if data.input_mean is not None else "latent_mean") if data.input_var is not None else "latent"
    config = lti_models.LTIModelConfig(
        state_dim=p, input_dim=m, obs_dim=p, num_envs=data.num_envs, num_trajectories=data.num_trajectories,
        num_steps=data.num_steps, input_law=law, obs_matrix="identity",
        obs_noise_var="latent" if obs_noise in (True, "estimate") else float(obs_noise or 0.0),
        process_noise_var="latent" if process_noise else 0.0,
    )
    values = {"A": init["A"], "B": init["B"]}
    # Bind the data by closure: the program sees concrete observations and, for noise-free
    # full-state data, takes its exact transition-density path instead of the Kalman filter.
    model = functools.partial(lti_models.lti_model, data.y, config=config, input_mean=data.input_mean,
                              input_var=data.input_var)
    kernel = NUTS(model, init_strategy=init_to_value(values=values), target_accept_prob=0.85, dense_mass=True)
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method="vectorized" if num_chains > 1 else "sequential", progress_bar=progress)
    t0 = time.perf_counter()
    mcmc.warmup(jax.random.PRNGKey(key), extra_fields=("diverging", "num_steps"))
    jax.block_until_ready(mcmc.last_state)
    t1 = time.perf_counter()
    mcmc.run(mcmc.post_warmup_state.rng_key, extra_fields=("diverging", "num_steps"))
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    t2 = time.perf_counter()
    elapsed = t2 - t0
    # Align the sign of every B̃ column with the start (the likelihood is sign-invariant for zero means).
    B_s = np.asarray(samples["B"])
    flip = np.sign(np.einsum("cspj,pj->csj", B_s, init["B"]))
    flip[flip == 0] = 1
    samples = dict(samples)
    samples["B"] = jnp.asarray(B_s * flip[:, :, None, :])
    idata = az.from_dict(posterior={k: np.asarray(v) for k, v in samples.items()},
                         sample_stats={k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()
                                       if k == "diverging"})
    A = np.asarray(samples["A"]).mean((0, 1))
    B = np.asarray(samples["B"]).mean((0, 1))
    ess = az.ess(idata, var_names=["A", "B"])
    rhat = az.rhat(idata, var_names=["A", "B"]) if num_chains > 1 else None
    ess_min = float(min(ess[v].values.min() for v in ("A", "B")))
    # "sampling" time includes compiling the sampling loop (numpyro compiles run() anew);
    # on small problems that dominates, so ess_per_second_sampling is a lower bound.
    info = {"ess_min": ess_min, "ess_per_second_sampling": ess_min / (t2 - t1),
            "ess_per_second": ess_min / elapsed, "seconds_warmup": t1 - t0, "seconds_sampling": t2 - t1,
            "seconds": elapsed, "divergences": int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())}
    if rhat is not None:
        info["rhat_max"] = float(max(rhat[v].values.max() for v in ("A", "B")))
        if info["rhat_max"] > 1.05:
            warnings.warn(f"NUTS chains disagree (max R-hat {info['rhat_max']:.3f}); run longer",
                          ConvergenceWarning, stacklevel=3)
    out = dict(A=A, B=B, C=np.eye(p), D=np.zeros((p, m)), A_se=np.asarray(samples["A"]).std((0, 1)),
               B_se=np.asarray(samples["B"]).std((0, 1)), sources=_sources(data, A, B),
               source_var=init.get("source_var"), input_mean=init.get("input_mean"), coordinates="observed",
               info=info, posterior=idata)
    for name, key_ in (("obs_noise_var", "R"), ("process_noise_var", "Q")):
        if name in samples:
            out[key_] = float(np.asarray(samples[name]).mean()) * np.eye(p)
    return out


# ====================================================================== front door
@float64
def identify_lti(
    data: LTIData,
    method: Method | None = None,
    *,
    state_dim: int | str | None = None,
    obs_noise: float | bool | None = None,
    process_noise: bool = False,
    feedthrough: bool = False,
    horizon: int | None = None,
    check: bool = True,
    on_unidentifiable: Literal["raise", "warn"] = "raise",
    max_iters: int = 2000,
    tol: float = 1e-7,
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 1,
    key: int = 0,
    progress: bool | None = None,
    criterion: Literal["prediction", "simulation"] = "prediction",
    max_order: int | None = None,
) -> LTIResult:
    """Identify a multi-environment LTI system.

    Parameters
    ----------
    data : LTIData
        Outputs with either designed input laws (``input_var``, optionally ``input_mean``)
        or measured inputs.
    method : {"pem", "moment", "mle", "bayes", "markov"}, optional
        See the module docstring; default ``"pem"`` for measured inputs, ``"moment"`` for
        designed input laws.
    state_dim : int or "auto", optional
        Model order where the data do not fix it (partial observation, measured inputs);
        by default the full state is observed (n = p) for designed input laws; for measured
        inputs ``pem`` chooses it by held-out prediction error (``"auto"``, see
        :attr:`LTIResult.order_selection`) and ``mle``/``markov`` by
        :func:`causalid.select_order`.
    criterion : {"prediction", "simulation"}
        ``pem``: minimise one-step prediction errors (innovations form, with a noise model)
        or free-run simulation errors (output error, K = 0).
    max_order : int, optional
        ``pem`` with the automatic order: the largest order tried (default up to 10, as the
        record lengths allow).
    obs_noise : float or True, optional
        Observation-noise **variance** r (v_t ~ N(0, r I)); ``True`` estimates it.  Any
        value switches ``mle``/``bayes`` to the Kalman likelihood.
    process_noise : bool
        Estimate an isotropic process-noise variance q (w_t ~ N(0, q I)).
    check : bool
        Run :func:`causalid.check_lti` on the data first; what the data cannot identify
        raises :class:`~causalid.errors.IdentifiabilityError` (or warns, with
        ``on_unidentifiable="warn"``).

    Returns
    -------
    LTIResult
        With ``.A``, ``.B``, ``.C`` in the identifiable coordinates (see :class:`LTIResult`).

    Examples
    --------
    >>> import causalid
    >>> from causalid.models import lti
    >>> import jax
    >>> design = lti.max_variability_design(2, key=jax.random.PRNGKey(2))
    >>> sim = lti.simulate_lti(jax.random.PRNGKey(0), lti.random_system(jax.random.PRNGKey(1), 2, use_C=False),
    ...                        design=design, num_steps=2000)
    >>> data = causalid.LTIData.from_arrays(sim["y"], input_mean=design.mean, input_var=design.var)
    >>> res = causalid.identify_lti(data, method="moment")
    >>> res.A.shape, res.B.shape
    ((2, 2), (2, 2))
    """
    progress_arg = progress
    progress = show_progress(progress)
    if not isinstance(data, LTIData):
        raise DataError(f"identify_lti needs an LTIData object (causalid.LTIData.from_arrays/from_frame); got {type(data).__name__}")
    if method is None:
        method = "pem" if data.has_measured_inputs else "moment"
    if method not in ("pem", "moment", "mle", "bayes", "markov"):
        raise DataError(f"unknown method {method!r}; use 'pem', 'moment', 'mle', 'bayes' or 'markov'")
    if method == "pem":
        return _identify_pem(data, state_dim, criterion, feedthrough, max_order, max_iters, check,
                             on_unidentifiable, horizon, progress_arg)
    if isinstance(state_dim, str):
        if state_dim != "auto":
            raise DataError(f"state_dim must be an integer or 'auto'; got {state_dim!r}")
        state_dim = None
    if on_unidentifiable not in ("raise", "warn"):
        raise DataError(f"on_unidentifiable must be 'raise' or 'warn'; got {on_unidentifiable!r}")
    check_channels(data.y, data.output_names, "output")
    if data.has_measured_inputs:
        check_channels(data.observed_inputs(), data.input_names, "input")
    settings = dict(method=method, state_dim=state_dim, obs_noise=obs_noise, process_noise=process_noise,
                    feedthrough=feedthrough, horizon=horizon, max_iters=max_iters, tol=tol, key=key)
    p = data.obs_dim
    measured = data.has_measured_inputs
    if data.input_dim == 0:
        raise DataError(
            "the data carry neither measured inputs nor a designed input law; pass inputs=..., "
            "input_var=... (and input_mean=...), or input_dim=... for inputs of unknown law, to LTIData.from_arrays"
        )
    law_unknown = not measured and data.input_var is None
    partial = state_dim is not None and state_dim != p
    if measured and state_dim is None and method in ("mle", "markov"):
        state_dim = select_order(data).order
        settings["state_dim_selected"] = state_dim
    report = None
    if check:
        if not law_unknown:
            report = check_lti(data, state_dim=state_dim)
        if not measured and not law_unknown and method in ("moment", "mle", "bayes") and not partial:
            report.warn_or_raise("B_tilde", on_fail=on_unidentifiable)
    noisy = obs_noise not in (None, 0, 0.0, False) or (not measured and data.has_missing)
    t0 = time.perf_counter()
    if method == "markov":
        if state_dim is None:
            raise DataError("method='markov' needs state_dim (the model order); see causalid.select_order")
        out = _markov(data, state_dim, horizon)
    elif measured:
        if method == "moment":
            if partial:
                raise DataError("method='moment' with measured inputs needs the full state observed "
                                "(state_dim = number of outputs); use 'mle' or 'markov'")
            out = _moment_measured(data)
        elif method == "mle":
            out = _kalman_measured(data, state_dim, feedthrough, max_iters, tol)
        else:
            raise DataError("method='bayes' supports designed input laws; for measured inputs use 'mle' (with "
                            "standard errors) or 'markov'")
    else:
        if partial:
            if method != "markov":
                raise DataError(
                    f"state_dim={state_dim} differs from the {p} outputs (partial observation): use "
                    "method='markov' for designed input laws"
                )
        init = _moment(data)
        if method in ("mle", "bayes") and not noisy and not process_noise and init["B"].shape[1] < p:
            raise DataError(
                f"{init['B'].shape[1]} input(s) drive {p} outputs with no noise: the transition likelihood is "
                "degenerate (noise-free data lie on a subspace); use method='moment' (exact for noise-free "
                "data), or, if the data are noisy, model the noise with obs_noise=True or process_noise=True"
            )
        if method == "moment":
            out = init
        elif method == "mle":
            out = (_kalman_design(data, init, True if obs_noise is None else obs_noise, process_noise, max_iters, tol)
                   if noisy else _mle_full_state(data, init, process_noise, max_iters, tol))
        else:
            out = _bayes(data, init, obs_noise, process_noise, num_warmup, num_samples, num_chains, key, progress)
    if check and law_unknown and out.get("source_var") is not None:
        # Unknown input law: check the diversity of the estimated per-environment variances.

        report = check_lti(InputDesign(None, np.maximum(out["source_var"], 1e-300)), state_dim=state_dim)
        report.warn_or_raise("B_tilde", on_fail="warn")
    info = dict(out.pop("info", {}))
    info["seconds"] = info.get("seconds", time.perf_counter() - t0)
    coords = out.pop("coordinates")
    return LTIResult(method=method, coordinates=coords, dt=data.dt, output_names=tuple(data.output_names),
                     input_names=tuple(data.input_names), env_names=tuple(data.env_names), settings=settings,
                     info=info, report=report, **out)


def _excitation(data: LTIData, n: int, check: bool, on_unidentifiable: str) -> dict:
    """Persistent excitation of order 2n of the measured inputs (what an order-n model needs)."""
    from causalid.lti.identifiability import persistent_excitation

    pe = persistent_excitation(data.observed_inputs(), 2 * n)
    if check and not pe.passed:
        msg = f"{pe.message}; an order-{n} model needs inputs persistently exciting of order 2n = {2 * n}"
        if on_unidentifiable == "raise":
            raise IdentifiabilityError(msg + " (on_unidentifiable='warn' fits anyway)")
        warnings.warn(msg, UserWarning, stacklevel=4)
    return {"passed": bool(pe.passed), "message": pe.message, "order": 2 * n}


def _identify_pem(data: LTIData, state_dim, criterion, feedthrough, max_order, max_iters, check, on_unidentifiable,
                  horizon, progress) -> LTIResult:
    """``identify_lti(method="pem")``: see :mod:`causalid.lti.pem`."""
    from causalid.lti.pem import fit_percent, pem_fit, predict_records, residual_tests

    if not data.has_measured_inputs:
        raise DataError("method='pem' needs measured inputs (LTIData.from_arrays(..., inputs=...)); for designed "
                        "input laws use 'moment', 'mle' or 'bayes'")
    check_channels(data.y, data.output_names, "output")
    check_channels(data.observed_inputs(), data.input_names, "input")
    if on_unidentifiable not in ("raise", "warn"):
        raise DataError(f"on_unidentifiable must be 'raise' or 'warn'; got {on_unidentifiable!r}")
    if state_dim is not None and state_dim != "auto" and (isinstance(state_dim, str) or int(state_dim) < 1):
        raise DataError(f"state_dim must be a positive integer or 'auto'; got {state_dim!r}")
    auto = state_dim in (None, "auto")
    if not auto:      # refuse early what the inputs cannot identify
        _excitation(data, int(state_dim), check, on_unidentifiable)
    out = pem_fit(data, "auto" if auto else int(state_dim), criterion=criterion, feedthrough=feedthrough,
                  max_order=max_order, max_iters=min(int(max_iters), 500), horizon=horizon, progress=progress)
    n = out.pop("state_dim")
    order = out.pop("order_table")
    info = out.pop("info")
    args = [out[k] for k in ("A", "B", "C", "D", "K", "y_offset", "u_offset")]
    sim = predict_records(*args, data, kind="simulate")
    one = predict_records(*args, data, kind="one-step")
    info["fit_percent"] = fit_percent(data.y, sim).tolist()
    E, N, T, p = data.y.shape
    res = (data.y - one).reshape(E * N, T, p)
    info["residual_tests"] = residual_tests(res, data.inputs.reshape(E * N, T, -1), data.lengths.reshape(-1),
                                            max_lag=int(min(20, max(data.lengths.min() // 5, 1))))
    info["excitation"] = _excitation(data, n, check, on_unidentifiable)
    if len(info.get("theta", [])) > 300:
        info.pop("theta_cov", None)
    info["order_selection"] = order
    if criterion == "simulation":
        out["K"] = None
    settings = dict(method="pem", state_dim=state_dim if not auto else "auto", criterion=criterion,
                    feedthrough=feedthrough, max_order=max_order, max_iters=max_iters, horizon=horizon,
                    order_selection={"max_order": max(order["table"]["order"])} if auto else None)
    return LTIResult(method="pem", coordinates="similarity", dt=data.dt, output_names=tuple(data.output_names),
                     input_names=tuple(data.input_names), env_names=tuple(data.env_names), settings=settings,
                     info=info, **out)
