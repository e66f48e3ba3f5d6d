r"""Fitting multi-environment HMMs: EM with vmapped restarts, MAP and NUTS, with label alignment.

The front door is :func:`fit_hmm`.  Engines:

* ``"em"`` — Baum-Welch.  The E-step runs the exact forward-backward pass of
  :mod:`causalid.dynamics.hmm` on every sequence (``vmap`` over environments and sequences);
  the M-step pools the expected sufficient statistics over environments for a shared mechanism
  and keeps them per environment for a varying one.  Missing Gaussian channels enter through
  their conditional expectations given the observed channels and the state (exact EM for the
  observed-data likelihood).  ``num_restarts`` random starts run at once (``vmap``), each
  frozen when its log-likelihood gain drops below ``tol``; the best is kept.
* ``"map"`` — the maximum a-posteriori point of :func:`causalid.models.hmm.hmm_model` (its
  hierarchical priors included) by BFGS on the unconstrained parameters, started from EM.
  Input-driven transitions are fitted this way (``"em"`` has no closed-form M-step for them).
* ``"nuts"`` — NUTS over the same program, started at the MAP point, returning an arviz
  InferenceData whose draws are label-aligned to the MAP states.

Label switching never reaches the user: states are matched across environments (when both
mechanisms vary), restarts and posterior draws by the Hungarian algorithm on the emission
parameters, then put in a canonical order (increasing first emission mean / rate).
"""

from __future__ import annotations

import functools
import threading
import warnings
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from causalid._compile import compiled, to_device
from causalid._progress import show_progress
from causalid._x64 import float64
from causalid.errors import ConvergenceWarning, DataError
from causalid.hmm.data import SequenceData
from causalid.hmm.em import (
    canonical_order,
    emission_signature,
    match_states,
    min_covar_diag,
    numpy_params,
    permute_states,
    run_em,
)
from causalid.hmm.result import HMMResult
from causalid.models.hmm import (
    CategoricalEmissions,
    GaussianEmissions,
    HMMConfig,
    HMMParams,
    HMMPrior,
    PoissonEmissions,
    expand_params,
    has_partial_rows,
    hmm_model,
    sequence_log_likelihoods,
    sites_from_params,
)

__all__ = ["fit_hmm", "vary_from_shared"]


# ----------------------------------------------------------------------------- options


def vary_from_shared(shared) -> tuple:
    """Which mechanisms vary across environments, from ``fit_hmm``'s ``shared=`` option.

    ``"all"`` (one HMM for every environment), ``"transitions"`` (emissions vary),
    ``"emissions"`` (transitions vary), ``"none"`` (both vary), or a tuple of the shared
    mechanism names.
    """
    names = ("transitions", "emissions")
    if isinstance(shared, str):
        table = {"all": names, "none": (), "transitions": ("transitions",), "emissions": ("emissions",)}
        if shared == "both":  # in causalid "both" always means both mechanisms *vary*
            raise DataError("shared='both' is ambiguous: 'both' means both mechanisms vary elsewhere in "
                            "causalid; give shared='all' (one HMM) or shared='none' (both vary)")
        if shared not in table:
            raise DataError(f"shared must be 'all', 'transitions', 'emissions' or 'none'; got {shared!r}")
        shared = table[shared]
    shared = tuple(shared)
    bad = [s for s in shared if s not in names]
    if bad:
        raise DataError(f"shared may name only 'transitions' and 'emissions'; got {bad}")
    return tuple(n for n in names if n not in shared)


def _check_values(data: SequenceData, emission: str, num_categories):
    y = data.y[~np.isnan(data.y)]
    if emission in ("poisson", "categorical"):
        bad = (y < 0) | (y != np.round(y))
        if bad.any():
            col = int(np.argwhere(((data.y < 0) | (data.y != np.round(data.y))) & ~np.isnan(data.y))[0, -1])
            raise DataError(f"{emission} emissions need non-negative integers; column '{data.names[col]}' has "
                            f"{y[bad][0]:g}")
    if emission == "categorical":
        top = int(y.max()) + 1 if y.size else 2
        if num_categories is None:
            num_categories = max(top, 2)
        elif top > num_categories:
            raise DataError(f"num_categories={num_categories} but the data contain symbol {top - 1}")
    if emission == "gaussian" and y.size and np.nanstd(data.y) == 0:
        raise DataError("every observed value is the same; a Gaussian HMM cannot be fitted to constant data")
    return num_categories



# ----------------------------------------------------------------------- initialisation


def _initial_params(key, data: SequenceData, config: HMMConfig, R: int) -> HMMParams:
    """``R`` starting points (NumPy arrays shaped ``(R, E, ...)``): restart 0 places states at
    quantiles of the pooled data, the others at random observed rows (Gaussian / Poisson) or
    random symbol profiles."""
    K, D, E = config.num_states, config.obs_dim, config.num_envs
    # the key's own words seed NumPy (drawing an integer from it would compile a JAX program)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    valid = np.arange(data.num_steps)[None, None, :] < data.lengths[..., None]
    rows = data.y[valid]  # (rows, D)
    col_mean = np.nanmean(rows, axis=0)
    filled = np.where(np.isnan(rows), col_mean, rows)
    off = 0.1 / max(K - 1, 1)
    trans = np.full((R, K, K), off) + (0.9 - off) * np.eye(K)
    if K == 1:
        trans[:] = 1.0
    trans[1:] = trans[1:] * rng.uniform(0.7, 1.3, size=(R - 1, K, K))
    trans /= trans.sum(-1, keepdims=True)
    init = np.full((R, K), 1.0 / K)
    order = np.argsort(filled[:, 0], kind="stable")
    qs = order[((np.arange(K) + 0.5) / K * len(order)).astype(int)]
    picks = np.stack([qs] + [rng.choice(len(filled), size=K, replace=len(filled) < K) for _ in range(R - 1)])
    if config.emission == "gaussian":
        var = np.nanvar(rows, axis=0)
        var = np.where(var > 0, var, 1.0)
        cov = np.cov(filled.T).reshape(D, D) if config.covariance == "full" and D > 1 else np.diag(var)
        cov = cov + 1e-6 * np.diag(var)
        means = filled[picks]  # (R, K, D)
        emissions = GaussianEmissions(means, np.broadcast_to(cov, (R, K, D, D)).copy())
    elif config.emission == "poisson":
        emissions = PoissonEmissions(filled[picks] + 0.1 + 0.1 * np.nanmean(rows, axis=0))
    else:
        C = config.num_categories
        probs = rng.dirichlet(np.ones(C) * 2.0, size=(R, K, D))
        freq = np.stack([np.bincount(filled[:, d].astype(int), minlength=C)[:C] for d in range(D)]) + 1.0
        freq = freq / freq.sum(-1, keepdims=True)
        probs[0] = 0.5 * freq[None] + 0.5 * np.eye(C)[np.arange(K) % C][:, None, :]
        emissions = CategoricalEmissions(probs / probs.sum(-1, keepdims=True))
    return jax.tree.map(lambda v: np.broadcast_to(v[:, None], (R, E) + v.shape[1:]),
                        HMMParams(init, trans, emissions))


# ---------------------------------------------------------------------------- alignment


# ----------------------------------------------------------------------------- front door


@float64
def fit_hmm(data, num_states: int, emission: str = "gaussian", *, shared="all", covariance: str = "full",
            method: str = "em", num_restarts: int = 10, max_iters: int = 500, tol: float = 1e-6,
            key=0, num_categories: int | None = None, min_covar: float = 1e-6,
            num_warmup: int = 500, num_samples: int = 500, num_chains: int = 2,
            prior: HMMPrior | None = None, progress: bool | None = None, init_params=None):
    r"""Fit a (multi-environment) HMM; see the module docstring for the engines.

    Parameters
    ----------
    data : array, list of sequences, dict, DataFrame, SequenceData or LTIData
        A ``(T, D)`` / ``(T,)`` array, a list of sequences (one environment), a list of lists or a
        dict ``{environment: sequences}``, or a data object.  NaN values are missing.
    num_states : int
    emission : {"gaussian", "poisson", "categorical"}
    shared : {"all", "transitions", "emissions", "none"} or tuple
        Mechanisms shared by all environments (see :func:`vary_from_shared`).
    covariance : {"full", "diag"}
        Gaussian emissions.
    method : {"em", "map", "nuts"}
    num_restarts : int
        EM random starts, run at once; the best log-likelihood is kept.  ``0`` runs only the
        ``init_params`` starts.
    max_iters : int
        EM iterations per restart (``"map"``: BFGS iterations).
    tol : float
        EM stops a restart when an iteration gains less than ``tol`` nats (``0``: run all).
    key : int or PRNGKey
    num_categories : int, optional
        Categorical symbols (default: largest symbol + 1).
    min_covar : float
        Added to Gaussian covariance diagonals in the M-step, relative to each channel's variance.
    num_warmup, num_samples, num_chains : int
        NUTS settings.
    prior : HMMPrior
        Priors of ``"map"`` and ``"nuts"``.
    progress : bool or None
        (None, the default: shown when someone watches, see :mod:`causalid._progress`.)
        Show a progress bar.
    init_params : HMMParams or list of HMMParams, optional
        Extra EM starting points in the per-environment form of :attr:`HMMResult.params`
        (e.g. a nested model's fit), run besides the ``num_restarts`` random ones (the flat
        dictionaries of :meth:`HMMParams.to_dict` are accepted too).

    Returns
    -------
    HMMResult
    """
    progress = show_progress(progress)

    if method not in ("em", "map", "nuts"):
        raise DataError(f"method must be 'em', 'map' or 'nuts'; got {method!r}")
    prior = HMMPrior() if prior is None else prior
    data = SequenceData.coerce(data)
    if int(num_states) < 1:
        raise DataError(f"num_states must be at least 1; got {num_states}")
    if emission not in ("gaussian", "poisson", "categorical"):
        raise DataError(f"emission must be 'gaussian', 'poisson' or 'categorical'; got {emission!r}")
    num_categories = _check_values(data, emission, num_categories)
    if int(num_restarts) < (0 if init_params else 1):
        raise DataError(f"num_restarts must be at least {0 if init_params else 1}"
                        f"{' with init_params' if init_params else ''}; got {num_restarts}")
    vary = vary_from_shared(shared)
    config = HMMConfig(int(num_states), emission, data.obs_dim, data.num_envs, vary, covariance,
                       num_categories, len(data.input_names))
    if isinstance(key, int):
        key = jax.random.PRNGKey(key)
    if data.inputs is not None and method == "em":
        raise DataError("input-driven transitions have no closed-form EM step; use method='map' or 'nuts'")
    y = to_device(data.y)
    lengths = to_device(data.lengths)
    mc = min_covar_diag(data, min_covar)

    partial = has_partial_rows(data.y)
    if data.inputs is None:
        one = isinstance(init_params, (dict, HMMParams))
        starts = [HMMParams.from_dict(p) for p in ([init_params] if one else list(init_params or []))]
        params, _, trace, restart_ll, n_iter, converged = _fit_em(
            key, data, config, y, lengths, num_restarts, max_iters, tol, mc, partial, progress, starts)
    else:
        params = _inputs_start(key, data, config)
        trace, restart_ll, n_iter, converged = None, None, 0, True
    posterior = None
    if method in ("map", "nuts"):
        params, converged_map = _fit_map(params, data, config, prior, max_iters)
        converged = converged and converged_map
    if method == "nuts":
        params, posterior = _fit_nuts(key, params, data, config, prior, num_warmup, num_samples, num_chains,
                                      progress)
    params = numpy_params(params)
    args = (jax.tree.map(to_device, params), y, lengths,
            None if data.inputs is None else to_device(data.inputs))
    ll_seq = np.asarray(compiled(_sequence_lls, *args, config=config, partial=partial)(*args))
    return HMMResult(
        params=params, config=config, log_likelihood=float(ll_seq.sum()),
        num_observations=data.num_observations, method=method, names=data.names, env_names=data.env_names,
        converged=bool(converged), num_iters=int(n_iter), trace=trace, restart_log_likelihoods=restart_ll,
        posterior=posterior, settings={"num_restarts": num_restarts, "max_iters": max_iters, "tol": tol,
                                       "min_covar": min_covar, "shared": [m for m in ("transitions", "emissions")
                                                                           if m not in vary]},
    )


@functools.partial(jax.jit, static_argnames=("config", "partial"))
def _sequence_lls(params, y, lengths, inputs, *, config, partial):
    """:func:`sequence_log_likelihoods` compiled once (run eagerly, its dozens of small
    operations each compiled on first use and cost a cold fit seconds)."""
    return sequence_log_likelihoods(params, y, config, lengths, inputs, partial=partial)


@functools.partial(jax.jit, static_argnames=("config", "partial"))
def _restart_env_lls(params, y, lengths, *, config, partial):
    """Per-environment log-likelihoods ``(R, E)`` of a batch of restarts."""
    return jax.vmap(lambda p: jnp.sum(sequence_log_likelihoods(p, y, config, lengths, partial=partial), axis=1))(
        params)


def _fit_em(key, data, config, y, lengths, R, max_iters, tol, min_covar, partial, progress, starts=None):
    # starting points assembled in NumPy and moved once (eager jnp.stack / concatenate would each
    # compile a small program per shape)
    given = [jax.tree.map(lambda v: np.asarray(v)[None], s._replace(trans_weights=None)) for s in starts or []]
    random = [_initial_params(key, data, config, int(R))] if int(R) > 0 else []  # fit_hmm refuses R = 0 alone
    parts = random + given
    params = jax.tree.map(lambda *v: to_device(np.concatenate(v)), *parts)
    # the fit's final log-likelihood (fit_hmm) compiles on another core while EM runs: a cold fit
    # waited about 0.5 s for it afterwards, and EM's scans keep about one core busy
    shapes = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape[1:], v.dtype), params)
    # (the thread enters float64 again: the setting is per thread)
    prefetch = threading.Thread(target=float64(compiled), args=(_sequence_lls, shapes, y, lengths, None),
                                kwargs={"config": config, "partial": partial}, daemon=True)
    params, ll, done, trace = run_em(params, y, lengths, config, max_iters=max_iters, tol=tol,
                                     min_covar=min_covar, partial=partial, progress=progress,
                                     while_running=prefetch.start)
    prefetch.join()  # run_em runs at least one block, so the thread has started
    ll = np.where(np.isfinite(ll), ll, -np.inf)
    best = int(np.argmax(ll))
    n_iter = int(np.sum(np.isfinite(trace[:, best])))
    converged = bool(done[best]) or tol <= 0
    if config.trans_vary and config.emis_vary and config.num_envs > 1:
        # nothing is shared: every environment is its own problem, so keep each one's best restart
        per_env = _restart_env_lls(params, y, lengths, config=config, partial=partial)
        pick = np.argmax(np.where(np.isfinite(per_env), per_env, -np.inf), axis=0)  # (E,)
        env = np.arange(config.num_envs)
        best_params = jax.tree.map(lambda v: np.asarray(v)[pick, env], params)
        converged = bool(np.all(done[pick])) or tol <= 0
    else:
        params = numpy_params(params)  # indexed below (eagerly in JAX: compiles)
        best_params = jax.tree.map(lambda v: v[best], params)
        _check_restarts(params, ll, best, config)
    best_params = canonical_order(best_params, config)
    return best_params, float(ll[best]), trace[:, best], ll, n_iter, converged


def _check_restarts(params, ll, best, config: HMMConfig):
    """Warn when restarts reach about the best likelihood with different parameters, or when
    only one restart of several finds the best optimum."""
    R = len(ll)
    if R < 2:
        return
    close = np.flatnonzero(ll >= ll[best] - max(1e-3, 1e-6 * abs(ll[best])))
    ref = canonical_order(jax.tree.map(lambda v: v[best], params), config)
    sig_ref = emission_signature(ref, config.emission)
    for r in close:
        if r == best:
            continue
        other = canonical_order(jax.tree.map(lambda v, r=r: v[r], params), config)
        gap = np.max(np.abs(emission_signature(other, config.emission) - sig_ref))
        if gap > 1e-2 * (1 + np.max(np.abs(sig_ref))):
            warnings.warn(f"EM restarts disagree: restart {r} reaches the best log-likelihood "
                          f"({ll[best]:.4f}) with different state parameters; the model may be weakly "
                          "identified (fewer states, more data)", ConvergenceWarning, stacklevel=3)
            return
    if len(close) == 1 and R >= 5:
        second = np.sort(ll)[-2]
        warnings.warn(f"only 1 of {R} EM restarts reached the best log-likelihood {ll[best]:.4f} (next best "
                      f"{second:.4f}); the optimum may not be global: increase num_restarts",
                      ConvergenceWarning, stacklevel=3)


def _inputs_start(key, data, config):
    R = 1
    p = jax.tree.map(lambda v: v[0], _initial_params(key, data, replace(config, input_dim=0), R))
    return p._replace(trans_weights=np.zeros((config.num_states, config.input_dim, config.num_states)))


# ------------------------------------------------------------------------------ MAP / NUTS


def _model_kwargs(data: SequenceData, config, prior):
    return {"config": config, "lengths": jnp.asarray(data.lengths), "prior": prior,
            "inputs": None if data.inputs is None else jnp.asarray(data.inputs)}


def _sites_init(params, config):
    return sites_from_params(jax.tree.map(jnp.asarray, params), config)


def _fit_map(params, data, config, prior, max_iters):
    """BFGS on the unconstrained sites of :func:`hmm_model`, started at ``params``."""
    from jax.scipy.optimize import minimize
    from numpyro.infer.util import initialize_model

    kwargs = _model_kwargs(data, config, prior)
    y = jnp.asarray(data.y)
    info = initialize_model(jax.random.PRNGKey(0), hmm_model, model_args=(y,), model_kwargs=kwargs,
                            init_strategy=_init_to(_sites_init(params, config)))
    flat, unravel = ravel_pytree(info.param_info.z)
    potential = info.potential_fn

    @jax.jit
    def run(x0):
        return minimize(lambda x: potential(unravel(x)), x0, method="BFGS", options={"maxiter": max(50, max_iters)})

    res = run(flat)
    z = unravel(res.x)
    constrained = info.postprocess_fn(z)
    out = expand_params(constrained, config)
    converged = bool(res.success) and bool(jnp.isfinite(res.fun))
    if not converged:
        warnings.warn(f"MAP optimisation stopped without converging (status {int(res.status)}, "
                      f"{int(res.nit)} iterations); raise max_iters or check the model", ConvergenceWarning,
                      stacklevel=3)
    return canonical_order(out, config), converged


def _init_to(values):
    from numpyro.infer.initialization import init_to_value

    return init_to_value(values={k: v for k, v in values.items()})


def _fit_nuts(key, params, data, config, prior, num_warmup, num_samples, num_chains, progress):
    import arviz as az
    from numpyro.infer import MCMC, NUTS

    kwargs = _model_kwargs(data, config, prior)
    kernel = NUTS(hmm_model, init_strategy=_init_to(_sites_init(params, config)), dense_mass=False,
                  target_accept_prob=0.85)
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method="vectorized" if num_chains > 1 else "sequential", progress_bar=progress)
    mcmc.run(key, jnp.asarray(data.y), **kwargs)
    samples = mcmc.get_samples(group_by_chain=True)
    # per-draw parameters, aligned to the MAP labels
    flat = {k: np.asarray(v).reshape((-1,) + np.shape(v)[2:]) for k, v in samples.items()}
    S = next(iter(flat.values())).shape[0]
    draws = jax.vmap(lambda s: expand_params(s, config))({k: jnp.asarray(v) for k, v in flat.items()})
    draws = numpy_params(draws)
    ref_sig = emission_signature(params, config.emission).reshape(config.num_states, -1) if not (
        config.emis_vary) else emission_signature(params, config.emission).transpose(1, 0, 2).reshape(
        config.num_states, -1)
    aligned = []
    for s in range(S):
        one = jax.tree.map(lambda v, s=s: v[s], draws)
        sig = emission_signature(one, config.emission)
        sig = sig.reshape(config.num_states, -1) if not config.emis_vary else sig.transpose(1, 0, 2).reshape(
            config.num_states, -1)
        aligned.append(permute_states(one, match_states(ref_sig, sig)))
    aligned = jax.tree.map(lambda *v: np.stack(v), *aligned)
    post = {k: v.reshape((num_chains, num_samples) + v.shape[1:]) for k, v in aligned.to_dict().items()}
    idata = az.from_dict(posterior=post, sample_stats={
        "diverging": np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])})
    if num_chains > 1:
        rhat = az.rhat(idata)
        worst = max(float(np.nanmax(rhat[v].values)) for v in rhat.data_vars)
        if worst > 1.05:
            warnings.warn(f"NUTS chains do not mix (largest R-hat {worst:.3f} after label alignment); run more "
                          "warmup/samples or simplify the model", ConvergenceWarning, stacklevel=3)
    mean = jax.tree.map(lambda v: v.mean(axis=0), aligned)
    mean = mean._replace(init=mean.init / mean.init.sum(-1, keepdims=True),
                         trans=mean.trans / mean.trans.sum(-1, keepdims=True))
    return mean, idata


# ------------------------------------------------------------------ parametric bootstrap


