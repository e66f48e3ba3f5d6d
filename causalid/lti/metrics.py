"""Recovery metrics for multi-environment LTI identification.

Every metric compares a truth with an estimate and is invariant to the ambiguity the
model leaves (Rajendran et al. 2024, arXiv 2311.18048): sources and the columns of B̃ are recovered only up to
permutation and scaling, and a state-space realisation (A, B, C) only up to a similarity
transform x → T x.  Inputs are plain arrays or :class:`~causalid.dynamics.system.LTISystem`
objects; the computations are NumPy/SciPy (no tracing, no gradients).

==========================  ===============================================================
metric                      invariant to
==========================  ===============================================================
:func:`mcc`                 permutation, scaling and sign of the recovered sources
:func:`amari_distance`      permutation and scaling of the columns of B̂
:func:`eigenvalue_error`    similarity transforms of A (compares spectra)
:func:`markov_parameter_error`  similarity transforms of the state
:func:`h2_error`            similarity transforms of the state
:func:`relative_error`      nothing (align first, e.g. with :func:`align_columns`)
==========================  ===============================================================
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_discrete_lyapunov
from scipy.optimize import linear_sum_assignment

from causalid.dynamics.system import LTISystem
from causalid.errors import DataError

__all__ = [
    "align_columns",
    "amari_distance",
    "eigenvalue_error",
    "eigenvalue_match",
    "h2_error",
    "h2_norm",
    "lti_metrics",
    "markov_parameter_error",
    "mcc",
    "relative_error",
]


def _as_2d(name: str, x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim < 2:
        raise DataError(f"{name} must be an array shaped (..., channels); got shape {a.shape}")
    return a.reshape(-1, a.shape[-1])


def mcc(true_sources, est_sources) -> float:
    """Pooled mean correlation coefficient between true and recovered sources.

    With ``R[i, j]`` the Pearson correlation between true source ``i`` and recovered source
    ``j``, the Hungarian algorithm finds the one-to-one assignment ``π`` maximising
    ``Σ_i |R[i, π(i)]|`` and the score is the mean of the matched ``|R[i, π(i)]|``:

        MCC = (1 / min(m, k)) Σ_i |R[i, π(i)]|  ∈ [0, 1].

    It is 1 exactly when every recovered source is an affine function of a distinct true
    source (so permutation, scaling, sign and offset are ignored).

    Parameters
    ----------
    true_sources : array, shape (..., m)
        True sources; leading dimensions (e.g. (E, T, m) or (E, N, T, m)) are flattened, so
        the correlation is computed on the pooled data set, not per batch.
    est_sources : array, shape (..., k)
        Recovered sources with the same leading dimensions.

    Returns
    -------
    float

    Notes
    -----
    Rows (pooled time steps) with a NaN in either array are dropped before correlating.
    A constant column (zero variance) has no defined correlation; it is scored 0.

    Examples
    --------
    >>> import numpy as np
    >>> u = np.random.default_rng(0).normal(size=(3, 500, 2))
    >>> round(mcc(u, -2.0 * u[..., ::-1] + 1.0), 12)
    1.0
    """
    s = _as_2d("true_sources", true_sources)
    z = _as_2d("est_sources", est_sources)
    if s.shape[0] != z.shape[0]:
        raise DataError(
            f"true and recovered sources hold different numbers of samples ({s.shape[0]} vs {z.shape[0]}) "
            "after flattening the leading dimensions; give arrays with the same leading shape"
        )
    keep = ~(np.isnan(s).any(axis=1) | np.isnan(z).any(axis=1))
    s, z = s[keep], z[keep]
    if s.shape[0] < 2:
        raise DataError(f"mcc needs at least 2 rows without NaN; got {s.shape[0]}")
    s = s - s.mean(axis=0)
    z = z - z.mean(axis=0)
    ns, nz = np.linalg.norm(s, axis=0), np.linalg.norm(z, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = (s.T @ z) / np.outer(ns, nz)
    corr = np.abs(np.nan_to_num(corr, nan=0.0, posinf=0.0, neginf=0.0))
    rows, cols = linear_sum_assignment(-corr)
    return float(np.mean(corr[rows, cols]))


def _amari_rows(P: np.ndarray) -> float:
    """Σ_i (Σ_j |p_ij| / max_j |p_ij| − 1), with an all-zero row counted as k − 1."""
    k = P.shape[1]
    a = np.abs(P)
    mx = a.max(axis=1)
    out = np.full(a.shape[0], k - 1.0)
    nz = mx > 0
    out[nz] = a[nz].sum(axis=1) / mx[nz] - 1.0
    return float(out.sum())


def amari_distance(B_true, B_est) -> float:
    """Normalised Amari distance of ``P = pinv(B_est) @ B_true``.

    For a square ``m × m`` matrix P,

        d(P) = 1 / (2 m (m − 1)) [ Σ_i (Σ_j |p_ij| / max_j |p_ij| − 1)
                                  + Σ_j (Σ_i |p_ij| / max_i |p_ij| − 1) ].

    Each of the 2m bracketed terms lies in [0, m − 1], so ``d ∈ [0, 1]``; it is 0 iff P is a
    scaled permutation, i.e. iff B̂ equals B̃ up to column permutation and scaling.  A row
    or column of zeros (B̂ misses a direction of B̃ entirely) counts as the worst case m − 1.
    For m = 1 every nonzero P is a scaled permutation and the distance is 0.

    Parameters
    ----------
    B_true, B_est : array, shape (n, m)
        True and estimated mixing matrices (e.g. B̃ = C B), same shape, full column rank.

    Returns
    -------
    float in [0, 1]
    """
    Bt, Be = np.asarray(B_true, dtype=np.float64), np.asarray(B_est, dtype=np.float64)
    if Bt.ndim != 2 or Bt.shape != Be.shape:
        raise DataError(f"B_true and B_est must be matrices of the same shape; got {Bt.shape} and {Be.shape}")
    m = Bt.shape[1]
    P = np.linalg.pinv(Be) @ Bt
    if m == 1:
        return 0.0 if np.any(P != 0) else 1.0
    return (_amari_rows(P) + _amari_rows(P.T)) / (2.0 * m * (m - 1))


def relative_error(M_true, M_est) -> float:
    """Relative Frobenius error ``‖M_est − M_true‖_F / ‖M_true‖_F``.

    Raises
    ------
    DataError
        If the shapes differ or ``M_true`` is zero (the ratio is undefined).
    """
    Mt, Me = np.asarray(M_true, dtype=np.float64), np.asarray(M_est, dtype=np.float64)
    if Mt.shape != Me.shape:
        raise DataError(f"shapes differ: truth {Mt.shape}, estimate {Me.shape}")
    den = np.linalg.norm(Mt)
    if den == 0:
        raise DataError("relative_error is undefined for a zero true matrix; compare absolute errors instead")
    return float(np.linalg.norm(Me - Mt) / den)


def eigenvalue_match(A_true, A_est) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues of ``A_true`` and ``A_est`` paired by the Hungarian algorithm.

    The assignment minimises ``Σ_i |λ_i − μ_π(i)|`` over permutations π.

    Returns
    -------
    lam_true, lam_est : complex arrays, shape (n,)
        ``lam_est[i]`` is the estimated eigenvalue matched to ``lam_true[i]``; the pairs are
        ordered by decreasing ``|lam_true|``.
    """
    At, Ae = np.asarray(A_true, dtype=np.float64), np.asarray(A_est, dtype=np.float64)
    if At.ndim != 2 or At.shape[0] != At.shape[1] or At.shape != Ae.shape:
        raise DataError(f"A_true and A_est must be square matrices of the same size; got {At.shape} and {Ae.shape}")
    lt, le = np.linalg.eigvals(At), np.linalg.eigvals(Ae)
    rows, cols = linear_sum_assignment(np.abs(lt[:, None] - le[None, :]))
    lt, le = lt[rows], le[cols]
    order = np.lexsort((np.angle(lt), -np.abs(lt)))
    return lt[order], le[order]


def eigenvalue_error(A_true, A_est) -> float:
    """Largest relative error of matched eigenvalues.

        err = max_i |μ_π(i) − λ_i| / |λ_i|

    with the matching π of :func:`eigenvalue_match`.  Eigenvalues are invariant to
    similarity transforms, so A and T A T⁻¹ score 0.  A true eigenvalue that is exactly 0
    contributes its absolute error ``|μ_π(i)|`` instead (the relative error is undefined).
    """
    lt, le = eigenvalue_match(A_true, A_est)
    den = np.abs(lt)
    den = np.where(den > 0, den, 1.0)
    return float(np.max(np.abs(le - lt) / den))


def align_columns(B_true, B_est) -> tuple[np.ndarray, np.ndarray]:
    """Column permutation and scaling of ``B_est`` that best match ``B_true``.

    Columns are paired by the Hungarian algorithm on the absolute cosine similarity
    ``|b_iᵀ b̂_j| / (‖b_i‖ ‖b̂_j‖)`` (the normalised, uncentred correlation of columns), and
    each matched column gets the least-squares scale ``s_i = b_iᵀ b̂_π(i) / ‖b̂_π(i)‖²``
    (negative when the sign is flipped).

    Returns
    -------
    perm : int array, shape (m,)
        ``B_est[:, perm]`` puts the estimated columns in the true order.
    scale : array, shape (m,)
        ``B_est[:, perm] * scale`` is the aligned estimate to compare with ``B_true``
        (e.g. with :func:`relative_error`).  The same ``perm`` reorders recovered sources,
        which then scale by ``1 / scale``.
    """
    Bt, Be = np.asarray(B_true, dtype=np.float64), np.asarray(B_est, dtype=np.float64)
    if Bt.ndim != 2 or Bt.shape != Be.shape:
        raise DataError(f"B_true and B_est must be matrices of the same shape; got {Bt.shape} and {Be.shape}")
    nt, ne = np.linalg.norm(Bt, axis=0), np.linalg.norm(Be, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.abs(Bt.T @ Be) / np.outer(nt, ne)
    cos = np.nan_to_num(cos, nan=0.0)
    rows, perm = linear_sum_assignment(-cos)
    perm = perm[np.argsort(rows)]
    cols = Be[:, perm]
    sq = np.sum(cols**2, axis=0)
    scale = np.where(sq > 0, np.sum(Bt * cols, axis=0) / np.where(sq > 0, sq, 1.0), 0.0)
    return perm.astype(int), scale


def _check_io(sys_true: LTISystem, sys_est: LTISystem) -> None:
    if (sys_true.m, sys_true.p) != (sys_est.m, sys_est.p):
        raise DataError(
            f"the systems differ in inputs/outputs: truth has m={sys_true.m}, p={sys_true.p}; "
            f"estimate has m={sys_est.m}, p={sys_est.p}"
        )


def markov_parameter_error(sys_true: LTISystem, sys_est: LTISystem, horizon: int = 50) -> float:
    """Relative Frobenius error of the stacked Markov parameters.

    With ``G_0 = D`` and ``G_k = C A^{k−1} B`` (:meth:`LTISystem.markov_parameters`),

        err = ‖[Ĝ_0, …, Ĝ_{h−1}] − [G_0, …, G_{h−1}]‖_F / ‖[G_0, …, G_{h−1}]‖_F.

    The impulse response does not depend on the state coordinates, so the error is
    invariant to similarity transforms (A, B, C) → (T A T⁻¹, T B, C T⁻¹), and it is defined
    for unstable systems too (the horizon keeps it finite).
    """
    _check_io(sys_true, sys_est)
    if horizon < 1:
        raise DataError(f"horizon must be at least 1; got {horizon}")
    return relative_error(sys_true.markov_parameters(horizon), sys_est.markov_parameters(horizon))


def _spectral_radius(A: np.ndarray) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(A)))) if A.size else 0.0


def h2_norm(sys) -> float:
    """Discrete-time H2 norm, ``‖G‖²_H2 = Σ_k ‖G_k‖²_F = tr(D Dᵀ) + tr(C P Cᵀ)``.

    P solves the discrete Lyapunov equation ``P = A P Aᵀ + B Bᵀ`` (the controllability
    Gramian; SciPy's ``solve_discrete_lyapunov``, no slycot).  The sum is over steps, not
    scaled by ``dt``.  Accepts an :class:`LTISystem` or a discrete-time python-control
    ``StateSpace``.

    Raises
    ------
    DataError
        If A has an eigenvalue on or outside the unit circle (the norm is infinite).
    """
    A, B, C, D = (np.asarray(getattr(sys, k), dtype=np.float64) for k in "ABCD")
    rho = _spectral_radius(A)
    if rho >= 1:
        raise DataError(
            f"the H2 norm is infinite: the system has spectral radius {rho:.6g} >= 1 (not stable); "
            "compare finite impulse responses with markov_parameter_error instead"
        )
    total = float(np.sum(D**2))
    if A.size:
        P = solve_discrete_lyapunov(A, B @ B.T)
        total += float(np.trace(C @ P @ C.T))
    return float(np.sqrt(max(total, 0.0)))


def h2_error(sys_true: LTISystem, sys_est: LTISystem) -> float:
    """Relative H2 error ``‖G_true − G_est‖_H2 / ‖G_true‖_H2``.

    The difference system is the python-control parallel connection of ``sys_true`` with
    the negated ``sys_est`` (state ``[x; x̂]``, block-diagonal A); its H2 norm is computed
    by :func:`h2_norm`.  Being a transfer-function distance, it is invariant to similarity
    transforms of either state.

    Raises
    ------
    DataError
        If either system is not stable (spectral radius ≥ 1), if the input/output sizes
        or sampling intervals differ, or if the true system has zero H2 norm.
    """
    import control

    _check_io(sys_true, sys_est)
    for name, s in (("sys_true", sys_true), ("sys_est", sys_est)):
        rho = _spectral_radius(s.A)
        if rho >= 1:
            raise DataError(
                f"h2_error needs stable systems, but {name} has spectral radius {rho:.6g} >= 1; "
                "use markov_parameter_error with a finite horizon instead"
            )
    if sys_true.dt is not None and sys_est.dt is not None and not np.isclose(sys_true.dt, sys_est.dt):
        raise DataError(f"the systems have different sampling intervals ({sys_true.dt} vs {sys_est.dt} s)")
    diff = control.parallel(sys_true.to_statespace(), -sys_est.to_statespace())
    den = h2_norm(sys_true)
    if den == 0:
        raise DataError("the true system has zero H2 norm (zero transfer function); the relative error is undefined")
    return h2_norm(diff) / den


def _tilde(sys: LTISystem) -> tuple[np.ndarray, np.ndarray] | None:
    """(Ã, B̃) = (C A C⁻¹, C B) when C is square and invertible, else None."""
    if sys.p != sys.n or np.linalg.matrix_rank(sys.C) < sys.n:
        return None
    Ci = np.linalg.inv(sys.C)
    return sys.C @ sys.A @ Ci, sys.C @ sys.B


def lti_metrics(
    sys_true: LTISystem,
    sys_est: LTISystem,
    *,
    sources_true=None,
    sources_est=None,
    B_tilde_true=None,
    B_tilde_est=None,
    horizon: int = 50,
) -> dict[str, float]:
    """Every recovery metric that applies, in one dictionary.

    Keys (present when they apply):

    ``markov_error``      :func:`markov_parameter_error` over ``horizon`` blocks (always);
    ``h2_error``          :func:`h2_error` (both systems stable);
    ``eigenvalue_error``  :func:`eigenvalue_error` of A (same state dimension);
    ``A_tilde_error``     :func:`relative_error` of Ã = C A C⁻¹ (C square and invertible in both);
    ``B_tilde_amari``     :func:`amari_distance` of B̃ (given, or C B from square-C systems);
    ``B_tilde_error``     relative error of B̃ after :func:`align_columns`;
    ``mcc``               :func:`mcc` of the sources (both given).
    """
    out: dict[str, float] = {"markov_error": markov_parameter_error(sys_true, sys_est, horizon)}
    if max(_spectral_radius(sys_true.A), _spectral_radius(sys_est.A)) < 1:
        out["h2_error"] = h2_error(sys_true, sys_est)
    if sys_true.n == sys_est.n:
        out["eigenvalue_error"] = eigenvalue_error(sys_true.A, sys_est.A)
    tt, te = _tilde(sys_true), _tilde(sys_est)
    if tt is not None and te is not None:
        out["A_tilde_error"] = relative_error(tt[0], te[0])
    Bt = B_tilde_true if B_tilde_true is not None else (tt[1] if tt is not None else None)
    Be = B_tilde_est if B_tilde_est is not None else (te[1] if te is not None else None)
    if Bt is not None and Be is not None:
        out["B_tilde_amari"] = amari_distance(Bt, Be)
        perm, scale = align_columns(Bt, Be)
        out["B_tilde_error"] = relative_error(Bt, np.asarray(Be, dtype=np.float64)[:, perm] * scale)
    if sources_true is not None and sources_est is not None:
        out["mcc"] = mcc(sources_true, sources_est)
    return out
