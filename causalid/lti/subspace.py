"""Subspace and realisation methods for measured-input LTI data.

* :func:`n4sid` — a PO-MOESP/N4SID-style subspace estimate of (A, B, C, D) and initial states;
* :func:`okid_markov` — Markov parameters C A^{k-1} B from a pooled ARX (observer) regression;
* :func:`era` — Ho–Kalman / eigensystem realisation of Markov parameters;
* :func:`select_order` — the state dimension from the subspace singular values.

All of them pool every trajectory of every environment; environments matter here only
because they differ in their inputs (diverse excitation).  Sums over time are accumulated
in float64.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from causalid._plotting import finish
from causalid._x64 import float64
from causalid.errors import DataError, IdentifiabilityError

__all__ = ["n4sid", "okid_markov", "era", "select_order", "OrderSelection", "input_output_blocks",
           "subspace_candidates", "default_horizon"]


def input_output_blocks(data) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every trajectory of every environment, padded: y (K, T, p), u (K, T, m), lengths (K,).

    Missing outputs are not allowed in subspace methods (they need complete Hankel
    columns); the likelihood engines handle them.
    """
    if not data.has_measured_inputs:
        raise DataError("this method needs measured inputs (LTIData.from_arrays(..., inputs=...))")
    gaps = np.isnan(data.y).any(axis=-1) & data.step_mask
    if gaps.any():
        e = int(np.argwhere(gaps)[0][0])
        raise DataError(
            f"environment '{data.env_names[e]}' has missing outputs; subspace/Markov estimates "
            "need complete records — use method='mle', which handles gaps exactly"
        )
    K = data.num_envs * data.num_trajectories
    y = np.nan_to_num(data.y.reshape(K, data.num_steps, data.obs_dim))
    u = data.inputs.reshape(K, data.num_steps, data.input_dim)
    return y, u, data.lengths.reshape(K)


def _hankel(x: np.ndarray, start: int, rows: int, cols: int) -> np.ndarray:
    """Block Hankels of a batch (K, T, c): column j stacks x[:, start + j], ..., x[:, start + j + rows - 1]."""
    idx = start + np.arange(rows)[:, None] + np.arange(cols)[None, :]
    K, c = x.shape[0], x.shape[2]
    return x[:, idx].transpose(0, 1, 3, 2).reshape(K, rows * c, cols)


def _subspace_moments(blocks, horizon: int):
    """Gram matrix of the stacked [U_f; U_p; Y_p; Y_f] Hankel columns, summed over trajectories."""
    y, u, lengths = blocks
    cols = y.shape[1] - 2 * horizon + 1
    valid = np.arange(max(cols, 0))[None, :] < (lengths - 2 * horizon + 1)[:, None]
    if cols < 1 or not valid.any():
        raise DataError(f"every trajectory is shorter than 2 x horizon = {2 * horizon} steps; lower the horizon")
    H = np.concatenate([_hankel(u, horizon, horizon, cols), _hankel(u, 0, horizon, cols),
                        _hankel(y, 0, horizon, cols), _hankel(y, horizon, horizon, cols)], axis=1)
    H = H * valid[:, None, :]
    return np.einsum("kac,kbc->ab", H, H), int(valid.sum())


def _observability(blocks, horizon: int, m: int, p: int):
    """Singular values and left singular vectors of the oblique projection (PO-MOESP weighting)."""
    G, total = _subspace_moments(blocks, horizon)
    a = horizon * m                     # U_f
    b = a + horizon * (m + p)           # U_f + W_p
    ridge = 1e-12 * np.trace(G) / G.shape[0]
    Guu = G[:a, :a] + ridge * np.eye(a)
    # Remove U_f from W_p and Y_f (projection on the orthogonal complement of U_f's row space).
    proj = np.linalg.solve(Guu, G[:a, a:])
    R = G[a:, a:] - G[a:, :a] @ proj
    Rww = R[: b - a, : b - a] + ridge * np.eye(b - a)
    Ryw = R[b - a:, : b - a]
    # Oblique projection O = Y_f/W_p ⊥ U_f; O O^T = Ryw Rww^{-1} Rwy.
    OOt = Ryw @ np.linalg.solve(Rww, Ryw.T) / total
    s2, U = np.linalg.eigh((OOt + OOt.T) / 2)
    order = np.argsort(s2)[::-1]
    return np.sqrt(np.clip(s2[order], 0, None)), U[:, order]


class OrderSelection(NamedTuple):
    """Singular values of the subspace projection and the order they suggest."""

    singular_values: np.ndarray
    order: int
    horizon: int

    def plot(self, path=None):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        k = np.arange(1, len(self.singular_values) + 1)
        ax.semilogy(k, self.singular_values, "o-", color="0.3")
        ax.axvline(self.order + 0.5, color="tab:red", ls="--", label=f"chosen order {self.order}")
        ax.set_xlabel("index")
        ax.set_ylabel("singular value")
        ax.legend()
        fig.tight_layout()
        return finish(fig, path)


@float64
def select_order(data, max_order: int = 10, horizon: int | None = None) -> OrderSelection:
    """Suggest the state dimension from the singular values of the subspace projection.

    The order is the position of the largest drop (ratio of consecutive singular values)
    among the first ``max_order``; singular values below 1e-10 of the largest count as zero.

    Examples
    --------
    A second-order system driven by white noise, recorded with its input:

    >>> import causalid, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> A, B, C = np.array([[0.9, 0.2], [-0.2, 0.7]]), np.array([[1.0], [0.5]]), np.array([[1.0, 0.0]])
    >>> u, x, y = rng.normal(size=(3000, 1)), np.zeros(2), []
    >>> for t in range(3000):
    ...     y.append(C @ x + 0.01 * rng.normal(size=1))
    ...     x = A @ x + B @ u[t]
    >>> data = causalid.LTIData.from_arrays(np.asarray(y)[None], inputs=u[None])
    >>> causalid.select_order(data, max_order=6).order
    2
    """
    blocks = input_output_blocks(data)
    m, p = data.input_dim, data.obs_dim
    horizon = horizon or max(max_order + 1, 5)
    s, _ = _observability(blocks, horizon, m, p)
    k = min(max_order, len(s) - 1)
    head = np.maximum(s[: k + 1], s[0] * 1e-10)
    ratios = head[:-1] / head[1:]
    order = int(np.argmax(ratios)) + 1
    return OrderSelection(s, order, horizon)


@float64
def n4sid(data, state_dim: int, horizon: int | None = None, feedthrough: bool = False):
    """Subspace estimate of (A, B, C, D) and every trajectory's initial state.

    Γ (the extended observability matrix) comes from the PO-MOESP-weighted oblique
    projection; A and C follow from its shift structure; B, D and the initial states then
    solve the output equation  y_t = C A^t x_0 + Σ_{k<t} C A^{t-1-k} B u_k + D u_t  by least
    squares, with each trajectory's x_0 eliminated exactly (Schur complement).

    Returns
    -------
    dict with ``A, B, C, D, x0`` (list per trajectory, in environment-major order),
    ``residual_cov`` (p, p) and ``singular_values``.
    """
    blocks = input_output_blocks(data)
    m, p, n = data.input_dim, data.obs_dim, int(state_dim)
    horizon = horizon or max(2 * n, 5)
    if horizon * p < n:
        raise DataError(f"horizon {horizon} x {p} outputs cannot reveal {n} states; raise the horizon")
    s, U = _observability(blocks, horizon, m, p)
    Gam = U[:, :n] * np.sqrt(s[:n])
    C = Gam[:p]
    A = np.linalg.lstsq(Gam[:-p], Gam[p:], rcond=None)[0]
    B, D, x0, res_cov = _input_matrices(blocks, A, C, feedthrough)
    return {"A": A, "B": B, "C": C, "D": D, "x0": x0, "residual_cov": res_cov, "singular_values": s,
            "horizon": horizon}


@jax.jit
@jax.vmap
def _sensitivity_moments(A, C, y, u, mask):
    """Normal-equation blocks of one trajectory for [x_0; vec B; vec D] (mask: real steps)."""
    n, m, p = A.shape[0], u.shape[1], C.shape[0]

    def step(carry, inp):
        Z, X, acc = carry
        yt, ut, wt = inp
        Fx = C @ X                                             # (p, n): ∂y_t/∂x_0
        Fb = C @ Z                                             # (p, n m): ∂y_t/∂vec B
        Fd = jnp.kron(ut[None, :], jnp.eye(p))                 # (p, p m): ∂y_t/∂vec D
        F = jnp.concatenate([Fx, Fb, Fd], axis=1) * wt
        acc = (acc[0] + F.T @ F, acc[1] + F.T @ (yt * wt), acc[2] + wt * (yt @ yt))
        Z = A @ Z + jnp.kron(ut[None, :], jnp.eye(n))
        X = A @ X
        return (Z, X, acc), None

    k = n + n * m + p * m
    init = (jnp.zeros((n, n * m)), jnp.eye(n), (jnp.zeros((k, k)), jnp.zeros(k), jnp.zeros(())))
    (_, _, acc), _ = jax.lax.scan(step, init, (y, u, mask.astype(y.dtype)))
    return acc


def _input_matrices(blocks, A, C, feedthrough):
    """B, D and initial states given (A, C), with each x_0 eliminated by its Schur complement."""
    y, u, lengths = blocks
    K, T, p = y.shape
    n, m = A.shape[0], u.shape[2]
    mask = np.arange(T)[None, :] < lengths[:, None]
    FtF, Fty, yy = (np.asarray(a) for a in _sensitivity_moments(
        jnp.broadcast_to(A, (K, n, n)), jnp.broadcast_to(C, (K, p, n)), jnp.asarray(y), jnp.asarray(u),
        jnp.asarray(mask)))
    kb = n + n * m
    keep = np.r_[np.arange(kb), kb + np.arange(p * m)] if feedthrough else np.arange(kb)
    FtF, Fty = FtF[:, keep][:, :, keep], Fty[:, keep]
    Gxx, Gxt, Gtt = FtF[:, :n, :n], FtF[:, :n, n:], FtF[:, n:, n:]
    Gxx_inv = np.linalg.pinv(Gxx)
    GtxGi = np.einsum("kxt,kxy->kty", Gxt, Gxx_inv)
    lhs = (Gtt - GtxGi @ Gxt).sum(0)
    rhs = (Fty[:, n:] - np.einsum("kty,ky->kt", GtxGi, Fty[:, :n])).sum(0)
    theta = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    x0 = np.einsum("kxy,ky->kx", Gxx_inv, Fty[:, :n] - Gxt @ theta)
    full = np.concatenate([x0, np.broadcast_to(theta, (K, theta.size))], axis=1)
    sse = (yy - 2 * np.einsum("ka,ka->k", full, Fty) + np.einsum("ka,kab,kb->k", full, FtF, full)).sum()
    B = theta[: n * m].reshape(m, n).T
    D = theta[n * m:].reshape(m, p).T if feedthrough else np.zeros((p, m))
    res_var = max(sse / (lengths.sum() * p), 1e-12)
    return B, D, x0, res_var * np.eye(p)


@float64
def okid_markov(data, horizon: int, lags: int | None = None) -> np.ndarray:
    """System Markov parameters [D, CB, CAB, ...] (horizon, p, m) via an observer (ARX) fit.

    Fits y_t = β_0 u_t + Σ_{i=1}^{L} (α_i y_{t-i} + β_i u_{t-i}) + e_t by pooled least
    squares (the Kalman predictor form, so process/observation noise do not bias it), then
    recovers the system Markov parameters Y_0 = β_0,
    Y_k = β_k + α_k Y_0 + Σ_{i=1}^{k-1} α_i Y_{k-i}  (α_k = β_k = 0 beyond L).
    """
    y, u, lengths = input_output_blocks(data)
    m, p = data.input_dim, data.obs_dim
    L = int(lags or horizon)
    T = y.shape[1]
    if T <= L or (lengths <= L).all():
        raise DataError(f"every trajectory is shorter than the ARX order {L}; lower horizon/lags")
    parts = [u[:, L:]]
    for i in range(1, L + 1):
        parts += [y[:, L - i: T - i], u[:, L - i: T - i]]
    X = np.concatenate(parts, axis=2)                                 # (K, T-L, k)
    w = (np.arange(L, T)[None, :] < lengths[:, None]).astype(float)[..., None]
    G = np.einsum("kta,ktb->ab", X * w, X)
    h = np.einsum("kta,ktb->ab", X * w, y[:, L:])
    coef = np.linalg.lstsq(G, h, rcond=None)[0].T          # (p, k)
    beta0 = coef[:, :m]
    alphas = [coef[:, m + (i - 1) * (p + m): m + (i - 1) * (p + m) + p] for i in range(1, L + 1)]
    betas = [coef[:, m + (i - 1) * (p + m) + p: m + i * (p + m)] for i in range(1, L + 1)]
    Y = [beta0]
    for kk in range(1, horizon):
        a_k = alphas[kk - 1] if kk <= L else np.zeros((p, p))
        b_k = betas[kk - 1] if kk <= L else np.zeros((p, m))
        acc = b_k + a_k @ beta0
        for i in range(1, min(kk, L + 1)):
            acc = acc + alphas[i - 1] @ Y[kk - i]
        Y.append(acc)
    return np.stack(Y)


@float64
def era(markov: np.ndarray, state_dim: int, rows: int | None = None, cols: int | None = None):
    """Eigensystem realisation (Ho–Kalman) of Markov parameters ``[D, CB, CAB, ...]``.

    The block Hankel H0[i, j] = Y_{i+j+1} (and its shift H1) give, through the SVD
    H0 ≈ U_n S_n V_nᵀ, the balanced realisation A = S^{-1/2} U_nᵀ H1 V_n S^{-1/2},
    B = S^{1/2} V_nᵀ[:, :m], C = U_n[:p] S^{1/2}, D = Y_0.

    Returns (A, B, C, D, singular_values).
    """
    markov = np.asarray(markov, dtype=float)
    K, p, m = markov.shape
    n = int(state_dim)
    r = rows or (K - 1) // 2
    c = cols or (K - 1 - r)
    if r + c + 1 > K or r * p < n or c * m < n:
        raise DataError(
            f"{K} Markov parameters are too few to realise {n} states ({r} x {c} Hankel blocks); "
            "raise the horizon"
        )
    H0 = np.block([[markov[i + j + 1] for j in range(c)] for i in range(r)])
    H1 = np.block([[markov[i + j + 2] for j in range(c)] for i in range(r)])
    U, s, Vt = np.linalg.svd(H0, full_matrices=False)
    if s[n - 1] <= 1e-12 * s[0]:
        raise IdentifiabilityError(
            f"the Hankel matrix of Markov parameters has numerical rank below {n}: the system "
            f"is not controllable/observable at order {n}, or the inputs do not excite it; "
            "choose a lower state_dim (see select_order)"
        )
    Sh = np.sqrt(s[:n])
    A = (U[:, :n] / Sh).T @ H1 @ (Vt[:n].T / Sh)
    B = (Sh[:, None] * Vt[:n])[:, :m]
    C = (U[:, :n] * Sh)[:p]
    return A, B, C, markov[0], s


# ====================================================================== candidates for prediction-error fits
def default_horizon(length: int, m: int, p: int) -> int:
    """Past/future horizon of :func:`subspace_candidates` for records of ``length`` steps: as
    long as possible (up to 15) while the regressors [U_f; U_p; Y_p] stay at most a third as
    many as the Hankel columns."""
    return int(np.clip(length // (3 * (2 * m + p) + 2), 2, 15))


def _interpolated(y, w):
    """Missing outputs filled by linear interpolation inside each record (for the start only)."""
    y = y.copy()
    K, T, p = y.shape
    t = np.arange(T)
    for k in range(K):
        for j in range(p):
            ok = w[k, :, j] > 0
            if ok.any() and not ok.all():
                y[k, ~ok, j] = np.interp(t[~ok], t[ok], y[k, ok, j])
    return y


def subspace_candidates(rec, orders, mask, *, weightings=("n4sid", "moesp", "cva"), feedthrough=False,
                        horizon=None) -> dict:
    """Subspace estimates of (A, B, C, D, K) at every order and weighting, from one projection.

    ``rec`` holds centred, scaled records (``y`` (K, T, p), ``u`` (K, T, m), ``w`` observed);
    ``mask`` (K, T) marks the steps to use (a prefix of each record).  With past W_p =
    [U_p; Y_p] and future U_f, Y_f block Hankels, the oblique projection O = Y_f /_{U_f} W_p is
    weighted as N4SID (W₁ = I, W₂ = I), MOESP (W₂ = Π_{U_f}^⊥) or CVA
    (W₁ = (Y_f Π^⊥ Y_fᵀ)^{-1/2}, W₂ = Π^⊥); the SVD W₁ O W₂ = U S Vᵀ gives Γ_n = W₁⁻¹ U_n S_n^{1/2}
    and the state sequence X = Γ_n⁺ O, from which (A, B, C, D) follow by least squares of
    [x_{t+1}; y_t] on [x_t; u_t] and K = W Vᵀ (V Vᵀ)⁻¹ from the residuals (W, V) — for every
    order from the same SVD.  Returns ``{(n, weighting): dict(A, B, C, D, K)}``.
    """
    y = _interpolated(rec.y, rec.w)
    u = rec.u
    lengths = np.asarray(mask).sum(1).astype(int)
    K_, T, p = y.shape
    m = u.shape[2]
    i = int(horizon or default_horizon(int(lengths.max()), m, p))
    Up, Yp, Uf, Yf, Ut, Yt, rec_id = [], [], [], [], [], [], []
    for k in range(K_):
        L = lengths[k]
        j = L - 2 * i + 1
        if j < 2:
            continue
        yy, uu = y[k:k + 1, :L], u[k:k + 1, :L]
        Up.append(_hankel(uu, 0, i, j)[0]); Yp.append(_hankel(yy, 0, i, j)[0])
        Uf.append(_hankel(uu, i, i, j)[0]); Yf.append(_hankel(yy, i, i, j)[0])
        Ut.append(uu[0, i:i + j].T); Yt.append(yy[0, i:i + j].T)
        rec_id.append(np.full(j, k))
    if not Up:
        raise DataError(f"every record is shorter than 2 x horizon + 1 = {2 * i + 1} steps; lower the horizon")
    Up, Yp, Uf, Yf, Ut, Yt = (np.concatenate(a, axis=1) for a in (Up, Yp, Uf, Yf, Ut, Yt))
    rec_id = np.concatenate(rec_id)
    J = Up.shape[1]
    Wp = np.vstack([Up, Yp])
    Z = np.vstack([Uf, Wp])
    G = Z @ Z.T
    ridge = 1e-10 * np.trace(G) / G.shape[0]
    Theta = np.linalg.solve(G + ridge * np.eye(len(G)), Z @ Yf.T).T
    Lw = Theta[:, Uf.shape[0]:]
    O = Lw @ Wp
    Guu = Uf @ Uf.T + ridge * np.eye(Uf.shape[0])
    Wperp = Wp - (Wp @ Uf.T) @ np.linalg.solve(Guu, Uf)
    Yperp = Yf - (Yf @ Uf.T) @ np.linalg.solve(Guu, Uf)
    keep = rec_id[1:] == rec_id[:-1]                  # consecutive columns of the same record
    out = {}
    for wname in weightings:
        if wname == "n4sid":
            W1, W1inv, MMt = None, None, O @ O.T
        elif wname in ("moesp", "cva"):
            MMt = Lw @ (Wperp @ Wperp.T) @ Lw.T
            if wname == "cva":
                S = Yperp @ Yperp.T / J
                ev, V = np.linalg.eigh((S + S.T) / 2)
                ev = np.maximum(ev, 1e-12 * ev.max())
                W1 = (V / np.sqrt(ev)) @ V.T
                W1inv = (V * np.sqrt(ev)) @ V.T
                MMt = W1 @ MMt @ W1
            else:
                W1, W1inv = None, None
        else:
            raise DataError(f"unknown subspace weighting {wname!r}; use 'n4sid', 'moesp' or 'cva'")
        s2, U = np.linalg.eigh((MMt + MMt.T) / 2)
        idx = np.argsort(s2)[::-1]
        s2, U = np.clip(s2[idx], 0, None), U[:, idx]
        for n in orders:
            if n > len(s2) or s2[n - 1] <= 1e-14 * s2[0]:
                continue
            Gam = U[:, :n] * s2[:n] ** 0.25
            if W1inv is not None:
                Gam = W1inv @ Gam
            X = np.linalg.pinv(Gam) @ O                       # (n, J)
            X0, X1 = X[:, :-1][:, keep], X[:, 1:][:, keep]
            U0, Y0 = Ut[:, :-1][:, keep], Yt[:, :-1][:, keep]
            reg = np.vstack([X0, U0])
            Greg = reg @ reg.T + 1e-12 * np.eye(n + m)
            AB = np.linalg.solve(Greg, reg @ X1.T).T
            if feedthrough:
                CD = np.linalg.solve(Greg, reg @ Y0.T).T
            else:
                CD = np.hstack([np.linalg.solve(X0 @ X0.T + 1e-12 * np.eye(n), X0 @ Y0.T).T, np.zeros((p, m))])
            Wres = X1 - AB @ reg
            Vres = Y0 - CD @ reg
            Kg = np.linalg.solve(Vres @ Vres.T + 1e-12 * np.eye(p), Vres @ Wres.T).T
            out[(n, wname)] = {"A": AB[:, :n], "B": AB[:, n:], "C": CD[:, :n], "D": CD[:, n:], "K": Kg}
    return out
