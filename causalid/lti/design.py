r"""Designing the input laws of a multi-environment LTI experiment (Rajendran et al. 2024, arXiv 2311.18048).

Model: ``y_{t+1} = Ã y_t + B̃ u_t (+ noise)`` with, in environment ``e``,
``u_t ~ N(μ_e, diag σ²_e)``.  The designer chooses the laws ``(μ_e, σ²_e)``, e = 0..E−1,
inside a box ``lo ≤ σ²_{e,j} ≤ hi``, ``|μ_{e,j}| ≤ b``, so that ``B̃`` and the sources are
identifiable and well estimated.

Hard constraints (always enforced)
----------------------------------
* ``rank L = m`` for the precision-difference matrix ``L[e−1, j] = 1/σ²_{e,j} − 1/σ²_{0,j}``
  (:func:`causalid.lti.identifiability.diversity_matrix`), which needs ``E ≥ m + 1``.  The design
  must keep a margin: ``σ_min(L) ≥ rank_margin · Δ`` with ``Δ = 1/lo − 1/hi``, the largest
  possible change of one precision (the one-hot design of the reference has ``σ_min(L) = Δ``);
* no two channels with proportional variance profiles (Pham–Cardoso index > 0).

Criteria
--------
``"pairwise"``  maximise the **smallest** Pham–Cardoso separability index over channel pairs,
                ``s_ij = (Σ_e w_e r_e)(Σ_e w_e / r_e) − 1`` with ``r_e = σ²_{e,i}/σ²_{e,j}`` and
                ``w_e = T_e / Σ T`` (equal by default).  ``T² s_ij`` is the determinant of the
                Fisher information of the pair's two mixing coefficients, so the worst pair
                bounds how well the efficient (maximum-likelihood) estimator separates sources.
                The value reported is ``min_{i<j} s_ij``; the optimiser works on a soft minimum
                of ``log s_ij`` (temperature 0.1).
``"cond"``      maximise ``σ_min(L) / Δ``, the distance of ``L`` from rank deficiency in units
                of the largest possible precision change (``cond(L)`` is reported as well;
                minimising ``cond(L)`` alone is scale-free and would accept designs whose
                precisions barely change).  The optimiser uses
                ``tr((LᵀL)^{-16})^{-1/32}``, a smooth lower bound of ``σ_min``.
``"moment"``    minimise the first-order (delta-method) mean Amari error of the closed-form
                engine ``identify_lti(method="moment")``: residual covariances whitened by
                their step-weighted average, then jointly diagonalised.  The estimator is
                equivariant in ``B̃`` and, to first order, unaffected by the error of ``Ã``,
                so the prediction depends on the design and ``T_e`` only (see
                :func:`moment_error`).  It matches simulated errors to 10–20 %.
``"d-optimal"`` maximise ``log det`` of the expected Fisher information of ``(vec Ã, vec B̃)``
                at a prior system (``system=``), summed over environments with weights
                ``T_e``; see :func:`lti_fisher`.
``"eig"``       maximise the Bayesian expected information gain about ``(Ã, B̃)``, estimated
                with the Laplace (Gaussian) approximation
                ``EIG(ξ) ≈ (1/K) Σ_k ½ log det(I + Lᵀ F(θ_k; ξ) L)`` over ``K`` parameter
                draws θ_k from the prior (NumPyro draws around ``system``) or from a posterior
                (an :class:`~causalid.LTIResult` with NUTS samples), ``L Lᵀ`` the prior or
                posterior covariance.  Exact for a Gaussian linear model; for this model it
                is the usual large-``T`` (Laplace) approximation of the entropy reduction.

Which criterion?  ``pairwise`` targets the efficient estimators (``identify_lti`` with
``method="mle"`` or ``"bayes"``), ``moment`` the closed-form engine (the default of
``identify_lti``).  On 20 random systems with n = m = 5, E = 6 and variances in [0.01, 1]
(``tests/benchmarks/test_design.py``) each roughly halves to thirds the median Amari error
of random laws with the engine it was written for, and does less well with the other: the
pairwise optimum lets several channels be loud in one environment, which the closed-form
engine's whitening handles poorly, while the one-hot structure the ``moment`` criterion
finds is not the most informative for maximum likelihood.

The pairwise index, every Fisher-based criterion and the efficient estimator are invariant
under the reflection ``σ² ↦ lo·hi/σ²`` of a design — e.g. the one-hot design (a quiet
baseline and one loud channel per environment) and its mirror image (a loud baseline and one
quiet channel per environment) tie on the pairwise index and on ``σ_min(L)`` — but the
closed-form engine is 2–20× more accurate on the first.  Every candidate is therefore
evaluated together with its reflection, and ties on the chosen criterion (relative 1e-9)
are broken by the predicted error of the closed-form engine.

With ``mean_bound`` and a criterion that ignores the means, the means are chosen to maximise
``log det(MᵀM)`` of the (E, m) mean matrix — the step response of the system (Markov
engine) and the signs of B̃'s columns are then best determined.  That criterion is convex in
each entry, so its maximum lies on the vertices ``±mean_bound``.  Without ``mean_bound`` the
means are zero.

Optimisation (the objective and its gradient for all starts are one compiled program; the
Adam update, the polish and the selection are vectorised NumPy over all starts or
candidates; no Python loop over environments or starts):

1. projected Adam (:func:`causalid._optim.ascend`) on the normalised box from
   ``num_starts`` uniformly random designs, ``num_iters`` steps.  The objective subtracts
   a soft penalty that keeps the Gershgorin lower bound of ``λ_min(LᵀL)/Δ²`` above
   ``(1.5 · rank_margin)²`` (cheap, no factorisation; conservative for the constraint);
2. vertex polish of the 8 best starts: each is rounded to the nearest vertex (every
   variance at lo or hi) and improved by greedy single-entry flips lo ↔ hi while the exact
   criterion improves and the exact hard constraints hold (all flips of all designs of a
   round scored at once; an infeasible design first moves towards feasibility);
3. selection: the continuous results, the polished vertices and their reflections are
   scored by the exact criterion (σ_min by SVD); the best design that satisfies the hard
   constraints wins (ties broken as described above).

The random starts come from NumPy generators seeded by the key's words
(:func:`seed_words`), so an int seed and ``jax.random.PRNGKey`` of it give the same design.

Cost: a design is usually made once per process, so XLA compilation dominates.  The first
call for a new shape or criterion compiles one program, the batched objective and gradient
(:func:`_surrogate_value_and_grad`, through :func:`causalid._compile.compiled`; about
0.6 s of CPU for n = m = 10 with the system-free criteria, more for ``d-optimal``/``eig``,
whose information matrices are differentiated through custom derivative rules, and which
also compile their exact scorer); everything else is NumPy.  A first call for n = m = 10,
E = 11 takes about 1.2 s of CPU time in a fresh process
(``tests/benchmarks/test_design.py::test_design_time_n10_cold``), later calls of the same
shape about 0.3 s.  With a ``system`` the report of :func:`causalid.check_lti` adds its
controllability and Fisher-information checks, which cost more than the design itself
the first time (python-control's import and a compiled Fisher information).
"""

from __future__ import annotations

import math
import time
from functools import partial
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from causalid._checks import positive_int
from causalid._compile import compiled
from causalid._linalg import logdet_spd
from causalid._optim import ascend, batched_value_and_grad, soft_log_lambda_min
from causalid._random import generators, host_key, seed_words
from causalid._x64 import float64
from causalid.dynamics.system import InputDesign, LTISystem
from causalid.errors import DataError, IdentifiabilityError
from causalid.lti.design_result import Design
from causalid.lti.fisher import fisher_aux, lti_fisher
from causalid.lti.identifiability import DEFAULT_TOL, check_lti, separability_index
from causalid.lti.result import LTIResult

__all__ = [
    "CRITERIA",
    "Criterion",
    "design_criteria",
    "design_lti",
    "log_separability",
    "moment_error",
]

Criterion = Literal["pairwise", "cond", "moment", "d-optimal", "eig"]
CRITERIA: tuple[str, ...] = ("pairwise", "cond", "moment", "d-optimal", "eig")
_SOFTMIN_TEMPERATURE = 0.1
_PENALTY_WEIGHT, _PENALTY_WIDTH, _PENALTY_SAFETY = 10.0, 0.01, 1.5
_TIE = 1e-9
LEARNING_RATE = 0.05      # in normalised box units per Adam step
_NUM_POLISH = 8            # starts (by surrogate value) that get the vertex polish


# ====================================================================== criteria (pure JAX)
def log_separability(var, weights):
    r"""``log s_ij`` of the Pham–Cardoso index for every channel pair, shape (m, m).

    With ``M = varᵀ diag(w) (1/var)`` (one matmul), ``M_ij = Σ_e w_e σ²_{e,i}/σ²_{e,j}`` and

        1 + s_ij = (Σ_e w_e r_e)(Σ_e w_e / r_e) = M_ij M_ji,   r_e = σ²_{e,i}/σ²_{e,j}.

    The subtraction loses relative accuracy only when ``s_ij`` approaches the float64
    resolution (~1e-16), far below the separability tolerance (1e-10); the final design is
    re-checked with the cancellation-free form of
    :func:`causalid.lti.identifiability.separability_index`.  Values are floored at 1e-300 (the
    diagonal, s_ii = 0, is ``log 1e-300``).
    """
    M = var.T @ (weights[:, None] / var)
    return jnp.log(jnp.maximum(M * M.T - 1.0, 1e-300))


@float64
def moment_error(var, steps):
    r"""First-order mean Amari error of the closed-form ``moment`` engine for a design.

    With ``B̃ = I`` (the engine is equivariant), weights ``w_e = T_e / Σ T``, average
    variances ``d̄_j = Σ_e w_e σ²_{e,j}`` and whitened profiles ``λ_{e,j} = σ²_{e,j} / d̄_j``,
    the estimate is ``B̂ ≈ I + G``.  For a pair (i, j) the whitening and the weighted Jacobi
    joint diagonalisation give, to first order in the sampling errors ``δ_e`` of the
    residual covariances' (i, j) entries,

        G_ij = √(d̄_i/d̄_j) Σ_e c_e δ_e / √(d̄_i d̄_j),
        c_e = w_e [½ + (λ_{e,j} − λ_{e,i} − κ_ij) / Q_ij],
        Q_ij = Σ_e w_e (λ_{e,j} − λ_{e,i})²,   κ_ij = ½ Σ_e w_e (λ_{e,j}² − λ_{e,i}²),

    with ``Var δ_e = σ²_{e,i} σ²_{e,j} / T_e`` (Gaussian sample covariance).  The normalised
    Amari distance is to first order the mean of ``|G_ij|`` over the ``m(m−1)`` off-diagonal
    entries, and ``E|G| = √(2/π) sd(G)``.  The error of Ã enters only at second order.

    Parameters
    ----------
    var : array (E, m)
    steps : array (E,)
        Transitions per environment.

    Returns
    -------
    scalar
        Predicted normalised Amari distance of ``B̂`` (``inf`` when two profiles are
        proportional).
    """
    return _moment_error(jnp, var, steps)


def _moment_error(xp, var, steps):
    """:func:`moment_error` for a stack of designs (..., E, m) with array module ``xp``
    (``jax.numpy`` in traced code, ``numpy`` in the vertex polish)."""
    var = xp.asarray(var)
    steps = xp.asarray(steps, dtype=var.dtype)
    m = var.shape[-1]
    w = steps / steps.sum()
    dbar = xp.einsum("e,...ej->...j", w, var)
    lam = var / dbar[..., None, :]
    li, lj = lam[..., :, :, None], lam[..., :, None, :]
    diff = lj - li
    off = ~xp.eye(m, dtype=bool)
    Q = xp.einsum("e,...eij->...ij", w, diff**2)
    Q = xp.where(off, Q, 1.0)
    kappa = 0.5 * xp.einsum("e,...eij->...ij", w, lj**2 - li**2)
    c = w[:, None, None] * (0.5 + (diff - kappa[..., None, :, :]) / Q[..., None, :, :])
    var_delta = xp.einsum("...eij,...eij->...ij", c**2, li * lj / steps[:, None, None])
    var_g = dbar[..., :, None] / dbar[..., None, :] * var_delta
    sd = xp.sqrt(xp.where(off, var_g, 1.0))
    return math.sqrt(2.0 / math.pi) * xp.sum(xp.where(off, sd, 0.0), axis=(-2, -1)) / max(m * (m - 1), 1)


def _log_sigma_min_soft(var, delta):
    """Smooth lower bound of log(σ_min(L)/Δ), within (log m)/32 of it."""
    prec = 1.0 / var
    L = (prec[1:] - prec[:1]) / delta
    G = L.T @ L + 1e-14 * jnp.eye(var.shape[1], dtype=var.dtype)
    return 0.5 * soft_log_lambda_min(G)


def _jitter(F):
    return F + 1e-12 * jnp.mean(jnp.diagonal(F)) * jnp.eye(F.shape[0], dtype=F.dtype)


def eig_value(p, mean, var, steps):
    """(1/K) Σ_k ½ log det(I + Lᵀ F(θ_k) L): the Laplace estimate of the expected information gain.

    ``p["aux"]`` holds the :func:`fisher_aux` of the K draws (stacked), ``p["L"]`` the
    covariance factor."""
    def one(aux):
        F = lti_fisher(None, None, mean, var, steps, aux=aux)
        M = p["L"].T @ F @ p["L"]
        return 0.5 * logdet_spd(jnp.eye(M.shape[0], dtype=M.dtype) + 0.5 * (M + M.T))

    return jnp.mean(jax.vmap(one)(p["aux"]))


# ====================================================================== objectives (pure JAX)
def decode_design(z, p, with_means: bool, xp=jnp):
    """(var, mean) from normalised coordinates z = [u] or [u, v] (axis −3), u ∈ [0, 1],
    v ∈ [−1, 1]: one design (c, E, m) in traced code, or a stack (S, c, E, m) with
    ``xp = numpy``."""
    var = xp.exp(p["llo"] + (p["lhi"] - p["llo"]) * z[..., 0, :, :])
    mean = p["mean_bound"] * z[..., 1, :, :] if with_means else xp.zeros_like(var)
    return var, mean


def _fisher_score(criterion: str, var, mean, p):
    """The Fisher-based criterion (``d-optimal`` or ``eig``) to maximise, exactly."""
    if criterion == "d-optimal":
        return logdet_spd(_jitter(lti_fisher(None, None, mean, var, p["steps"], aux=p["aux"])))
    return eig_value(p, mean, var, p["steps"])


def _gershgorin_lambda_min(var, delta):
    """Gershgorin lower bound of λ_min(LᵀL/Δ²): min_i (G_ii − Σ_{j≠i} |G_ij|), smoothed.

    Cheap and conservative (exact when the columns of L are orthogonal, as in the one-hot
    and Hadamard-type designs); used only to keep the ascent away from rank deficiency."""
    prec = 1.0 / var
    L = (prec[1:] - prec[:1]) / delta
    G = L.T @ L
    off = jnp.where(np.eye(G.shape[0], dtype=bool), 0.0, jnp.sqrt(G**2 + 1e-12))
    diag = jnp.sum(L * L, axis=0)                 # G_ii, without a gather (cheaper to compile)
    return jnp.min(diag - off.sum(axis=1))


def _softplus(x):
    """log(1 + eˣ) without overflow (``jax.nn.softplus`` compiles to more XLA code)."""
    return jnp.maximum(x, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(x)))


def _soft_min_log_sep(var, weights):
    """Soft minimum (temperature 0.1) of ``log s_ij`` over the pairs i < j: within
    ``0.1 · log(m(m−1)/2)`` below the exact minimum.  The pairs are selected by a mask, not
    by gathering them (whose gradient is a scatter: more code to compile)."""
    m = var.shape[1]
    t = _SOFTMIN_TEMPERATURE
    upper = np.triu(np.ones((m, m), dtype=bool), 1)
    a = jnp.where(upper, -log_separability(var, weights) / t, -jnp.inf)
    top = jax.lax.stop_gradient(jnp.max(a))
    return -t * (top + jnp.log(jnp.sum(jnp.exp(a - top))))


def _surrogate(criterion: str, var, mean, p):
    """Smooth objective of the ascent: the criterion (a soft minimum over pairs for
    ``pairwise``, a smooth lower bound of log σ_min for ``cond``) minus a soft penalty that
    keeps the Gershgorin bound of σ_min(L)²/Δ² above (1.5 · rank_margin)²."""
    if criterion == "cond":
        value = _log_sigma_min_soft(var, p["delta"])
    elif criterion == "pairwise":
        value = _soft_min_log_sep(var, p["weights"])
    elif criterion == "moment":
        value = -jnp.log(moment_error(var, p["steps"]))
    else:
        value = _fisher_score(criterion, var, mean, p)
    target = (_PENALTY_SAFETY * p["rank_margin"]) ** 2
    gap = (target - _gershgorin_lambda_min(var, p["delta"])) / _PENALTY_WIDTH
    return value - _PENALTY_WEIGHT * _PENALTY_WIDTH * _softplus(gap)


@partial(jax.jit, static_argnames=("criterion", "with_means"))
def _surrogate_value_and_grad(z, p, *, criterion: str, with_means: bool):
    """Surrogate values and gradients for a stack of normalised designs z (S, c, E, m): the
    one compiled program of the ascent (per shape and criterion)."""
    def objective(zz):
        var, mean = decode_design(zz, p, with_means)
        return _surrogate(criterion, var, mean, p)

    return batched_value_and_grad(objective)(z)


@partial(jax.jit, static_argnames=("criterion",))
def _fisher_scores(var, mean, p, *, criterion: str):
    return jax.vmap(lambda v, mu: _fisher_score(criterion, v, mu, p))(var, mean)


class _Scorer:
    """Exact criterion (to maximise) and hard constraints for stacks of designs (C, E, m).

    NumPy for the system-free criteria (σ_min by batched SVD, the pairwise index by one
    matmul per design, the closed-form engine's error by :func:`_moment_error` with
    ``numpy``), one jitted vmap for the Fisher-based ones.
    """

    def __init__(self, criterion: str, p: dict, lo: float, hi: float, rank_margin: float, chunk: int = 64):
        self.criterion, self.p, self.chunk = criterion, p, chunk
        self.delta = 1.0 / lo - 1.0 / hi
        self.rank_margin = float(rank_margin)
        self.weights = np.asarray(p["weights"])
        self.steps = np.asarray(p["steps"])

    def _system(self, var, mean):
        """Fisher-based scores in chunks of one fixed size (one compilation)."""
        size, n = self.chunk, var.shape[0]
        out = []
        for i in range(0, n, size):
            v, mu = var[i:i + size], mean[i:i + size]
            k = len(v)
            if k < size:
                v = np.concatenate([v, np.repeat(v[:1], size - k, axis=0)])
                mu = np.concatenate([mu, np.repeat(mu[:1], size - k, axis=0)])
            scores = compiled(_fisher_scores, v, mu, self.p, criterion=self.criterion)
            out.append(np.asarray(scores(v, mu, self.p))[:k])
        return np.concatenate(out)

    def min_log_sep(self, var):
        m = var.shape[-1]
        if m < 2:
            return np.full(var.shape[0], np.inf)
        M = np.einsum("cei,cej->cij", var, self.weights[None, :, None] / var)
        s = M * np.swapaxes(M, 1, 2) - 1.0
        iu = np.triu_indices(m, 1)
        with np.errstate(invalid="ignore"):
            return np.log(np.maximum(s[:, iu[0], iu[1]].min(axis=1), 1e-300))

    def moment(self, var):
        if var.shape[-1] < 2:
            return np.zeros(var.shape[0])
        with np.errstate(divide="ignore", invalid="ignore"):      # proportional pairs: inf/nan
            return _moment_error(np, var, self.steps)

    def __call__(self, var, mean):
        """(score, −inf where infeasible; rank-margin shortfall; feasibility) per design.

        The shortfall ``Σ_k min(s_k/Δ − rank_margin, 0)`` over the singular values s_k of L
        is 0 exactly when ``σ_min(L) ≥ rank_margin · Δ``, and grows with every direction
        the design opens up (a design of rank < m − 1 is not flat in it, unlike σ_min)."""
        s = _singular_values_L(var) / self.delta
        shortfall = np.minimum(s - self.rank_margin * (1 - 1e-9), 0.0).sum(axis=-1)
        sep = self.min_log_sep(var)
        c = self.criterion
        if c == "pairwise":
            score = sep
        elif c == "cond":
            score = np.log(np.maximum(s[..., -1], 1e-300))              # log σ_min(L)/Δ
        elif c == "moment":
            with np.errstate(divide="ignore", invalid="ignore"):
                score = -np.log(self.moment(var))
        else:
            score = self._system(var, mean)
        feasible = (shortfall >= 0) & (sep > math.log(DEFAULT_TOL)) & np.isfinite(score)
        return np.where(feasible, score, -np.inf), shortfall, feasible


def _polish(scorer: _Scorer, u: np.ndarray, mean: np.ndarray, lo: float, hi: float, max_rounds: int):
    """Greedy single-entry flips lo ↔ hi from the vertices ``u`` (C, E, m) of {0, 1}.

    Each round scores every flip of every design at once and applies the best flip per
    design if it improves it: a feasible design takes the feasible flip of highest score; an
    infeasible one first moves towards feasibility, taking a feasible flip if there is one,
    else the flip that most reduces its rank-margin shortfall (see :class:`_Scorer`).  Stops when no design improves
    (at most ``max_rounds`` rounds).
    """
    C, E, m = u.shape
    llo, lhi = math.log(lo), math.log(hi)

    def to_var(uu):
        return np.exp(llo + (lhi - llo) * uu)

    def progress(score, shortfall, feasible):
        """What a design improves on: its score if feasible, else its (negative) shortfall."""
        return np.where(feasible, score, shortfall)

    score, shortfall, feasible = scorer(to_var(u), mean)
    value = progress(score, shortfall, feasible)
    masks = np.eye(E * m, dtype=bool).reshape(E * m, E, m)
    rows = np.arange(C)
    rounds = 0
    for rounds in range(1, max_rounds + 1):
        cand = np.where(masks[None], 1.0 - u[:, None], u[:, None]).reshape(C * E * m, E, m)
        sc, sl, fe = (a.reshape(C, E * m) for a in scorer(to_var(cand), np.repeat(mean, E * m, axis=0)))
        val = progress(sc, sl, fe)
        best = np.where(fe.any(axis=1), np.argmax(np.where(fe, val, -np.inf), axis=1), np.argmax(val, axis=1))
        best_fe, best_val = fe[rows, best], val[rows, best]
        tol = 1e-12 * np.maximum(1.0, np.abs(value))
        improve = (best_fe & ~feasible) | ((best_fe == feasible) & (best_val > value + tol))
        if not improve.any():
            break
        chosen = cand.reshape(C, E * m, E, m)[rows, best]
        u = np.where(improve[:, None, None], chosen, u)
        value = np.where(improve, best_val, value)
        feasible = np.where(improve, best_fe, feasible)
    return u, rounds


def _singular_values_L(var: np.ndarray) -> np.ndarray:
    """Singular values (descending) of L for a stack of designs (..., E, m)."""
    prec = 1.0 / var
    return np.linalg.svd(prec[..., 1:, :] - prec[..., :1, :], compute_uv=False)


def _sigma_min_L(var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """σ_min(L) and cond(L) for a stack of designs (..., E, m), by SVD."""
    s = _singular_values_L(var)
    m = var.shape[-1]
    smin = s[..., m - 1] if s.shape[-1] >= m else np.zeros(s.shape[:-1])
    with np.errstate(divide="ignore"):
        cond = np.where(smin > 0, s[..., 0] / np.where(smin > 0, smin, 1.0), np.inf)
    return smin, cond


# ====================================================================== parameter laws
class Law(NamedTuple):
    """Where (Ã, B̃) is believed to be: a centre, draws and a covariance factor."""

    A: np.ndarray            # (n, n) centre
    B: np.ndarray            # (n, m)
    Q: np.ndarray            # (n, n) process noise in y coordinates (zeros if none)
    A_draws: np.ndarray      # (K, n, n)
    B_draws: np.ndarray      # (K, n, m)
    L: np.ndarray            # (d, d) lower factor of the covariance of θ = (vec Ã, vec B̃)
    source: str


def theta_vector(A, B):
    """θ = [vec A; vec B], vec stacking columns; works on stacks (..., n, k)."""
    return np.concatenate([np.swapaxes(A, -1, -2).reshape(*A.shape[:-2], -1),
                           np.swapaxes(B, -1, -2).reshape(*B.shape[:-2], -1)], axis=-1)


def _untheta(theta, n, m):
    A = np.swapaxes(theta[..., : n * n].reshape(*theta.shape[:-1], n, n), -1, -2)
    B = np.swapaxes(theta[..., n * n:].reshape(*theta.shape[:-1], m, n), -1, -2)
    return A, B


def _tilde(system: LTISystem, what: str):
    """(Ã, B̃, Q̃) = (C A C⁻¹, C B, C Q Cᵀ) of a system whose Fisher information exists."""
    C = system.C
    if C.shape[0] != C.shape[1] or np.linalg.matrix_rank(C) < C.shape[0]:
        raise DataError(f"{what}: the Fisher information of (Ã, B̃) needs C square and invertible (y = the full "
                        f"state); C has shape {C.shape} and rank {np.linalg.matrix_rank(C)}")
    At = np.linalg.solve(C.T, (C @ system.A).T).T
    Qt = np.zeros((system.n, system.n)) if system.Q is None else C @ system.Q @ C.T
    try:
        fisher_aux(At, C @ system.B, Qt)
    except DataError as err:
        raise DataError(f"{what}: {err}") from None
    return At, C @ system.B, Qt


def stable_draws(theta, n, m, num: int, what: str):
    """The first ``num`` draws with a stable Ã (a fixed count keeps compiled shapes fixed)."""
    A, B = _untheta(theta, n, m)
    rho = np.abs(np.linalg.eigvals(A)).max(axis=-1)
    keep = np.flatnonzero(rho < 0.999)
    if len(keep) < num:
        raise DataError(f"{what}: only {len(keep)} of {len(theta)} parameter draws have a stable Ã (spectral "
                        f"radius < 1) and {num} are needed; the information of an unstable system has no "
                        "stationary law — shrink the prior (prior_scale), lower num_samples, or collect more data")
    keep = keep[:num]
    return A[keep], B[keep]


def _prior_law(system: LTISystem, num_samples: int, prior_scale: float, key) -> Law:
    """Gaussian prior around ``system``: entries of Ã (B̃) with sd ``prior_scale`` times the
    root-mean-square entry of Ã (B̃); draws made by the NumPyro distribution."""
    import numpyro.distributions as dist

    if not (prior_scale > 0 and math.isfinite(prior_scale)):
        raise DataError(f"prior_scale={prior_scale}; give a positive relative prior standard deviation")
    At, Bt, Qt = _tilde(system, "the eig criterion")
    n, m = Bt.shape
    loc = theta_vector(At, Bt)
    rms = lambda M: max(float(np.sqrt(np.mean(M**2))), 1e-12)
    scale = prior_scale * np.concatenate([np.full(n * n, rms(At)), np.full(n * m, rms(Bt))])

    prior = dist.Normal(jnp.asarray(loc), jnp.asarray(scale)).to_event(1)
    draws = prior.sample(key, (16 * num_samples,))
    A_k, B_k = stable_draws(np.asarray(draws), n, m, num_samples, "the eig prior")
    return Law(At, Bt, Qt, A_k, B_k, np.diag(scale), "prior")


def posterior_law(result, num_samples: int) -> Law:
    """Draws and covariance from the NUTS samples of an :class:`~causalid.LTIResult`."""
    post = result.posterior.posterior
    A_s = np.asarray(post["A"].values, float)
    B_s = np.asarray(post["B"].values, float)
    A_s = A_s.reshape(-1, *A_s.shape[-2:])
    B_s = B_s.reshape(-1, *B_s.shape[-2:])
    n, m = B_s.shape[-2:]
    theta = theta_vector(A_s, B_s)
    if theta.shape[0] < theta.shape[1] + 2:
        raise DataError(f"the posterior holds {theta.shape[0]} draws for {theta.shape[1]} parameters; "
                        "run NUTS longer (num_samples) to estimate its covariance")
    cov = np.cov(theta, rowvar=False)
    cov += 1e-12 * np.trace(cov) / len(cov) * np.eye(len(cov))
    idx = np.linspace(0, theta.shape[0] - 1, min(theta.shape[0], 16 * num_samples)).astype(int)
    A_k, B_k = stable_draws(theta[idx], n, m, num_samples, "the posterior")
    Q = np.zeros((n, n)) if result.Q is None else np.asarray(result.Q, float)
    return Law(np.asarray(result.A, float), np.asarray(result.B, float), Q, A_k, B_k,
                np.linalg.cholesky(cov), "posterior")


def _law_params(criterion: str, law: Law) -> dict:
    """Arrays the Fisher-based criteria need: the :func:`fisher_aux` of the centre
    (``d-optimal``) or of every draw, stacked, with the covariance factor (``eig``)."""
    Q = law.Q if np.any(law.Q) else None
    if criterion == "d-optimal":
        return {"aux": {k: jnp.asarray(v) for k, v in fisher_aux(law.A, law.B, Q).items()}}
    auxes = [fisher_aux(A, B, Q) for A, B in zip(law.A_draws, law.B_draws)]
    return {"aux": {k: jnp.asarray(np.stack([a[k] for a in auxes])) for k in auxes[0]},
            "L": jnp.asarray(law.L)}


# ====================================================================== validation helpers


def check_var_bounds(var_bounds, what: str = "var_bounds") -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in var_bounds)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be two numbers (lo, hi) with 0 < lo < hi; got {var_bounds!r}") from None
    if not (0 < lo and math.isfinite(hi) and lo <= hi):
        raise DataError(f"{what}=({lo:g}, {hi:g}): input variances need 0 < lo ≤ hi < inf")
    if hi <= lo * (1 + 1e-9):
        raise IdentifiabilityError(
            f"{what}=({lo:g}, {hi:g}) leave no room to vary the input variances; identifying B̃ needs "
            "variances that differ across environments, so widen the bounds (hi > lo)")
    return lo, hi


def check_mean_bound(mean_bound) -> float | None:
    if mean_bound is None:
        return None
    b = float(mean_bound)
    if not (b >= 0 and math.isfinite(b)):
        raise DataError(f"mean_bound={mean_bound!r}: give a finite bound ≥ 0 on |μ|, or None for zero means")
    return b if b > 0 else None


def as_steps(steps, E: int) -> np.ndarray:
    if steps is None:
        return np.ones(E)
    s = np.broadcast_to(np.asarray(steps, dtype=np.float64), (E,)).copy() if np.ndim(steps) == 0 else \
        np.asarray(steps, dtype=np.float64)
    if s.shape != (E,) or not np.all(np.isfinite(s)) or np.any(s < 1):
        raise DataError(f"steps must be a number ≥ 1 or one number ≥ 1 per environment ({E}); got {steps!r}")
    return s


def _minimum_envs_error(m: int, E: int) -> IdentifiabilityError:
    return IdentifiabilityError(
        f"num_envs={E} is too few for {m} input(s): the rank condition rank L = m on the precision changes "
        f"needs at least m + 1 = {m + 1} environments (a quiet baseline plus one per input channel); "
        f"raise num_envs to {m + 1} or more")


# ====================================================================== the designer
def _base_params(lo: float, hi: float, bound, steps: np.ndarray, rank_margin: float) -> dict:
    """Design-independent inputs of the objectives, as float64 NumPy values: traced arguments
    of the compiled programs (no eager JAX operation, hence nothing extra to compile)."""
    f64 = np.float64
    return {"llo": f64(math.log(lo)), "lhi": f64(math.log(hi)), "mean_bound": f64(bound or 0.0),
            "delta": f64(1.0 / lo - 1.0 / hi), "rank_margin": f64(rank_margin),
            "weights": steps / steps.sum(), "steps": np.asarray(steps, f64)}


@float64
def design_criteria(design: InputDesign, *, var_bounds=None, steps=None, system=None) -> dict:
    """Every design criterion of this module for one design, exactly (no surrogates).

    Parameters
    ----------
    design : InputDesign
    var_bounds : (lo, hi), optional
        Sets ``Δ = 1/lo − 1/hi`` for ``sigma_min_rel``; default the design's own range.
    steps : int or array (E,), optional
        Transitions per environment (default 1: ``moment`` is then the error for one
        transition per environment, ``d-optimal`` the information per transition).
    system : LTISystem, optional
        Adds ``"d-optimal"`` (log det of the Fisher information of (Ã, B̃)).

    Returns
    -------
    dict
        ``pairwise`` (min_{i<j} s_ij; inf for one input), ``sigma_min`` (σ_min(L)),
        ``sigma_min_rel`` (σ_min(L)/Δ), ``cond`` (cond(L)), ``moment`` (predicted Amari
        error of the closed-form engine; 0 for one input), and ``d-optimal`` with a system.
    """
    if not isinstance(design, InputDesign):
        raise DataError(f"design must be an InputDesign; got {type(design).__name__}")
    var, mean = design.var, design.mean
    E, m = var.shape
    st = as_steps(steps, E)
    if var_bounds is None:
        lo, hi = float(var.min()), float(var.max())
        if hi <= lo:
            hi = lo * 2.0                     # a constant design: any Δ > 0 gives σ_min = 0
    else:
        lo, hi = check_var_bounds(var_bounds)
        if var.min() < lo * (1 - 1e-12) or var.max() > hi * (1 + 1e-12):
            raise DataError(f"the design has variances in [{var.min():g}, {var.max():g}], outside "
                            f"var_bounds=({lo:g}, {hi:g})")
    smin, cond = _sigma_min_L(var[None])
    S = separability_index(var, st / st.sum())
    iu = np.triu_indices(m, 1)
    out = {
        "pairwise": float(S[iu].min()) if m > 1 else float("inf"),
        "sigma_min": float(smin[0]),
        "sigma_min_rel": float(smin[0] / (1.0 / lo - 1.0 / hi)),
        "cond": float(cond[0]),
        "moment": float(_moment_error(np, var, st)) if m > 1 else 0.0,
    }
    if system is not None:
        if system.m != m:
            raise DataError(f"the system has {system.m} input(s) but the design has {m}")
        At, Bt, Qt = _tilde(system, "design_criteria")
        sign, logdet = np.linalg.slogdet(np.asarray(lti_fisher(At, Bt, mean, var, st, Qt)))
        out["d-optimal"] = float(logdet) if sign > 0 else float("-inf")
    return out


def _mean_design(E: int, m: int, bound: float, rng: np.random.Generator, num_starts: int,
                 num_iters: int) -> np.ndarray:
    """Means maximising log det(MᵀM) on the box |μ| ≤ bound.  The criterion is convex in each
    entry, so its maximum lies on the vertices ±bound; the ascent's results and their
    rounding to the vertices are both scored and the best is kept.  The gradient is closed
    form, so the ascent runs in NumPy (nothing to compile)."""
    z0 = rng.uniform(-1.0, 1.0, (num_starts, E, m))
    M, _ = ascend(_mean_value_and_grad, z0, num_iters, LEARNING_RATE, -1.0, 1.0)
    cand = np.concatenate([M, np.where(M >= 0, 1.0, -1.0)], axis=0)
    logdet, _ = _mean_value_and_grad(cand)
    return bound * cand[int(np.argmax(logdet))]


def _mean_value_and_grad(M: np.ndarray):
    """``log det(MᵀM/E + 1e-12 I)`` of a stack (S, E, m) and its gradient ``2 M G⁻¹ / E``
    (−inf and a zero gradient where G is not positive definite)."""
    E, m = M.shape[-2:]
    G = np.einsum("sem,sen->smn", M, M) / E + 1e-12 * np.eye(m)
    sign, logdet = np.linalg.slogdet(G)
    ok = sign > 0
    Ginv = np.linalg.inv(np.where(ok[:, None, None], G, np.eye(m)))
    return np.where(ok, logdet, -np.inf), np.where(ok[:, None, None], 2.0 * M @ Ginv / E, 0.0)


def _system_law(criterion: str, system, m: int, num_samples: int, prior_scale: float, rng):
    """(law, system for the report) for the system-based criteria; validates ``system``."""
    if system is None:
        raise DataError(f"criterion={criterion!r} needs prior knowledge of the system: pass system= an LTISystem "
                        "(a nominal model or an earlier estimate)"
                        + (" or an LTIResult with NUTS draws" if criterion == "eig" else ""))
    if isinstance(system, LTIResult):
        if system.posterior is not None and criterion == "eig":
            law = posterior_law(system, num_samples)
            if law.B.shape[1] != m:
                raise DataError(f"the posterior is over {law.B.shape[1]} input(s) but input_dim={m}")
            return law, None
        if system.coordinates != "observed":
            raise DataError("the LTIResult is in similarity coordinates; the Fisher information of (Ã, B̃) "
                            "needs a full-state (observed-coordinates) result")
        system = system.system
    if not isinstance(system, LTISystem):
        raise DataError(f"system must be an LTISystem or an LTIResult; got {type(system).__name__}")
    if system.m != m:
        raise DataError(f"the system has {system.m} input(s) but input_dim={m}")
    if criterion == "d-optimal":
        At, Bt, Qt = _tilde(system, "criterion='d-optimal'")
        return Law(At, Bt, Qt, At[None], Bt[None], np.eye(1), "system"), system
    return _prior_law(system, num_samples, prior_scale, host_key(rng)), system


@float64
def design_lti(
    input_dim: int,
    num_envs: int,
    var_bounds=(1e-2, 1.0),
    mean_bound: float | None = None,
    steps=None,
    criterion: Criterion = "pairwise",
    system=None,
    *,
    key=0,
    num_starts: int = 32,
    num_iters: int = 200,
    rank_margin: float = 0.1,
    prior_scale: float = 0.2,
    num_samples: int = 16,
    input_names=None,
):
    r"""Design the input laws (μ_e, σ²_e) of ``num_envs`` environments for ``input_dim`` inputs.

    See the module docstring for the constraints, the criteria and the optimiser.

    Parameters
    ----------
    input_dim : int
        Number of input channels m.
    num_envs : int
        Number of environments E; the rank condition needs ``E ≥ m + 1``.
    var_bounds : (lo, hi)
        Box for every input variance, ``0 < lo < hi``.
    mean_bound : float, optional
        Box ``|μ_{e,j}| ≤ mean_bound`` for the means; ``None`` (default) for zero means.
    steps : int or array (E,), optional
        Transitions ``T_e`` per environment: weights of the pairwise index and of the
        closed-form engine's error, and the scale of the Fisher information (default 1
        each: equal weights, information per transition).
    criterion : {"pairwise", "cond", "moment", "d-optimal", "eig"}
    system : LTISystem or LTIResult, optional
        Prior knowledge of the system: required by ``"d-optimal"`` (an LTISystem, C square
        and invertible, A stable, every transition covariance non-singular) and by ``"eig"``
        (an LTISystem as the centre of a Gaussian prior with relative sd ``prior_scale``, or
        an LTIResult of ``identify_lti(method="bayes")`` whose posterior draws are used).
        With the other criteria a system (or the system of an LTIResult) only extends the
        identifiability report (controllability, observability, Fisher information).
    key : int or jax PRNG key
        Seed of the random starts (and of the prior draws for ``"eig"``); an int ``s`` gives
        the same design as ``jax.random.PRNGKey(s)`` (see :func:`seed_words`).
    num_starts, num_iters : int
        Multi-start projected Adam: starting points (evaluated together) and steps.
    rank_margin : float
        Hard constraint ``σ_min(L) ≥ rank_margin · (1/lo − 1/hi)`` (the one-hot design has 1).
    prior_scale, num_samples : float, int
        ``"eig"`` only: relative prior sd around ``system``; parameter draws K.
    input_names : list of str, optional

    Returns
    -------
    Design

    Raises
    ------
    IdentifiabilityError
        Too few environments (``E < m + 1``) or bounds with no room (``hi = lo``).
    DataError
        Malformed arguments; ``"d-optimal"``/``"eig"`` without a usable ``system``.

    Examples
    --------
    >>> import causalid
    >>> d = causalid.design_lti(2, 3, var_bounds=(1e-2, 1.0), key=0, num_starts=8, num_iters=100)
    >>> d.var.shape, d.report.identifiable["B_tilde"]
    ((3, 2), True)
    """
    t0 = time.perf_counter()
    m, E = positive_int(input_dim, "input_dim"), positive_int(num_envs, "num_envs")
    if criterion not in CRITERIA:
        raise DataError(f"unknown criterion {criterion!r}; choose one of {list(CRITERIA)}")
    lo, hi = check_var_bounds(var_bounds)
    bound = check_mean_bound(mean_bound)
    if E < m + 1:
        raise _minimum_envs_error(m, E)
    if m == 1 and criterion in ("pairwise", "moment"):
        raise DataError(f"criterion={criterion!r} compares pairs of input channels and there is only one input; "
                        "use criterion='cond' (or 'd-optimal'/'eig' with a system)")
    try:
        margin = float(rank_margin)
    except (TypeError, ValueError):
        margin = math.nan
    if not (0 < margin < 1):
        raise DataError(f"rank_margin={rank_margin!r}: give a number in (0, 1) (the one-hot design reaches 1)")
    rank_margin = margin
    S, iters = positive_int(num_starts, "num_starts"), positive_int(num_iters, "num_iters")
    st = as_steps(steps, E)
    seed = seed_words(key)
    rng_start, rng_prior, rng_mean = generators(seed, 3)
    names = _names(input_names, m)

    law, sys_for_report = None, None
    if criterion in ("d-optimal", "eig"):
        law, sys_for_report = _system_law(criterion, system, m, positive_int(num_samples, "num_samples"),
                                          float(prior_scale), rng_prior)
    elif system is not None:
        if isinstance(system, LTIResult):               # an estimate: its system for the report
            system = system.system
        if not isinstance(system, LTISystem):
            raise DataError(f"system must be an LTISystem or an LTIResult; got {type(system).__name__}")
        if system.m != m:
            raise DataError(f"the system has {system.m} input(s) but input_dim={m}")
        sys_for_report = system

    with_means = bound is not None and criterion in ("d-optimal", "eig")
    p = _base_params(lo, hi, bound, st, rank_margin)
    if law is not None:
        p.update(_law_params(criterion, law))
    c = 2 if with_means else 1
    lower = np.array([0.0, -1.0])[:c, None, None]                   # u ∈ [0, 1], v ∈ [−1, 1]
    z0 = lower + (1.0 - lower) * rng_start.uniform(size=(S, c, E, m))
    p_dev = jax.device_put(p)
    value_and_grad = compiled(_surrogate_value_and_grad, z0, p_dev, criterion=criterion, with_means=with_means)
    z, surrogate = ascend(lambda zz: value_and_grad(zz, p_dev), z0, iters, LEARNING_RATE, lower, 1.0)
    var_s, mean_s = decode_design(z, p, with_means, xp=np)
    # vertex polish of the best starts
    scorer = _Scorer(criterion, p, lo, hi, rank_margin, chunk=min(S, _NUM_POLISH) * (2 if with_means else 1) * E * m)
    order = np.argsort(-np.where(np.isfinite(surrogate), surrogate, -np.inf))
    top = order[: min(S, _NUM_POLISH)]
    u_top = np.round((np.log(var_s[top]) - math.log(lo)) / (math.log(hi) - math.log(lo)))
    mean_top = mean_s[top]
    if with_means:                                     # also try the means rounded to ±bound
        u_top = np.concatenate([u_top, u_top])
        mean_top = np.concatenate([mean_top, bound * np.where(mean_top >= 0, 1.0, -1.0)])
    u_pol, rounds = _polish(scorer, u_top, mean_top, lo, hi, max_rounds=E * m)
    var_pol = np.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * u_pol)
    cand_var = np.concatenate([var_s, var_pol])
    cand_mean = np.concatenate([mean_s, mean_top])
    cand_var = np.concatenate([cand_var, lo * hi / cand_var])          # reflections σ² ↦ lo·hi/σ²
    cand_mean = np.concatenate([cand_mean, cand_mean])
    score, _, _ = scorer(cand_var, cand_mean)
    if not np.isfinite(score).any():
        raise IdentifiabilityError(
            f"no start reached a design that meets the hard constraints (σ_min(L) ≥ {rank_margin:g}·(1/lo − 1/hi) "
            f"and pairwise separable) with criterion={criterion!r}; raise num_starts/num_iters or lower rank_margin")
    best = np.max(score)
    ties = np.flatnonzero(score >= best - _TIE * max(1.0, abs(best)))
    err = scorer.moment(cand_var[ties]) if criterion != "moment" else -score[ties]
    pick = int(ties[np.argmin(err)])
    var, mean = cand_var[pick], cand_mean[pick]
    var = np.where(np.isclose(var, lo, rtol=1e-9, atol=0), lo, np.where(np.isclose(var, hi, rtol=1e-9, atol=0), hi,
                                                                         np.clip(var, lo, hi)))
    if bound is not None and not with_means:
        mean = _mean_design(E, m, bound, rng_mean, min(S, 16), iters)
    design = InputDesign(mean, var, name=f"designed ({criterion})")
    report = check_lti(design, system=sys_for_report)
    for check in ("diversity_rank", "pairwise_separability"):
        if report[check].passed is False:
            raise IdentifiabilityError(f"the best design fails the hard constraint '{check}': {report[check].message}")
    values = design_criteria(design, var_bounds=(lo, hi), steps=st,
                             system=_law_as_system(law) if criterion == "d-optimal" else None)
    if criterion == "eig":
        values["eig"] = float(score[pick])
    value = {"pairwise": values["pairwise"], "cond": values["sigma_min_rel"], "moment": values["moment"],
             "d-optimal": values.get("d-optimal"), "eig": values.get("eig")}[criterion]
    info = {"seconds": time.perf_counter() - t0, "num_candidates": len(score),
            "num_feasible_candidates": int(np.isfinite(score).sum()), "num_ties": len(ties),
            "polish_rounds_max": int(rounds)}
    if law is not None:
        info["parameter_law"] = law.source
        info["num_parameter_draws"] = int(law.A_draws.shape[0])
    settings = {"num_starts": S, "num_iters": iters, "rank_margin": float(rank_margin), "key": list(seed),
                "prior_scale": float(prior_scale) if criterion == "eig" else None,
                "num_samples": int(law.A_draws.shape[0]) if criterion == "eig" else None}
    return Design(mean=np.asarray(mean, float), var=np.asarray(var, float), criterion=criterion, value=value,
                  values=values, var_bounds=(lo, hi), mean_bound=bound, steps=st, report=report,
                  settings=settings, info=info, input_names=names,
                  env_names=tuple(f"env{e}" for e in range(E)),
                  system=None if sys_for_report is None else sys_for_report.to_dict())


def _law_as_system(law: Law | None) -> LTISystem | None:
    """The centre of a parameter law as a full-state system (C = I)."""
    if law is None:
        return None
    n = law.A.shape[0]
    Q = law.Q if np.any(law.Q) else None
    return LTISystem(law.A, law.B, np.eye(n), Q=Q)


def _names(input_names, m: int) -> tuple[str, ...]:
    if input_names is None:
        return tuple(f"u{j}" for j in range(m))
    names = tuple(str(s) for s in input_names)
    if len(names) != m:
        raise DataError(f"input_names has {len(names)} name(s) for {m} input(s)")
    if len(set(names)) != m:
        raise DataError(f"input_names has duplicates: {list(names)}")
    return names
