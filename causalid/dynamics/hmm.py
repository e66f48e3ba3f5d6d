r"""Exact inference for discrete-state hidden Markov models, in pure JAX.

Every function takes the same three arrays and an optional length:

* ``init`` — ``(K,)`` initial distribution :math:`\pi_k = p(z_0 = k)`;
* ``trans`` — ``(K, K)`` row-stochastic transition matrix :math:`\Gamma_{ij} = p(z_t = j \mid
  z_{t-1} = i)`, or ``(T-1, K, K)`` with ``trans[t-1]`` the transition into step ``t``
  (input-driven transitions);
* ``log_lik`` — ``(T, K)`` emission log-likelihoods :math:`\log p(y_t \mid z_t = k)`.  A
  missing observation is a row of zeros (the emission is marginalised exactly); the emission
  code in :mod:`causalid.models.hmm` writes them so;
* ``length`` — the number of real steps; rows ``t >= length`` are padding (ragged sequences
  are padded to a common ``T`` and ``vmap``-ed).  Padding contributes nothing: its emission is
  uninformative and its transition is the identity.

The forward pass works in probability space with per-step normalisation (the "scaled" forward
algorithm): the emission row is shifted by its maximum before exponentiation and the shift is
added back to the log-likelihood, so nothing under- or overflows however long the sequence;
the log-likelihood :math:`\sum_t \log c_t` is accumulated in the input dtype (float64 under
causalid), which is what keeps :math:`T = 10^5` sums exact to rounding.

Each entry point has two twins with the identical signature, picked by ``method``:

* ``"sequential"`` — ``lax.scan`` over time, :math:`O(TK^2)` work;
* ``"parallel"`` — log-depth prefix products (:math:`O(TK^3\log T)` work, :math:`O(\log T)`
  depth): scaled matrix products for the filter and backward messages, max-plus products for
  Viterbi, and composition of back-pointer maps for Viterbi back-tracking and posterior path
  sampling;
* ``"auto"`` — the parallel twin on GPU/TPU for ``T >= PARALLEL_MIN_STEPS``, else sequential
  (see :func:`causalid.dynamics.scan.choose_method`).

All functions are jit-able, ``vmap``-able (over sequences, environments, restarts) and
differentiable in ``init``, ``trans`` and ``log_lik``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from causalid._x64 import float64
from causalid.dynamics.scan import PARALLEL_MIN_STEPS, choose_method, prefix_scan

Array = jax.Array

__all__ = [
    "PARALLEL_MIN_STEPS",
    "HMMFilterResult",
    "HMMSmootherResult",
    "hmm_filter",
    "hmm_log_likelihood",
    "hmm_posterior_sample",
    "hmm_smoother",
    "hmm_viterbi",
]


class HMMFilterResult(NamedTuple):
    """Output of :func:`hmm_filter`.

    Attributes
    ----------
    log_likelihood : ()
        :math:`\\log p(y_{0:L-1})` over the real steps.
    filtered : (T, K)
        :math:`p(z_t \\mid y_{0:t})`; padded rows repeat the last real row.
    log_norms : (T,)
        One-step predictive log-densities :math:`\\log p(y_t \\mid y_{0:t-1})` (0 on padding);
        they sum to ``log_likelihood``.
    """

    log_likelihood: Array
    filtered: Array
    log_norms: Array


class HMMSmootherResult(NamedTuple):
    """Output of :func:`hmm_smoother`.

    Attributes
    ----------
    log_likelihood : ()
    filtered : (T, K)
    smoothed : (T, K)
        :math:`p(z_t \\mid y)`; rows of padding are zero, so sums over time are sums over real
        steps.
    trans_counts : (K, K) or (T-1, K, K)
        Expected transitions :math:`\\sum_t p(z_{t-1}=i, z_t=j \\mid y)` over real steps (for a
        constant transition matrix), or the per-step pair marginals (for time-varying
        transitions; zero on padding).
    """

    log_likelihood: Array
    filtered: Array
    smoothed: Array
    trans_counts: Array


# ----------------------------------------------------------------------------- preparation


class _Prep(NamedTuple):
    init: Array  # (K,)
    trans: Array  # (K, K) or (T-1, K, K)
    b: Array  # (T, K) exp(log_lik - shift), ones on padding
    shift: Array  # (T,) row maxima, 0 on padding
    valid: Array  # (T,) bool
    varying: bool


def _prepare(init, trans, log_lik, length) -> _Prep:
    log_lik = jnp.asarray(log_lik)
    dtype = jnp.result_type(log_lik.dtype, jnp.float32)
    log_lik = log_lik.astype(dtype)
    init = jnp.asarray(init, dtype)
    trans = jnp.asarray(trans, dtype)
    T, K = log_lik.shape
    if init.shape != (K,):
        raise ValueError(f"init must have shape ({K},) to match log_lik (T, K) = {log_lik.shape}; got {init.shape}")
    if trans.shape not in ((K, K), (T - 1, K, K)):
        raise ValueError(
            f"trans must have shape ({K}, {K}) or ({T - 1}, {K}, {K}) to match log_lik {log_lik.shape}; "
            f"got {trans.shape}"
        )
    steps = jnp.arange(T)
    valid = steps < (T if length is None else length)
    log_lik = jnp.where(valid[:, None], log_lik, 0.0)
    shift = jnp.max(log_lik, axis=1)
    shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
    b = jnp.exp(log_lik - shift[:, None])
    return _Prep(init, trans, b, shift, valid, trans.ndim == 3)


def _trans_seq(prep: _Prep) -> Array:
    """The ``(T-1, K, K)`` transitions into steps 1..T-1, identity on padding."""
    T, K = prep.b.shape
    eye = jnp.eye(K, dtype=prep.b.dtype)
    full = prep.trans if prep.varying else jnp.broadcast_to(prep.trans, (T - 1, K, K))
    return jnp.where(prep.valid[1:, None, None], full, eye)


def _vecmat(v, M):
    """``v @ M`` as broadcast-and-sum: for small K this stays fast when the scan is ``vmap``-ed
    (a batched ``dot_general`` of K-vectors was measured 5-10x slower on XLA:CPU)."""
    return jnp.sum(v[:, None] * M, axis=0)


def _matvec(M, v):
    """``M @ v`` as broadcast-and-sum (see :func:`_vecmat`)."""
    return jnp.sum(M * v[None, :], axis=1)


def _safe_log(c):
    return jnp.log(jnp.where(c > 0, c, 1.0)) + jnp.where(c > 0, 0.0, -jnp.inf)


def _resolve(method: str, T: int) -> str:
    if method == "auto":
        return choose_method(T)
    if method not in ("sequential", "parallel"):
        raise ValueError(f"method must be 'auto', 'sequential' or 'parallel'; got {method!r}")
    return method


# ------------------------------------------------------------------------- sequential twin


def _forward_sequential(prep: _Prep):
    a0 = prep.init * prep.b[0]
    c0 = a0.sum()

    if prep.varying:
        xs = (prep.b[1:], prep.valid[1:], prep.trans)

        def step(alpha, x):
            b_t, v_t, A_t = x
            a = jnp.where(v_t, _vecmat(alpha, A_t), alpha) * b_t
            c = a.sum()
            return a / c, (a / c, c)
    else:
        A = prep.trans

        def step(alpha, x):
            b_t, v_t = x
            a = jnp.where(v_t, _vecmat(alpha, A), alpha) * b_t
            c = a.sum()
            return a / c, (a / c, c)

        xs = (prep.b[1:], prep.valid[1:])

    _, (alphas, cs) = lax.scan(step, a0 / c0, xs)
    alphas = jnp.concatenate([(a0 / c0)[None], alphas])
    log_c = _safe_log(jnp.concatenate([c0[None], cs]))
    return alphas, log_c + prep.shift


def _backward_sequential(prep: _Prep, log_norms: Array) -> Array:
    """Scaled backward messages :math:`\\beta_t = p(y_{t+1:} \\mid z_t) / p(y_{t+1:} \\mid y_{0:t})`."""
    K = prep.b.shape[1]
    c = jnp.exp(log_norms - prep.shift)  # per-step normalisers of the scaled forward pass
    w_scale = prep.b[1:] / c[1:, None]
    if prep.varying:
        xs = (w_scale, prep.valid[1:], prep.trans)

        def step(beta_next, x):
            w, v, A_t = x
            beta = jnp.where(v, _matvec(A_t, w * beta_next), beta_next)
            return beta, beta
    else:
        A = prep.trans
        xs = (w_scale, prep.valid[1:])

        def step(beta_next, x):
            w, v = x
            beta = jnp.where(v, _matvec(A, w * beta_next), beta_next)
            return beta, beta

    ones = jnp.ones((K,), prep.b.dtype)
    _, betas = lax.scan(step, ones, xs, reverse=True)
    return jnp.concatenate([betas, ones[None]])


def _loglik_sequential(prep: _Prep) -> Array:
    a0 = prep.init * prep.b[0]
    c0 = a0.sum()
    A = prep.trans

    def step(carry, x):
        alpha, acc = carry
        if prep.varying:
            b_t, v_t, A_t = x
        else:
            b_t, v_t = x
            A_t = A
        a = jnp.where(v_t, _vecmat(alpha, A_t), alpha) * b_t
        c = a.sum()
        return (a / c, acc + _safe_log(c)), None

    xs = (prep.b[1:], prep.valid[1:]) + ((prep.trans,) if prep.varying else ())
    (_, acc), _ = lax.scan(step, (a0 / c0, _safe_log(c0)), xs)
    return acc + prep.shift.sum()


# --------------------------------------------------------------------------- parallel twin


def _scaled_matmul(early, late):
    """Associative product of scaled matrices ``(M, log s)``: ``M_e M_l`` renormalised by its max."""
    Me, se = early
    Ml, sl = late
    P = Me @ Ml
    n = jnp.max(P)
    n = jnp.where(n > 0, n, 1.0)
    return P / n, se + sl + jnp.log(n)


def _forward_parallel(prep: _Prep):
    T, K = prep.b.shape
    dtype = prep.b.dtype
    M = _trans_seq(prep) * prep.b[1:, None, :]
    M0 = jnp.broadcast_to(prep.init * prep.b[0], (K, K))  # every row: the first forward message
    elems = (jnp.concatenate([M0[None], M]), jnp.zeros((T,), dtype))
    identity = (jnp.eye(K, dtype=dtype), jnp.zeros((), dtype))
    P, s = prefix_scan(_scaled_matmul, elems, identity)
    rows = P[:, 0, :]
    tot = rows.sum(axis=1)
    alphas = rows / tot[:, None]
    log_z = s + _safe_log(tot)  # log p(y_{0:t}) without the emission shifts
    log_c = jnp.concatenate([log_z[:1], jnp.diff(log_z)])
    return alphas, log_c + prep.shift


def _backward_parallel(prep: _Prep, log_norms: Array) -> Array:
    """Backward messages up to a positive factor per step (normalised to sum one)."""
    T, K = prep.b.shape
    dtype = prep.b.dtype
    M = _trans_seq(prep) * prep.b[1:, None, :]  # M[t-1] = Gamma_t diag(b_t), t = 1..T-1
    flip = lambda x: jax.tree.map(lambda a: a[::-1], x)
    elems = flip((M, jnp.zeros((T - 1,), dtype)))
    identity = (jnp.eye(K, dtype=dtype), jnp.zeros((), dtype))
    # suffix products M_{t+1} ... M_{T-1}: a prefix scan of the reversed sequence, with the
    # later (in time) factor on the right
    P, _ = flip(prefix_scan(lambda late, early: _scaled_matmul(early, late), elems, identity))
    betas = P.sum(axis=2)
    betas = betas / betas.sum(axis=1, keepdims=True)
    return jnp.concatenate([betas, jnp.full((1, K), 1.0 / K, dtype)])


def _maxplus(early, late):
    return jnp.max(early[:, :, None] + late[None, :, :], axis=1)


def _compose(late, early):
    """Composition of back-pointer maps: ``(early ∘ late)[j] = early[late[j]]``."""
    return early[late]


# ---------------------------------------------------------------------------------- public


@float64
@functools.partial(jax.jit, static_argnames=("method",))
def hmm_filter(init, trans, log_lik, length=None, *, method: str = "auto") -> HMMFilterResult:
    r"""Forward filter: :math:`p(z_t \mid y_{0:t})` and the marginal log-likelihood.

    .. math::

        \alpha_0 \propto \pi \odot b_0,\qquad
        \alpha_t \propto (\alpha_{t-1}^\top \Gamma_t) \odot b_t,\qquad
        \log p(y) = \sum_t \log c_t,

    with :math:`c_t` the normaliser of step ``t`` and :math:`b_t = p(y_t \mid z_t = \cdot)`.

    Parameters
    ----------
    init : (K,) array
    trans : (K, K) or (T-1, K, K) array
    log_lik : (T, K) array
    length : int or scalar array, optional
        Number of real steps (default ``T``).
    method : {"auto", "sequential", "parallel"}

    Returns
    -------
    HMMFilterResult
    """
    prep = _prepare(init, trans, log_lik, length)
    if _resolve(method, prep.b.shape[0]) == "parallel":
        alphas, log_norms = _forward_parallel(prep)
    else:
        alphas, log_norms = _forward_sequential(prep)
    log_norms = jnp.where(prep.valid, log_norms, 0.0)
    return HMMFilterResult(log_norms.sum(), alphas, log_norms)


@float64
@functools.partial(jax.jit, static_argnames=("method",))
def hmm_log_likelihood(init, trans, log_lik, length=None, *, method: str = "auto") -> Array:
    """Marginal log-likelihood :math:`\\log p(y)` (the forward pass carrying only its sum).

    Same arguments as :func:`hmm_filter`.  This is the entry point for gradient-based fitting
    and NUTS: the sequential twin stores nothing per step but the carry.
    """
    prep = _prepare(init, trans, log_lik, length)
    if _resolve(method, prep.b.shape[0]) == "parallel":
        _, log_norms = _forward_parallel(prep)
        return jnp.where(prep.valid, log_norms, 0.0).sum()
    return _loglik_sequential(prep)


@float64
@functools.partial(jax.jit, static_argnames=("method",))
def hmm_smoother(init, trans, log_lik, length=None, *, method: str = "auto") -> HMMSmootherResult:
    r"""Forward-backward smoother: :math:`p(z_t \mid y)` and expected transition counts.

    .. math::

        \gamma_t \propto \alpha_t \odot \beta_t,\qquad
        \xi_t(i, j) \propto \alpha_{t-1}(i)\, \Gamma_t(i, j)\, b_t(j)\, \beta_t(j),

    each normalised to sum to one, so the backward messages may carry any positive scale
    (the parallel twin's do).

    Parameters
    ----------
    init, trans, log_lik, length, method
        As :func:`hmm_filter`.

    Returns
    -------
    HMMSmootherResult
    """
    prep = _prepare(init, trans, log_lik, length)
    parallel = _resolve(method, prep.b.shape[0]) == "parallel"
    if parallel:
        alphas, log_norms = _forward_parallel(prep)
        betas = _backward_parallel(prep, log_norms)
    else:
        alphas, log_norms = _forward_sequential(prep)
        betas = _backward_sequential(prep, log_norms)
    log_norms = jnp.where(prep.valid, log_norms, 0.0)
    gamma = alphas * betas
    gamma = gamma / gamma.sum(axis=1, keepdims=True)
    gamma = jnp.where(prep.valid[:, None], gamma, 0.0)

    w = prep.b[1:] * betas[1:]  # (T-1, K)
    live = prep.valid[1:]
    if prep.varying:
        xi = alphas[:-1, :, None] * prep.trans * w[:, None, :]
        xi = xi / xi.sum(axis=(1, 2), keepdims=True)
        counts = jnp.where(live[:, None, None], xi, 0.0)
    else:
        norm = jnp.sum((alphas[:-1] @ prep.trans) * w, axis=1)
        weights = jnp.where(live, 1.0 / norm, 0.0)
        counts = prep.trans * (alphas[:-1].T @ (w * weights[:, None]))
    return HMMSmootherResult(log_norms.sum(), alphas, gamma, counts)


@float64
@functools.partial(jax.jit, static_argnames=("method",))
def hmm_viterbi(init, trans, log_lik, length=None, *, method: str = "auto") -> tuple[Array, Array]:
    r"""Most probable state path (max-product in log space).

    .. math::

        \delta_0 = \log\pi + \ell_0,\quad
        \delta_t(j) = \max_i \left[\delta_{t-1}(i) + \log\Gamma_t(i, j)\right] + \ell_t(j),\quad
        \psi_t(j) = \arg\max_i \left[\delta_{t-1}(i) + \log\Gamma_t(i, j)\right],

    then back-tracking :math:`z_{L-1} = \arg\max\delta_{L-1}`, :math:`z_{t-1} = \psi_t(z_t)`.
    The parallel twin obtains all :math:`\delta_t` as max-plus prefix products and the path as
    suffix compositions of the maps :math:`\psi_t`.

    Parameters
    ----------
    init, trans, log_lik, length, method
        As :func:`hmm_filter`.

    Returns
    -------
    path : (T,) int32
        States; ``-1`` on padding.
    log_prob : ()
        :math:`\max_z \log p(z, y)`.
    """
    prep = _prepare(init, trans, log_lik, length)
    T, K = prep.b.shape
    dtype = prep.b.dtype
    ll = jnp.log(prep.b) + prep.shift[:, None]
    log_T = jnp.log(_trans_seq(prep))  # (T-1, K, K); identity -> 0 / -inf on padding
    delta0 = jnp.log(prep.init) + ll[0]
    if _resolve(method, T) == "parallel":
        L = log_T + ll[1:, None, :]
        L0 = jnp.broadcast_to(delta0, (K, K))
        ident = jnp.where(jnp.eye(K, dtype=bool), 0.0, -jnp.inf).astype(dtype)
        deltas = prefix_scan(_maxplus, jnp.concatenate([L0[None], L]), ident)[:, 0, :]
    else:

        def step(delta, x):
            lt, l = x
            d = jnp.max(delta[:, None] + lt, axis=0) + l
            return d, d

        _, deltas = lax.scan(step, delta0, (log_T, ll[1:]))
        deltas = jnp.concatenate([delta0[None], deltas])
    # back-pointers psi_t(j) for t = 1..T-1 (identity maps on padding)
    psi = jnp.argmax(deltas[:-1, :, None] + log_T, axis=1).astype(jnp.int32)
    last = jnp.sum(prep.valid) - 1
    z_last = jnp.argmax(deltas[last]).astype(jnp.int32)
    path = _backtrack(psi, z_last, method=_resolve(method, T))
    path = jnp.where(prep.valid, path, -1)
    return path, deltas[last, z_last]


def _backtrack(maps: Array, z_last: Array, *, method: str) -> Array:
    """Path :math:`z_{T-1} = z_{last}`, :math:`z_{t-1} = maps_{t-1}[z_t]` (maps ``(T-1, K)``).

    Padding steps carry identity maps, so the real last state propagates back unchanged.
    """
    if method == "parallel":
        K = maps.shape[1]
        ident = jnp.arange(K, dtype=maps.dtype)
        # suffix compositions maps[t] ∘ maps[t+1] ∘ ... ∘ maps[T-2]
        suffix = prefix_scan(_compose, maps[::-1], ident)[::-1]
        head = suffix[:, z_last]
        return jnp.concatenate([head, z_last[None]])

    def step(z, m):
        prev = m[z]
        return prev, prev

    _, head = lax.scan(step, z_last, maps, reverse=True)
    return jnp.concatenate([head, z_last[None]])


@float64
@functools.partial(jax.jit, static_argnames=("num_samples", "method"))
def hmm_posterior_sample(key, init, trans, log_lik, length=None, *, num_samples: int = 1,
                         method: str = "auto") -> Array:
    r"""Exact draws of state paths from :math:`p(z \mid y)` (forward filtering, backward sampling).

    :math:`z_{L-1} \sim \alpha_{L-1}` and :math:`z_{t-1} \mid z_t = j \sim \alpha_{t-1}(\cdot)
    \Gamma_t(\cdot, j)`.  For every step one uniform variate is drawn and turned into a map
    :math:`j \mapsto z_{t-1}` for all ``K`` values of ``j`` at once (inverse-CDF with the same
    variate), so the sequential twin back-tracks through the maps and the parallel twin
    composes them in log depth; both give the same path for the same key.

    Parameters
    ----------
    key : PRNGKey
    init, trans, log_lik, length, method
        As :func:`hmm_filter`.
    num_samples : int
        Number of independent paths.

    Returns
    -------
    (num_samples, T) int32
        Paths; ``-1`` on padding.
    """
    prep = _prepare(init, trans, log_lik, length)
    T, K = prep.b.shape
    resolved = _resolve(method, T)
    alphas = (_forward_parallel if resolved == "parallel" else _forward_sequential)(prep)[0]
    # conditional of z_{t-1} given z_t = j: column j of alpha_{t-1}(i) Gamma_t(i, j)
    cond = alphas[:-1, :, None] * _trans_seq(prep)  # (T-1, K, K)
    cond = cond / cond.sum(axis=1, keepdims=True)
    cdf = jnp.cumsum(cond, axis=1)  # over i
    last = jnp.sum(prep.valid) - 1

    def one(k):
        k_last, k_steps = jax.random.split(k)
        u = jax.random.uniform(k_steps, (T - 1, 1, 1), dtype=alphas.dtype)
        maps = jnp.sum(cdf < u * cdf[:, -1:, :], axis=1).astype(jnp.int32)  # (T-1, K)
        maps = jnp.minimum(maps, K - 1)
        z_last = jax.random.categorical(k_last, jnp.log(alphas[last])).astype(jnp.int32)
        path = _backtrack(maps, z_last, method=resolved)
        return jnp.where(prep.valid, path, -1)

    return jax.vmap(one)(jax.random.split(key, num_samples))
