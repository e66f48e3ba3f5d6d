"""Exact HMM inference against brute-force enumeration of every state path."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

import causalid  # noqa: F401  (float64)
from causalid.dynamics.hmm import (
    hmm_filter,
    hmm_log_likelihood,
    hmm_posterior_sample,
    hmm_smoother,
    hmm_viterbi,
)

JAX_X64 = True  # drives the JAX kernels from JAX code (see tests/conftest.py)

METHODS = ["sequential", "parallel"]


def _problem(seed, K=3, T=6, varying=False):
    rng = np.random.default_rng(seed)
    init = rng.dirichlet(np.ones(K))
    shape = (T - 1, K, K) if varying else (K, K)
    trans = rng.dirichlet(np.ones(K), size=shape[:-1])
    log_lik = rng.normal(scale=2.0, size=(T, K))
    return init, trans, log_lik


def _brute(init, trans, log_lik):
    """Every path's joint log-probability: the oracle for all quantities."""
    T, K = log_lik.shape
    paths = np.array(list(itertools.product(range(K), repeat=T)))
    tr = trans if trans.ndim == 3 else np.broadcast_to(trans, (T - 1, K, K))
    lp = np.log(init[paths[:, 0]]) + log_lik[np.arange(T), paths].sum(axis=1)
    lp = lp + np.log(tr[np.arange(T - 1), paths[:, :-1], paths[:, 1:]]).sum(axis=1)
    ll = logsumexp(lp)
    w = np.exp(lp - ll)
    smoothed = np.stack([np.bincount(paths[:, t], weights=w, minlength=K) for t in range(T)])
    pairs = np.zeros((T - 1, K, K))
    for t in range(T - 1):
        np.add.at(pairs[t], (paths[:, t], paths[:, t + 1]), w)
    return ll, smoothed, pairs, paths[np.argmax(lp)], lp.max(), paths, w


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("varying", [False, True])
def test_filter_smoother_viterbi_match_enumeration(method, varying):
    for seed in range(3):
        init, trans, log_lik = _problem(seed, varying=varying)
        ll, smoothed, pairs, best, best_lp, _, _ = _brute(init, trans, log_lik)
        f = hmm_filter(init, trans, log_lik, method=method)
        np.testing.assert_allclose(f.log_likelihood, ll, rtol=1e-12)
        np.testing.assert_allclose(np.sum(f.log_norms), ll, rtol=1e-12)
        # the last filtered marginal is the last smoothed one
        np.testing.assert_allclose(f.filtered[-1], smoothed[-1], atol=1e-12)
        # filtering at t equals enumeration on the prefix y_{0:t}
        t = 3
        pre = _brute(init, trans[:t] if varying else trans, log_lik[: t + 1])
        np.testing.assert_allclose(f.filtered[t], pre[1][-1], atol=1e-12)
        s = hmm_smoother(init, trans, log_lik, method=method)
        np.testing.assert_allclose(s.smoothed, smoothed, atol=1e-12)
        want = pairs if varying else pairs.sum(axis=0)
        np.testing.assert_allclose(s.trans_counts, want, atol=1e-12)
        np.testing.assert_allclose(hmm_log_likelihood(init, trans, log_lik, method=method), ll, rtol=1e-12)
        path, lp = hmm_viterbi(init, trans, log_lik, method=method)
        np.testing.assert_array_equal(path, best)
        np.testing.assert_allclose(lp, best_lp, rtol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_padding_and_missing_rows(method):
    init, trans, log_lik = _problem(7, T=7)
    short = log_lik[:4]
    ll, smoothed, pairs, best, _, _, _ = _brute(init, trans, short)
    padded = log_lik.copy()
    padded[4:] = 123.0  # garbage beyond the length must not matter
    s = hmm_smoother(init, trans, padded, length=4, method=method)
    np.testing.assert_allclose(s.log_likelihood, ll, rtol=1e-12)
    np.testing.assert_allclose(s.smoothed[:4], smoothed, atol=1e-12)
    np.testing.assert_array_equal(s.smoothed[4:], 0.0)
    np.testing.assert_allclose(s.trans_counts, pairs.sum(axis=0), atol=1e-12)
    path, _ = hmm_viterbi(init, trans, padded, length=4, method=method)
    np.testing.assert_array_equal(path[:4], best)
    np.testing.assert_array_equal(path[4:], -1)
    # a missing observation is a zero emission row: enumeration marginalises it the same way
    gap = log_lik.copy()
    gap[2] = 0.0
    np.testing.assert_allclose(hmm_log_likelihood(init, trans, gap, method=method), _brute(init, trans, gap)[0],
                               rtol=1e-12)


def test_parallel_equals_sequential_long_and_vmapped():
    rng = np.random.default_rng(3)
    K, T, S = 4, 300, 3
    init = rng.dirichlet(np.ones(K))
    trans = rng.dirichlet(np.ones(K) * 0.5, size=K)
    log_lik = rng.normal(scale=3.0, size=(S, T, K))
    lengths = np.array([300, 211, 57])
    for fn in (hmm_smoother, hmm_viterbi):
        seq = jax.vmap(lambda l, n: fn(init, trans, l, n, method="sequential"))(log_lik, lengths)
        par = jax.vmap(lambda l, n: fn(init, trans, l, n, method="parallel"))(log_lik, lengths)
        for a, b in zip(jax.tree.leaves(seq), jax.tree.leaves(par)):
            if jnp.issubdtype(a.dtype, jnp.integer):
                np.testing.assert_array_equal(a, b)
            else:
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


def test_gradient_matches_enumeration():
    init, trans, log_lik = _problem(11, K=2, T=5)

    def brute(init, trans, log_lik):
        T, K = log_lik.shape
        paths = jnp.array(list(itertools.product(range(K), repeat=T)))
        lp = jnp.log(init[paths[:, 0]]) + log_lik[jnp.arange(T), paths].sum(axis=1)
        lp = lp + jnp.log(trans[paths[:, :-1], paths[:, 1:]]).sum(axis=1)
        return jax.nn.logsumexp(lp)

    args = tuple(jnp.asarray(a) for a in (init, trans, log_lik))
    want = jax.grad(brute, argnums=(0, 1, 2))(*args)
    for method in METHODS:
        got = jax.grad(lambda *a: hmm_log_likelihood(*a, method=method), argnums=(0, 1, 2))(*args)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_posterior_samples_follow_the_exact_posterior():
    init, trans, log_lik = _problem(5, K=2, T=4)
    *_, paths, w = _brute(init, trans, log_lik)
    n = 20000
    draws = hmm_posterior_sample(jax.random.PRNGKey(0), init, trans, log_lik, num_samples=n,
                                 method="sequential")
    codes = np.asarray(draws) @ (2 ** np.arange(3, -1, -1))
    want_codes = paths @ (2 ** np.arange(3, -1, -1))
    freq = np.bincount(codes, minlength=16)[want_codes] / n
    # each path frequency within 4.5 binomial standard errors of its exact probability
    se = np.sqrt(w * (1 - w) / n)
    assert np.all(np.abs(freq - w) <= 4.5 * se + 1e-12), (freq, w)
    par = hmm_posterior_sample(jax.random.PRNGKey(0), init, trans, log_lik, num_samples=n, method="parallel")
    np.testing.assert_array_equal(draws, par)


def _textbook_float32_filter(init, trans, log_lik):
    """The usual float32 forward filter (as in dynamax): one running sum of log normalisers."""
    init, trans, log_lik = (jnp.asarray(a, jnp.float32) for a in (init, trans, log_lik))

    def step(carry, l):
        alpha, acc = carry
        m = jnp.max(l)
        a = (alpha @ trans) * jnp.exp(l - m)
        c = a.sum()
        return (a / c, acc + (jnp.log(c) + m)), None

    m0 = jnp.max(log_lik[0])
    a0 = init * jnp.exp(log_lik[0] - m0)
    (_, acc), _ = jax.lax.scan(step, (a0 / a0.sum(), jnp.log(a0.sum()) + m0), log_lik[1:])
    return acc


def test_float64_long_sum_is_exact_where_float32_drifts():
    """T = 10^5: the float64 filter matches an independent float64 reference (hmmlearn's
    log-space forward pass) to 1e-10 relative, both twins; a float32 filter is off by > 1 nat."""
    hmmc = pytest.importorskip("hmmlearn._hmmc")
    rng = np.random.default_rng(0)
    K, T = 4, 100_000
    init = rng.dirichlet(np.ones(K))
    trans = rng.dirichlet(np.ones(K) * 2, size=K)
    log_lik = rng.normal(loc=-10.0, scale=3.0, size=(T, K))
    ref, _ = hmmc.forward_log(init, trans, log_lik)
    for method in METHODS:
        got64 = float(hmm_log_likelihood(init, trans, log_lik, method=method))
        assert abs(got64 - ref) <= 1e-10 * abs(ref), method
    got32 = float(jax.jit(_textbook_float32_filter)(init, trans, log_lik))
    assert abs(got32 - ref) > 1.0


def test_bad_shapes_are_named():
    init, trans, log_lik = _problem(0)
    with pytest.raises(ValueError, match="init must have shape"):
        hmm_filter(init[:2], trans, log_lik)
    with pytest.raises(ValueError, match="trans must have shape"):
        hmm_filter(init, trans[:2], log_lik)
    with pytest.raises(ValueError, match="method must be"):
        hmm_filter(init, trans, log_lik, method="fast")
