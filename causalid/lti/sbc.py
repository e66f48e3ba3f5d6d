r"""Simulation-based calibration problem of the LTI wing (:mod:`causalid.verify.sbc`).

:func:`lti_problem` — NUTS with the Kalman likelihood of :func:`causalid.models.lti.lti_model`,
configured as ``identify_lti(method="bayes")``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

import jax.numpy as jnp
import numpy as np
from numpyro import handlers

from causalid._checks import positive_int
from causalid._x64 import float64
from causalid.errors import DataError
from causalid.models.lti import LTIModelConfig, LTIPrior, lti_model
from causalid.verify.sbc import SBCProblem, nuts_posterior, trace_sites

__all__ = ["lti_problem"]


# identify_lti(method="bayes") runs NUTS with target_accept_prob=0.85 and a dense mass matrix
# (causalid/infer/lti.py, _bayes)
_LTI_TARGET_ACCEPT = 0.85


@functools.lru_cache(maxsize=16)
def _lti_engine(config, prior, law_key, nuts):
    return nuts_posterior(_lti_program(config, prior, law_key), **dict(nuts))


@float64
def lti_problem(
    num_envs: int = 2,
    num_steps: int = 20,
    *,
    state_dim: int = 1,
    input_dim: int = 1,
    num_trajectories: int = 1,
    input_var=None,
    input_mean=None,
    obs_noise: float | bool | Literal["latent"] = 0.0,
    process_noise: bool = False,
    prior=None,
    simulation_prior=None,
    simulation_obs_noise: float | None = None,
    num_warmup: int = 300,
    max_tree_depth: int | tuple[int, int] = 10,
    dense_mass: bool = False,
) -> SBCProblem:
    r"""SBC of NUTS on the LTI model, configured as ``identify_lti(method="bayes")``.

    The engine is NUTS on :func:`causalid.models.lti.lti_model` with full-state observation
    (``obs_matrix="identity"``, so :math:`\tilde A = A`, :math:`\tilde B = B`), a known
    designed input law :math:`u_t \sim N(\mu_e, \mathrm{diag}\,\sigma^2_e)` per environment,
    the state marginalised by the Kalman filter (the program's likelihood for traced data) and
    target acceptance 0.85 as in the engine; initial values uniform in :math:`(-2, 2)` on the
    unconstrained scale (the engine starts from its moment estimate, which is not vmap-able).  Truth and data come from the
    same program (``y=None``) under ``simulation_prior`` and ``simulation_obs_noise``.

    Sign: with zero input means the likelihood and prior are invariant to flipping the sign
    of any column of :math:`B`, so the posterior is symmetric and a chain explores one of the
    mirror modes (the engine aligns signs with its start instead).  The ranked quantity is then
    :math:`B` with every column's sign set by its first entry (a function of the parameters,
    so SBC applies exactly).  With non-zero means :math:`B` is ranked as is.

    Parameters
    ----------
    num_envs, num_steps, num_trajectories : int
        ``E``, ``T`` and ``N``; data ``y`` have shape ``(E, N, T, n)``.
    state_dim, input_dim : int
        ``n`` (= observed dimension) and ``m``.
    input_var, input_mean : array (E, m), optional
        The design; default variances spread geometrically from 0.5 to 2 over environments
        (channel ``j`` reversed for odd ``j``, so that profiles are not proportional) and zero
        means.
    obs_noise : float, "latent" or bool
        The engine's observation-noise variance ``r``, as ``identify_lti``'s ``obs_noise``
        (``"latent"`` or ``True``: estimated with a half-normal prior).
    process_noise : bool
        Estimate a process-noise variance (``identify_lti``'s ``process_noise``).
    prior, simulation_prior : LTIPrior, optional
        The engine's and the simulator's prior.
    simulation_obs_noise : float, optional
        Observation-noise variance of the simulator, when it should differ from the engine's
        assumption (misspecification); with ``obs_noise="latent"`` it replaces the prior draw.
    num_warmup, max_tree_depth
        NUTS settings (see :func:`nuts_posterior`).
    dense_mass : bool
        The engine adapts a dense mass matrix; NumPyro does that with batched LAPACK kernels,
        which can deadlock inside a vmapped CPU program (see :mod:`causalid.stats._linalg`),
        so SBC uses a diagonal one unless asked (a different preconditioner of the same
        posterior: calibration is unaffected where both mix).

    Returns
    -------
    SBCProblem
        Settings column ``engine="lti_nuts"``.
    """
    E = positive_int(num_envs, "num_envs")
    T = positive_int(num_steps, "num_steps")
    N = positive_int(num_trajectories, "num_trajectories")
    n = positive_int(state_dim, "state_dim")
    m = positive_int(input_dim, "input_dim")
    if T < 2:
        raise DataError(f"num_steps={num_steps}; a trajectory needs at least 2 steps")
    if input_var is None:
        ramp = np.geomspace(0.5, 2.0, E)
        input_var = np.stack([ramp if j % 2 == 0 else ramp[::-1] for j in range(m)], axis=1)
    var = np.asarray(input_var, np.float64)
    mean = np.zeros((E, m)) if input_mean is None else np.asarray(input_mean, np.float64)
    for label, a in (("input_var", var), ("input_mean", mean)):
        if a.shape != (E, m) or not np.all(np.isfinite(a)):
            raise DataError(
                f"{label} must be a finite (num_envs, input_dim) = ({E}, {m}) array; "
                f"got shape {a.shape}"
            )
    if not np.all(var > 0):
        raise DataError("input_var must be positive")
    prior = LTIPrior() if prior is None else prior
    simulation_prior = prior if simulation_prior is None else simulation_prior
    for label, p in (("prior", prior), ("simulation_prior", simulation_prior)):
        if not isinstance(p, LTIPrior):
            raise DataError(f"{label} must be an LTIPrior; got {type(p).__name__}")
    if isinstance(obs_noise, bool):  # identify_lti's obs_noise=True estimates the variance
        obs_noise = "latent" if obs_noise else 0.0
    if not (obs_noise == "latent" or (not isinstance(obs_noise, str) and float(obs_noise) >= 0)):
        raise DataError(f"obs_noise={obs_noise!r}; give a variance >= 0 or 'latent'")
    if simulation_obs_noise is not None and not float(simulation_obs_noise) >= 0:
        raise DataError(f"simulation_obs_noise={simulation_obs_noise}; it must be >= 0")
    noise_free = obs_noise == 0 and not process_noise
    if noise_free and m < n:
        raise DataError(
            f"{m} input(s) drive {n} states with no noise: the likelihood is "
            "degenerate; set obs_noise or process_noise"
        )
    base = {
        "state_dim": n,
        "input_dim": m,
        "obs_dim": n,
        "num_envs": E,
        "num_trajectories": N,
        "num_steps": T,
        "input_law": "known",
        "obs_matrix": "identity",
    }
    fit_cfg = LTIModelConfig(
        **base,
        obs_noise_var=obs_noise if obs_noise == "latent" else float(obs_noise),
        process_noise_var="latent" if process_noise else 0.0,
    )
    sim_noise = (
        fit_cfg.obs_noise_var if simulation_obs_noise is None else float(simulation_obs_noise)
    )
    sim_cfg = fit_cfg._replace(obs_noise_var=sim_noise)
    nuts = (
        ("num_warmup", int(num_warmup)),
        ("max_tree_depth", max_tree_depth),
        ("target_accept_prob", _LTI_TARGET_ACCEPT),
        ("dense_mass", bool(dense_mass)),
    )
    law_key = (tuple(map(tuple, mean)), tuple(map(tuple, var)))
    posterior_draws = _lti_engine(fit_cfg, prior, law_key, nuts)

    params = ("A", "B") + tuple(
        s
        for s, v in (
            ("process_noise_var", fit_cfg.process_noise_var),
            ("obs_noise_var", fit_cfg.obs_noise_var),
        )
        if v == "latent"
    )
    # a fixed simulated noise variance is the truth of a latent one
    fixed = (
        ()
        if sim_cfg.obs_noise_var == "latent" or "obs_noise_var" not in params
        else (("obs_noise_var", float(sim_cfg.obs_noise_var)),)
    )
    # the prior of (A, B, latent variances) does not depend on a fixed noise level: drawing it
    # from a config with the noise set to 0 lets a misspecified run share the compiled prior
    prior_cfg = (
        sim_cfg if sim_cfg.obs_noise_var == "latent" else sim_cfg._replace(obs_noise_var=0.0)
    )
    return SBCProblem(
        _lti_prior(prior_cfg, simulation_prior, law_key, params, fixed),
        _lti_simulate(sim_cfg, law_key),
        posterior_draws,
        _lti_quantities(params, not np.any(mean)),
        settings={"engine": "lti_nuts"},
    )


def _lti_program(config, prior, law_key):
    mean, var = (jnp.asarray(np.array(a)) for a in law_key)
    return functools.partial(lti_model, config=config, prior=prior, input_mean=mean, input_var=var)


@functools.lru_cache(maxsize=16)
def _lti_prior(config, prior, law_key, params, fixed) -> Callable:
    model = _lti_program(config, prior, law_key)
    drawn = [s for s in params if s not in dict(fixed)]

    def prior_sample(key):
        theta = trace_sites(handlers.trace(handlers.seed(model, key)).get_trace(), drawn)
        return {**theta, **{k: jnp.asarray(v) for k, v in fixed}}

    return prior_sample


@functools.lru_cache(maxsize=16)
def _lti_simulate(config, law_key) -> Callable:
    model = _lti_program(config, LTIPrior(), law_key)  # every parameter is substituted

    def simulate(key, theta):
        return handlers.seed(handlers.substitute(model, data=theta), key)()

    return simulate


@functools.lru_cache(maxsize=16)
def _lti_quantities(params: tuple[str, ...], symmetric: bool) -> Callable:
    """The parameters, with every column of B signed by its first entry when ``symmetric``."""

    def quantities(theta):
        out = {k: theta[k] for k in params}
        if symmetric:
            out["B"] = theta["B"] * jnp.where(theta["B"][..., :1, :] < 0, -1.0, 1.0)
        return out

    return quantities
