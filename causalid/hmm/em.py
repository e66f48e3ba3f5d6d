r"""EM for multi-environment HMMs: Baum-Welch over batches of fits, state alignment, bootstrap.

The E-step runs the exact forward-backward pass of :mod:`causalid.dynamics.hmm` on every
sequence (``vmap`` over environments and sequences); the M-step pools the expected sufficient
statistics over environments for a shared mechanism and keeps them per environment for a
varying one.  Missing Gaussian channels enter through their conditional expectations given the
observed channels and the state (exact EM for the observed-data likelihood).
:func:`run_em` runs a batch of fits (restarts, or bootstrap replicates) at once, each frozen
when its log-likelihood gain drops below ``tol``.  States are matched across fits by the
Hungarian algorithm on the emission parameters (:func:`match_states`, :func:`align_to`) and
put in a canonical order (:func:`canonical_order`).  :func:`bootstrap_hmm` gives parametric-
bootstrap standard errors of a fit.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from scipy.optimize import linear_sum_assignment

from causalid._compile import compiled, to_device
from causalid._linalg import spd_inv_logdet
from causalid._progress import show_progress
from causalid._random import as_key
from causalid._x64 import float64
from causalid.dynamics.hmm import hmm_smoother
from causalid.errors import ConvergenceWarning, DataError
from causalid.hmm.data import SequenceData
from causalid.models.hmm import (
    CategoricalEmissions,
    GaussianEmissions,
    HMMConfig,
    HMMParams,
    PoissonEmissions,
    emission_log_lik,
    has_partial_rows,
    simulate_arrays,
)

__all__ = [
    "MIN_COMPACT_BATCH",
    "align_to",
    "bootstrap_hmm",
    "EMPrior",
    "canonical_order",
    "conjugate_prior",
    "emission_signature",
    "match_states",
    "min_covar_diag",
    "log_prior",
    "numpy_params",
    "permute_states",
    "run_em",
    "simulate_like",
    "path_entropy",
    "state_occupancy",
]

def _estep(params, y, lengths, config: HMMConfig, partial: bool):
    """Forward-backward on every sequence: log-lik (E, N), gamma (E, N, T, K), xi (E, N, K, K)."""

    def one(p, y_n, n):
        ll = emission_log_lik(p.emissions, y_n, config, partial)
        s = hmm_smoother(p.init, p.trans, ll, n)
        return s.log_likelihood, s.smoothed, s.trans_counts

    return jax.vmap(jax.vmap(one, in_axes=(None, 0, 0)))(params, y, lengths)


def _pool(x, vary: bool):
    """Sum statistics over environments for a shared mechanism (kept with a size-E axis)."""
    return x if vary else jnp.broadcast_to(jnp.sum(x, axis=0, keepdims=True), x.shape)


def _gaussian_stats(emissions: GaussianEmissions, y, gamma, partial: bool):
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
    means, covs = emissions  # (E, K, D), (E, K, D, D)
    m = obs.astype(y.dtype)
    any_obs = jnp.any(obs, axis=-1)

    def row(mu, cov, y_t, m_t):
        # conditional mean / covariance of the missing channels given the observed ones
        sw = cov * m_t[:, None] * m_t[None, :] + jnp.diag(1.0 - m_t)
        iw, _ = spd_inv_logdet(sw)
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


def _mstep(params, y, lengths, gamma, xi, config: HMMConfig, partial: bool, min_covar, prior=None):
    tv, ev = config.trans_vary, config.emis_vary
    alpha = 0.0 if prior is None else prior["alpha"]  # Dirichlet(1 + alpha) pseudo-counts
    first = gamma[:, :, 0, :]  # (E, N, K): zero rows for empty sequences
    init = _pool(jnp.sum(first, axis=1), tv) + alpha
    init = init / jnp.sum(init, axis=-1, keepdims=True)
    if config.initial == "fixed":  # a given initial distribution stays as given
        init = params.init
    counts = _pool(jnp.sum(xi, axis=1), tv) + alpha
    rows = jnp.sum(counts, axis=-1, keepdims=True)
    trans = jnp.where(rows > 0, counts / jnp.where(rows > 0, rows, 1.0), params.trans)
    obs = ~jnp.isnan(y)
    y0 = jnp.where(obs, y, 0.0)
    old = params.emissions
    if config.emission == "gaussian":
        Nk, Sy, Syy = _gaussian_stats(old, y, gamma, partial)
        Nk, Sy, Syy = _pool(Nk, ev), _pool(Sy, ev), _pool(Syy, ev)
        if prior is None:
            safe = jnp.maximum(Nk, 1e-12)[..., None]
            mu = Sy / safe
            cov = Syy / safe[..., None] - mu[..., :, None] * mu[..., None, :]
        else:  # the joint mode under the normal-inverse-Wishart prior (m0, kappa, psi, nu)
            m0, kappa, psi, nu = prior["m0"], prior["kappa"], prior["psi"], prior["nu"]
            kn = (Nk + kappa)[..., None]
            mu = (Sy + kappa * m0) / kn
            scatter = Syy + kappa * jnp.outer(m0, m0) - kn[..., None] * mu[..., :, None] * mu[..., None, :]
            cov = (scatter + psi) / (Nk + nu + mu.shape[-1] + 2.0)[..., None, None]
        if config.covariance == "diag":
            cov = cov * jnp.eye(cov.shape[-1])
        cov = 0.5 * (cov + jnp.swapaxes(cov, -1, -2)) + jnp.diag(min_covar)
        keep = (Nk > 1e-8)[..., None]
        emissions = GaussianEmissions(jnp.where(keep, mu, old.means), jnp.where(keep[..., None], cov, old.covs))
    elif config.emission == "poisson":
        w = jnp.einsum("vntk,vntd->vkd", gamma, obs.astype(y.dtype))
        s = jnp.einsum("vntk,vntd->vkd", gamma, y0)
        w, s = _pool(w, ev), _pool(s, ev)
        if prior is not None:  # the mode under Gamma(a, b)
            s, w = s + prior["a"] - 1.0, w + prior["b"]
        emissions = PoissonEmissions(jnp.where(w > 1e-8, jnp.maximum(s / jnp.maximum(w, 1e-12), 1e-10), old.rates))
    else:
        C = config.num_categories
        onehot = jax.nn.one_hot(y0.astype(jnp.int32), C) * obs[..., None]
        c = _pool(jnp.einsum("vntk,vntdc->vkdc", gamma, onehot), ev) + alpha
        tot = jnp.sum(c, axis=-1, keepdims=True)
        probs = jnp.maximum(c / jnp.maximum(tot, 1e-12), 1e-12)
        probs = probs / jnp.sum(probs, axis=-1, keepdims=True)
        emissions = CategoricalEmissions(jnp.where(tot > 1e-8, probs, old.probs))
    return HMMParams(init, trans, emissions)


@functools.partial(jax.jit, static_argnames=("config", "partial", "num_iters", "batch_y"))
def _em_block(params, ll_prev, done, y, lengths, min_covar, tol, prior, *, config, partial, num_iters,
              batch_y=False):
    """Up to ``num_iters`` EM steps for a batch of fits (leading axis), freezing converged ones.

    The batch is restarts on one data set (``batch_y=False``) or one fit per data set
    (``batch_y=True``: ``y`` has the same leading axis, e.g. bootstrap replicates).  Returns the
    parameters, the last log-likelihood per fit, the done flags and the per-iteration
    log-likelihood trace ``(num_iters, R)`` (NaN after convergence).  With a ``prior``
    (:func:`conjugate_prior`) the M-step is the posterior mode and the tracked objective is the
    log-likelihood plus the log prior (:func:`log_prior`), which MAP-EM never decreases.
    """

    def one_step(p, llp, dn, y_r, mc):
        ll, gamma, xi = _estep(p, y_r, lengths, config, partial)
        ll = jnp.sum(ll) + (0.0 if prior is None else log_prior(p, prior, config))
        newp = _mstep(p, y_r, lengths, gamma, xi, config, partial, mc, prior)
        finished = dn | (ll - llp < tol)
        newp = jax.tree.map(lambda a, b: jnp.where(finished, a, b), p, newp)
        return newp, jnp.where(dn, llp, ll), finished, jnp.where(dn, jnp.nan, ll)

    # one variance floor for all fits, or one per fit (``(R, D)``: one per data set with batch_y)
    per_fit_floor = batch_y and jnp.ndim(min_covar) == 2
    batched = jax.vmap(one_step, in_axes=(0, 0, 0, 0 if batch_y else None, 0 if per_fit_floor else None))

    def body(carry, _):
        p, llp, dn = carry
        p, ll, dn2, rec = batched(p, llp, dn, y, min_covar)
        return (p, ll, dn2), rec

    (params, ll, done), trace = lax.scan(body, (params, ll_prev, done), None, length=num_iters)
    return params, ll, done, trace


@functools.partial(jax.jit, static_argnames=("config", "partial"))
def state_occupancy(params, y, lengths, *, config: HMMConfig, partial: bool):
    """Expected number of steps in each state, ``(E, K)`` (summed smoothed posteriors)."""
    _, gamma, _ = _estep(params, y, lengths, config, partial)
    return jnp.sum(gamma, axis=(1, 2))


@functools.partial(jax.jit, static_argnames=("config", "partial"))
def path_entropy(params, y, lengths, *, config: HMMConfig, partial: bool):
    r"""Entropy of the state paths given the data, :math:`H(z \mid y) = \log p(y) - E[\log p(z, y)
    \mid y]`, summed over sequences (exact: the expectation needs only the smoothed marginals and
    the expected transition counts).  The classification term of ICL."""
    ll, gamma, xi = _estep(params, y, lengths, config, partial)

    def expected(p, g, x, y_e):
        em = jax.vmap(lambda y_n: emission_log_lik(p.emissions, y_n, config, partial))(y_e)  # (N, T, K)
        log = lambda a: jnp.log(jnp.where(a > 0, a, 1.0))
        return (jnp.sum(g[:, 0] * log(p.init)) + jnp.sum(x * log(p.trans)) + jnp.sum(g * em))

    e_joint = jax.vmap(expected)(params, gamma, xi, y)
    return jnp.sum(ll) - jnp.sum(e_joint)


@dataclass(frozen=True)
class EMPrior:
    r"""Weak conjugate priors of MAP-EM (``fit_hmm(..., em_prior="weak")``), set relative to the data.

    * initial distribution and every transition row: Dirichlet(1 + ``alpha``), i.e. ``alpha``
      pseudo-counts added to each entry;
    * Gaussian emissions: normal-inverse-Wishart, :math:`\mu \mid \Sigma \sim
      \mathcal N(\bar y, \Sigma / \kappa)`, :math:`\Sigma \sim \mathcal{IW}(\Psi, \nu)` with
      :math:`\bar y` the pooled mean, :math:`\kappa` = ``mean_strength``, :math:`\nu` =
      ``cov_dof`` and :math:`\Psi = \nu \cdot` ``cov_scale`` :math:`\cdot
      \operatorname{diag}(\operatorname{var} y)` (a normal-inverse-gamma per channel for
      diagonal covariances): a state's covariance can no longer shrink to zero;
    * Poisson rates: Gamma(1 + ``rate_strength``, ``rate_strength`` / pooled mean), whose mode is
      the pooled mean;
    * categorical symbols: Dirichlet(1 + ``alpha``).
    """

    alpha: float = 1.0
    mean_strength: float = 0.01
    cov_dof: float = 2.0
    cov_scale: float = 0.05
    rate_strength: float = 0.5


def conjugate_prior(data: SequenceData, config: HMMConfig, prior: EMPrior) -> dict:
    """The arrays of :class:`EMPrior` for ``data`` (the M-step's ``prior``)."""
    rows = data.y[np.arange(data.num_steps)[None, None, :] < data.lengths[..., None]]
    out = {"alpha": np.asarray(float(prior.alpha))}
    if config.emission == "gaussian":
        var = np.nanvar(rows, axis=0)
        var = np.where(var > 0, var, 1.0)
        out.update(m0=np.nanmean(rows, axis=0), kappa=np.asarray(float(prior.mean_strength)),
                   nu=np.asarray(float(prior.cov_dof)), psi=np.diag(prior.cov_dof * prior.cov_scale * var))
    elif config.emission == "poisson":
        mean = np.maximum(np.nanmean(rows, axis=0), 1e-3)
        out.update(a=np.full(config.obs_dim, 1.0 + prior.rate_strength), b=prior.rate_strength / mean)
    return jax.tree.map(to_device, out)


def log_prior(params: HMMParams, prior: dict, config: HMMConfig):
    """Log density (up to a constant) of :class:`EMPrior` at one fit's ``params`` (leading axis
    ``E``; a shared mechanism counted once)."""
    take = lambda a, vary: a if vary else a[:1]
    alpha = prior["alpha"]
    tv, ev = config.trans_vary, config.emis_vary
    lp = alpha * jnp.sum(jnp.log(take(params.trans, tv)))
    if config.initial == "free":
        lp = lp + alpha * jnp.sum(jnp.log(take(params.init, tv)))
    em = params.emissions
    if config.emission == "gaussian":
        mu, cov = take(em.means, ev), take(em.covs, ev)
        inv, logdet = jax.vmap(jax.vmap(spd_inv_logdet))(cov)
        d = mu - prior["m0"]
        D = mu.shape[-1]
        lp = lp + jnp.sum(-0.5 * (prior["nu"] + D + 2.0) * logdet
                          - 0.5 * jnp.einsum("de,kied->ki", prior["psi"], inv)
                          - 0.5 * prior["kappa"] * jnp.einsum("kid,kide,kie->ki", d, inv, d))
    elif config.emission == "poisson":
        lam = take(em.rates, ev)
        lp = lp + jnp.sum((prior["a"] - 1.0) * jnp.log(lam) - prior["b"] * lam)
    else:
        lp = lp + alpha * jnp.sum(jnp.log(take(em.probs, ev)))
    return lp


#: Smallest batch that :func:`run_em` compacts its unfinished fits into (below it a batch's
#: cost is mostly fixed overhead, and every new size is one more compilation).
MIN_COMPACT_BATCH = 8


def _bucket(n: int) -> int:
    """The batch size for ``n`` unfinished fits: the next power of two, at least
    :data:`MIN_COMPACT_BATCH` (few distinct sizes, so few compiled programs)."""
    return max(MIN_COMPACT_BATCH, 1 << max(n - 1, 0).bit_length())


@float64
def run_em(params, y, lengths, config: HMMConfig, *, max_iters: int, tol: float, min_covar, partial: bool,
           batch_y: bool = False, progress: bool = False, desc: str = "EM", while_running=None, prior=None):
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
    last iteration (plus the log prior, with a ``prior``: MAP-EM, see :func:`conjugate_prior`).
    ``min_covar`` is one variance floor ``(D,)``, or with ``batch_y`` one per fit ``(R, D)``.
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
    per_fit_floor = batch_y and np.ndim(min_covar) == 2
    floors = to_device(min_covar)
    batch = (params, ll, done, y)
    traces, it = [], 0
    bar = tqdm(total=max_iters, desc=desc, disable=not progress, leave=False)
    while it < max_iters:
        n = min(block, max_iters - it)
        args = batch + (lengths, floors, tol, prior)
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
            floors = to_device(min_covar)[take] if per_fit_floor else floors
        else:
            batch = (p_b, ll_b, done_b, batch[3])
    bar.close()
    trace = np.concatenate(traces) if traces else np.zeros((0, R))
    return params, np.asarray(ll), np.asarray(done), trace


def emission_signature(params: HMMParams, emission: str | None = None) -> np.ndarray:
    """Per-state features ``(..., K, F)`` in comparable units, used to match states.

    Gaussian: means in units of the typical within-state standard deviation of each channel,
    and log standard deviations; Poisson: log rates; categorical: symbol probabilities.
    ``emission`` defaults to the family of ``params``.
    """
    em = params.emissions
    emission = params.emission if emission is None else emission
    if emission == "gaussian":
        sd = np.sqrt(np.maximum(np.diagonal(np.asarray(em.covs), axis1=-2, axis2=-1), 1e-300))
        unit = np.sqrt(np.mean(sd**2, axis=tuple(range(sd.ndim - 1))))  # per channel
        return np.concatenate([np.asarray(em.means) / unit, np.log(sd)], axis=-1)
    if emission == "poisson":
        return np.log(np.asarray(em.rates))
    p = np.asarray(em.probs)
    return p.reshape(p.shape[:-2] + (-1,))


def match_states(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Permutation ``perm`` with ``other[perm]`` closest to ``reference`` (Hungarian algorithm on
    squared distances between the ``(K, F)`` state signatures of :func:`_emission_signature`)."""
    cost = ((reference[:, None, :] - other[None, :, :]) ** 2).sum(-1)
    _, perm = linear_sum_assignment(cost)
    return perm


def numpy_params(params: HMMParams) -> HMMParams:
    """``params`` with every array as a NumPy array (for indexing without compiling JAX programs)."""
    return jax.tree.map(np.asarray, params)


def permute_states(params: HMMParams, perm) -> HMMParams:
    """Relabel states: new state ``k`` is old state ``perm[k]`` (``perm`` of shape (K,) or (E, K))."""
    perm = np.asarray(perm)
    params = numpy_params(params)
    if perm.ndim == 1:
        state_axis = lambda v: v[:, perm]
        trans = params.trans[:, perm][:, :, perm]
    else:
        e = np.arange(perm.shape[0])[:, None]
        state_axis = lambda v: v[e, perm]
        t = params.trans[e, perm]
        trans = np.take_along_axis(t, perm[:, None, :].repeat(t.shape[1], axis=1), axis=2)
    w = params.trans_weights
    if w is not None:
        p = perm if perm.ndim == 1 else perm[0]
        w = w[p][:, :, p]
    return HMMParams(state_axis(params.init), trans, jax.tree.map(state_axis, params.emissions), w)


def canonical_order(params: HMMParams, config: HMMConfig) -> HMMParams:
    """Align per-environment labels (when both mechanisms vary), then sort states by their first
    emission feature averaged over environments."""
    params = numpy_params(params)
    sig = emission_signature(params, config.emission)  # (E, K, F)
    if config.trans_vary and config.emis_vary and config.num_envs > 1:
        perms = np.stack([match_states(sig[0], sig[e]) for e in range(config.num_envs)])
        params = permute_states(params, perms)
        sig = emission_signature(params, config.emission)
    if config.emission == "categorical":
        C = config.num_categories
        key = (params.emissions.probs[..., 0, :] * np.arange(C)).sum(-1).mean(0)
    else:
        key = sig[..., 0].mean(axis=0)
    return permute_states(params, np.argsort(key, kind="stable"))


def min_covar_diag(data: SequenceData, min_covar: float):
    """The M-step's covariance floor: ``min_covar`` times each channel's variance."""
    var = np.nanvar(data.y.reshape(-1, data.obs_dim), axis=0)
    return to_device(min_covar * np.where(var > 0, var, 1.0))


@float64
def simulate_like(key, data: SequenceData, config: HMMConfig, params: HMMParams, num_replicates: int):
    """``num_replicates`` data sets ``(B, E, N, T, D)`` simulated from ``params`` with the shape,
    sequence lengths and missing-value pattern of ``data`` (padding past a sequence's length is
    simulated too, and ignored by every likelihood through the lengths)."""
    params = jax.tree.map(jnp.asarray, params)
    keys = jax.random.split(key, int(num_replicates))
    return _simulate_batch(keys, params, jnp.asarray(np.isnan(data.y)), config=config,
                           num_sequences=int(data.lengths.shape[1]), num_steps=int(data.num_steps))


@functools.partial(jax.jit, static_argnames=("config", "num_sequences", "num_steps"))
def _simulate_batch(keys, params, missing, *, config, num_sequences, num_steps):
    draw = lambda k: simulate_arrays(k, config, params, num_sequences=num_sequences, num_steps=num_steps)[0]
    return jnp.where(missing[None], jnp.nan, jax.vmap(draw)(keys))


def align_to(reference: HMMParams, params: HMMParams, config: HMMConfig) -> HMMParams:
    """Relabel the states of ``params`` to match ``reference`` (both :class:`HMMParams`).

    One permutation for every environment when a mechanism is shared (the labels are common),
    one per environment when nothing is shared; Hungarian matching on the emission signatures.
    """
    ref = emission_signature(numpy_params(reference), config.emission)
    sig = emission_signature(numpy_params(params), config.emission)
    if config.trans_vary and config.emis_vary and config.num_envs > 1:
        perm = np.stack([match_states(ref[e], sig[e]) for e in range(config.num_envs)])
    else:
        K = config.num_states
        flat = lambda s: np.swapaxes(s, 0, 1).reshape(K, -1)
        perm = match_states(flat(ref), flat(sig))
    return permute_states(params, perm)


@float64
def bootstrap_hmm(result, data, num_bootstrap: int = 200, *, key=0, max_iters: int | None = None,
                  tol: float | None = None, progress: bool | None = None):
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
    progress : bool or None
        (None, the default: shown when someone watches, see :mod:`causalid._progress`.)

    Returns
    -------
    HMMResult
        A copy of ``result`` with ``standard_errors`` (an :class:`HMMParams` shaped like
        ``params``) and ``bootstrap_params`` (the aligned refits, leading axis ``B``).
    """
    progress = show_progress(progress)
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
    key = as_key(key)
    settings = result.settings
    max_iters = int(settings.get("max_iters", 500) if max_iters is None else max_iters)
    tol = float(settings.get("tol", 1e-6) if tol is None else tol)
    ys = simulate_like(key, data, config, result.params, B)
    lengths = jnp.asarray(data.lengths)
    start = jax.tree.map(lambda v: jnp.broadcast_to(jnp.asarray(v), (B,) + np.shape(v)), result.params)
    mc = min_covar_diag(data, float(settings.get("min_covar", 1e-6)))
    fitted, _, done, _ = run_em(start, ys, lengths, config, max_iters=max_iters, tol=tol, min_covar=mc,
                                partial=has_partial_rows(data.y), batch_y=True, progress=progress,
                                desc="bootstrap")
    fitted = numpy_params(fitted)
    refits = [align_to(result.params, jax.tree.map(lambda v, b=b: v[b], fitted), config) for b in range(B)]
    draws = jax.tree.map(lambda *v: np.stack(v), *refits)
    if tol > 0 and not np.all(done):
        warnings.warn(f"{int(np.sum(~np.asarray(done)))} of {B} bootstrap refits did not converge in {max_iters} "
                      "EM iterations; they are kept (raise max_iters to tighten the standard errors)",
                      ConvergenceWarning, stacklevel=2)
    se = jax.tree.map(lambda v: np.std(v, axis=0, ddof=1), draws).to_dict()
    # a probability estimated at 0 or 1 is re-estimated there by every refit: its bootstrap
    # spread is zero, which says nothing about its uncertainty
    edge = 0
    est_all = numpy_params(result.params).to_dict()
    for k in ("init", "trans", "probs"):
        if k in se:
            est = est_all[k]
            at = (est < 1e-6) | (est > 1.0 - 1e-6)
            edge += int(np.sum(at))
            se[k] = np.where(at, np.nan, se[k])
    se = HMMParams.from_dict(se)
    if edge:
        warnings.warn(f"{edge} probability estimate(s) sit at 0 or 1 (e.g. every sequence of an environment "
                      "starts in the same state); their bootstrap standard errors are undefined and set to NaN",
                      ConvergenceWarning, stacklevel=2)
    return replace(result, standard_errors=se, bootstrap_params=draws,
                   settings={**settings, "num_bootstrap": B})
