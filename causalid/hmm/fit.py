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
from dataclasses import asdict, replace

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from causalid._checks import check_channels, positive_int
from causalid._compile import compiled, to_device
from causalid._progress import show_progress
from causalid._x64 import float64
from causalid.errors import ConvergenceWarning, DataError
from causalid.hmm.data import SequenceData
from causalid.hmm.em import (
    EMPrior,
    canonical_order,
    conjugate_prior,
    emission_signature,
    match_states,
    min_covar_diag,
    numpy_params,
    permute_states,
    run_em,
    state_occupancy,
)
from causalid.hmm.starts import DegenerateFitWarning, degeneracy, initial_params
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
    stationary_distribution,
)

__all__ = ["SCREEN_ITERS", "fit_hmm", "fit_hmm_batch", "vary_from_shared"]


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
# (the starting points themselves: causalid.hmm.starts)


# ---------------------------------------------------------------------------- alignment


# ----------------------------------------------------------------------------- front door

#: EM iterations that every start runs before the best few are continued (see :func:`fit_hmm`).
SCREEN_ITERS = 10


def _check_size(data: SequenceData, config: HMMConfig, num_categories) -> None:
    """Refuse models with more states or free parameters than the data can carry."""
    K, n = config.num_states, data.num_observations
    values = int(np.sum(~np.isnan(data.y[np.arange(data.num_steps)[None, None, :] < data.lengths[..., None]])))
    if K > n:
        raise DataError(f"num_states={K} but the data have only {n} observed step(s); a state needs steps to "
                        "describe: use fewer states")
    p = config.num_params()
    if p >= values:
        raise DataError(f"a {K}-state {config.emission} HMM has {p} free parameters but the data have only "
                        f"{values} observed value(s); use fewer states (or more data)")


def _initial_option(initial, K: int, E: int):
    """(config name, fixed initial distribution (E, K) or None) of ``fit_hmm``'s ``initial``."""
    if isinstance(initial, str):
        if initial not in ("free", "stationary"):
            raise DataError(f"initial must be 'free', 'stationary' or an array of {K} probabilities; got {initial!r}")
        return initial, None
    a = np.asarray(initial, dtype=float)
    if a.ndim == 1:
        a = np.broadcast_to(a, (E, K))
    if a.shape != (E, K) or not np.all(np.isfinite(a)) or np.any(a < 0) or \
            not np.allclose(a.sum(-1), 1.0, atol=1e-8):
        raise DataError(f"initial as an array must hold {K} non-negative probabilities summing to 1 (or one such "
                        f"row per environment, shape ({E}, {K})); got shape {np.shape(initial)}")
    return "fixed", np.array(a)


@float64
def fit_hmm(data, num_states: int, emission: str = "gaussian", *, shared="all", covariance: str = "full",
            method: str = "em", initial="free", num_restarts: int = 30, num_refine: int = 8,
            max_iters: int = 500, tol: float = 1e-6, key=0, num_categories: int | None = None,
            min_covar: float = 1e-3, num_warmup: int = 500, num_samples: int = 500, num_chains: int = 2,
            prior: HMMPrior | None = None, em_prior=None, progress: bool | None = None, init_params=None):
    r"""Fit a (multi-environment) HMM; see the module docstring for the engines.

    Parameters
    ----------
    data : array, list of sequences, dict, DataFrame, SequenceData or LTIData
        A ``(T, D)`` / ``(T,)`` array, a list of sequences (one environment), a list of lists or a
        dict ``{environment: sequences}``, or a data object.  NaN values are missing.
    num_states : int
        A positive whole number, at most the number of observed steps, with fewer free
        parameters than observed values.
    emission : {"gaussian", "poisson", "categorical"}
    shared : {"all", "transitions", "emissions", "none"} or tuple
        Mechanisms shared by all environments (see :func:`vary_from_shared`).
    covariance : {"full", "diag"}
        Gaussian emissions.
    method : {"em", "map", "nuts"}
    initial : {"free", "stationary"} or array
        The initial state distribution: estimated (``"free"``, the EM default), the stationary
        distribution of the transition matrix (``"stationary"``: EM, then the exact stationary
        likelihood maximised directly over every parameter by L-BFGS, started from the EM fit),
        or given probabilities ``(K,)`` / ``(E, K)`` (kept fixed by EM).  Only ``"free"`` with
        ``method="map"`` / ``"nuts"``.
    num_restarts : int
        Data-driven EM starting points (:func:`causalid.hmm.starts.initial_params`).  All of them
        run :data:`SCREEN_ITERS` EM iterations in one vmapped program; the ``num_refine`` best
        with distinct states (and every ``init_params`` start) continue to convergence.  When at
        most 2 of them reach the best optimum (within 0.01 nats), a second, independent set of
        ``num_restarts`` starts is screened and continued the same way, and a ConvergenceWarning
        is raised if still at most 2 of all the continued starts reach the best.  With a free
        initial distribution that ends at a state, EM is continued from the best fit with the
        start moved to each state in turn (EM alone cannot move it).  ``0`` runs only the
        ``init_params`` starts.
    num_refine : int
        Starts continued to convergence.
    max_iters : int
        EM iterations per start (``"map"``: BFGS iterations).
    tol : float
        EM stops a start when an iteration gains less than ``tol`` nats (``0``: run all).
    key : int or PRNGKey
    num_categories : int, optional
        Categorical symbols (default: largest symbol + 1).
    min_covar : float
        The variance floor: ``min_covar`` times each channel's (pooled) variance is added to the
        diagonal of every Gaussian covariance in the M-step (default 1e-3: a state's standard
        deviation is at least about 3 % of the channel's).  It keeps the likelihood bounded on
        repeated or coded values; it is recorded in ``settings["variance_floor"]``.  A state
        that ends at the floor is reported as degenerate.
    num_warmup, num_samples, num_chains : int
        NUTS settings.
    prior : HMMPrior
        Priors of ``"map"`` and ``"nuts"``.
    em_prior : None, "weak" or EMPrior
        MAP-EM: weak conjugate priors in the M-step (Dirichlet on the initial distribution and
        the transition rows, normal-inverse-Wishart on Gaussian emissions, gamma on Poisson
        rates, Dirichlet on symbol probabilities; :class:`causalid.hmm.em.EMPrior`), which keep
        every state's covariance away from zero; EM then climbs the log posterior (its trace
        and convergence test include the log prior), while ``log_likelihood`` stays the data's.
        Recorded in ``settings["em_prior"]``.  Not with ``initial="stationary"``.
    progress : bool or None
        (None, the default: shown when someone watches, see :mod:`causalid._progress`.)
        Show a progress bar.
    init_params : HMMParams or list of HMMParams, optional
        Extra EM starting points in the per-environment form of :attr:`HMMResult.params`
        (e.g. a nested model's fit), always continued to convergence (the flat dictionaries of
        :meth:`HMMParams.to_dict` are accepted too).

    Returns
    -------
    HMMResult
        ``degenerate`` lists what makes the fit degenerate (an empty state, duplicated states, a
        variance at the floor; see :func:`causalid.hmm.starts.degeneracy`).  A fit with an empty
        or duplicated state is refitted once from three times as many starts; a fit that stays
        degenerate is kept and a :class:`DegenerateFitWarning` says what happened and what to do.

    Examples
    --------
    >>> import numpy as np, causalid
    >>> from causalid.datasets import load_earthquakes
    >>> y = load_earthquakes()["count"].to_numpy()
    >>> fit = causalid.fit_hmm(y, 2, "poisson", initial="stationary", progress=False)
    >>> round(-fit.log_likelihood, 3)
    342.318
    """
    progress = show_progress(progress)

    if method not in ("em", "map", "nuts"):
        raise DataError(f"method must be 'em', 'map' or 'nuts'; got {method!r}")
    prior = HMMPrior() if prior is None else prior
    data = SequenceData.coerce(data)
    num_states = positive_int(num_states, "num_states")
    if emission not in ("gaussian", "poisson", "categorical"):
        raise DataError(f"emission must be 'gaussian', 'poisson' or 'categorical'; got {emission!r}")
    check_channels(data.y, data.names, "column", constant=emission == "gaussian")
    num_categories = _check_values(data, emission, num_categories)
    if isinstance(num_restarts, bool) or not isinstance(num_restarts, (int, np.integer)) or \
            int(num_restarts) < (0 if init_params else 1):
        raise DataError(f"num_restarts must be at least {0 if init_params else 1}"
                        f"{' with init_params' if init_params else ''}; got {num_restarts}")
    num_refine = positive_int(num_refine, "num_refine")
    if isinstance(max_iters, bool) or not isinstance(max_iters, (int, np.integer)):
        raise DataError(f"max_iters must be a positive integer; got {max_iters!r}")
    max_iters = positive_int(max_iters, "max_iters")
    if not (np.isfinite(min_covar) and min_covar >= 0):
        raise DataError(f"min_covar must be a non-negative number; got {min_covar!r}")
    vary = vary_from_shared(shared)
    init_kind, fixed_init = _initial_option(initial, num_states, data.num_envs)
    if init_kind != "free" and method != "em":
        raise DataError(f"initial={initial if isinstance(initial, str) else 'an array'!r} is available with "
                        "method='em'; the map and nuts engines estimate the initial distribution freely")
    config = HMMConfig(num_states, emission, data.obs_dim, data.num_envs, vary, covariance,
                       num_categories, len(data.input_names), init_kind)
    _check_size(data, config, num_categories)
    if em_prior is not None:
        if isinstance(em_prior, str) and em_prior == "weak":
            em_prior = EMPrior()
        if not isinstance(em_prior, EMPrior):
            raise DataError(f"em_prior must be None, 'weak' or an EMPrior; got {em_prior!r}")
        if init_kind == "stationary" or method != "em":
            raise DataError("em_prior (MAP-EM) is available with method='em' and a free or given initial "
                            "distribution")
    prior_arrays = None if em_prior is None else conjugate_prior(data, config, em_prior)
    if isinstance(key, int):
        key = jax.random.PRNGKey(key)
    if data.inputs is not None and method == "em":
        raise DataError("input-driven transitions have no closed-form EM step; use method='map' or 'nuts'")
    y = to_device(data.y)
    lengths = to_device(data.lengths)
    mc = min_covar_diag(data, min_covar)

    partial = has_partial_rows(data.y)
    degenerate, refitted = [], False
    if data.inputs is None:
        one = isinstance(init_params, (dict, HMMParams))
        starts = [HMMParams.from_dict(p) for p in ([init_params] if one else list(init_params or []))]
        em_args = (data, config, y, lengths, max_iters, tol, mc, partial, progress, starts, num_refine, fixed_init,
                   prior_arrays)
        fit = _fit_em(key, int(num_restarts), *em_args)
        degenerate = _degeneracy(fit[0], config, y, lengths, partial, mc)
        if int(num_restarts) > 0 and any("empty" in d or "duplicated" in d for d in degenerate):
            # an empty or duplicated state is an optimisation failure: try three times as many starts
            again = _fit_em(jax.random.fold_in(key, 1), 3 * int(num_restarts), *em_args, prefetch_final=False)
            refitted = True
            if again[1] > fit[1] - 1e-9:
                fit = again
                degenerate = _degeneracy(fit[0], config, y, lengths, partial, mc)
        params, _, trace, restart_ll, n_iter, converged = fit
        if init_kind == "stationary":
            params, converged_direct = _maximise_stationary(params, config, y, lengths, partial, mc, max_iters)
            converged = converged and converged_direct
            degenerate = _degeneracy(params, config, y, lengths, partial, mc)
    else:
        params = _inputs_start(key, data, config)
        trace, restart_ll, n_iter, converged = None, None, 0, True
    if degenerate:
        warnings.warn(f"degenerate {num_states}-state fit{' (also after a refit from more starts)' if refitted else ''}"
                      f": {'; '.join(degenerate)}. Fit fewer states, or raise min_covar for a variance at the "
                      "floor; result.degenerate keeps this list", DegenerateFitWarning, stacklevel=3)
    posterior = None
    if method in ("map", "nuts"):
        params, converged_map = _fit_map(params, data, config, prior, max_iters)
        converged = converged and converged_map
    if method == "nuts":
        params, posterior = _fit_nuts(key, params, data, config, prior, num_warmup, num_samples, num_chains,
                                      progress)
    return _result(params, config, data, y, lengths, partial, method, converged=converged, n_iter=n_iter,
                   trace=trace, restart_ll=restart_ll, degenerate=degenerate, posterior=posterior,
                   settings=_settings(num_restarts, num_refine, max_iters, tol, min_covar, mc, emission, init_kind,
                                      refitted, em_prior, vary))


def _settings(num_restarts, num_refine, max_iters, tol, min_covar, floor, emission, init_kind, refitted, em_prior,
              vary) -> dict:
    """The settings a fit records."""
    return {"num_restarts": num_restarts, "num_refine": num_refine, "screen_iters": SCREEN_ITERS,
            "max_iters": max_iters, "tol": tol, "min_covar": min_covar,
            "variance_floor": np.asarray(floor).tolist() if emission == "gaussian" else None,
            "initial": init_kind, "refitted": refitted, "em_prior": None if em_prior is None else asdict(em_prior),
            "shared": [m for m in ("transitions", "emissions") if m not in vary]}


def _result(params, config, data, y, lengths, partial, method, *, converged, n_iter, trace, restart_ll,
            degenerate, settings, posterior=None) -> HMMResult:
    """The :class:`HMMResult` of fitted ``params``, with the exact log-likelihood (a non-finite
    one is reported as degenerate)."""
    params = numpy_params(params)
    args = (jax.tree.map(to_device, params), y, lengths,
            None if data.inputs is None else to_device(data.inputs))
    ll_seq = np.asarray(compiled(_sequence_lls, *args, config=config, partial=partial)(*args))
    if not np.all(np.isfinite(ll_seq)):
        msg = ("the log-likelihood is not finite: a state collapsed onto repeated values (set min_covar > 0 or "
               "em_prior='weak')")
        warnings.warn(f"degenerate {config.num_states}-state fit: {msg}", DegenerateFitWarning, stacklevel=4)
        degenerate = list(degenerate) + [msg]
    return HMMResult(
        params=params, config=config, log_likelihood=float(ll_seq.sum()),
        num_observations=data.num_observations, method=method, names=data.names, env_names=data.env_names,
        converged=bool(converged), num_iters=int(n_iter), trace=trace, restart_log_likelihoods=restart_ll,
        posterior=posterior, degenerate=list(degenerate), settings=settings)


@float64
def fit_hmm_batch(datasets, num_states: int, emission: str = "gaussian", *, keys, shared="all",
                  covariance: str = "full", initial="free", num_restarts: int = 30, num_refine: int = 8,
                  max_iters: int = 500, tol: float = 1e-6, num_categories: int | None = None,
                  min_covar: float = 1e-3) -> list:
    """EM fits of many data sets of one layout (e.g. simulation replicates) in one vectorised
    program: the same results as ``[fit_hmm(d, ..., key=k) for d, k in zip(datasets, keys)]``.

    Every data set's starts (:func:`causalid.hmm.starts.initial_params` with its own key) are
    screened together in one vmapped EM program, each data set's best distinct few are continued
    together, and each result is checked as :func:`fit_hmm` checks it.  A data set whose fit needs
    a refit (an empty or duplicated state), or a batch that cannot share one program (data sets of
    different shapes, sequence lengths or symbol counts, or both mechanisms varying across
    several environments), is fitted one at a time by :func:`fit_hmm`, which gives the same result.

    Parameters
    ----------
    datasets : sequence of data (anything :func:`fit_hmm` accepts)
    keys : sequence of int or PRNGKey
        One key per data set.
    num_states, emission, shared, covariance, initial, num_restarts, num_refine, max_iters, tol,
    num_categories, min_covar
        As :func:`fit_hmm`.

    Returns
    -------
    list of HMMResult
    """
    datas = [SequenceData.coerce(d) for d in datasets]
    keys = [jax.random.PRNGKey(k) if isinstance(k, (int, np.integer)) else k for k in keys]
    if len(keys) != len(datas):
        raise DataError(f"give one key per data set: {len(datas)} data sets, {len(keys)} keys")
    opts = {"shared": shared, "covariance": covariance, "initial": initial, "num_restarts": num_restarts,
            "num_refine": num_refine, "max_iters": max_iters, "tol": tol, "num_categories": num_categories,
            "min_covar": min_covar, "progress": False}
    one = lambda b: fit_hmm(datas[b], num_states, emission, key=keys[b], **opts)
    if not datas:
        return []
    first = datas[0]
    cats = [_check_values(d, emission, num_categories) for d in datas]
    vary = vary_from_shared(shared)
    same = all(d.y.shape == first.y.shape and np.array_equal(d.lengths, first.lengths) and d.inputs is None
               for d in datas) and len(set(cats)) == 1 and len({has_partial_rows(d.y) for d in datas}) == 1
    if not same or (len(vary) == 2 and first.num_envs > 1) or len(datas) == 1 or \
            isinstance(num_restarts, bool) or not isinstance(num_restarts, (int, np.integer)) or num_restarts < 1:
        return [one(b) for b in range(len(datas))]
    for d in datas:  # the checks of fit_hmm, before any work
        check_channels(d.y, d.names, "column", constant=emission == "gaussian")
    num_states = positive_int(num_states, "num_states")
    num_refine = positive_int(num_refine, "num_refine")
    max_iters = positive_int(max_iters, "max_iters")
    init_kind, fixed_init = _initial_option(initial, num_states, first.num_envs)
    config = HMMConfig(num_states, emission, first.obs_dim, first.num_envs, vary, covariance, cats[0], 0, init_kind)
    _check_size(first, config, cats[0])
    B, R, partial = len(datas), int(num_restarts), has_partial_rows(first.y)
    lengths = to_device(first.lengths)
    starts = [initial_params(keys[b], datas[b], config, R) for b in range(B)]
    params = jax.tree.map(lambda *v: np.concatenate(v), *starts)  # (B R, E, ...), data set major
    if fixed_init is not None:
        params = params._replace(init=np.broadcast_to(fixed_init, params.init.shape).copy())
    floors = np.stack([np.asarray(min_covar_diag(d, min_covar)) for d in datas])  # (B, D)
    ys = np.stack([d.y for d in datas])
    em = functools.partial(run_em, lengths=lengths, config=config, tol=tol, partial=partial, batch_y=True)
    screen = R > num_refine and max_iters > SCREEN_ITERS
    if screen:
        params, ll, _, trace0 = em(jax.tree.map(to_device, params), to_device(np.repeat(ys, R, axis=0)),
                                   min_covar=np.repeat(floors, R, axis=0), max_iters=SCREEN_ITERS)
        params = numpy_params(params)
        picks = []
        for b in range(B):
            own = jax.tree.map(lambda v, b=b: v[b * R:(b + 1) * R], params)
            picks.append(b * R + _distinct_best(own, ll[b * R:(b + 1) * R], config, num_refine))
        n = len(picks[0])
        pick = np.concatenate(picks)
        params = jax.tree.map(lambda v: v[pick], params)
        params, ll, done, trace1 = em(jax.tree.map(to_device, params), to_device(np.repeat(ys, n, axis=0)),
                                      min_covar=np.repeat(floors, n, axis=0), max_iters=max_iters - SCREEN_ITERS)
        trace = np.concatenate([trace0[:, pick], trace1])
    else:
        n = R
        params, ll, done, trace = em(jax.tree.map(to_device, params), to_device(np.repeat(ys, R, axis=0)),
                                     min_covar=np.repeat(floors, R, axis=0), max_iters=max_iters)
    params = numpy_params(params)
    ll = np.where(np.isfinite(ll), ll, -np.inf)
    out = []
    for b in range(B):
        sl = slice(b * n, (b + 1) * n)
        own = jax.tree.map(lambda v: v[sl], params)
        best = int(np.argmax(ll[sl]))
        if screen and _few_reached_best(ll[sl]):
            out.append(one(b))  # fit_hmm's second round of starts
            continue
        y = to_device(datas[b].y)
        best_params, tr = jax.tree.map(lambda v: v[best], own), trace[:, sl][:, best]
        converged = bool(done[sl][best]) or tol <= 0
        em_one = functools.partial(run_em, y=y, lengths=lengths, config=config, tol=tol, min_covar=floors[b],
                                   partial=partial)
        polished = _polish_initial(em_one, best_params, float(ll[sl][best]), config, fixed_init, max_iters)
        if polished is not None:
            best_params, _, tr_p, done_p = polished
            tr = np.concatenate([tr[np.isfinite(tr)], tr_p])
            converged = bool(done_p) or tol <= 0
        best_params = canonical_order(best_params, config)
        degenerate = _degeneracy(best_params, config, y, lengths, partial, floors[b])
        if any("empty" in d or "duplicated" in d for d in degenerate):
            out.append(one(b))  # fit_hmm's refit from more starts
            continue
        _check_restarts(own, ll[sl], best, config)
        if init_kind == "stationary":
            best_params, ok = _maximise_stationary(best_params, config, y, lengths, partial, floors[b], max_iters)
            degenerate = _degeneracy(best_params, config, y, lengths, partial, floors[b])
        else:
            ok = True
        if degenerate:
            warnings.warn(f"degenerate {num_states}-state fit: {'; '.join(degenerate)}. Fit fewer states, or raise "
                          "min_covar for a variance at the floor; result.degenerate keeps this list",
                          DegenerateFitWarning, stacklevel=3)
        out.append(_result(best_params, config, datas[b], y, lengths, partial, "em",
                           converged=converged and ok,
                           n_iter=int(np.sum(np.isfinite(tr))), trace=tr, restart_ll=ll[sl], degenerate=degenerate,
                           settings=_settings(num_restarts, num_refine, max_iters, tol, min_covar, floors[b],
                                              emission, init_kind, False, None, vary)))
    return out


def _degeneracy(params, config, y, lengths, partial, floor) -> list:
    p = jax.tree.map(to_device, numpy_params(params)._replace(trans_weights=None))
    occ = np.asarray(compiled(state_occupancy, p, y, lengths, config=config, partial=partial)(p, y, lengths))
    return degeneracy(numpy_params(params), config, occ, np.asarray(floor) if config.emission == "gaussian" else None)


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


def _distinct_best(params, ll, config, n: int, keep=()) -> np.ndarray:
    """Indices of the ``n`` best fits by ``ll`` whose canonical state parameters differ (a fit
    that agrees with one already picked adds nothing), plus every index of ``keep``."""
    order = [int(i) for i in np.argsort(-np.where(np.isfinite(ll), ll, -np.inf), kind="stable")]
    picked, sigs = list(keep), []
    for i in picked:
        sigs.append(emission_signature(canonical_order(jax.tree.map(lambda v, i=i: v[i], params), config)))
    for i in order:
        if len(picked) >= n + len(keep):
            break
        if i in picked:
            continue
        sig = emission_signature(canonical_order(jax.tree.map(lambda v, i=i: v[i], params), config))
        if any(np.max(np.abs(sig - s)) < 1e-2 * (1 + np.max(np.abs(s))) for s in sigs):
            continue
        picked.append(i)
        sigs.append(sig)
    for i in order:  # fewer distinct fits than n: fill with the next best
        if len(picked) >= min(n + len(keep), len(ll)):
            break
        if i not in picked:
            picked.append(i)
    return np.asarray(picked)


def _fit_em(key, R, data, config, y, lengths, max_iters, tol, min_covar, partial, progress, starts=None,
            num_refine=8, fixed_init=None, prior=None, prefetch_final=True):
    # starting points assembled in NumPy and moved once (eager jnp.stack / concatenate would each
    # compile a small program per shape)
    given = [jax.tree.map(lambda v: np.asarray(v)[None], s._replace(trans_weights=None)) for s in starts or []]
    random = [initial_params(key, data, config, int(R))] if int(R) > 0 else []  # fit_hmm refuses R = 0 alone
    parts = random + given
    params = jax.tree.map(lambda *v: np.concatenate(v), *parts)
    if fixed_init is not None:
        params = params._replace(init=np.broadcast_to(fixed_init, params.init.shape).copy())
    total = params.init.shape[0]
    params = jax.tree.map(to_device, params)
    # the fit's final log-likelihood (fit_hmm) compiles on another core while EM runs: a cold fit
    # waited about 0.5 s for it afterwards, and EM's scans keep about one core busy
    shapes = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape[1:], v.dtype), params)
    # (the thread enters float64 again: the setting is per thread)
    prefetch = threading.Thread(target=float64(compiled), args=(_sequence_lls, shapes, y, lengths, None),
                                kwargs={"config": config, "partial": partial}, daemon=True)
    if not prefetch_final:  # (a refit: the program is compiled already)
        prefetch = threading.Thread(target=lambda: None)
    em = functools.partial(run_em, y=y, lengths=lengths, config=config, tol=tol, min_covar=min_covar,
                           partial=partial, progress=progress, prior=prior)
    screen = total > num_refine + len(given) and max_iters > SCREEN_ITERS
    extra_round = False
    if screen:
        keep = tuple(range(total - len(given), total))
        params, ll, done, trace = _screen_and_continue(em, params, config, num_refine, max_iters, keep,
                                                       while_running=prefetch.start)
        if int(R) > 0 and _few_reached_best(ll):
            # the continued starts disagree: a second, independent set of starts before judging
            more = initial_params(jax.random.fold_in(key, 2), data, config, int(R))
            if fixed_init is not None:
                more = more._replace(init=np.broadcast_to(fixed_init, more.init.shape).copy())
            more = _screen_and_continue(em, jax.tree.map(to_device, more), config, num_refine, max_iters, ())
            params = jax.tree.map(lambda a, b: np.concatenate([a, b]), numpy_params(params), numpy_params(more[0]))
            ll, done = np.concatenate([ll, more[1]]), np.concatenate([done, more[2]])
            trace = _stack_traces(trace, more[3])
            extra_round = True
    else:
        params, ll, done, trace = em(params, max_iters=max_iters, while_running=prefetch.start)
    prefetch.join()  # run_em runs at least one block, so the thread has started
    ll = np.where(np.isfinite(ll), ll, -np.inf)
    best = int(np.argmax(ll))
    n_iter = int(np.sum(np.isfinite(trace[:, best])))
    converged = bool(done[best]) or tol <= 0
    best_ll, best_trace = float(ll[best]), trace[:, best]
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
        _check_restarts(params, ll, best, config, extra_round)
        polished = _polish_initial(em, best_params, best_ll, config, fixed_init, max_iters)
        if polished is not None:
            best_params, best_ll, tr, done_p = polished
            best_trace = np.concatenate([best_trace[np.isfinite(best_trace)], tr])
            n_iter, converged = int(np.sum(np.isfinite(best_trace))), bool(done_p) or tol <= 0
    best_params = canonical_order(best_params, config)
    return best_params, best_ll, best_trace, ll, n_iter, converged


def _screen_and_continue(em, params, config, num_refine, max_iters, keep, while_running=None):
    """Every start for :data:`SCREEN_ITERS` iterations in one program, then the ``num_refine``
    best distinct ones (and every index of ``keep``) to convergence."""
    params, ll, _, trace0 = em(params, max_iters=SCREEN_ITERS, while_running=while_running, desc="EM starts")
    pick = _distinct_best(numpy_params(params), ll, config, num_refine, keep)
    take = to_device(pick)
    params = jax.tree.map(lambda a: a[take], params)
    params, ll, done, trace1 = em(params, max_iters=max_iters - SCREEN_ITERS)
    return params, ll, done, np.concatenate([trace0[:, pick], trace1])


def _stack_traces(a, b):
    """Traces ``(iters, R)`` side by side, the shorter padded with NaN."""
    n = max(len(a), len(b))
    pad = lambda t: np.concatenate([t, np.full((n - len(t), t.shape[1]), np.nan)])
    return np.concatenate([pad(a), pad(b)], axis=1)


def _near_best(ll) -> np.ndarray:
    """The fits within 0.01 nats (or 1e-5 relative) of the best: for these checks, the same
    optimum (a runner-up a few thousandths below the best is the same answer)."""
    ll = np.where(np.isfinite(ll), ll, -np.inf)
    top = np.max(ll)
    return np.flatnonzero(ll >= top - max(1e-2, 1e-5 * abs(top)))


def _few_reached_best(ll) -> bool:
    """Whether at most 2 of 5 or more continued starts reached the best optimum: the starts
    disagree, so the best they found may not be the global one (a second round of starts is run)."""
    return len(ll) >= 5 and len(_near_best(ll)) <= 2


def _polish_initial(em, params, ll, config: HMMConfig, fixed_init, max_iters):
    """EM from the best fit with the initial distribution moved to each state in turn.

    With few sequences the free initial distribution of an EM fit ends at (or next to) a vertex,
    and a zero initial probability stays zero in every later EM step, so EM cannot move the first
    steps to another state however much the likelihood would gain.  ``K`` fits from ``params``
    with 98 % of the initial mass on state ``k`` (every environment) are run to convergence;
    the best replaces ``params`` when it is higher.  Returns ``(params, ll, trace, done)`` or
    None (no vertex, a fixed or stationary start, one state, or nothing higher).
    """
    K = config.num_states
    init = np.asarray(params.init)
    if config.initial != "free" or fixed_init is not None or K == 1 or not np.any(init.max(-1) > 0.99):
        return None
    base = numpy_params(params._replace(trans_weights=None))
    starts = jax.tree.map(lambda v: np.broadcast_to(v, (K,) + v.shape).copy(), base)
    moved = np.full((K,) + init.shape, 0.02 / K)
    for k in range(K):
        moved[k, ..., k] += 0.98
    starts = jax.tree.map(to_device, starts._replace(init=moved))
    out, lls, done, trace = em(starts, max_iters=max_iters)
    lls = np.where(np.isfinite(lls), lls, -np.inf)
    k = int(np.argmax(lls))
    if not lls[k] > ll + 1e-9:
        return None
    tr = trace[:, k]
    tr = tr[np.isfinite(tr) & (tr > ll)]  # (the trace goes on once the polish passes the fit it started from)
    return jax.tree.map(lambda v: np.asarray(v)[k], out), float(lls[k]), tr, bool(done[k])


def _check_restarts(params, ll, best, config: HMMConfig, extra_round: bool = False):
    """Warn when restarts reach about the best likelihood with different parameters, or when
    only one restart of several finds the best optimum (at most two, after a second round of
    starts: :func:`few_reached_best`)."""
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
    near = _near_best(ll)
    if (extra_round and len(near) <= 2) or (len(near) == 1 and R >= 5):
        second = np.sort(ll)[-2]
        warnings.warn(f"only {len(near)} of {R} EM restarts reached the best log-likelihood {ll[best]:.4f} (next "
                      f"best {second:.4f}){' after a second round of starts' if extra_round else ''}; the "
                      "optimum may not be global: increase num_restarts", ConvergenceWarning, stacklevel=3)


# ------------------------------------------------------------------ stationary initial distribution


def _to_free(params: HMMParams, config: HMMConfig, floor) -> dict:
    """Unconstrained coordinates of ``params`` (NumPy): transition logits, Gaussian means and
    Cholesky factors of ``cov - floor`` (log diagonal), log rates or symbol logits; a shared
    mechanism keeps one copy (environment 0)."""
    p = numpy_params(params)
    t = p.trans if config.trans_vary else p.trans[:1]
    em = p.emissions
    take = (lambda a: a) if config.emis_vary else (lambda a: a[:1])
    z = {"trans": np.log(np.maximum(t, 1e-12))}
    if config.emission == "gaussian":
        z["means"] = take(em.means)
        cov = take(em.covs) - (1.0 - 1e-3) * np.diag(np.asarray(floor))
        if config.covariance == "diag":
            z["log_sd"] = 0.5 * np.log(np.diagonal(cov, axis1=-2, axis2=-1))
        else:
            chol = np.linalg.cholesky(cov)
            d = np.diagonal(chol, axis1=-2, axis2=-1)
            z["chol"] = np.tril(chol, -1) + np.eye(cov.shape[-1]) * np.log(d)[..., None]
    elif config.emission == "poisson":
        z["log_rates"] = np.log(take(em.rates))
    else:
        z["logits"] = np.log(np.maximum(take(em.probs), 1e-12))
    return z


def _from_free(z: dict, config: HMMConfig, floor) -> HMMParams:
    """:class:`HMMParams` (JAX) from the coordinates of :func:`_to_free`, with the stationary
    initial distribution."""
    E = config.num_envs
    env = lambda a: jnp.broadcast_to(a, (E,) + a.shape[1:])
    trans = env(jax.nn.softmax(z["trans"], axis=-1))
    init = stationary_distribution(trans)
    if config.emission == "gaussian":
        D = config.obs_dim
        if config.covariance == "diag":
            covs = jnp.eye(D) * jnp.exp(2.0 * z["log_sd"])[..., None]
        else:
            c = z["chol"]
            chol = jnp.tril(c, -1) + jnp.eye(D) * jnp.exp(jnp.diagonal(c, axis1=-2, axis2=-1))[..., None]
            covs = chol @ jnp.swapaxes(chol, -1, -2)
        emissions = GaussianEmissions(env(z["means"]), env(covs + jnp.diag(floor)))
    elif config.emission == "poisson":
        emissions = PoissonEmissions(env(jnp.exp(z["log_rates"])))
    else:
        emissions = CategoricalEmissions(env(jax.nn.softmax(z["logits"], axis=-1)))
    return HMMParams(init, trans, emissions)


@functools.partial(jax.jit, static_argnames=("config", "partial"))
def _stationary_objective(z, floor, y, lengths, *, config, partial):
    """Minus the exact log-likelihood with the stationary start, and its gradient in ``z``."""
    def loss(z):
        p = _from_free(z, config, floor)
        return -jnp.sum(sequence_log_likelihoods(p, y, config, lengths, partial=partial))

    return jax.value_and_grad(loss)(z)


def _maximise_stationary(params, config, y, lengths, partial, floor, max_iters):
    r"""Maximise the likelihood with :math:`\pi = \delta(\Gamma)` (the stationary distribution)
    directly over every parameter, by L-BFGS started at ``params`` (the free-start EM fit)."""
    from scipy.optimize import minimize

    floor = to_device(np.asarray(floor) if config.emission == "gaussian" else np.zeros(1))
    z0 = _to_free(params, config, np.asarray(floor))
    names = sorted(z0)
    shapes = [z0[k].shape for k in names]
    sizes = [int(np.prod(s)) for s in shapes]

    def unpack(x):
        parts = np.split(np.asarray(x, dtype=float), np.cumsum(sizes)[:-1])
        return {k: to_device(v.reshape(s)) for k, v, s in zip(names, parts, shapes)}

    fn = None

    def f(x):
        nonlocal fn
        z = unpack(x)
        if fn is None:
            fn = compiled(_stationary_objective, z, floor, y, lengths, config=config, partial=partial)
        val, grad = fn(z, floor, y, lengths)
        return float(val), np.concatenate([np.asarray(grad[k]).ravel() for k in names])

    x0 = np.concatenate([z0[k].ravel() for k in names])
    res = minimize(f, x0, jac=True, method="L-BFGS-B",
                   options={"maxiter": max(200, int(max_iters)), "ftol": 1e-14, "gtol": 1e-8})
    ok = bool(res.success) or np.max(np.abs(res.jac)) < 1e-4
    if not ok:
        warnings.warn(f"the stationary-start likelihood maximisation stopped without converging ({res.message}); "
                      "raise max_iters", ConvergenceWarning, stacklevel=4)
    out = numpy_params(_from_free(unpack(res.x), config, floor))
    return canonical_order(out, config), ok


def _inputs_start(key, data, config):
    R = 1
    p = jax.tree.map(lambda v: v[0], initial_params(key, data, replace(config, input_dim=0), R))
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


