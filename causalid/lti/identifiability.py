"""Identifiability checks for multi-environment Gaussian LTI systems (Rajendran et al. 2024, arXiv 2311.18048; Pham & Cardoso 2001).

Model (full state, C square and invertible, no observation noise):

    y_{t+1} = Ã y_t + B̃ u_t + C w_t,     u_t ~ N(μ_e, diag σ²_e) in environment e,
    Ã = C A C⁻¹,  B̃ = C B,

so that per environment  y_{t+1} | y_t, e ~ N(Ã y_t + B̃ μ_e, B̃ diag(σ²_e) B̃ᵀ + C Q Cᵀ).
Ã is identified by regression; B̃ (up to column permutation and scaling) and the sources
u_t only through the variability of the input law across environments.  :func:`check_lti`
runs every applicable condition and returns an :class:`LTIIdentifiabilityReport` that says,
in plain words, what is and is not identifiable and what to change.

The numerical rank of a matrix M used throughout is the number of singular values
``s_i > tol · s_max`` (``tol`` defaults to :data:`DEFAULT_TOL` = 1e-10: far above float64
rounding, far below the ill-conditioning of realistic designs and systems).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from causalid._plotting import figure_grid
from causalid._results import Result, plain
from causalid._x64 import float64
from causalid.dynamics.system import (
    InputDesign,
    LTISystem,
    controllability_matrix,
    observability_matrix,
)
from causalid.errors import DataError, IdentifiabilityError
from causalid.lti.fisher import DEFAULT_TOL, lti_fisher, validated_tilde

__all__ = [
    "DEFAULT_TOL",
    "IdentifiabilityWarning",
    "LTICheck",
    "LTIIdentifiabilityReport",
    "Quantity",
    "check_lti",
    "diversity_matrix",
    "persistent_excitation",
    "separability_index",
]

Quantity = Literal["A_tilde", "B_tilde", "sources", "A_B_C_up_to_similarity"]
QUANTITIES: tuple[str, ...] = ("A_tilde", "B_tilde", "sources", "A_B_C_up_to_similarity")
_LABELS = {
    "A_tilde": "Ã = C A C⁻¹",
    "B_tilde": "B̃ = C B (up to column permutation and scaling)",
    "sources": "the sources u_t (up to permutation and scaling)",
    "A_B_C_up_to_similarity": "(A, B, C) up to similarity",
}


class IdentifiabilityWarning(UserWarning):
    """A requested quantity is not identifiable, and the caller asked for a warning, not an error."""


# ====================================================================== records
@dataclass(frozen=True)
class LTICheck:
    """One identifiability condition and its outcome.

    Attributes
    ----------
    name : str
        Short identifier, e.g. ``"pairwise_separability"``.
    passed : bool or None
        True / False, or None when the check is informational or could not be run.
    message : str
        Plain-words outcome; on failure it says what to change.
    value : dict
        The numbers behind the decision (ranks, singular values, condition numbers, ...),
        JSON-serialisable.
    affects : tuple of str
        The quantities (see :data:`Quantity`) that are not identifiable when this check fails.
        An empty tuple marks an informational check.
    """

    name: str
    passed: bool | None
    message: str
    value: dict = field(default_factory=dict)
    affects: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "message": self.message,
                "value": plain(self.value), "affects": list(self.affects)}

    @classmethod
    def from_dict(cls, d: dict) -> "LTICheck":
        return cls(d["name"], d.get("passed"), d.get("message", ""), dict(d.get("value") or {}),
                   tuple(d.get("affects") or ()))


@dataclass
class LTIIdentifiabilityReport(Result):
    """The outcome of :func:`check_lti`.

    Attributes
    ----------
    checks : list of LTICheck
        Every condition that was evaluated, in order.
    identifiable : dict
        Quantity → bool for ``"A_tilde"``, ``"B_tilde"``, ``"sources"`` and
        ``"A_B_C_up_to_similarity"``.  A quantity is False when a check affecting it failed,
        True when every condition it needs was checked (or is stated as an assumption in
        :meth:`summary`) and passed, and absent when it cannot be decided from what was given
        (e.g. (A, B, C) without a ``system``).
    context : dict
        Sizes and assumptions: ``num_envs``, ``input_dim``, ``state_dim``, ``obs_dim``,
        ``inputs`` ("designed", "measured" or "unknown"), ``full_state`` ("yes", "no",
        "assumed"), ``tol``.
    """

    checks: list[LTICheck]
    identifiable: dict[str, bool]
    context: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> LTICheck:
        """The check called ``name``."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r}; checks: {[c.name for c in self.checks]}")

    def reasons(self, quantity: str) -> list[str]:
        """Messages of the failed checks that make ``quantity`` non-identifiable."""
        _check_quantity(quantity)
        return [c.message for c in self.checks if c.passed is False and quantity in c.affects]

    def summary(self) -> str:
        """Multi-line plain-words account: what is identifiable, what is not, and what to do."""
        ctx = self.context
        head = (f"LTI identifiability: {ctx.get('num_envs', '?')} environment(s), "
                f"{ctx.get('input_dim', '?')} input(s)")
        if ctx.get("state_dim") is not None:
            head += f", state dimension {ctx['state_dim']}"
        if ctx.get("obs_dim") is not None:
            head += f", {ctx['obs_dim']} output(s)"
        head += f"; inputs {ctx.get('inputs', 'unknown')}."
        lines = [head]
        if ctx.get("full_state") == "assumed":
            lines.append("  (assuming y observes the full state, C square and invertible; "
                         "pass system= or state_dim= to check)")
        for q in QUANTITIES:
            label = _LABELS[q]
            if q not in self.identifiable:
                lines.append(f"- {label}: not determined — {_undetermined_hint(q)}")
            elif self.identifiable[q]:
                lines.append(f"- {label}: identifiable.")
            else:
                failed = [c for c in self.checks if c.passed is False and q in c.affects]
                line = f"- {label}: NOT identifiable — {failed[0].message}"
                if len(failed) > 1:
                    line += f" (also failed: {', '.join(c.name for c in failed[1:])})"
                lines.append(line)
        lines.append("Checks:")
        for c in self.checks:
            tag = ("pass" if c.passed else "FAIL" if c.affects else "note") if c.passed is not None else "info"
            lines.append(f"  [{tag}] {c.name}: {c.message}")
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """One row per check: name, passed, affects, message."""
        return pd.DataFrame([{"name": c.name, "passed": c.passed, "affects": ", ".join(c.affects),
                              "message": c.message} for c in self.checks])

    # reports nested in results saved before the contract carry no format tag
    LEGACY_FORMATS = (None,)

    def _to_payload(self) -> dict:
        return {"checks": [c.to_dict() for c in self.checks],
                "identifiable": dict(self.identifiable), "context": self.context}

    @classmethod
    def _from_payload(cls, d: dict) -> LTIIdentifiabilityReport:
        return cls([LTICheck.from_dict(c) for c in d.get("checks", [])],
                   {k: bool(v) for k, v in (d.get("identifiable") or {}).items()},
                   dict(d.get("context") or {}))

    def _plot(self, ax=None):
        """Every check as a row: green passed, red failed, grey informational; the quantities
        each failure makes unidentifiable in the label."""
        rows = list(reversed(self.checks))
        fig, grid = figure_grid(ax, 1, 1, (8.5, 0.42 * len(rows) + 1.4))
        ax = fig.add_subplot(grid[0, 0])
        colour = {True: "#2a9d3a", False: "#c62828", None: "#9e9e9e"}
        for i, c in enumerate(rows):
            state = c.passed if c.affects or c.passed is None else (None if c.passed is False else True)
            ax.scatter([0], [i], s=120, color=colour[state], zorder=3)
            text = c.message if len(c.message) <= 110 else c.message[:107] + "..."
            ax.text(0.06, i, f"{c.name}: {text}", va="center", fontsize=7)
        ax.set_xlim(-0.05, 1.0)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_axis_off()
        verdict = ", ".join(f"{_LABELS[q]} {'yes' if v else 'NO'}" for q, v in self.identifiable.items())
        ax.set_title(f"identifiability: {verdict or 'not determined'}", fontsize=9)
        return fig

    def raise_if(self, quantity: Quantity) -> None:
        """Raise :class:`~causalid.errors.IdentifiabilityError` if ``quantity`` is known not to be identifiable.

        An undetermined quantity (absent from :attr:`identifiable`) does not raise.
        """
        self.warn_or_raise(quantity, on_fail="raise")

    def warn_or_raise(self, quantity: Quantity, on_fail: Literal["raise", "warn"] = "raise") -> bool:
        """Raise or warn (:class:`IdentifiabilityWarning`) when ``quantity`` is not identifiable.

        Returns
        -------
        bool
            False when the quantity is known not to be identifiable (and a warning was
            issued), True otherwise.
        """
        _check_quantity(quantity)
        if on_fail not in ("raise", "warn"):
            raise ValueError(f"on_fail must be 'raise' or 'warn'; got {on_fail!r}")
        if self.identifiable.get(quantity, True):
            return True
        reasons = self.reasons(quantity)
        too_few = [c.message for c in self.checks if c.name == "num_environments" and c.passed is False]
        if too_few and quantity in ("B_tilde", "sources"):
            reasons = too_few        # the other failures follow from having too few environments
        msg = f"{_LABELS[quantity]} is not identifiable: " + "; also: ".join(reasons)
        if on_fail == "raise":
            raise IdentifiabilityError(msg)
        warnings.warn(msg, IdentifiabilityWarning, stacklevel=2)
        return False


def _check_quantity(q: str) -> None:
    if q not in QUANTITIES:
        raise ValueError(f"unknown quantity {q!r}; choose one of {list(QUANTITIES)}")


def _undetermined_hint(q: str) -> str:
    if q == "A_B_C_up_to_similarity":
        return "pass system= (an LTISystem) to check controllability and observability."
    return "give the input law (input_var) or measured inputs."


# ====================================================================== numerics
def _rank(s: np.ndarray, tol: float) -> int:
    """Number of singular values above ``tol`` times the largest."""
    if s.size == 0 or s[0] <= 0:
        return 0
    return int(np.sum(s > tol * s[0]))


def _cond(s: np.ndarray, k: int) -> float:
    """s_max / s_k (the k-th singular value, 1-based); inf when missing or zero."""
    if s.size < k or k == 0 or s[k - 1] <= 0:
        return float("inf")
    return float(s[0] / s[k - 1])


def diversity_matrix(var) -> np.ndarray:
    """The reference diversity matrix ``L[e−1, j] = 1/σ²_{e,j} − 1/σ²_{0,j}``, e = 1..E−1.

    Parameters
    ----------
    var : array, shape (E, m)
        Input variances σ²_{e,j} per environment (rows) and input channel (columns).

    Returns
    -------
    ndarray, shape (E − 1, m)
        The change of the input precisions relative to environment 0.  ``rank L = m`` (so
        E ≥ m + 1) is the sufficient condition of Rajendran et al. (2024); it is equivalent
        to ``rank [1, 1/σ²] = m + 1`` for the (E, m + 1) matrix of ones and precisions.
    """
    v = np.asarray(var, dtype=np.float64)
    if v.ndim != 2:
        raise DataError(f"input variances must be shaped (environments, inputs); got shape {v.shape}")
    return 1.0 / v[1:] - 1.0 / v[:1]


def separability_index(var, weights=None) -> np.ndarray:
    """Pham–Cardoso pairwise separability of the input variance profiles.

    For channels i, j with ratios ``r_e = σ²_{e,i} / σ²_{e,j}`` and weights ``w_e`` (summing
    to 1; default ``1/E``),

        s_ij = (Σ_e w_e r_e)(Σ_e w_e / r_e) − 1
             = ½ Σ_{e,f} w_e w_f (r_e − r_f)² / (r_e r_f)  ≥ 0,

    zero iff the two profiles are proportional across environments (then the columns
    b̃_i, b̃_j of B̃ can be rotated into each other without changing any environment's
    covariance).  The second form is evaluated, which has no cancellation.

    Parameters
    ----------
    var : array, shape (E, m)
    weights : array, shape (E,), optional

    Returns
    -------
    ndarray, shape (m, m)
        Symmetric, zero diagonal.
    """
    v = np.asarray(var, dtype=np.float64)
    if v.ndim != 2:
        raise DataError(f"input variances must be shaped (environments, inputs); got shape {v.shape}")
    E = v.shape[0]
    w = np.full(E, 1.0 / E) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (E,) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
        raise DataError(f"weights must be {E} non-negative numbers summing to 1")
    r = v[:, :, None] / v[:, None, :]  # (E, i, j)
    diff = r[:, None] - r[None, :]  # (e, f, i, j)
    prod = r[:, None] * r[None, :]
    return 0.5 * np.einsum("e,f,efij->ij", w, w, diff**2 / prod)


# ---------------------------------------------------------------------- persistent excitation
@float64
def persistent_excitation(u, order: int, *, tol: float | None = None) -> LTICheck:
    """Persistent excitation of a measured input signal, via its block-Hankel matrix.

    For a trajectory u_0..u_{T−1} ∈ R^m and order L, the block-Hankel matrix has columns
    ``h_t = [u_t; u_{t+1}; …; u_{t+L−1}] ∈ R^{mL}``, t = 0..T−L.  The input is persistently
    exciting of order L iff this (mL × K) matrix has full row rank mL (its uncentred sample
    autocovariance up to lag L − 1 is nonsingular): a constant is exciting of order 1, a
    single sinusoid of order 2, white noise of every order.

    Parameters
    ----------
    u : array, shape (T, m), (N, T, m) or (E, N, T, m)
        Inputs.  Columns are built inside each trajectory (never across two) and pooled;
        a column touching a NaN (missing or padding) is dropped.
    order : int
        The required order L ≥ 1.
    tol : float, optional
        Relative rank tolerance (default :data:`DEFAULT_TOL`).

    Returns
    -------
    LTICheck
        ``name="persistent_excitation"``; ``value`` holds ``order``, ``rank``, ``required``
        (= mL), ``cond`` (s_max / s_mL of the Hankel matrix) and ``num_columns``.
    """
    tol = DEFAULT_TOL if tol is None else float(tol)
    a = np.asarray(u, dtype=np.float64)
    if a.ndim < 2:
        raise DataError(f"inputs must be shaped (T, m), (N, T, m) or (E, N, T, m); got {a.shape}")
    order = int(order)
    if order < 1:
        raise DataError(f"the excitation order must be at least 1; got {order}")
    m = a.shape[-1]
    trajs = a.reshape(-1, a.shape[-2], m)
    need = m * order
    R = np.zeros((0, need))
    K = 0
    for tr in trajs:
        if tr.shape[0] < order:
            continue
        # rows h_t, ordered [u_t (m), u_{t+1} (m), ...]
        H = sliding_window_view(tr, order, axis=0).transpose(0, 2, 1).reshape(-1, need)
        H = H[~np.isnan(H).any(axis=1)]
        if not len(H):
            continue
        K += len(H)
        R = np.linalg.qr(np.vstack([R, H]), mode="r")  # same singular values as the stack
    s = np.linalg.svd(R, compute_uv=False) if K else np.zeros(0)
    rank = _rank(s, tol)
    cond = _cond(s, need)
    value = {"order": order, "rank": rank, "required": need, "cond": cond, "num_columns": K, "tol": tol}
    if rank == need:
        msg = (f"the inputs are persistently exciting of order {order} (Hankel rank {rank} = m·L = {need}, "
               f"condition number {cond:.3g})")
        return LTICheck("persistent_excitation", True, msg, value)
    msg = (f"the inputs are not persistently exciting of order {order}: the block-Hankel matrix has rank "
           f"{rank} < m·L = {need}; use richer inputs (white noise, a PRBS, or a multisine with at least "
           f"{(order + 1) // 2} frequencies per channel), or longer recordings")
    return LTICheck("persistent_excitation", False, msg, value)


def _fisher_rank(At, Bt, Qt, design: InputDesign, steps, tol: float):
    """Numerical rank and null space of the Fisher information, computed where it is well conditioned.

    Rank is invariant to invertible reparametrisations, so it is decided on the Fisher of the
    equivalent system in whitened output coordinates y' = T y, T = S̄^{-1/2} with S̄ the mean
    transition covariance (θ' = (vec T Ã T⁻¹, vec T B̃) is a block-diagonal linear map of θ),
    after Jacobi scaling D^{-1/2} F' D^{-1/2}.  Both maps keep the Ã/B̃ blocks apart, so the
    null directions' support on Ã and B̃ carries over to θ.

    Returns rank, condition number of the scaled matrix, and the null vectors (columns).
    """
    n = At.shape[0]
    Qn = np.zeros((n, n)) if Qt is None else Qt
    S_bar = np.mean([(Bt * v) @ Bt.T + Qn for v in design.var], axis=0)
    w, V = np.linalg.eigh(0.5 * (S_bar + S_bar.T))
    T = (V / np.sqrt(w)) @ V.T
    T_inv = (V * np.sqrt(w)) @ V.T
    Fc = np.asarray(lti_fisher(T @ At @ T_inv, T @ Bt, design.mean, design.var, steps,
                               None if Qt is None else T @ Qt @ T.T))
    d = np.sqrt(np.clip(np.diag(Fc), 0, None))
    d = np.where(d > 0, d, 1.0)
    ev, vecs = np.linalg.eigh(Fc / np.outer(d, d))
    ev, vecs = ev[::-1], vecs[:, ::-1]
    ev = np.clip(ev, 0, None)
    rank = _rank(ev, tol)
    return rank, _cond(ev, len(ev)), vecs[:, rank:]


# ====================================================================== the check
@dataclass
class _Inputs:
    design: InputDesign | None = None
    measured: np.ndarray | None = None  # (E, N, T, m) with NaN on padding
    known_means: bool = True
    obs_dim: int | None = None
    input_names: tuple[str, ...] | None = None
    num_envs: int = 0
    input_dim: int = 0
    transitions: np.ndarray | None = None  # (E,)
    source: str = "design"


def _parse(obj) -> _Inputs:
    if isinstance(obj, InputDesign):
        return _Inputs(design=obj, num_envs=obj.num_envs, input_dim=obj.input_dim, source="design")
    if hasattr(obj, "y") and hasattr(obj, "num_envs") and hasattr(obj, "has_measured_inputs"):
        out = _Inputs(obs_dim=int(obj.obs_dim), num_envs=int(obj.num_envs), input_dim=int(obj.input_dim),
                      input_names=tuple(obj.input_names) if obj.input_names else None, source="data")
        lengths = getattr(obj, "lengths", None)
        if lengths is None:
            lengths = np.full((obj.num_envs, obj.num_trajectories), obj.num_steps)
        lengths = np.asarray(lengths)
        out.transitions = np.maximum(lengths - 1, 0).sum(axis=1).astype(float)
        if obj.has_measured_inputs:
            u = np.array(obj.inputs, dtype=np.float64)
            pad = np.arange(u.shape[2])[None, None, :] >= lengths[:, :, None]
            u[pad] = np.nan
            out.measured = u
        design = obj.design
        if design is not None:
            out.design = design
            out.known_means = bool(getattr(obj, "known_means", obj.input_mean is not None))
        return out
    if isinstance(obj, (np.ndarray, list, tuple)) or hasattr(obj, "__array__"):
        var = np.asarray(obj, dtype=np.float64)
        if var.ndim != 2:
            raise DataError(
                f"an array passed to check_lti is read as input variances shaped (environments, inputs); "
                f"got shape {var.shape}"
            )
        design = InputDesign(None, var)
        return _Inputs(design=design, num_envs=design.num_envs, input_dim=design.input_dim, source="variances")
    raise DataError(
        f"check_lti takes an InputDesign, an LTIData or an (E, m) array of input variances; "
        f"got {type(obj).__name__}"
    )


def _svals(M: np.ndarray) -> np.ndarray:
    return np.linalg.svd(M, compute_uv=False) if M.size else np.zeros(0)


@float64
def check_lti(
    data_or_design,
    system: LTISystem | None = None,
    *,
    state_dim: int | None = None,
    pe_order: int | None = None,
    tol: float | None = None,
) -> LTIIdentifiabilityReport:
    """Check the identifiability conditions of a multi-environment LTI problem.

    Parameters
    ----------
    data_or_design : InputDesign, LTIData or array (E, m)
        The designed input law (means and variances per environment), a data set (its
        designed input law or its measured inputs are checked), or the input variances.
    system : LTISystem, optional
        A system (the truth in a simulation, or an estimate): adds controllability,
        observability, full-state and Fisher-information checks.
    state_dim : int, optional
        The state dimension n when no system is given.  Without either, y is assumed to be
        the full state (n = p).
    pe_order : int, optional
        Required order of persistent excitation for measured inputs.  Default 2n (the
        classical sufficient order for identifying an n-th order system from input–output
        data) with n = ``state_dim``, ``system.n`` or else the number of outputs.
    tol : float, optional
        Relative tolerance of every numerical rank and threshold of the separability index
        (default :data:`DEFAULT_TOL`).

    Returns
    -------
    LTIIdentifiabilityReport

    Notes
    -----
    The checks, by name (each an :class:`LTICheck`):

    ``full_state``
        C square and invertible (from ``system``), or p = n; otherwise Ã and B̃ are not defined.
    ``num_environments``
        With E = 1 (and m ≥ 2) B̃ is known only up to B̃ diag(σ)R diag(σ)⁻¹ for orthogonal R,
        and the sources are not identifiable; Ã still is, by regression.
    ``diversity_rank``
        The reference sufficient condition rank L = m for L of :func:`diversity_matrix`;
        reports σ_min(L) and cond(L).  Informational: the necessary and sufficient condition
        for the Gaussian model is the next one.
    ``pairwise_separability``
        Pham–Cardoso: no two input channels may have proportional variance profiles
        (:func:`separability_index` > tol for every pair).
    ``unknown_means``
        Informational: with the means as unknown natural parameters, the iVAE-style
        condition needs E ≥ 2m + 1.
    ``controllability``, ``observability``
        Ranks of ``control.ctrb(A, B)`` and ``control.obsv(A, C)`` (system given).
        Both are needed for (A, B, C) up to similarity; without process noise an
        uncontrollable pair also leaves Ã unidentified (unexcited directions).
    ``input_rank``
        rank B̃ = m, so the sources can be read off the innovations (system given).
    ``persistent_excitation``
        Measured inputs: :func:`persistent_excitation` of order ``pe_order``.
    ``fisher_information``
        Rank and condition number of :func:`causalid.lti.fisher.fisher_information` (system with square C and a
        design).  A null direction with a component on Ã (B̃) means Ã (B̃) is not locally
        identifiable.

    Examples
    --------
    >>> import numpy as np
    >>> from causalid.dynamics.system import InputDesign
    >>> one_env = InputDesign(np.zeros((1, 2)), np.ones((1, 2)))
    >>> report = check_lti(one_env)
    >>> report.identifiable["B_tilde"], report.identifiable["A_tilde"]
    (False, True)
    """
    tol = DEFAULT_TOL if tol is None else float(tol)
    src = _parse(data_or_design)
    E, m = src.num_envs, src.input_dim
    if system is not None:
        if not isinstance(system, LTISystem):
            raise DataError(f"system must be an LTISystem; got {type(system).__name__}")
        if state_dim is not None and int(state_dim) != system.n:
            raise DataError(f"state_dim={state_dim} disagrees with the system's state dimension {system.n}")
        if m and system.m != m:
            raise DataError(f"the system has m = {system.m} inputs but the input law/data have {m}")
        if src.obs_dim is not None and system.p != src.obs_dim:
            raise DataError(f"the system has p = {system.p} outputs but the data have {src.obs_dim}")
    n = system.n if system is not None else (None if state_dim is None else int(state_dim))
    p = system.p if system is not None else src.obs_dim
    names = src.input_names or tuple(f"u{j}" for j in range(m))
    latent = src.design is not None and src.measured is None
    id_route = ("B_tilde", "sources", "A_B_C_up_to_similarity") if latent else ()
    # measured inputs are observed sources, so a partial observation only loses Ã and B̃
    tilde_route = ("A_tilde", "B_tilde", "sources") if latent else ("A_tilde", "B_tilde")
    checks: list[LTICheck] = []

    # --- full state -------------------------------------------------------------
    full_state = "assumed"
    if system is not None:
        rank_c = int(np.linalg.matrix_rank(system.C))
        ok = system.p == system.n and rank_c == system.n
        full_state = "yes" if ok else "no"
        msg = (f"C is square and invertible (p = n = {system.n}): y is the full state up to a change of basis"
               if ok else
               f"C is {system.p}×{system.n} with rank {rank_c}: y does not observe the full state, so "
               "Ã = C A C⁻¹ and B̃ = C B are not defined; identify (A, B, C) up to similarity from the "
               "Markov parameters instead (or measure more outputs)")
        checks.append(LTICheck("full_state", ok, msg, {"p": system.p, "n": system.n, "rank_C": rank_c},
                               tilde_route))
    elif n is not None and p is not None:
        ok = p == n
        full_state = "yes" if ok else "no"
        msg = (f"p = n = {n}: y is taken as the full state (C square, assumed invertible)" if ok else
               f"p = {p} outputs for n = {n} states: y does not observe the full state, so Ã and B̃ are "
               "not defined; identify (A, B, C) up to similarity from the Markov parameters instead")
        checks.append(LTICheck("full_state", ok, msg, {"p": p, "n": n}, tilde_route))

    # --- designed input law -------------------------------------------------------
    if src.design is not None:
        var = src.design.var
        route = id_route
        if E < 2 and m >= 2:
            checks.append(LTICheck(
                "num_environments", False,
                f"only 1 environment: B̃ is known only up to a rotation of its columns and the sources are "
                f"not identifiable (Ã still is, by regression, when y is the full state); add at least {m} "
                f"more environments whose input variances differ (e.g. a quiet baseline plus one "
                f"environment per input channel with that channel's variance raised)",
                {"num_envs": E, "input_dim": m}, route))
        else:
            msg = (f"{E} environments for {m} input(s)" if E >= 2 else
                   "1 environment and a single input: B̃ (one column) is identified up to scale")
            checks.append(LTICheck("num_environments", True, msg, {"num_envs": E, "input_dim": m}, route))

        # pairwise separability (necessary and sufficient for the Gaussian model)
        S = separability_index(var)
        pairs, failing = [], []
        for i in range(m):
            for j in range(i + 1, m):
                pairs.append({"inputs": [names[i], names[j]], "index": float(S[i, j])})
                if not S[i, j] > tol:
                    failing.append((names[i], names[j], float(S[i, j])))
        min_idx = min((pr["index"] for pr in pairs), default=float("inf"))
        value = {"pairs": pairs, "min_index": min_idx, "tol": tol}
        if failing:
            which = "; ".join(f"'{a}' and '{b}' (index {s:.3g})" for a, b, s in failing[:5])
            if len(failing) > 5:
                which += f"; and {len(failing) - 5} more pair(s)"
            msg = (f"inputs with proportional variance profiles across environments: {which}. Their columns "
                   "of B̃ and their sources can be rotated into each other without changing the data; change "
                   "the variance of one channel of each pair relative to the other in at least one environment")
            checks.append(LTICheck("pairwise_separability", False, msg, value, route))
        else:
            msg = ("no two input channels have proportional variance profiles"
                   + (f" (smallest separability index {min_idx:.3g})" if pairs else " (single input)"))
            checks.append(LTICheck("pairwise_separability", True, msg, value, route))
        pair_ok = not failing

        # reference diversity rank
        L = diversity_matrix(var)
        s = _svals(L)
        rank_l = _rank(s, tol)
        sig_min = float(s[m - 1]) if s.size >= m else 0.0
        cond_l = _cond(s, m)
        value = {"rank": rank_l, "required": m, "sigma_min": sig_min, "cond": cond_l, "tol": tol,
                 "L": L}
        if rank_l == m:
            msg = f"rank L = {m} = m (σ_min(L) = {sig_min:.3g}, cond(L) = {cond_l:.3g})"
            checks.append(LTICheck("diversity_rank", True, msg, value))
        else:
            msg = (f"rank L = {rank_l} < m = {m} (the reference sufficient condition needs E ≥ m + 1 = {m + 1} "
                   f"environments with linearly independent changes of input precision; E = {E})")
            msg += ("; the Gaussian model is still identifiable because no two variance profiles are "
                    "proportional, but the reference learner's guarantee does not apply" if pair_ok and E >= 2 else "")
            checks.append(LTICheck("diversity_rank", False, msg, value))

        # unknown means (informational)
        need = 2 * m + 1
        who = "the means are unknown (estimated per environment)" if not src.known_means else \
            "if the means were treated as unknown natural parameters"
        ok = E >= need
        msg = (f"{who}, the iVAE-style condition needs E ≥ 2m + 1 = {need} environments; "
               + (f"E = {E} satisfies it" if ok else f"E = {E} does not (informational: with known "
                  "variances the Gaussian conditions above decide)"))
        checks.append(LTICheck("unknown_means", ok, msg, {"num_envs": E, "required": need,
                                                          "known_means": src.known_means}))
    elif src.measured is None:
        checks.append(LTICheck(
            "input_law", None,
            "no input law and no measured inputs: B̃ and the sources cannot be checked; give the input "
            "variances per environment (input_var) or record the inputs", {}))

    # --- system: controllability, observability, input rank -----------------------------
    if system is not None:
        Q = system.Q
        noise_excites = Q is not None and np.linalg.matrix_rank(Q) == system.n
        s = _svals(controllability_matrix(system.A, system.B))
        r = _rank(s, tol)
        ok = r == system.n
        value = {"rank": r, "required": system.n, "sigma_min": float(s[-1]) if s.size >= system.n else 0.0,
                 "cond": _cond(s, system.n), "tol": tol}
        affects = ("A_B_C_up_to_similarity",) if noise_excites else ("A_tilde", "A_B_C_up_to_similarity")
        msg = (f"(A, B) is controllable (rank {r} = n)" if ok else
               f"(A, B) is not controllable (controllability matrix rank {r} < n = {system.n}): the inputs "
               "never reach part of the state, so those modes (and a minimal (A, B, C)) cannot be identified"
               + ("" if noise_excites else "; without process noise the unexcited directions also leave Ã "
                  "unidentified") + ". Add actuators or choose inputs that drive every mode")
        checks.append(LTICheck("controllability", ok, msg, value, affects))

        s = _svals(observability_matrix(system.A, system.C))
        r = _rank(s, tol)
        ok = r == system.n
        value = {"rank": r, "required": system.n, "sigma_min": float(s[-1]) if s.size >= system.n else 0.0,
                 "cond": _cond(s, system.n), "tol": tol}
        msg = (f"(A, C) is observable (rank {r} = n)" if ok else
               f"(A, C) is not observable (observability matrix rank {r} < n = {system.n}): part of the state "
               "never shows in the outputs, so (A, B, C) is not identifiable; measure more outputs or "
               "reduce the model to its observable part")
        checks.append(LTICheck("observability", ok, msg, value, ("A_B_C_up_to_similarity",)))

        if full_state == "yes" and latent:
            Bt = system.C @ system.B
            s = _svals(Bt)
            r = _rank(s, tol)
            ok = r == system.m
            msg = (f"B̃ = C B has full column rank {r} = m" if ok else
                   f"B̃ = C B has rank {r} < m = {system.m}: some inputs act along the same directions, so the "
                   "sources cannot be separated from the innovations; use at most n independent inputs")
            checks.append(LTICheck("input_rank", ok, msg, {"rank": r, "required": system.m, "tol": tol},
                                   ("B_tilde", "sources")))
    elif latent and full_state != "no" and (n or p) is not None and m > (n or p):
        k = n or p
        checks.append(LTICheck(
            "input_rank", False,
            f"{m} latent inputs drive only {k} state/output dimension(s): B̃ has rank at most {k} < m, so "
            f"the sources cannot be separated from the innovations; use at most {k} independent inputs",
            {"rank_bound": k, "required": m}, ("B_tilde", "sources")))

    # --- measured inputs: persistent excitation ------------------------------------------
    if src.measured is not None:
        nn = n if n is not None else p
        order = int(pe_order) if pe_order is not None else 2 * int(nn or 1)
        pe = persistent_excitation(src.measured, order, tol=tol)
        checks.append(LTICheck(pe.name, pe.passed, pe.message, pe.value,
                               ("A_tilde", "B_tilde", "A_B_C_up_to_similarity")))

    # --- Fisher information ------------------------------------------------------------
    if system is not None and latent and full_state == "yes":
        steps = src.transitions if src.transitions is not None else np.ones(E)
        checks.append(_fisher_check(system, src.design, steps, tol))

    identifiable = _decide(checks, has_inputs=src.design is not None or src.measured is not None,
                           has_system=system is not None)
    context = {"num_envs": E, "input_dim": m, "state_dim": n, "obs_dim": p,
               "inputs": "measured" if src.measured is not None else "designed" if src.design is not None
               else "unknown", "full_state": full_state, "tol": tol, "source": src.source}
    return LTIIdentifiabilityReport(checks, identifiable, context)


def _fisher_check(system: LTISystem, design: InputDesign, steps, tol: float) -> LTICheck:
    try:
        At, Bt, Qt = validated_tilde(system, design)
    except DataError as err:
        return LTICheck("fisher_information", None, f"not computed: {err}", {})
    n = system.n
    F = np.asarray(lti_fisher(At, Bt, design.mean, design.var, steps, Qt))
    w = np.clip(np.linalg.eigvalsh(F)[::-1], 0, None)
    d = F.shape[0]
    rank, cond_scaled, null = _fisher_rank(At, Bt, Qt, design, steps, tol)
    on_A = float(np.linalg.norm(null[: n * n])) if null.size else 0.0
    on_B = float(np.linalg.norm(null[n * n:])) if null.size else 0.0
    value = {"rank": rank, "num_params": d, "cond": _cond(w, d), "cond_scaled": cond_scaled,
             "eig_min": float(w[-1]), "eig_max": float(w[0]), "num_steps": np.asarray(steps).tolist(),
             "tol": tol}
    if rank == d:
        msg = (f"the Fisher information of (vec Ã, vec B̃) has full rank {d} (condition number {value['cond']:.3g}; "
               f"{cond_scaled:.3g} after whitening and scaling): locally identifiable at this system")
        return LTICheck("fisher_information", True, msg, value)
    hit_A, hit_B = on_A > 1e-6, on_B > 1e-6
    affects = (("A_tilde",) if hit_A else ()) + (("B_tilde", "sources") if hit_B else ())
    parts = " and ".join(q for q, hit in (("Ã", hit_A), ("B̃", hit_B)) if hit)
    msg = (f"the Fisher information of (vec Ã, vec B̃) has rank {rank} < {d}: {d - rank} direction(s) of "
           f"{parts or 'the parameters'} leave the likelihood flat to second order (not locally "
           "identifiable); make the input variances differ more across environments")
    return LTICheck("fisher_information", False, msg, value, affects)


def _decide(checks: Sequence[LTICheck], *, has_inputs: bool, has_system: bool) -> dict[str, bool]:
    """False if a check affecting the quantity failed; True if it is decidable; else absent."""
    decidable = {
        "A_tilde": True,
        "B_tilde": has_inputs,
        "sources": has_inputs,
        "A_B_C_up_to_similarity": has_system and has_inputs,
    }
    out: dict[str, bool] = {}
    for q in QUANTITIES:
        if any(c.passed is False and q in c.affects for c in checks):
            out[q] = False
        elif decidable[q]:
            out[q] = True
    return out
