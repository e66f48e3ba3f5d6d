"""Prediction-error identification of measured-input systems in innovations form.

Model (Ljung, *System Identification*, ch. 7 and 10), for every record k of every environment::

    x_{t+1} = A x_t + B (u_t − ū) + K e_t,      y_t = C x_t + D (u_t − ū) + d + e_t,

with the system (A, B, C, D, K) and the output offset d shared by all records, the input
offset ū the inputs' mean, and one initial state per record.  The one-step predictor
x̂_{t+1} = A x̂_t + B u_t + K (y_t − ŷ_t) is linear in x̂_0, so every record's initial state
is eliminated by least squares inside the criterion (variable projection); a missing output
is not corrected for (the predictor runs open loop over it).

The criterion Σ_t ‖e_t‖² (outputs and inputs scaled to unit variance) is minimised by
Levenberg–Marquardt on the prediction errors, with the Jacobian from :func:`jax.jacfwd`
through a :func:`jax.lax.scan` predictor, jit-compiled once per shape (the order search pads
every order to the largest, :class:`Embedding`, so one program serves all), in float64.  A step
that would make the predictor A − K C (or A, for the output-error criterion) unstable is
refused, so the predictor stays stable along the whole path.  The start is a subspace
estimate (:func:`causalid.lti.subspace.subspace_candidates`: N4SID, MOESP and CVA weightings
at every candidate order, the one with the smallest held-out one-step error kept).

Order selection (``state_dim="auto"``): every order 1..n_max is screened by the held-out
one-step error of its subspace estimate (the last part of each record is held out); the full
prediction-error fit runs on the best few; the order with the smallest held-out error of the
fitted model is refitted on all the data.  AIC and BIC of the fits are reported alongside.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from causalid._progress import progress_bar
from causalid._x64 import float64
from causalid.errors import ConvergenceWarning, DataError

__all__ = ["pem_fit", "PEMStructure", "predict_records", "fit_percent", "residual_tests"]


class PEMStructure(NamedTuple):
    """Static layout of the parameter vector (hashable: one compiled program per structure)."""

    n: int
    m: int
    p: int
    feedthrough: bool
    noise: bool                      # False: output-error (K = 0)

    @property
    def size(self) -> int:
        n, m, p = self.n, self.m, self.p
        return n * n + n * m + p * n + (p * m if self.feedthrough else 0) + (n * p if self.noise else 0) + p


def pack(s: PEMStructure, A, B, C, D, K, d) -> np.ndarray:
    parts = [A.ravel(), B.ravel(), C.ravel()]
    if s.feedthrough:
        parts.append(D.ravel())
    if s.noise:
        parts.append(K.ravel())
    parts.append(d.ravel())
    return np.concatenate([np.asarray(q, float) for q in parts])


def unpack(s: PEMStructure, theta):
    """(A, B, C, D, K, d) from the flat vector (JAX- or NumPy-traceable)."""
    xp = jnp if isinstance(theta, jax.Array) else np
    n, m, p = s.n, s.m, s.p
    i = 0

    def take(k, shape):
        nonlocal i
        out = theta[i: i + k].reshape(shape)
        i += k
        return out

    A, B, C = take(n * n, (n, n)), take(n * m, (n, m)), take(p * n, (p, n))
    D = take(p * m, (p, m)) if s.feedthrough else xp.zeros((p, m), dtype=theta.dtype)
    K = take(n * p, (n, p)) if s.noise else xp.zeros((n, p), dtype=theta.dtype)
    d = take(p, (p,))
    return A, B, C, D, K, d


# ====================================================================== the predictor
def _record_errors(A, B, C, D, K, d, y, u, w):
    """One record: prediction errors with x̂_0 = 0 and their sensitivity to x̂_0.

    y (T, p) with missing entries zero, u (T, m), w (T, p) 1 where observed.  Returns
    E0 (T, p) and Phi (T, p, n) with e_t(x̂_0) = E0_t − Phi_t x̂_0.
    """
    n = A.shape[0]

    def step(carry, inp):
        x, X = carry
        yt, ut, wt = inp
        e = wt * (yt - C @ x - D @ ut - d)
        CX = wt[:, None] * (C @ X)
        return (A @ x + B @ ut + K @ e, A @ X - K @ CX), (e, CX)

    init = (jnp.zeros(n, y.dtype), jnp.eye(n, dtype=y.dtype))
    _, (E0, Phi) = jax.lax.scan(step, init, (y, u, w))
    return E0, Phi


def _initial_state(E0, Phi, wfit, smask):
    """Least-squares x̂_0 from the steps with wfit = 1 (a tiny ridge keeps unexcited directions at 0).

    ``smask`` (n,) is 1 for the model's states and 0 for padding states (whose rows and columns of
    the Gram matrix are exactly zero): the ridge is that of the model without padding and a padding
    state gets x̂_0 = 0 exactly.
    """
    Pw = Phi * wfit[:, None, None]
    G = jnp.einsum("tpi,tpj->ij", Pw, Phi)
    h = jnp.einsum("tpi,tp->i", Pw, E0)
    ridge = 1e-10 * (jnp.trace(G) / smask.sum() + 1e-12)
    return jnp.linalg.solve(G + jnp.diag(ridge * smask + (1 - smask)), h)


def _residuals(theta, s: PEMStructure, y, u, w, wfit, wscore, smask):
    """Weighted prediction errors of every record (flat), x̂_0 eliminated per record."""
    A, B, C, D, K, d = unpack(s, theta)

    def one(y_k, u_k, w_k, wf_k, ws_k):
        E0, Phi = _record_errors(A, B, C, D, K, d, y_k, u_k, w_k)
        x0 = _initial_state(E0, Phi, wf_k, smask)
        return (E0 - Phi @ x0) * ws_k[:, None]

    return jax.vmap(one)(y, u, w, wfit, wscore).ravel()


def _initial_states(theta, s: PEMStructure, y, u, w, wfit, smask):
    """Every record's least-squares x̂_0 at θ (K, n)."""
    A, B, C, D, K, d = unpack(s, theta)

    def one(y_k, u_k, w_k, wf_k):
        E0, Phi = _record_errors(A, B, C, D, K, d, y_k, u_k, w_k)
        return _initial_state(E0, Phi, wf_k, smask)

    return jax.vmap(one)(y, u, w, wfit)


def _residuals_from(theta, s: PEMStructure, y, u, w, wfit, x0):
    """Weighted prediction errors from given initial states (no sensitivity to x̂_0 carried)."""
    A, B, C, D, K, d = unpack(s, theta)

    def one(y_k, u_k, w_k, wf_k, x0_k):
        def step(x, inp):
            yt, ut, wt = inp
            e = wt * (yt - C @ x - D @ ut - d)
            return A @ x + B @ ut + K @ e, e

        _, e = jax.lax.scan(step, x0_k, (y_k, u_k, w_k))
        return e * wf_k[:, None]

    return jax.vmap(one)(y, u, w, wfit, x0).ravel()


def _sensitivity_step(s: PEMStructure, A, B, C, D, K, d):
    """One step of the predictor and of its parameter sensitivity S_t = ∂x̂_t/∂θ (n, P).

    With F_t = A − K W_t C (W_t the observed outputs) the sensitivity obeys the linear
    recursion S_{t+1} = F_t S_t + R_t, whose forcing R_t and the direct term Z_t of
    ∂e_t/∂θ = −W_t (C S_t + Z_t) are Kronecker products of x̂_t, u_t and e_t laid out in the
    order of :func:`pack`; one (n × n)(n × P) product per step replaces the P tangent passes
    of forward-mode differentiation through the scan.
    """
    n, m, p = s.n, s.m, s.p
    In, Ip = jnp.eye(n, dtype=A.dtype), jnp.eye(p, dtype=A.dtype)

    def step(carry, inp):
        x, S = carry
        yt, ut, wt = inp
        e = wt * (yt - C @ x - D @ ut - d)
        KW = K * wt[None, :]
        xr, ur = x[None, :], ut[None, :]
        R = [jnp.kron(In, xr), jnp.kron(In, ur), -jnp.kron(KW, xr)]
        Z = [jnp.zeros((p, n * n), A.dtype), jnp.zeros((p, n * m), A.dtype), jnp.kron(Ip, xr)]
        if s.feedthrough:
            R.append(-jnp.kron(KW, ur))
            Z.append(jnp.kron(Ip, ur))
        if s.noise:
            R.append(jnp.kron(In, e[None, :]))
            Z.append(jnp.zeros((p, n * p), A.dtype))
        R.append(-KW)
        Z.append(Ip)
        CS = C @ S
        de = -wt[:, None] * (CS + jnp.concatenate(Z, axis=1))
        S_next = A @ S - KW @ CS + jnp.concatenate(R, axis=1)
        return (A @ x + B @ ut + K @ e, S_next), (e, de)

    return step


@functools.partial(jax.jit, static_argnums=1)
def _normal_equations(theta, s, y, u, w, wfit, smask):
    """Gauss–Newton normal equations of the criterion with x̂_0 eliminated (variable projection).

    x̂_0(θ) minimises the criterion, so the gradient of the projected criterion is the gradient
    at fixed x̂_0 (envelope theorem); the Jacobian is taken at fixed x̂_0, by the sensitivity
    recursion of :func:`_sensitivity_step`.
    """
    x0 = _initial_states(theta, s, y, u, w, wfit, smask)
    A, B, C, D, K, d = unpack(s, theta)
    step = _sensitivity_step(s, A, B, C, D, K, d)
    P = theta.shape[0]

    def one(y_k, u_k, w_k, wf_k, x0_k):
        init = (x0_k, jnp.zeros((s.n, P), theta.dtype))
        _, (e, de) = jax.lax.scan(step, init, (y_k, u_k, w_k))
        return e * wf_k[:, None], de * wf_k[:, None, None]

    r, J = jax.vmap(one)(y, u, w, wfit, x0)
    r, J = r.reshape(-1), J.reshape(-1, P)
    return J.T @ J, J.T @ r, r @ r


@functools.partial(jax.jit, static_argnums=1)
def _cost(theta, s, y, u, w, wfit, wscore, smask):
    r = _residuals(theta, s, y, u, w, wfit, wscore, smask)
    return r @ r


@functools.partial(jax.jit, static_argnums=1)
def _scored_residuals(theta, s, y, u, w, wfit, wscore, smask):
    return _residuals(theta, s, y, u, w, wfit, wscore, smask)


@functools.partial(jax.jit, static_argnums=1)
def _step_errors_batch(thetas, s, y, u, w, wfit, wscore, smasks):
    """Held-out squared errors per step (summed over outputs) of many parameter vectors of one
    padded structure at once (order screening): (len(thetas), K, T)."""
    K_, T, p = y.shape
    return jax.vmap(lambda th, sm: (_residuals(th, s, y, u, w, wfit, wscore, sm).reshape(K_, T, p) ** 2).sum(-1))(
        thetas, smasks)


def _one_se_choice(errors: dict, mask) -> int:
    """The smallest order whose paired held-out error exceeds the best by at most one standard error."""
    per = {n: e[mask > 0] for n, e in errors.items()}
    best = min(per, key=lambda n: per[n].mean())
    ok = []
    for n, e in per.items():
        diff = e - per[best]
        se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
        if diff.mean() <= se:
            ok.append(n)
    return min(ok)


@functools.partial(jax.jit, static_argnums=1)
def _outputs(theta, s, y, u, w, wfit, smask):
    """One-step predictions ŷ (K, T, p), the filtered states x̂_{t|t−1} (K, T, n) and x̂_0 (K, n)."""
    A, B, C, D, K, d = unpack(s, theta)

    def one(y_k, u_k, w_k, wf_k):
        E0, Phi = _record_errors(A, B, C, D, K, d, y_k, u_k, w_k)
        x0 = _initial_state(E0, Phi, wf_k, smask)

        def step(x, inp):
            yt, ut, wt = inp
            yhat = C @ x + D @ ut + d
            return A @ x + B @ ut + K @ (wt * (yt - yhat)), (yhat, x)

        _, (yhat, xs) = jax.lax.scan(step, x0, (y_k, u_k, w_k))
        return yhat, xs, x0

    return jax.vmap(one)(y, u, w, wfit)


RHO_MAX = 0.9995
"""Largest spectral radius of the predictor a step may reach (a predictor at the unit circle
never corrects its state)."""


def _spectral_radius(M) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(M)))) if M.size else 0.0


def predictor_matrix(s: PEMStructure, theta) -> np.ndarray:
    A, B, C, D, K, d = unpack(s, np.asarray(theta))
    return A - K @ C


# ====================================================================== padding to one compiled shape
class Embedding(NamedTuple):
    """A structure of order n inside the padded structure of a larger order N.

    The padding states have zero rows and columns of A, zero rows of B and K and zero columns
    of C, held fixed: they stay at zero, their initial state is zero, and the prediction errors
    do not depend on the padding parameters to first order (their Jacobian columns are zero),
    so the prediction, the Gauss–Newton equations restricted to ``active`` and hence every
    Levenberg–Marquardt step are those of the order-n model, while one compiled program (of
    the padded shape) serves every order.
    """

    small: PEMStructure
    big: PEMStructure
    active: np.ndarray       # positions of the small θ in the padded θ
    smask: np.ndarray        # (N,) 1 for the model's states, 0 for padding

    def pad(self, theta) -> np.ndarray:
        out = np.zeros(self.big.size)
        out[self.active] = theta
        return out


def embedding(s: PEMStructure, big: PEMStructure | None = None) -> Embedding:
    """The embedding of ``s`` in ``big`` (default: ``s`` itself, no padding)."""
    big = s if big is None else big
    if big.n < s.n or big[1:] != s[1:]:
        raise ValueError(f"cannot pad {s} into {big}")
    pos = _pad_theta(s, np.arange(1, s.size + 1, dtype=float), big)
    active = np.flatnonzero(pos)
    assert np.array_equal(pos[active], np.arange(1, s.size + 1))
    return Embedding(s, big, active, (np.arange(big.n) < s.n).astype(float))


# ====================================================================== Levenberg–Marquardt
def levenberg_marquardt(emb: Embedding | PEMStructure, theta0, arrays, *, max_iters=100, tol=1e-7,
                        what="identify_lti"):
    """Minimise the prediction-error criterion from ``theta0``; returns (θ̂, info, (H, g, cost)).

    ``emb`` is the model's structure, or its :class:`Embedding` in a padded structure (θ, H and
    g are then those of the model itself, evaluated by the padded program).  ``arrays`` =
    (y, u, w, wfit) as JAX arrays.  A step is accepted when it lowers the cost and keeps the
    predictor stable (spectral radius below 1); converged when an accepted step lowers the
    cost by less than ``tol`` relatively, or the damped step can no longer lower it with the
    gradient at the noise level.
    """
    if isinstance(emb, PEMStructure):
        emb = embedding(emb)
    s, big, act = emb.small, emb.big, emb.active
    jmask = jnp.asarray(emb.smask)

    def normal_equations(th):
        H, g, c = _normal_equations(jnp.asarray(emb.pad(th)), big, *arrays, jmask)
        H, g = np.asarray(H), np.asarray(g)
        return H[np.ix_(act, act)], g[act], float(c)

    theta = np.asarray(theta0, float)
    if _spectral_radius(predictor_matrix(s, theta)) >= 1:
        raise DataError("the starting predictor is unstable")
    lam = 1e-3
    converged, message, it = False, "maximum number of iterations reached", 0
    H, g, c = normal_equations(theta)
    c0 = float(c)
    for it in range(1, max_iters + 1):
        dg = np.diag(H).copy()
        scale = np.maximum(dg, 1e-12 * max(dg.max(), 1e-300))
        accepted = False
        for _ in range(12):
            try:
                step = np.linalg.solve(H + lam * np.diag(scale), g)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            cand = theta - step
            for _half in range(4):           # an unstable predictor: a shorter step first
                if _spectral_radius(predictor_matrix(s, cand)) < RHO_MAX:
                    break
                step = step / 2
                cand = theta - step
            if _spectral_radius(predictor_matrix(s, cand)) < RHO_MAX:
                cc = float(_cost(jnp.asarray(emb.pad(cand)), big, *arrays, arrays[3], jmask))
                if np.isfinite(cc) and cc < c:
                    accepted = True
                    break
            lam *= 4
        if not accepted:
            gn = float(np.abs(g).max())
            converged = True
            message = f"no damped step lowers the cost (gradient {gn:.2e}): a minimum"
            break
        rel = (c - cc) / max(c, 1e-300)
        theta = cand
        lam = max(lam / 5, 1e-9)
        H, g, c = normal_equations(theta)
        if rel < tol:
            converged, message = True, f"relative decrease {rel:.1e} below {tol:.0e}"
            break
    if not converged:
        warnings.warn(f"{what}: Levenberg–Marquardt stopped after {max_iters} iterations without converging; "
                      "raise max_iters or check the data", ConvergenceWarning, stacklevel=4)
    info = {"converged": converged, "iterations": it, "message": message, "initial_cost": c0, "cost": float(c)}
    return theta, info, (H, g, c)


# ====================================================================== records and scaling
class Records(NamedTuple):
    y: np.ndarray        # (K, T, p), scaled and centred, missing = 0
    u: np.ndarray        # (K, T, m), scaled and centred, padding = 0
    w: np.ndarray        # (K, T, p) observed
    steps: np.ndarray    # (K, T) inside the record
    y_mean: np.ndarray
    y_scale: np.ndarray
    u_mean: np.ndarray
    u_scale: np.ndarray


def records(data, y_mean=None, y_scale=None, u_mean=None, u_scale=None) -> Records:
    """Every trajectory of every environment as one record, centred and scaled (by the data's own
    statistics unless given)."""
    E, N, T, p = data.y.shape
    m = data.input_dim
    steps = data.step_mask.reshape(E * N, T)
    y = data.y.reshape(E * N, T, p)
    u = np.where(steps[..., None], data.inputs.reshape(E * N, T, m), np.nan)
    w = np.isfinite(y) & steps[..., None]
    if y_mean is None:
        y_mean = np.nanmean(np.where(w, y, np.nan).reshape(-1, p), axis=0)
        y_scale = np.nanstd(np.where(w, y, np.nan).reshape(-1, p), axis=0)
        u_mean = np.nanmean(u.reshape(-1, m), axis=0)
        u_scale = np.nanstd(u.reshape(-1, m), axis=0)
        y_scale = np.where(y_scale > 0, y_scale, 1.0)
        u_scale = np.where(u_scale > 0, u_scale, 1.0)
    ys = np.where(w, (y - y_mean) / y_scale, 0.0)
    us = np.where(steps[..., None], (u - u_mean) / u_scale, 0.0)
    return Records(ys, us, w.astype(float), steps, np.asarray(y_mean), np.asarray(y_scale),
                   np.asarray(u_mean), np.asarray(u_scale))


def tail_masks(rec: Records, holdout: float):
    """(fit, tail) step masks: the last ``holdout`` fraction of every record is held out."""
    lengths = rec.steps.sum(1)
    cut = np.floor(lengths * (1 - holdout)).astype(int)
    t = np.arange(rec.steps.shape[1])[None, :]
    fit = (t < cut[:, None]) & rec.steps
    return fit.astype(float), (rec.steps & ~fit.astype(bool)).astype(float)


def _jarrays(rec: Records, wfit):
    return (jnp.asarray(rec.y), jnp.asarray(rec.u), jnp.asarray(rec.w), jnp.asarray(wfit))


def _obs_weight(rec, mask):
    """Per-output weights: observed and in ``mask``."""
    return rec.w * mask[..., None]


# ====================================================================== subspace start
def stabilise(A, C, K):
    """K shrunk towards 0 until A − K C is stable, else the steady Kalman gain of (A, C) with
    unit noise; None when neither works."""
    if _spectral_radius(A - K @ C) < 0.999:
        return K
    import scipy.linalg

    n, p = A.shape[0], C.shape[0]
    try:
        P = scipy.linalg.solve_discrete_are(A.T, C.T, np.eye(n) * 1e-2, np.eye(p))
        Kk = A @ P @ C.T @ np.linalg.inv(C @ P @ C.T + np.eye(p))
        if _spectral_radius(A - Kk @ C) < 0.999:
            return Kk
    except (np.linalg.LinAlgError, ValueError):
        pass
    for f in 0.8 ** np.arange(1, 30):
        if _spectral_radius(A - f * K @ C) < 0.999:
            return f * K
    return None


def _pad_theta(s: PEMStructure, theta, big: PEMStructure) -> np.ndarray:
    """θ of structure ``s`` embedded in the larger order of ``big`` (extra states are inert)."""
    A, B, C, D, K, d = unpack(s, np.asarray(theta))
    n, N = s.n, big.n
    Ab = np.zeros((N, N)); Ab[:n, :n] = A
    Bb = np.zeros((N, s.m)); Bb[:n] = B
    Cb = np.zeros((s.p, N)); Cb[:, :n] = C
    Kb = np.zeros((N, s.p)); Kb[:n] = K
    return pack(big, Ab, Bb, Cb, D, Kb, d)


# ====================================================================== the fit
PAD_BUCKETS = (2, 4, 7, 11, 16, 24, 36, 54, 80)
"""Padded orders of the candidate fits: order n is fitted in the program of the smallest bucket
at or above it (capped at the largest candidate order), so a search over orders 1..10 compiles
four programs, not ten."""

PAD_FLOPS = 3e8
"""Largest extra Gauss–Newton work per iteration (rows × (P_padded² − P²)) that padding may add;
beyond it (many outputs: the J^T J product dominates, measured 3 s per iteration at 30 outputs
and order 10 against a compile of about 2 s) every order gets its own program."""


def pad_order(s: PEMStructure, n_max: int, rows: float) -> int:
    """The padded order that fits ``s`` when the candidates go up to ``n_max`` and the criterion
    has ``rows`` residuals."""
    N = min(next((b for b in PAD_BUCKETS if b >= s.n), s.n), max(n_max, s.n))
    extra = rows * (s._replace(n=N).size ** 2 - s.size ** 2)
    return N if extra <= PAD_FLOPS else s.n


def _struct(n, m, p, feedthrough, criterion) -> PEMStructure:
    return PEMStructure(int(n), int(m), int(p), bool(feedthrough), criterion == "prediction")


def _start(cand, s: PEMStructure) -> np.ndarray | None:
    if not cand:
        return None
    A, B, C, D, K = cand["A"], cand["B"], cand["C"], cand["D"], cand["K"]
    if not s.noise:
        if _spectral_radius(A) >= 0.999:
            return None
        K = np.zeros_like(K)
    else:
        K = stabilise(A, C, K)
        if K is None:
            return None
    return pack(s, A, B, C, D if s.feedthrough else None, K, np.zeros(s.p))


@float64
def pem_fit(data, state_dim="auto", *, criterion="prediction", feedthrough=False, max_order=None,
            holdout=0.25, candidates=2, max_iters=100, tol=1e-7, weightings=("n4sid", "moesp", "cva"),
            horizon=None, progress=None):
    """Prediction-error fit of measured-input data; the engine behind ``identify_lti(method="pem")``.

    Returns a dict of the fitted system in the data's units and the order-selection table.
    """
    from causalid.lti.subspace import default_horizon, subspace_candidates

    if criterion not in ("prediction", "simulation"):
        raise DataError(f"criterion must be 'prediction' (one-step errors) or 'simulation' (output error); "
                        f"got {criterion!r}")
    t0 = time.perf_counter()
    rec = records(data)
    K_, T, p = rec.y.shape
    m = rec.u.shape[2]
    fitmask, tailmask = tail_masks(rec, holdout)
    full = rec.steps.astype(float)
    lengths = rec.steps.sum(1)
    auto = state_dim in (None, "auto")
    if auto:
        L_fit = int(fitmask.sum(1).max())
        # at most one free parameter per ten fitted samples: n (m + 2p) + p − n² <= N / 10
        n_obs = float((rec.w * fitmask[..., None]).sum())
        by_data = 1
        while by_data < 10 and (by_data + 1) * (m + 2 * p - by_data - 1) + p <= n_obs / 10:
            by_data += 1
        n_max = int(max_order or max(1, min(10, p * default_horizon(L_fit, m, p), by_data)))
        orders = list(range(1, max(n_max, 1) + 1))
    else:
        if int(state_dim) < 1:
            raise DataError(f"state_dim={state_dim}: the model order must be at least 1")
        orders = [int(state_dim)]
    bar = progress_bar(progress, total=len(orders) + candidates + 1, desc="identify_lti(pem)")

    def tick(text):
        if bar is not None:
            bar.set_postfix_str(text)
            bar.update(1)

    # ---- screening: subspace estimates of every order and weighting on the fitting part
    sub = subspace_candidates(rec, orders, fitmask if auto else full, weightings=weightings,
                              feedthrough=feedthrough, horizon=horizon)
    # padded structures: the screening pads every order to the largest (one program); the
    # fits pad each order to its bucket of PAD_BUCKETS (a few programs, each at most ~1.6
    # times the order, since the cost of an iteration grows with the padded size)
    big = _struct(max(orders), m, p, feedthrough, criterion)
    small = {n: _struct(n, m, p, feedthrough, criterion) for n in orders}
    rows = float(rec.w.sum())
    emb = {n: embedding(small[n], small[n]._replace(n=pad_order(small[n], max(orders), rows))) for n in orders}
    jmask = {n: jnp.asarray(e.smask) for n, e in emb.items()}
    screen = []
    thetas, keys = [], []
    for (n, wname), cand in sub.items():
        s = _struct(n, m, p, feedthrough, criterion)
        th = _start(cand, s)
        if th is None:
            continue
        thetas.append(embedding(s, big).pad(th))
        keys.append((n, wname, th))
    if not thetas:
        raise DataError("no subspace estimate gave a stable predictor; give state_dim or more data")
    score_mask = tailmask if auto else full
    step_err = np.asarray(_step_errors_batch(jnp.asarray(np.stack(thetas)), big, jnp.asarray(rec.y),
                                             jnp.asarray(rec.u), jnp.asarray(rec.w),
                                             jnp.asarray(fitmask if auto else full), jnp.asarray(score_mask),
                                             jnp.asarray(np.stack([embedding(small[k[0]], big).smask
                                                                   for k in keys]))))
    costs = step_err.sum((1, 2))
    n_scored = max(float((rec.w * score_mask[..., None]).sum()), 1.0)
    for (n, wname, th), c in zip(keys, costs):
        screen.append({"order": n, "weighting": wname, "subspace_error": float(c) / n_scored})
    tick("screened")
    best_start, best_err = {}, {}
    for (n, wname, th), c, e in zip(keys, costs, step_err):
        if n not in best_start or c < best_start[n][1]:
            best_start[n] = (th, float(c), wname)
            best_err[n] = e
    chosen_orders = sorted(best_start)
    # ---- prediction-error fits of the candidates on the fitting part, scored on the tail
    fits = {}
    what = "identify_lti(method='pem')"
    jfit, jtail = jnp.asarray(fitmask), jnp.asarray(tailmask)
    worse = 0
    for n in sorted(chosen_orders):
        s = _struct(n, m, p, feedthrough, criterion)
        if auto:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)     # the final refit decides
                # scoring fits: a looser tolerance (the chosen order is refitted to ``tol``)
                th, info, _ = levenberg_marquardt(emb[n], best_start[n][0], _jarrays(rec, fitmask),
                                                  max_iters=min(max_iters, 30), tol=max(tol, 1e-5), what=what)
            r = np.asarray(_scored_residuals(jnp.asarray(emb[n].pad(th)), emb[n].big, jnp.asarray(rec.y),
                                             jnp.asarray(rec.u), jnp.asarray(rec.w), jfit, jtail,
                                             jmask[n])).reshape(K_, T, p)
            per_step = (r ** 2).sum(-1)
            fits[n] = (th, info, float(per_step.sum()) / n_scored, per_step)
            # Ascending orders: stop once `candidates` orders in a row fail to improve on the
            # best so far by more than one standard error of the paired held-out errors.
            if len(fits) > 1:
                best = min(fits, key=lambda k: fits[k][2])
                diff = (fits[best][3] - per_step)[tailmask > 0] if best != n else None
                gain = diff is not None and diff.mean() > diff.std(ddof=1) / np.sqrt(len(diff))
                if best == n:
                    prev = min((k for k in fits if k != n), key=lambda k: fits[k][2])
                    d2 = (per_step - fits[prev][3])[tailmask > 0]
                    gain = -d2.mean() > d2.std(ddof=1) / np.sqrt(len(d2))
                worse = 0 if gain else worse + 1
                if worse >= candidates:
                    break
        tick(f"n={n}")
    if auto:
        # One-standard-error rule on the paired held-out errors of the fitted candidates.
        n_sel = _one_se_choice({n: f[3] for n, f in fits.items()}, tailmask)
        theta0 = fits[n_sel][0]
    else:
        n_sel = orders[0]
        theta0 = best_start[n_sel][0]
    s = _struct(n_sel, m, p, feedthrough, criterion)
    starts = [theta0]
    if auto:        # also from the subspace estimate of all the data; the lower cost wins
        wname = best_start[n_sel][2]
        cand = subspace_candidates(rec, [n_sel], full, weightings=(wname,), feedthrough=feedthrough,
                                   horizon=horizon).get((n_sel, wname))
        again = _start(cand, s)
        if again is not None:
            starts.append(again)
    best = None
    for k, th0 in enumerate(starts):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            got = levenberg_marquardt(emb[n_sel], th0, _jarrays(rec, full), max_iters=max_iters, tol=tol,
                                      what=what)
        if best is None or got[2][2] < best[0][2][2]:
            best = (got, caught)
    (theta, info, (H, g, c)), caught = best
    for wmsg in caught:
        warnings.warn(wmsg.message, wmsg.category, stacklevel=3)
    tick("refit")
    if bar is not None:
        bar.close()
    info["init"] = best_start[n_sel][2]
    # ---- read-out in the data's units
    A, B, C, D, Kg, d = unpack(s, theta)
    yhat, xs, x0 = (np.asarray(a) for a in _outputs(jnp.asarray(emb[n_sel].pad(theta)), emb[n_sel].big,
                                                    *_jarrays(rec, full),
                                                    jmask[n_sel]))
    x0 = x0[:, :n_sel]
    res = (rec.y - yhat) * rec.w
    nobs = rec.w.sum(0).sum(0)
    Rs = np.einsum("ktp,ktq->pq", res, res) / np.maximum(np.sqrt(np.outer(nobs, nobs)), 1)
    sy, su = rec.y_scale, rec.u_scale
    out = dict(
        A=A, B=B / su[None, :], C=C * sy[:, None], D=D * sy[:, None] / su[None, :], K=Kg / sy[None, :],
        R=Rs * np.outer(sy, sy), y_offset=rec.y_mean + sy * d, u_offset=rec.u_mean,
        x0=x0.reshape(data.num_envs, data.num_trajectories, n_sel),
    )
    total = float(rec.w.sum())
    k_free = s.size - n_sel * n_sel                # similarity gauge
    # Gaussian log-likelihood of the innovations (in the data's units)
    sign, logdet = np.linalg.slogdet(out["R"])
    N_t = float(rec.w.all(-1).sum())
    out["log_likelihood"] = float(-0.5 * (N_t * (p * np.log(2 * np.pi) + logdet) + N_t * p))
    out["num_params"] = int(k_free + n_sel * K_)
    out["num_obs"] = int(total)
    sigma2 = c / max(total - k_free, 1)
    cov = sigma2 * np.linalg.pinv((H + H.T) / 2, rcond=1e-10)
    info.update({"criterion": criterion, "holdout": holdout if auto else None,
                 "scales": {"y": sy.tolist(), "u": su.tolist()},
                 "seconds": time.perf_counter() - t0, "theta": theta.tolist(), "theta_cov": cov.tolist(),
                 "structure": list(s)})
    table = {"order": [], "subspace_error": [], "weighting": [], "pem_error": [], "aic": [], "bic": []}
    for n in orders:
        if n not in best_start:
            continue
        table["order"].append(n)
        table["subspace_error"].append(best_start[n][1] / n_scored)
        table["weighting"].append(best_start[n][2])
        if n in fits:
            th_n = fits[n][0]
            s_n = _struct(n, m, p, feedthrough, criterion)
            c_n = float(_cost(jnp.asarray(emb[n].pad(th_n)), emb[n].big, jnp.asarray(rec.y), jnp.asarray(rec.u),
                              jnp.asarray(rec.w), jnp.asarray(fitmask), jnp.asarray(fitmask), jmask[n]))
            nf = float((rec.w * fitmask[..., None]).sum())
            k_n = s_n.size - n * n + n * K_
            ll = -0.5 * nf * (np.log(2 * np.pi * c_n / nf) + 1)
            table["pem_error"].append(fits[n][2])
            table["aic"].append(-2 * ll + 2 * k_n)
            table["bic"].append(-2 * ll + k_n * np.log(nf))
        else:
            table["pem_error"].append(None)
            table["aic"].append(None)
            table["bic"].append(None)
    out["order_table"] = {"table": table, "chosen": n_sel, "auto": auto, "screen": screen}
    out["info"] = info
    out["state_dim"] = n_sel
    return out


# ====================================================================== prediction with a fitted system
def system_theta(A, B, C, D, K, y_offset, u_offset, rec: Records):
    """A fitted system (data units) as a θ for the records' scaling, with its structure."""
    n, m, p = A.shape[0], B.shape[1], C.shape[0]
    sy, su = rec.y_scale, rec.u_scale
    s = PEMStructure(n, m, p, True, True)
    # Input offsets: the records are centred on their own mean; the model's offset differs.
    du = (rec.u_mean - u_offset) / su                     # u_model_centred = us + du
    Bs, Ds = B * su[None, :], D * su[None, :] / sy[:, None]
    Cs, Ks = C / sy[:, None], K * sy[None, :]
    ds = (y_offset - rec.y_mean) / sy
    return s, Bs, Ds, Cs, Ks, ds, du


@float64
def predict_records(A, B, C, D, K, y_offset, u_offset, data, kind="one-step", fit_x0=None):
    """Predicted outputs (E, N, T, p) for ``data`` from a system in innovations form.

    ``kind``: ``"one-step"``, ``"simulate"`` (free run, K = 0) or an int k ≥ 1 (k-step-ahead
    ŷ(t | t−k)).  Each record's initial state is fitted by least squares (on the steps of
    ``fit_x0``, default all), as MATLAB's ``compare`` does.
    """
    rec = records(data)
    s, Bs, Ds, Cs, Ks, ds, du = system_theta(A, B, C, D, K, y_offset, u_offset, rec)
    Kx = np.zeros_like(Ks) if kind == "simulate" else Ks
    # constant input-offset correction enters as extra drift: B du and D du
    us = rec.u + du[None, None, :] * rec.steps[..., None]
    theta = pack(s, A, Bs, Cs, Ds, Kx, ds)
    wfit = rec.steps.astype(float) if fit_x0 is None else fit_x0
    yhat, xs, _ = (np.asarray(a) for a in _outputs(jnp.asarray(theta), s, jnp.asarray(rec.y), jnp.asarray(us),
                                                    jnp.asarray(rec.w), jnp.asarray(wfit), jnp.ones(s.n)))
    if isinstance(kind, (int, np.integer)) and not isinstance(kind, bool) and kind > 1:
        # ŷ(t | t−k): from x̂_{t−k+1 | t−k}, k − 1 steps open loop.
        x = xs
        for _ in range(int(kind) - 1):
            nxt = np.einsum("ij,ktj->kti", A, x) + np.einsum("ij,ktj->kti", Bs, us)
            x = np.concatenate([x[:, :1], nxt[:, :-1]], axis=1)
        yhat = np.einsum("ij,ktj->kti", Cs, x) + np.einsum("ij,ktj->kti", Ds, us) + ds
    out = yhat * rec.y_scale + rec.y_mean
    E, N, T = data.y.shape[:3]
    out = np.where(rec.steps[..., None], out, np.nan)
    return out.reshape(E, N, T, -1)


def fit_percent(y, yhat) -> np.ndarray:
    """100 (1 − ‖y − ŷ‖ / ‖y − ȳ‖) per output, over every observed sample (last axis = outputs)."""
    p = y.shape[-1]
    y2, h2 = y.reshape(-1, p), yhat.reshape(-1, p)
    ok = np.isfinite(y2) & np.isfinite(h2)
    out = np.empty(p)
    for j in range(p):
        a, b = y2[ok[:, j], j], h2[ok[:, j], j]
        out[j] = 100 * (1 - np.linalg.norm(a - b) / max(np.linalg.norm(a - a.mean()), 1e-300))
    return out


def residual_tests(residuals, inputs, lengths, max_lag: int = 20, level: float = 0.99) -> dict:
    """Classical model validation: whiteness of each output's residuals (Ljung–Box over
    ``max_lag`` lags) and input–residual cross-correlation (lags 0..max_lag, the largest
    normalised value against the two-sided normal band of ``level``).

    residuals (K, T, p) NaN where unobserved, inputs (K, T, m); returns a dict of lists.
    """
    import scipy.stats

    K, T, p = residuals.shape
    m = inputs.shape[2]
    band = float(scipy.stats.norm.ppf(0.5 + level / 2))
    white, xcorr = [], []
    for j in range(p):
        ac, cnt = np.zeros(max_lag + 1), 0
        segs = []
        for k in range(K):
            r = residuals[k, : lengths[k], j]
            r = np.where(np.isfinite(r), r, 0.0)
            segs.append(r - r.mean())
        tot = sum(len(r) for r in segs)
        var = sum(float(r @ r) for r in segs) / max(tot, 1)
        for lag in range(max_lag + 1):
            ac[lag] = sum(float(r[lag:] @ r[: len(r) - lag]) for r in segs if len(r) > lag) / max(tot * var, 1e-300)
        q = tot * (tot + 2) * sum(ac[h] ** 2 / max(tot - h, 1) for h in range(1, max_lag + 1))
        pval = float(scipy.stats.chi2.sf(q, max_lag))
        white.append({"output": j, "ljung_box": float(q), "p_value": pval, "white": pval > 1 - level,
                      "max_autocorrelation": float(np.abs(ac[1:]).max()) * math.sqrt(tot)})
        for i in range(m):
            segs_u = [inputs[k, : lengths[k], i] - inputs[k, : lengths[k], i].mean() for k in range(K)]
            vu = sum(float(x @ x) for x in segs_u) / max(tot, 1)
            cc = [sum(float(segs[k][lag:] @ segs_u[k][: len(segs_u[k]) - lag]) for k in range(K)
                      if len(segs[k]) > lag) / max(tot * math.sqrt(var * vu), 1e-300) for lag in range(max_lag + 1)]
            z = float(np.abs(cc).max() * math.sqrt(tot))
            xcorr.append({"output": j, "input": i, "max_z": z, "independent": z < band})
        cnt += 1
    return {"max_lag": max_lag, "level": level, "band": band, "whiteness": white, "cross_correlation": xcorr}


@float64
def frequency_response(theta, structure, y_scale, u_scale, omega, cov=None):
    """G(e^{iω}) = C (e^{iω} I − A)^{-1} B + D in the data's units, (len(ω), p, m) complex, and with
    ``cov`` (the covariance of θ) the standard errors of its real and imaginary parts (delta method)."""
    s = PEMStructure(*structure)
    sy, su = np.asarray(y_scale, float), np.asarray(u_scale, float)
    w = jnp.asarray(np.atleast_1d(omega), dtype=jnp.float64)

    def parts(th):
        A, B, C, D, K, d = unpack(s, th)
        z = jnp.exp(1j * w)
        G = jax.vmap(lambda zz: C @ jnp.linalg.solve(zz * jnp.eye(s.n) - A, B.astype(z.dtype)) + D)(z)
        G = G * (sy[:, None] / su[None, :])
        return jnp.stack([G.real, G.imag])

    th = jnp.asarray(theta, dtype=jnp.float64)
    val = np.asarray(parts(th))
    G = val[0] + 1j * val[1]
    if cov is None:
        return G, None
    J = np.asarray(jax.jacfwd(parts)(th)).reshape(-1, th.size)
    var = np.einsum("ij,jk,ik->i", J, np.asarray(cov), J).reshape(val.shape)
    se = np.sqrt(np.clip(var, 0, None))
    return G, se[0] + 1j * se[1]
