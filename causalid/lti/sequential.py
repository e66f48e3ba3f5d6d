r"""Sequential design: the input law of the next environment (Ljung, System Identification, 2nd ed., ch. 13; Pham & Cardoso 2001).

Given the data so far (or a fit of them), :func:`design_next` proposes the law
``u_t ~ N(μ, diag σ²)`` of one more environment of ``steps`` transitions that maximises the
expected information gain (EIG) about θ = (vec Ã, vec B̃), and tabulates how much it is
expected to shrink the posterior standard deviation of every parameter.

Posterior
---------
* an :class:`~causalid.LTIResult` of ``identify_lti(method="bayes")``: its NUTS draws (the
  covariance ``Σ`` is their sample covariance);
* otherwise (an :class:`~causalid.LTIData`, fitted here with the closed-form engine, or a
  ``moment``/``mle`` result with its data): the Laplace approximation of the posterior of
  the NumPyro program :func:`causalid.models.lti.lti_model` with identity C, at the estimate
  θ̂: precision ``F_data(θ̂) + diag(prior precision)`` with the expected Fisher information
  of the recorded environments (:func:`causalid.lti.design.lti_fisher`) and the program's
  Gaussian prior on A, B (:class:`~causalid.models.lti.LTIPrior`).  Draws θ_k from
  ``N(θ̂, Σ)`` come from NumPyro's ``MultivariateNormal``; draws with an unstable Ã are
  discarded.

Estimator
---------
``EIG(μ, σ²) ≈ (1/K) Σ_k ½ log det(I + Lᵀ T F₁(θ_k; μ, σ²) L)``, ``L Lᵀ = Σ``, with ``F₁`` the
Fisher information of one transition of the new environment: the Laplace (Gaussian)
approximation of the expected entropy reduction ``H[θ | data] − E H[θ | data, new]``,
averaged over the posterior.  The law is found by the multi-start projected ascent of
:mod:`causalid._optim` (vmapped over starts, one ``jax.jit``), its vertex rounding,
or, when ``candidates`` are given, by scoring every candidate in one vmapped call.
"""

from __future__ import annotations

import math
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from causalid._checks import positive_int
from causalid._compile import compiled
from causalid._optim import ascend, batched_value_and_grad
from causalid._random import generators, host_key, seed_words
from causalid._x64 import float64
from causalid.dynamics.system import InputDesign
from causalid.errors import DataError
from causalid.lti.data import LTIData
from causalid.lti.design import (
    LEARNING_RATE,
    Law,
    check_mean_bound,
    check_var_bounds,
    decode_design,
    eig_value,
    posterior_law,
    stable_draws,
    theta_vector,
)
from causalid.lti.design_result import NextDesign
from causalid.lti.fisher import fisher_aux, lti_fisher
from causalid.lti.fit import identify_lti
from causalid.lti.identifiability import check_lti
from causalid.lti.result import LTIResult
from causalid.models.lti import LTIPrior

__all__ = ["design_next", "parameter_names"]

_CHUNK = 32          # candidate laws scored per compiled call (padded), so one compilation serves all


def parameter_names(n: int, m: int) -> list[str]:
    """Names of θ = (vec Ã, vec B̃) in order (vec stacks columns): ``A[i,j]``, then ``B[i,j]``."""
    return [f"A[{k},{l}]" for l in range(n) for k in range(n)] + [f"B[{k},{l}]" for l in range(m) for k in range(n)]


# ====================================================================== the current state
def _current(data_or_result, data, num_samples: int, prior, rng: np.random.Generator):
    """(law, current InputDesign, transitions per environment, input names, how)."""
    prior = LTIPrior() if prior is None else prior
    if isinstance(data_or_result, LTIData):
        if data is not None:
            raise DataError("give the data once: design_next(data) or design_next(result, data=data)")
        data = data_or_result
        result = None
    elif isinstance(data_or_result, LTIResult):
        result = data_or_result
    else:
        raise DataError(f"design_next takes an LTIData or an LTIResult; got {type(data_or_result).__name__}")
    if data is not None:
        if not isinstance(data, LTIData):
            raise DataError(f"data must be an LTIData; got {type(data).__name__}")
        if data.has_measured_inputs or data.input_var is None:
            raise DataError("design_next plans designed input laws and needs data recorded under known input "
                            "variances (input_var); for measured inputs compare candidate signals with "
                            "causalid.design.choose_signal")
    if result is None:
        result = identify_lti(data, method="moment")
        how = "laplace (moment fit)"
    else:
        how = "laplace" if result.posterior is None else "posterior"
    if result.coordinates != "observed":
        raise DataError("design_next needs a full-state result (observed coordinates, C = I); "
                        "partial observation is not supported")
    n, m = result.B.shape
    names = tuple(result.input_names) or tuple(f"u{j}" for j in range(m))
    if result.posterior is not None:
        law = posterior_law(result, num_samples)
        if data is not None:
            current = data.design
            T = _transitions(data)
        else:
            var = result.source_var
            if var is None:
                raise DataError("the result does not record the input variances of its environments; "
                                "pass data= (the data it was fitted to)")
            mean = result.input_mean if result.input_mean is not None else np.zeros_like(var)
            current = InputDesign(mean, var)
            T = None
        return law, current, T, names, how
    if data is None:
        raise DataError(f"a '{result.method}' result carries no posterior; pass data= (the data it was fitted to) so "
                        "that the Laplace approximation can be formed, or fit with method='bayes'")
    if data.input_dim != m or data.obs_dim != n:
        raise DataError(f"the data ({data.obs_dim} outputs, {data.input_dim} inputs) do not match the result "
                        f"({n} outputs, {m} inputs)")
    mean = data.input_mean if data.input_mean is not None else (
        result.input_mean if result.input_mean is not None else np.zeros_like(data.input_var))
    current = InputDesign(mean, data.input_var)
    T = _transitions(data)
    Q = None if result.Q is None else np.asarray(result.Q, float)
    A_hat, B_hat = np.asarray(result.A, float), np.asarray(result.B, float)
    try:
        aux = fisher_aux(A_hat, B_hat, Q)
    except DataError as err:
        raise DataError(f"the current estimate cannot carry a Laplace posterior: {err}") from None
    F = np.asarray(lti_fisher(None, None, current.mean, current.var, T, aux=aux))
    prior_prec = np.concatenate([np.full(n * n, 1.0 / prior.a_scale**2), np.full(n * m, 1.0 / prior.b_scale**2)])
    precision = F + np.diag(prior_prec)
    cov = np.linalg.inv(0.5 * (precision + precision.T))
    cov = 0.5 * (cov + cov.T)
    L = np.linalg.cholesky(cov)
    draws = _gaussian_draws(host_key(rng), theta_vector(A_hat, B_hat), L, 16 * num_samples)
    A_k, B_k = stable_draws(draws, n, m, num_samples, "the Laplace posterior")
    law = Law(A_hat, B_hat, np.zeros((n, n)) if Q is None else Q, A_k, B_k, L, how)
    return law, current, T, names, how


def _transitions(data) -> np.ndarray:
    lengths = np.asarray(data.lengths)
    return np.maximum(lengths - 1, 0).sum(axis=1).astype(float)


def _gaussian_draws(key, loc, scale_tril, num: int) -> np.ndarray:
    """Draws of N(loc, L Lᵀ) from the NumPyro distribution."""
    import numpyro.distributions as dist

    law = dist.MultivariateNormal(jnp.asarray(loc), scale_tril=jnp.asarray(scale_tril))
    return np.asarray(law.sample(key, (num,)))


# ====================================================================== optimisation
@partial(jax.jit, static_argnames=("with_means",))
def _eig_value_and_grad(z, p, *, with_means: bool):
    """EIG of one new environment and its gradient for a stack of normalised laws
    z (S, c, 1, m): the one compiled program of the ascent."""
    def objective(zz):
        var, mean = decode_design(zz, p, with_means)          # (1, m): one environment
        return eig_value(p, mean, var, p["steps"])

    return batched_value_and_grad(objective)(z)


@jax.jit
def _eig_batch(var, mean, p):
    return jax.vmap(lambda v, mu: eig_value(p, mu[None], v[None], p["steps"]))(var, mean)


def _score(var: np.ndarray, mean: np.ndarray, p: dict, chunk: int) -> np.ndarray:
    """EIG of a stack of laws (C, m), in chunks of one fixed size (one compilation)."""
    out = []
    for i in range(0, var.shape[0], chunk):
        v, mu = var[i:i + chunk], mean[i:i + chunk]
        k = len(v)
        if k < chunk:
            v = np.concatenate([v, np.repeat(v[:1], chunk - k, axis=0)])
            mu = np.concatenate([mu, np.repeat(mu[:1], chunk - k, axis=0)])
        out.append(np.asarray(compiled(_eig_batch, v, mu, p)(v, mu, p))[:k])
    scores = np.concatenate(out)
    return np.where(np.isfinite(scores), scores, -np.inf)


def _candidates(candidates, m: int):
    if isinstance(candidates, InputDesign):
        mean, var = candidates.mean, candidates.var
    else:
        var = np.asarray(candidates, dtype=np.float64)
        if var.ndim == 1 and m == 1:
            var = var[:, None]
        if var.ndim != 2:
            raise DataError(f"candidates must be an InputDesign or an array of variances shaped (K, {m}); "
                            f"got shape {var.shape}")
        mean = np.zeros_like(var)
    if var.shape[1] != m:
        raise DataError(f"candidates have {var.shape[1]} input(s); the system has {m}")
    if var.shape[0] < 1:
        raise DataError("candidates is empty; give at least one candidate law")
    if not np.all(np.isfinite(var)) or np.any(var <= 0) or not np.all(np.isfinite(mean)):
        raise DataError("candidate variances must be finite and > 0 and means finite")
    return mean, var


# ====================================================================== front door
@float64
def design_next(
    data_or_result,
    candidates=None,
    var_bounds=(1e-2, 1.0),
    mean_bound: float | None = None,
    steps: int = 1000,
    *,
    data=None,
    key=0,
    num_starts: int = 16,
    num_iters: int = 150,
    num_samples: int = 16,
    prior=None,
):
    r"""Propose the input law of the next environment by expected information gain.

    See the module docstring for the posterior and the estimator.

    Parameters
    ----------
    data_or_result : LTIData or LTIResult
        The data so far (full-state outputs under designed input laws; fitted here with
        ``identify_lti(method="moment")``), or a fit: a ``bayes`` result (its NUTS draws are
        the posterior), or a ``moment``/``mle`` result together with ``data=``.
    candidates : InputDesign or array (K, m), optional
        Candidate laws (rows); an array gives variances with zero means.  Without it the law
        is optimised inside ``var_bounds`` (and ``|μ| ≤ mean_bound``).
    var_bounds : (lo, hi)
        Box of the new environment's variances (ignored with ``candidates``).
    mean_bound : float, optional
        Box of its means; ``None`` for zero means.
    steps : int
        Transitions the new environment will record.
    data : LTIData, optional
        The data of a ``moment``/``mle`` result.
    key : int or jax PRNG key
    num_starts, num_iters : int
        Multi-start projected Adam.
    num_samples : int
        Posterior draws K in the EIG estimate.
    prior : LTIPrior, optional
        Prior of the Laplace posterior (default :class:`~causalid.models.lti.LTIPrior`).

    Returns
    -------
    NextDesign
        ``mean``, ``var``, ``eig``, the per-parameter ``table`` (``sd_now``, ``sd_next``,
        ``shrinkage``), the scored ``candidates`` when given, and the report of the
        augmented design.

    Examples
    --------
    >>> import causalid, jax
    >>> from causalid.models import lti
    >>> system = lti.random_system(jax.random.PRNGKey(0), 2)
    >>> law = lti.max_variability_design(2, zero_means=True)
    >>> sim = lti.simulate_lti(jax.random.PRNGKey(1), system, design=law, num_steps=300)
    >>> data = causalid.LTIData.from_arrays(sim["y"], input_mean=law.mean, input_var=law.var)
    >>> nxt = causalid.design_next(data, var_bounds=(1e-2, 1.0), steps=300, num_starts=4, num_iters=50)
    >>> nxt.var.shape, bool(nxt.eig > 0), list(nxt.table.columns)[:3]
    ((2,), True, ['parameter', 'estimate', 'sd_now'])
    """
    t0 = time.perf_counter()
    T_new = float(positive_int(steps, "steps"))
    S, iters = positive_int(num_starts, "num_starts"), positive_int(num_iters, "num_iters")
    K = positive_int(num_samples, "num_samples")
    rng_post, rng_start = generators(seed_words(key), 2)
    law, current, T_cur, names, how = _current(data_or_result, data, K, prior, rng_post)
    n, m = law.B.shape
    Q = law.Q if np.any(law.Q) else None
    auxes = [fisher_aux(A, B, Q) for A, B in zip(law.A_draws, law.B_draws)]
    p = {"aux": {k: jnp.asarray(np.stack([a[k] for a in auxes])) for k in auxes[0]}, "L": jnp.asarray(law.L),
         "steps": jnp.asarray([T_new])}

    table_candidates = None
    if candidates is not None:
        cand_mean, cand_var = _candidates(candidates, m)
        scores = _score(cand_var, cand_mean, p, chunk=_CHUNK)
        order = np.argsort(-scores, kind="stable")
        pick = int(order[0])
        mean, var, eig = cand_mean[pick], cand_var[pick], float(scores[pick])
        rows = {"candidate": order}
        for j, u in enumerate(names):
            rows[f"mean_{u}"] = cand_mean[order, j]
        for j, u in enumerate(names):
            rows[f"var_{u}"] = cand_var[order, j]
        rows["eig"] = scores[order]
        table_candidates = pd.DataFrame(rows)
    else:
        lo, hi = check_var_bounds(var_bounds)
        bound = check_mean_bound(mean_bound)
        with_means = bound is not None
        p.update(llo=np.float64(math.log(lo)), lhi=np.float64(math.log(hi)), mean_bound=np.float64(bound or 0.0))
        c = 2 if with_means else 1
        lower = np.array([0.0, -1.0])[:c, None, None]                   # u ∈ [0, 1], v ∈ [−1, 1]
        z0 = lower + (1.0 - lower) * rng_start.uniform(size=(S, c, 1, m))
        p_dev = jax.device_put(p)
        value_and_grad = compiled(_eig_value_and_grad, z0, p_dev, with_means=with_means)
        z, _ = ascend(lambda zz: value_and_grad(zz, p_dev), z0, iters, LEARNING_RATE, lower, 1.0)
        z = z[:, :, 0]                                                  # (S, c, m)
        snapped = z.copy()
        snapped[:, 0] = np.round(snapped[:, 0])
        if with_means:
            snapped[:, 1] = np.where(snapped[:, 1] >= 0, 1.0, -1.0)
        zc = np.concatenate([z, snapped])
        cand_var = np.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * zc[:, 0])
        cand_mean = bound * zc[:, 1] if with_means else np.zeros_like(cand_var)
        scores = _score(cand_var, cand_mean, p, chunk=_CHUNK)
        if not np.isfinite(scores).any():
            raise DataError("the expected information gain is not finite for any proposal; check the data and "
                            "the bounds")
        pick = int(np.argmax(scores))
        mean, var, eig = cand_mean[pick], np.clip(cand_var[pick], lo, hi), float(scores[pick])

    # expected shrinkage of every parameter's posterior sd, at the centre θ̂
    aux_hat = fisher_aux(law.A, law.B, Q)
    F_new = np.asarray(lti_fisher(None, None, mean[None], var[None], [T_new], aux=aux_hat))
    cov_now = law.L @ law.L.T
    prec_next = np.linalg.inv(cov_now) + F_new
    cov_next = np.linalg.inv(0.5 * (prec_next + prec_next.T))
    sd_now = np.sqrt(np.diag(cov_now))
    sd_next = np.sqrt(np.clip(np.diag(cov_next), 0.0, None))
    table = pd.DataFrame({"parameter": parameter_names(n, m), "estimate": theta_vector(law.A, law.B),
                          "sd_now": sd_now, "sd_next": sd_next, "shrinkage": 1.0 - sd_next / sd_now})
    augmented = InputDesign(np.vstack([current.mean, mean[None]]), np.vstack([current.var, var[None]]))
    report = check_lti(augmented)
    info = {"seconds": time.perf_counter() - t0, "posterior": how, "parameter_law": law.source,
            "num_parameter_draws": int(law.A_draws.shape[0]),
            "entropy_reduction_at_estimate": float(0.5 * _logdet_np(np.eye(len(sd_now)) + law.L.T @ F_new @ law.L)),
            "current_transitions": None if T_cur is None else np.asarray(T_cur).tolist()}
    return NextDesign(mean=np.asarray(mean, float), var=np.asarray(var, float), eig=eig, steps=int(T_new),
                      table=table, candidates=table_candidates, current=current, report=report, info=info,
                      input_names=names)


def _logdet_np(M: np.ndarray) -> float:
    sign, value = np.linalg.slogdet(0.5 * (M + M.T))
    return float(value) if sign > 0 else float("-inf")
