r"""The expected Fisher information of a multi-environment LTI system's (vec Ã, vec B̃).

One implementation for every user — the identifiability check, the designer's D-optimal and
EIG criteria, the sequential designer — in closed form and pure JAX in the design
(:func:`lti_fisher`, vmapped over environments; differentiable in the means, variances and
steps).  Per environment the full-state transition density is Gaussian,

    y_{t+1} | y_t ~ N(Ã y_t + B̃ μ_e, S_e),  S_e = B̃ diag(σ²_e) B̃ᵀ + Q̃,

and ``F = Σ_e T_e I_e`` with ``I_e`` the expected negative Hessian of one transition's log
density, ``y_t`` at its stationary law.  The test suite checks it against an autodiff Fisher
information (``jax.jacfwd`` of the mean and covariance), against ``jax.hessian`` of the
density and of the NumPyro program, and against a Monte-Carlo score outer product.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from causalid._linalg import spd_inv
from causalid._x64 import float64
from causalid.dynamics.system import InputDesign, LTISystem
from causalid.errors import DataError

__all__ = ["DEFAULT_TOL", "fisher_aux", "fisher_information", "lti_fisher", "tilde_system", "validated_tilde"]

DEFAULT_TOL = 1e-10
"""Relative tolerance of the rank decisions (a singular value or eigenvalue below
``DEFAULT_TOL`` times the largest counts as zero); :mod:`causalid.lti.identifiability` uses it."""


def fisher_aux(A_tilde, B_tilde, Q_tilde=None) -> dict:
    """Design-independent pieces of :func:`lti_fisher`, computed once in NumPy.

    ``N = (I − Ã)⁻¹`` (stationary mean), ``K = (I − Ã ⊗ Ã)⁻¹`` (stationary covariance,
    ``vec P = K vec S``), and either ``Binv = B̃⁻¹`` (no process noise, m = n: then
    ``S⁻¹ = B̃⁻ᵀ diag(1/σ²) B̃⁻¹`` in closed form), ``Qinv = Q̃⁻¹`` (Woodbury), or neither
    (no process noise and m > n inputs: ``S⁻¹`` is inverted per environment).  With them
    the information is a loop-free, differentiable function of the design.
    """
    At = np.asarray(A_tilde, np.float64)
    Bt = np.asarray(B_tilde, np.float64)
    n, m = Bt.shape
    Qt = np.zeros((n, n)) if Q_tilde is None else np.asarray(Q_tilde, np.float64)
    if np.max(np.abs(np.linalg.eigvals(At))) >= 1:
        raise DataError("Ã is not stable (spectral radius ≥ 1): the state has no stationary law")
    aux = {"A": At, "B": Bt, "Q": Qt, "N": np.linalg.inv(np.eye(n) - At),
           "K": np.linalg.inv(np.eye(n * n) - np.kron(At, At))}
    if np.any(Qt):
        aux["Qinv"] = np.linalg.inv(0.5 * (Qt + Qt.T))
    elif m == n and np.linalg.matrix_rank(Bt) == n:
        aux["Binv"] = np.linalg.inv(Bt)
    elif np.linalg.matrix_rank(Bt) < n:
        raise DataError(f"without process noise the transition covariance B̃ diag(σ²) B̃ᵀ is singular for m = {m} "
                        f"input(s) and n = {n} states; give the system a process-noise covariance Q")
    # else m > n, B̃ of rank n: S⁻¹ is inverted per environment
    return aux


def _env_fisher(aux, mu, s2):
    """Expected Fisher information of (vec Ã, vec B̃) for one stationary transition.

    y_{t+1} | y_t ~ N(Ã y_t + B̃ μ, S), S = B̃ diag(σ²) B̃ᵀ + Q̃.  With z = [y_t; μ] the
    mean part is E[z zᵀ] ⊗ S⁻¹ (vec stacks columns); the covariance part, on the B̃ block,
    is ½ tr(S⁻¹ ∂S S⁻¹ ∂S) = H ⊗ S⁻¹ + K with V = B̃ diag σ², N = S⁻¹ V, H = Vᵀ N and
    K[(k,l),(k',l')] = N[k',l] N[k,l'].  y_t follows its stationary law
    N((I − Ã)⁻¹ B̃ μ, P), vec P = (I − Ã ⊗ Ã)⁻¹ vec S.
    """
    Bt = aux["B"]
    n, m = Bt.shape
    V = Bt * s2
    S = V @ Bt.T + aux["Q"]
    if "Binv" in aux:
        X = (aux["Binv"].T / s2) @ aux["Binv"]
    elif "Qinv" in aux:                           # Woodbury with Q̃⁻¹
        Qi = aux["Qinv"]
        core = spd_inv(jnp.diag(1.0 / s2) + Bt.T @ Qi @ Bt)
        X = Qi - Qi @ Bt @ core @ Bt.T @ Qi
    else:                                         # m > n inputs, B̃ of rank n
        X = spd_inv(0.5 * (S + S.T))
    X = 0.5 * (X + X.T)
    ybar = aux["N"] @ (Bt @ mu)
    P = (aux["K"] @ S.reshape(-1)).reshape(n, n)
    P = 0.5 * (P + P.T)
    Z = jnp.block([[P + jnp.outer(ybar, ybar), jnp.outer(ybar, mu)],
                   [jnp.outer(mu, ybar), jnp.outer(mu, mu)]])
    F = jnp.kron(Z, X)
    Nm = X @ V
    H = V.T @ Nm
    cov = jnp.kron(H, X) + jnp.einsum("kL,Kl->lkLK", Nm, Nm).reshape(n * m, n * m)
    return F.at[n * n:, n * n:].add(cov)


@float64
def lti_fisher(A_tilde, B_tilde, mean, var, steps=1.0, Q_tilde=None, *, aux=None):
    r"""Expected Fisher information of θ = (vec Ã, vec B̃); pure JAX in the design.

    ``F = Σ_e T_e I_e`` with the per-transition information of environment ``e``

        I_e = E[z zᵀ] ⊗ S_e⁻¹ + blockdiag(0, ½ [tr(S_e⁻¹ ∂_a S_e S_e⁻¹ ∂_b S_e)]_{ab}),

    ``z = [y_t; μ_e]``, ``S_e = B̃ diag(σ²_e) B̃ᵀ + Q̃``, ``y_t`` at its stationary law — the
    expected negative Hessian of the model's Gaussian transition log density (the test suite
    checks it against ``jax.hessian`` of that density and against
    an autodiff Fisher information of the same density, kept in the tests as an oracle).  Environments are vmapped.  The
    system enters through :func:`fisher_aux` (computed here unless ``aux`` is given), so
    ``F`` is differentiable (and jit-able) in ``mean``, ``var`` and ``steps`` but not in
    the system matrices.

    Parameters
    ----------
    A_tilde : (n, n), stable.   B_tilde : (n, m).   mean, var : (E, m).
    steps : float or (E,)
        Transitions per environment (the information is additive over them).
    Q_tilde : (n, n), optional; without it B̃ must have rank n.
    aux : dict, optional
        :func:`fisher_aux` of the system, to skip recomputing it.

    Returns
    -------
    array (n² + nm, n² + nm), ordered [vec Ã; vec B̃] with vec stacking columns.
    """
    if aux is None:
        aux = fisher_aux(A_tilde, B_tilde, Q_tilde)
    var = jnp.asarray(var, jnp.float64)
    steps = jnp.broadcast_to(jnp.asarray(steps, jnp.float64), (var.shape[0],))
    return _lti_fisher(aux, jnp.asarray(mean, jnp.float64), var, steps)


@jax.jit
def _lti_fisher(aux, mean, var, steps):
    per_env = jax.vmap(_env_fisher, in_axes=(None, 0, 0))(aux, mean, var)
    F = jnp.einsum("e,eij->ij", steps, per_env)
    return 0.5 * (F + F.T)


def tilde_system(system: LTISystem) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """(Ã, B̃, Q̃) = (C A C⁻¹, C B, C Q Cᵀ) when C is square and invertible, else None."""
    C = system.C
    if C.shape[0] != C.shape[1] or np.linalg.matrix_rank(C) < C.shape[0]:
        return None
    At = np.linalg.solve(C.T, (C @ system.A).T).T
    Qt = None if system.Q is None else C @ system.Q @ C.T
    return At, C @ system.B, Qt


@float64
def fisher_information(system: LTISystem, design: InputDesign, num_steps=1) -> np.ndarray:
    """Expected Fisher information of (vec Ã, vec B̃) for a system under an input design.

    Uses Ã = C A C⁻¹, B̃ = C B and Q̃ = C Q Cᵀ (zero when ``system.Q`` is None) and the
    full-state transition density of :func:`lti_fisher` (observation noise R is ignored).

    Parameters
    ----------
    system : LTISystem
        C must be square and invertible; A stable.
    design : InputDesign
        Per-environment input means and variances (E, m).
    num_steps : int or array (E,)
        Transitions per environment; the information is additive over them.

    Returns
    -------
    ndarray, shape (n² + nm, n² + nm)
        Ordered as θ = [vec Ã; vec B̃], vec stacking columns.

    Raises
    ------
    DataError
        If C is not square and invertible, the sizes disagree, A is not stable (no
        stationary law), or a transition covariance B̃ diag(σ²_e) B̃ᵀ + Q̃ is singular.

    Examples
    --------
    >>> import numpy as np
    >>> from causalid.dynamics.system import InputDesign, LTISystem, controllability_matrix, observability_matrix
    >>> sys = LTISystem(0.5 * np.eye(2), np.eye(2), np.eye(2))
    >>> design = InputDesign(np.zeros((3, 2)), np.array([[1e-4, 1e-4], [1.0, 1e-4], [1e-4, 1.0]]))
    >>> F = fisher_information(sys, design, num_steps=1000)
    >>> F.shape, int(np.linalg.matrix_rank(F))
    ((8, 8), 8)
    """
    At, Bt, Qt = validated_tilde(system, design)
    steps = np.broadcast_to(np.asarray(num_steps, dtype=np.float64), (design.num_envs,))
    return np.asarray(lti_fisher(At, Bt, design.mean, design.var, steps, Qt))


def validated_tilde(system: LTISystem, design: InputDesign):
    """(Ã, B̃, Q̃) after the checks :func:`fisher_information` documents."""
    if not isinstance(design, InputDesign):
        raise DataError(f"design must be an InputDesign; got {type(design).__name__}")
    tilde = tilde_system(system)
    if tilde is None:
        raise DataError(
            f"the Fisher information of (Ã, B̃) needs C square and invertible (y = full state); "
            f"C has shape {system.C.shape} and rank {np.linalg.matrix_rank(system.C)}"
        )
    At, Bt, Qt = tilde
    if design.input_dim != system.m:
        raise DataError(f"the design has {design.input_dim} inputs but the system has m = {system.m}")
    rho = float(np.max(np.abs(np.linalg.eigvals(At))))
    if rho >= 1:
        raise DataError(f"A has spectral radius {rho:.6g} >= 1: the state has no stationary law to average over")
    Qn = np.zeros((system.n, system.n)) if Qt is None else Qt
    for e in range(design.num_envs):
        S = (Bt * design.var[e]) @ Bt.T + Qn
        ev = np.linalg.eigvalsh(0.5 * (S + S.T))
        if ev[0] <= DEFAULT_TOL * max(ev[-1], np.finfo(float).tiny):
            raise DataError(
                f"the transition covariance B̃ diag(σ²) B̃ᵀ + Q of environment {e} is singular "
                f"(m = {system.m} inputs for n = {system.n} states and no full-rank process noise): "
                "the Gaussian transition density is degenerate"
            )
    return At, Bt, Qt
