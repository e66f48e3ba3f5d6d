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
from jax import lax
from jax.flatten_util import ravel_pytree
from scipy.optimize import linear_sum_assignment

from causalid._compile import compiled, to_device
from causalid.data.sequences import SequenceData
from causalid.dynamics.hmm import hmm_smoother
from causalid.dynamics.kalman import _spd_inv_logdet
from causalid.errors import ConvergenceWarning, DataError
from causalid.models.hmm import (
    HMMConfig,
    HMMPrior,
    emission_log_lik,
    expand_params,
    has_partial_rows,
    hmm_model,
    sequence_log_likelihoods,
    simulate_arrays,
)

__all__ = ["align_to", "bootstrap_hmm", "fit_hmm", "simulate_like", "vary_from_shared"]

_EMISSION_KEYS = {"gaussian": ("means", "covs"), "poisson": ("rates",), "categorical": ("probs",)}


# ----------------------------------------------------------------------------- options


def vary_from_shared(shared) -> tuple:
    """Which mechanisms vary across environments, from ``fit_hmm``'s ``shared=`` option.

    ``"all"`` (one HMM for every environment), ``"transitions"`` (emissions vary),
    ``"emissions"`` (transitions vary), ``"none"`` (both vary), or a tuple of the shared
    mechanism names.
    """
    names = ("transitions", "emissions")
    if isinstance(shared, str):
        table = {"all": names, "both": names, "none": (), "transitions": ("transitions",),
                 "emissions": ("emissions",)}
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


# --------------------------------------------------------------------------- EM core


def _estep(params, y, lengths, config: HMMConfig, partial: bool):
    """Forward-backward on every sequence: log-lik (E, N), gamma (E, N, T, K), xi (E, N, K, K)."""

    def one(p, y_n, n):
        ll = emission_log_lik(p, y_n, config, partial)
        s = hmm_smoother(p["init"], p["trans"], ll, n)
        return s.log_likelihood, s.smoothed, s.trans_counts

    return jax.vmap(jax.vmap(one, in_axes=(None, 0, 0)))(params, y, lengths)


def _pool(x, vary: bool):
    """Sum statistics over environments for a shared mechanism (kept with a size-E axis)."""
    return x if vary else jnp.broadcast_to(jnp.sum(x, axis=0, keepdims=True), x.shape)


def _gaussian_stats(params, y, gamma, partial: bool):
    """Expected sufficient statistics (weights, first and second moments) per environment."""
    obs = ~jnp.isnan(y)
    y0 = jnp.where(obs, y, 0.0)
    if not partial:
        full = jnp.all(obs, axis=-1)  # rows with every channel observed
        w = gamma * full[..., None]
        Nk = jnp.einsum("vntk->vk", w)
        Sy = jnp.einsum("vntk,vntd->vkd", w, y0)
        Syy = jnp.einsum("vntk,vntd,vnte->vkde", w, y0, y0)
        return Nk, Sy, Syy
    means, covs = params["means"], params["covs"]  # (E, K, D), (E, K, D, D)
    m = obs.astype(y.dtype)
    any_obs = jnp.any(obs, axis=-1)

    def row(mu, cov, y_t, m_t):
        # conditional mean / covariance of the missing channels given the observed ones
        sw = cov * m_t[:, None] * m_t[None, :] + jnp.diag(1.0 - m_t)
        iw, _ = _spd_inv_logdet(sw)
        r = m_t * (y_t - mu)
        gain = cov @ (m_t[:, None] * iw * m_t[None, :])  # Sigma M Sw^-1 M
        yhat = m_t * y_t + (1.0 - m_t) * (mu + gain @ r)
        cc = (cov - gain @ cov) * (1.0 - m_t)[:, None] * (1.0 - m_t)[None, :]
        return yhat, jnp.outer(yhat, yhat) + cc

    f = jax.vmap(row, in_axes=(0, 0, None, None))  # over states
    f = jax.vmap(f, in_axes=(None, None, 0, 0))  # over time
    f = jax.vmap(f, in_axes=(None, None, 0, 0))  # over sequences
    f = jax.vmap(f, in_axes=(0, 0, 0, 0))  # over environments
    yhat, second = f(means, covs, y0, m)  # (E, N, T, K, D), (E, N, T, K, D, D)
    w = gamma * any_obs[..., None]
    Nk = jnp.einsum("vntk->vk", w)
    Sy = jnp.einsum("vntk,vntkd->vkd", w, yhat)
    Syy = jnp.einsum("vntk,vntkde->vkde", w, second)
    return Nk, Sy, Syy


def _mstep(params, y, lengths, gamma, xi, config: HMMConfig, partial: bool, min_covar):
    tv, ev = config.trans_vary, config.emis_vary
    first = gamma[:, :, 0, :]  # (E, N, K): zero rows for empty sequences
    init = _pool(jnp.sum(first, axis=1), tv)
    init = init / jnp.sum(init, axis=-1, keepdims=True)
    counts = _pool(jnp.sum(xi, axis=1), tv)
    rows = jnp.sum(counts, axis=-1, keepdims=True)
    trans = jnp.where(rows > 0, counts / jnp.where(rows > 0, rows, 1.0), params["trans"])
    new = {"init": init, "trans": trans}
    obs = ~jnp.isnan(y)
    y0 = jnp.where(obs, y, 0.0)
    if config.emission == "gaussian":
        Nk, Sy, Syy = _gaussian_stats(params, y, gamma, partial)
        Nk, Sy, Syy = _pool(Nk, ev), _pool(Sy, ev), _pool(Syy, ev)
        safe = jnp.maximum(Nk, 1e-12)[..., None]
        mu = Sy / safe
        cov = Syy / safe[..., None] - mu[..., :, None] * mu[..., None, :]
        if config.covariance == "diag":
            cov = cov * jnp.eye(cov.shape[-1])
        cov = 0.5 * (cov + jnp.swapaxes(cov, -1, -2)) + jnp.diag(min_covar)
        keep = (Nk > 1e-8)[..., None]
        new["means"] = jnp.where(keep, mu, params["means"])
        new["covs"] = jnp.where(keep[..., None], cov, params["covs"])
    elif config.emission == "poisson":
        w = jnp.einsum("vntk,vntd->vkd", gamma, obs.astype(y.dtype))
        s = jnp.einsum("vntk,vntd->vkd", gamma, y0)
        w, s = _pool(w, ev), _pool(s, ev)
        new["rates"] = jnp.where(w > 1e-8, jnp.maximum(s / jnp.maximum(w, 1e-12), 1e-10), params["rates"])
    else:
        C = config.num_categories
        onehot = jax.nn.one_hot(y0.astype(jnp.int32), C) * obs[..., None]
        c = _pool(jnp.einsum("vntk,vntdc->vkdc", gamma, onehot), ev)
        tot = jnp.sum(c, axis=-1, keepdims=True)
        probs = jnp.maximum(c / jnp.maximum(tot, 1e-12), 1e-12)
        probs = probs / jnp.sum(probs, axis=-1, keepdims=True)
        new["probs"] = jnp.where(tot > 1e-8, probs, params["probs"])
    return new


@functools.partial(jax.jit, static_argnames=("config", "partial", "num_iters", "batch_y"))
def _em_block(params, ll_prev, done, y, lengths, min_covar, tol, *, config, partial, num_iters, batch_y=False):
    """Up to ``num_iters`` EM steps for a batch of fits (leading axis), freezing converged ones.

    The batch is restarts on one data set (``batch_y=False``) or one fit per data set
    (``batch_y=True``: ``y`` has the same leading axis, e.g. bootstrap replicates).  Returns the
    parameters, the last log-likelihood per fit, the done flags and the per-iteration
    log-likelihood trace ``(num_iters, R)`` (NaN after convergence).
    """

    def one_step(p, llp, dn, y_r):
        ll, gamma, xi = _estep(p, y_r, lengths, config, partial)
        ll = jnp.sum(ll)
        newp = _mstep(p, y_r, lengths, gamma, xi, config, partial, min_covar)
        finished = dn | (ll - llp < tol)
        newp = jax.tree.map(lambda a, b: jnp.where(finished, a, b), p, newp)
        return newp, jnp.where(dn, llp, ll), finished, jnp.where(dn, jnp.nan, ll)

    batched = jax.vmap(one_step, in_axes=(0, 0, 0, 0 if batch_y else None))

    def body(carry, _):
        p, llp, dn = carry
        p, ll, dn2, rec = batched(p, llp, dn, y)
        return (p, ll, dn2), rec

    (params, ll, done), trace = lax.scan(body, (params, ll_prev, done), None, length=num_iters)
    return params, ll, done, trace


#: Smallest batch that :func:`run_em` compacts its unfinished fits into (below it a batch's
#: cost is mostly fixed overhead, and every new size is one more compilation).
MIN_COMPACT_BATCH = 8


def _bucket(n: int) -> int:
    """The batch size for ``n`` unfinished fits: the next power of two, at least
    :data:`MIN_COMPACT_BATCH` (few distinct sizes, so few compiled programs)."""
    return max(MIN_COMPACT_BATCH, 1 << max(n - 1, 0).bit_length())


def run_em(params, y, lengths, config: HMMConfig, *, max_iters: int, tol: float, min_covar, partial: bool,
           batch_y: bool = False, progress: bool = False, desc: str = "EM", while_running=None):
    """Run EM from a batch of starting points until every fit converges or ``max_iters``.

    Iterations run in jitted blocks of up to 25 (the Python loop is over blocks, for the progress
    bar and early exit).  Between blocks the unfinished fits are gathered into a smaller batch
    (a power of two, at least :data:`MIN_COMPACT_BATCH`) once that halves it: a converged
    fit is frozen, so computing it again is wasted work, and with a bootstrap's many data sets
    a few slow fits would otherwise keep the whole batch running (measured: the median fit
    converges in 85 iterations, the slowest run to 300).  Each fit's numbers are those of
    running it alone.  ``while_running`` (no arguments) is called once, after the first block
    has been dispatched and before its result is awaited.  Returns ``(params, log_lik (R,),
    done (R,), trace (iters, R))``; the log-likelihood is the one at the start of each fit's
    last iteration.
    """
    from tqdm.auto import tqdm

    if isinstance(max_iters, bool) or not isinstance(max_iters, (int, np.integer)) or max_iters < 1:
        raise DataError(f"max_iters must be a positive integer; got {max_iters!r}")
    R = jax.tree.leaves(params)[0].shape[0]
    y = to_device(y)
    # a strongly typed float64 start: a weak-typed one made the second block recompile
    ll = to_device(np.full((R,), -np.inf, dtype=y.dtype))
    done = to_device(np.zeros((R,), bool))
    block = max(1, min(25, max_iters))
    idx = np.arange(R)  # the fits in the running batch (padded with repeats of an unfinished one)
    batch = (params, ll, done, y)
    traces, it = [], 0
    bar = tqdm(total=max_iters, desc=desc, disable=not progress, leave=False)
    while it < max_iters:
        n = min(block, max_iters - it)
        args = batch + (lengths, min_covar, tol)
        out = compiled(_em_block, *args, config=config, partial=partial, num_iters=n, batch_y=batch_y)(*args)
        p_b, ll_b, done_b, tr = out
        if while_running is not None:
            while_running()
            while_running = None
        tr = np.asarray(tr)
        full_tr = np.full((n, R), np.nan)
        full_tr[:, idx] = tr
        traces.append(full_tr)
        it += n
        bar.update(n)
        bar.set_postfix(loglik=f"{np.max(np.asarray(ll_b)):.4f}")
        if len(idx) == R:  # not compacted yet: the batch is the whole set, in order
            params, ll, done = p_b, ll_b, done_b
        else:  # scatter the batch back (a padded repeat writes its fit's own values again)
            params = jax.tree.map(lambda f, b: f.at[idx].set(b), params, p_b)
            ll, done = ll.at[idx].set(ll_b), done.at[idx].set(done_b)
        open_ = np.flatnonzero(~np.asarray(done))
        if open_.size == 0:
            break
        size = _bucket(open_.size)
        if 2 * size <= len(idx):  # at least halves the work (each new size is a compilation)
            idx = np.concatenate([open_, np.full(size - open_.size, open_[0])])
            take = to_device(idx)
            batch = (jax.tree.map(lambda a: a[take], params), ll[take], done[take], y[take] if batch_y else y)
        else:
            batch = (p_b, ll_b, done_b, batch[3])
    bar.close()
    trace = np.concatenate(traces) if traces else np.zeros((0, R))
    return params, np.asarray(ll), np.asarray(done), trace


# ----------------------------------------------------------------------- initialisation


def _initial_params(key, data: SequenceData, config: HMMConfig, R: int) -> dict:
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
    out = {"init": init, "trans": trans}
    order = np.argsort(filled[:, 0], kind="stable")
    qs = order[((np.arange(K) + 0.5) / K * len(order)).astype(int)]
    picks = np.stack([qs] + [rng.choice(len(filled), size=K, replace=len(filled) < K) for _ in range(R - 1)])
    if config.emission == "gaussian":
        var = np.nanvar(rows, axis=0)
        var = np.where(var > 0, var, 1.0)
        cov = np.cov(filled.T).reshape(D, D) if config.covariance == "full" and D > 1 else np.diag(var)
        cov = cov + 1e-6 * np.diag(var)
        means = filled[picks]  # (R, K, D)
        out["means"] = means
        out["covs"] = np.broadcast_to(cov, (R, K, D, D)).copy()
    elif config.emission == "poisson":
        out["rates"] = filled[picks] + 0.1 + 0.1 * np.nanmean(rows, axis=0)
    else:
        C = config.num_categories
        probs = rng.dirichlet(np.ones(C) * 2.0, size=(R, K, D))
        freq = np.stack([np.bincount(filled[:, d].astype(int), minlength=C)[:C] for d in range(D)]) + 1.0
        freq = freq / freq.sum(-1, keepdims=True)
        probs[0] = 0.5 * freq[None] + 0.5 * np.eye(C)[np.arange(K) % C][:, None, :]
        out["probs"] = probs / probs.sum(-1, keepdims=True)
    return {k: np.broadcast_to(v[:, None], (R, E) + v.shape[1:]) for k, v in out.items()}


# ---------------------------------------------------------------------------- alignment


def _emission_signature(params: dict, emission: str) -> np.ndarray:
    """Per-state features ``(..., K, F)`` in comparable units, used to match states.

    Gaussian: means in units of the typical within-state standard deviation of each channel,
    and log standard deviations; Poisson: log rates; categorical: symbol probabilities.
    """
    if emission == "gaussian":
        sd = np.sqrt(np.diagonal(np.asarray(params["covs"]), axis1=-2, axis2=-1))
        unit = np.sqrt(np.mean(sd**2, axis=tuple(range(sd.ndim - 1))))  # per channel
        return np.concatenate([np.asarray(params["means"]) / unit, np.log(sd)], axis=-1)
    if emission == "poisson":
        return np.log(np.asarray(params["rates"]))
    p = np.asarray(params["probs"])
    return p.reshape(p.shape[:-2] + (-1,))


def match_states(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Permutation ``perm`` with ``other[perm]`` closest to ``reference`` (Hungarian algorithm on
    squared distances between the ``(K, F)`` state signatures of :func:`_emission_signature`)."""
    cost = ((reference[:, None, :] - other[None, :, :]) ** 2).sum(-1)
    _, perm = linear_sum_assignment(cost)
    return perm


def permute_states(params: dict, perm) -> dict:
    """Relabel states: new state ``k`` is old state ``perm[k]`` (``perm`` of shape (K,) or (E, K))."""
    perm = np.asarray(perm)
    out = {}
    for k, v in params.items():
        v = np.asarray(v)
        if k == "trans_weights":
            p = perm if perm.ndim == 1 else perm[0]
            out[k] = v[p][:, :, p]
            continue
        if perm.ndim == 1:
            if k == "init":
                out[k] = v[:, perm]
            elif k == "trans":
                out[k] = v[:, perm][:, :, perm]
            else:
                out[k] = v[:, perm]
        else:
            e = np.arange(v.shape[0])[:, None]
            if k == "trans":
                t = v[e, perm]
                out[k] = np.take_along_axis(t, perm[:, None, :, ...].repeat(t.shape[1], axis=1), axis=2)
            else:
                out[k] = v[e, perm]
    return out


def canonical_order(params: dict, config: HMMConfig) -> dict:
    """Align per-environment labels (when both mechanisms vary), then sort states by their first
    emission feature averaged over environments."""
    params = {k: np.asarray(v) for k, v in params.items()}
    sig = _emission_signature(params, config.emission)  # (E, K, F)
    if config.trans_vary and config.emis_vary and config.num_envs > 1:
        perms = np.stack([match_states(sig[0], sig[e]) for e in range(config.num_envs)])
        params = permute_states(params, perms)
        sig = _emission_signature(params, config.emission)
    if config.emission == "categorical":
        C = config.num_categories
        key = (np.asarray(params["probs"])[..., 0, :] * np.arange(C)).sum(-1).mean(0)
    else:
        key = sig[..., 0].mean(axis=0)
    return permute_states(params, np.argsort(key, kind="stable"))


# ----------------------------------------------------------------------------- front door


def fit_hmm(data, num_states: int, emission: str = "gaussian", *, shared="all", covariance: str = "full",
            method: str = "em", num_restarts: int = 10, max_iters: int = 500, tol: float = 1e-6,
            key=0, num_categories: int | None = None, min_covar: float = 1e-6,
            num_warmup: int = 500, num_samples: int = 500, num_chains: int = 2,
            prior: HMMPrior | None = None, progress: bool = True, init_params=None):
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
    progress : bool
        Show a progress bar.
    init_params : dict or list of dict, optional
        Extra EM starting points in the per-environment form of :attr:`HMMResult.params`
        (e.g. a nested model's fit), run besides the ``num_restarts`` random ones.

    Returns
    -------
    HMMResult
    """
    from causalid.infer.hmm_result import HMMResult

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
        starts = [init_params] if isinstance(init_params, dict) else list(init_params or [])
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
    params = {k: np.asarray(v) for k, v in params.items()}
    args = ({k: to_device(v) for k, v in params.items()}, y, lengths,
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


def min_covar_diag(data: SequenceData, min_covar: float):
    """The M-step's covariance floor: ``min_covar`` times each channel's variance."""
    var = np.nanvar(data.y.reshape(-1, data.obs_dim), axis=0)
    return to_device(min_covar * np.where(var > 0, var, 1.0))


def _fit_em(key, data, config, y, lengths, R, max_iters, tol, min_covar, partial, progress, starts=None):
    # starting points assembled in NumPy and moved once (eager jnp.stack / concatenate would each
    # compile a small program per shape)
    given = [{k: np.asarray(s[k])[None] for k in starts[0]} for s in starts] if starts else []
    random = [_initial_params(key, data, config, int(R))] if int(R) > 0 else []  # fit_hmm refuses R = 0 alone
    parts = random + given
    params = {k: to_device(np.concatenate([p[k] for p in parts])) for k in parts[0]}
    # the fit's final log-likelihood (fit_hmm) compiles on another core while EM runs: a cold fit
    # waited about 0.5 s for it afterwards, and EM's scans keep about one core busy
    shapes = {k: jax.ShapeDtypeStruct(v.shape[1:], v.dtype) for k, v in params.items()}
    prefetch = threading.Thread(target=compiled, args=(_sequence_lls, shapes, y, lengths, None),
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
        best_params = {k: np.asarray(v)[pick, env] for k, v in params.items()}
        converged = bool(np.all(done[pick])) or tol <= 0
    else:
        params = {k: np.asarray(v) for k, v in params.items()}  # indexed below (eagerly in JAX: compiles)
        best_params = {k: v[best] for k, v in params.items()}
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
    ref = canonical_order({k: v[best] for k, v in params.items()}, config)
    sig_ref = _emission_signature(ref, config.emission)
    for r in close:
        if r == best:
            continue
        other = canonical_order({k: v[r] for k, v in params.items()}, config)
        gap = np.max(np.abs(_emission_signature(other, config.emission) - sig_ref))
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
    p = _initial_params(key, data, replace(config, input_dim=0), R)
    p = {k: v[0] for k, v in p.items()}
    p["trans_weights"] = jnp.zeros((config.num_states, config.input_dim, config.num_states))
    return p


# ------------------------------------------------------------------------------ MAP / NUTS


def _model_kwargs(data: SequenceData, config, prior):
    return {"config": config, "lengths": jnp.asarray(data.lengths), "prior": prior,
            "inputs": None if data.inputs is None else jnp.asarray(data.inputs)}


def _sites_init(params, config):
    from causalid.models.hmm import _sites_from_params

    return _sites_from_params({k: jnp.asarray(v) for k, v in params.items()}, config)


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
    return canonical_order({k: np.asarray(v) for k, v in out.items()}, config), converged


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
    draws = {k: np.asarray(v) for k, v in draws.items()}
    ref_sig = _emission_signature(params, config.emission).reshape(config.num_states, -1) if not (
        config.emis_vary) else _emission_signature(params, config.emission).transpose(1, 0, 2).reshape(
        config.num_states, -1)
    aligned = {k: np.empty_like(v) for k, v in draws.items()}
    for s in range(S):
        one = {k: v[s] for k, v in draws.items()}
        sig = _emission_signature(one, config.emission)
        sig = sig.reshape(config.num_states, -1) if not config.emis_vary else sig.transpose(1, 0, 2).reshape(
            config.num_states, -1)
        perm = match_states(ref_sig, sig)
        one = permute_states(one, perm)
        for k, arr in aligned.items():
            arr[s] = one[k]
    post = {k: v.reshape((num_chains, num_samples) + v.shape[1:]) for k, v in aligned.items()}
    idata = az.from_dict(posterior=post, sample_stats={
        "diverging": np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])})
    if num_chains > 1:
        rhat = az.rhat(idata)
        worst = max(float(np.nanmax(rhat[v].values)) for v in rhat.data_vars)
        if worst > 1.05:
            warnings.warn(f"NUTS chains do not mix (largest R-hat {worst:.3f} after label alignment); run more "
                          "warmup/samples or simplify the model", ConvergenceWarning, stacklevel=3)
    mean = {k: v.mean(axis=0) for k, v in aligned.items()}
    mean["init"] = mean["init"] / mean["init"].sum(-1, keepdims=True)
    mean["trans"] = mean["trans"] / mean["trans"].sum(-1, keepdims=True)
    return mean, idata


# ------------------------------------------------------------------ parametric bootstrap


def simulate_like(key, data: SequenceData, config: HMMConfig, params: dict, num_replicates: int):
    """``num_replicates`` data sets ``(B, E, N, T, D)`` simulated from ``params`` with the shape,
    sequence lengths and missing-value pattern of ``data`` (padding past a sequence's length is
    simulated too, and ignored by every likelihood through the lengths)."""
    params = {k: jnp.asarray(v) for k, v in params.items()}
    keys = jax.random.split(key, int(num_replicates))
    return _simulate_batch(keys, params, jnp.asarray(np.isnan(data.y)), config=config,
                           num_sequences=int(data.lengths.shape[1]), num_steps=int(data.num_steps))


@functools.partial(jax.jit, static_argnames=("config", "num_sequences", "num_steps"))
def _simulate_batch(keys, params, missing, *, config, num_sequences, num_steps):
    draw = lambda k: simulate_arrays(k, config, params, num_sequences=num_sequences, num_steps=num_steps)[0]
    return jnp.where(missing[None], jnp.nan, jax.vmap(draw)(keys))


def align_to(reference: dict, params: dict, config: HMMConfig) -> dict:
    """Relabel the states of ``params`` to match ``reference`` (both per-environment dicts).

    One permutation for every environment when a mechanism is shared (the labels are common),
    one per environment when nothing is shared; Hungarian matching on the emission signatures.
    """
    ref = _emission_signature({k: np.asarray(v) for k, v in reference.items()}, config.emission)
    sig = _emission_signature({k: np.asarray(v) for k, v in params.items()}, config.emission)
    if config.trans_vary and config.emis_vary and config.num_envs > 1:
        perm = np.stack([match_states(ref[e], sig[e]) for e in range(config.num_envs)])
    else:
        K = config.num_states
        flat = lambda s: np.swapaxes(s, 0, 1).reshape(K, -1)
        perm = match_states(flat(ref), flat(sig))
    return permute_states(params, perm)


def bootstrap_hmm(result, data, num_bootstrap: int = 200, *, key=0, max_iters: int | None = None,
                  tol: float | None = None, progress: bool = True):
    """Parametric-bootstrap standard errors of an EM / MAP fit.

    ``num_bootstrap`` data sets are simulated from the fitted parameters with the observed
    sequence lengths and missing-value pattern; EM refits all of them at once (``vmap``),
    warm-started at the fitted parameters; every refit's states are matched to the fit's
    (:func:`align_to`), and the standard deviation over refits is the standard error.

    Parameters
    ----------
    result : HMMResult
        The fit (its ``config`` fixes the model; input-driven transitions are not supported,
        since EM has no closed-form step for them).
    data : the data the fit was made on (anything :func:`fit_hmm` accepts)
    num_bootstrap : int
        Replicates (≥ 2).  Standard errors carry a relative Monte-Carlo error of about
        ``1 / sqrt(2 B)``.
    key : int or PRNGKey
    max_iters, tol : EM settings of the refits (default: the fit's).
    progress : bool

    Returns
    -------
    HMMResult
        A copy of ``result`` with ``standard_errors`` (same keys and shapes as ``params``) and
        ``bootstrap_params`` (the aligned refits, leading axis ``B``).
    """
    data = SequenceData.coerce(data)
    config = result.config
    if config.input_dim or data.inputs is not None:
        raise DataError("bootstrap standard errors need EM refits, which input-driven transitions do not "
                        "have; use fit_hmm(method='nuts') for their uncertainty")
    if (data.num_envs, data.obs_dim) != (config.num_envs, config.obs_dim):
        raise DataError(f"the data have {data.num_envs} environment(s) and {data.obs_dim} channel(s) but the "
                        f"fit was made on {config.num_envs} and {config.obs_dim}; pass the data of the fit")
    B = int(num_bootstrap)
    if B < 2:
        raise DataError(f"num_bootstrap must be at least 2; got {num_bootstrap}")
    key = jax.random.PRNGKey(key) if isinstance(key, int) else key
    settings = result.settings
    max_iters = int(settings.get("max_iters", 500) if max_iters is None else max_iters)
    tol = float(settings.get("tol", 1e-6) if tol is None else tol)
    ys = simulate_like(key, data, config, result.params, B)
    lengths = jnp.asarray(data.lengths)
    start = {k: jnp.broadcast_to(jnp.asarray(v), (B,) + np.shape(v)) for k, v in result.params.items()}
    mc = min_covar_diag(data, float(settings.get("min_covar", 1e-6)))
    fitted, _, done, _ = run_em(start, ys, lengths, config, max_iters=max_iters, tol=tol, min_covar=mc,
                                partial=has_partial_rows(data.y), batch_y=True, progress=progress,
                                desc="bootstrap")
    fitted = {k: np.asarray(v) for k, v in fitted.items()}
    refits = [align_to(result.params, {k: v[b] for k, v in fitted.items()}, config) for b in range(B)]
    draws = {k: np.stack([r[k] for r in refits]) for k in fitted}
    if tol > 0 and not np.all(done):
        warnings.warn(f"{int(np.sum(~np.asarray(done)))} of {B} bootstrap refits did not converge in {max_iters} "
                      "EM iterations; they are kept (raise max_iters to tighten the standard errors)",
                      ConvergenceWarning, stacklevel=2)
    se = {k: np.std(v, axis=0, ddof=1) for k, v in draws.items()}
    # a probability estimated at 0 or 1 is re-estimated there by every refit: its bootstrap
    # spread is zero, which says nothing about its uncertainty
    edge = 0
    for k in ("init", "trans", "probs"):
        if k in se:
            est = np.asarray(result.params[k])
            at = (est < 1e-6) | (est > 1.0 - 1e-6)
            edge += int(np.sum(at))
            se[k] = np.where(at, np.nan, se[k])
    if edge:
        warnings.warn(f"{edge} probability estimate(s) sit at 0 or 1 (e.g. every sequence of an environment "
                      "starts in the same state); their bootstrap standard errors are undefined and set to NaN",
                      ConvergenceWarning, stacklevel=2)
    return replace(result, standard_errors=se, bootstrap_params=draws,
                   settings={**settings, "num_bootstrap": B})
