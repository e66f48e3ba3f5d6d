"""Tests of causalid.dynamics.kalman: dense joint-Gaussian oracles, the sequential /
parallel twins against each other, dynamax, finite differences and vmap.

The jitted entry points are module-level so one compilation serves every test that uses
the same shapes (the NaN patterns change values, not shapes).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import stats

import causalid  # noqa: F401  (switches on float64)
import jax
import jax.numpy as jnp
from causalid.dynamics import kalman as K
from causalid.errors import DataError

JAX_X64 = True  # drives the JAX kernels from JAX code (see tests/conftest.py)

N, P, M, T = 3, 2, 2, 20
METHODS = ("sequential", "parallel")



@functools.partial(jax.jit, static_argnames="method")
def _all(params, y, u, method):
    """Every entry point in one compiled program per method (XLA shares the filter)."""
    return (
        K.log_likelihood(params, y, u, method=method),
        K.kalman_filter(params, y, u, method=method),
        K.kalman_smoother(params, y, u, method=method),
    )


def _ll(params, y, u, method):
    return _all(params, y, u, method)[0]


def _filter(params, y, u, method):
    return _all(params, y, u, method)[1]


def _smoother(params, y, u, method):
    return _all(params, y, u, method)[2]


_dense = jax.jit(K.dense_log_likelihood)
_grad = jax.jit(jax.grad(K.log_likelihood, argnums=(0, 1, 2)), static_argnames="method")


# ----------------------------------------------------------------------------- helpers


def _spd(rng, k, scale=1.0):
    x = rng.normal(size=(k, k))
    return scale * (x @ x.T / k + 0.5 * np.eye(k))


def _system(seed=0, *, n=N, p=P, m=M, drift=True):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n))
    A = 0.8 * A / np.max(np.abs(np.linalg.eigvals(A)))
    kw = {}
    if m:
        kw.update(B=rng.normal(size=(n, m)), D=rng.normal(size=(p, m)))
    if drift:
        kw.update(b=rng.normal(size=n), d=rng.normal(size=p))
    return K.make_params(
        A, rng.normal(size=(p, n)), _spd(rng, n), _spd(rng, p, 0.5),
        m0=rng.normal(size=n), P0=_spd(rng, n), **kw,
    )


def _data(params, seed=0, *, T=T, nans="none"):
    """Simulate (y, u) from the model; ``nans`` in {"none", "scattered", "rows", "both"}."""
    rng = np.random.default_rng(seed + 100)
    pr = jax.tree.map(np.asarray, params)
    n, p, m = pr.A.shape[0], pr.C.shape[0], pr.B.shape[1]
    u = rng.normal(size=(T, m))
    x = rng.multivariate_normal(pr.m0, pr.P0)
    y = np.empty((T, p))
    for t in range(T):
        y[t] = pr.C @ x + pr.D @ u[t] + pr.d + rng.multivariate_normal(np.zeros(p), pr.R)
        x = pr.A @ x + pr.B @ u[t] + pr.b + rng.multivariate_normal(np.zeros(n), pr.Q)
    if nans in ("scattered", "both"):
        y[rng.random(size=y.shape) < 0.2] = np.nan
    if nans in ("rows", "both"):
        y[[0, 5, 6, T - 1]] = np.nan
    return y, (u if m else None)


def _dense_joint(params, u, T):
    """NumPy joint Gaussian of (vec x, vec y): means and the full covariance blocks."""
    pr = jax.tree.map(np.asarray, params)
    n, m = pr.A.shape[0], pr.B.shape[1]
    u = np.zeros((T, m)) if u is None else u
    mx, vx = [pr.m0], [pr.P0]
    for t in range(T - 1):
        mx.append(pr.A @ mx[-1] + pr.B @ u[t] + pr.b)
        vx.append(pr.A @ vx[-1] @ pr.A.T + pr.Q)
    sx = np.zeros((T * n, T * n))
    for t in range(T):
        acc = vx[t]
        for s in range(t, T):
            sx[s * n:(s + 1) * n, t * n:(t + 1) * n] = acc
            sx[t * n:(t + 1) * n, s * n:(s + 1) * n] = acc.T
            acc = pr.A @ acc
    cbig = np.kron(np.eye(T), pr.C)
    my = cbig @ np.concatenate(mx) + (u @ pr.D.T + pr.d).reshape(-1)
    sy = cbig @ sx @ cbig.T + np.kron(np.eye(T), pr.R)
    return np.concatenate(mx), sx, my, sy, sx @ cbig.T


def _dense_posterior(params, y, u, upto=None):
    """Mean / covariance of vec x given the observed entries of y[:upto]."""
    T = y.shape[0]
    mx, sx, my, sy, sxy = _dense_joint(params, u, T)
    yv = y.copy()
    if upto is not None:
        yv[upto:] = np.nan
    o = ~np.isnan(yv.reshape(-1))
    gain = np.linalg.solve(sy[np.ix_(o, o)], sxy[:, o].T).T
    return mx + gain @ (yv.reshape(-1)[o] - my[o]), sx - gain @ sxy[:, o].T


def _rel(a, b):
    return abs(float(a) - float(b)) / max(abs(float(b)), 1.0)


# ----------------------------------------------------------------------------- oracles


@pytest.mark.parametrize("nans", ["none", "scattered", "rows", "both"])
def test_loglik_equals_dense_oracle(nans):
    params = _system(1)
    y, u = _data(params, 1, nans=nans)
    dense = _dense(params, y, u)
    # an independent oracle for the observed-entries density: scipy on the selected entries
    _, _, my, sy, _ = _dense_joint(params, u, T)
    o = ~np.isnan(y.reshape(-1))
    ref = stats.multivariate_normal(my[o], sy[np.ix_(o, o)]).logpdf(y.reshape(-1)[o])
    assert _rel(dense, ref) < 1e-10
    for method in METHODS:
        assert _rel(_ll(params, y, u, method), ref) < 1e-8, method


def test_loglik_without_drift_and_badly_scaled():
    # units of 1e4 in y (variances ~1e8): the Jacobi scaling of S keeps the elimination exact
    params = _system(2, drift=False)
    params = params._replace(C=1e4 * params.C, D=1e4 * params.D, R=1e8 * params.R)
    y, u = _data(params, 2, nans="scattered")
    assert float(jnp.abs(params.b).max()) == 0.0
    ref = _dense(params, y, u)
    for method in METHODS:
        assert _rel(_ll(params, y, u, method), ref) < 1e-8, method


def test_all_missing_gives_zero_loglik_and_prior_moments():
    params = _system(3)
    y, u = _data(params, 3)
    y[:] = np.nan
    for method in METHODS:
        res = _smoother(params, y, u, method)
        assert abs(float(res.log_likelihood)) < 1e-12
        np.testing.assert_allclose(res.smoothed_means[0], params.m0, atol=1e-12)
        np.testing.assert_allclose(res.smoothed_covs[0], params.P0, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_filter_and_smoother_equal_dense_conditionals(method):
    params = _system(4)
    y, u = _data(params, 4, nans="both")
    res = _smoother(params, y, u, method)
    filt = _filter(params, y, u, method)
    mean, cov = _dense_posterior(params, y, u)
    blk = lambda s, t: cov[s * N:(s + 1) * N, t * N:(t + 1) * N]  # noqa: E731
    np.testing.assert_allclose(res.smoothed_means, mean.reshape(T, N), atol=1e-9)
    np.testing.assert_allclose(
        res.smoothed_covs, np.stack([blk(t, t) for t in range(T)]), atol=1e-9
    )
    np.testing.assert_allclose(
        res.smoothed_cross_covs, np.stack([blk(t + 1, t) for t in range(T - 1)]), atol=1e-9
    )
    for t in (0, 3, 6, 11, T - 1):  # filtered: condition on y_{0:t}; predicted on y_{0:t-1}
        mean_f, cov_f = _dense_posterior(params, y, u, upto=t + 1)
        np.testing.assert_allclose(filt.filtered_means[t], mean_f[t * N:(t + 1) * N], atol=1e-9)
        np.testing.assert_allclose(
            filt.filtered_covs[t], cov_f[t * N:(t + 1) * N, t * N:(t + 1) * N], atol=1e-9
        )
        mean_p, cov_p = _dense_posterior(params, y, u, upto=t)
        np.testing.assert_allclose(filt.predicted_means[t], mean_p[t * N:(t + 1) * N], atol=1e-9)
        np.testing.assert_allclose(
            filt.predicted_covs[t], cov_p[t * N:(t + 1) * N, t * N:(t + 1) * N], atol=1e-9
        )
    np.testing.assert_allclose(res.filtered_means, filt.filtered_means, atol=1e-12)
    assert float(res.log_likelihood) == pytest.approx(float(filt.log_likelihood), rel=1e-12)


def test_parallel_equals_sequential():
    params = _system(5)
    y, u = _data(params, 5, nans="both")
    seq = _smoother(params, y, u, "sequential")
    par = _smoother(params, y, u, "parallel")
    for name, a, b in zip(seq._fields, seq, par):
        np.testing.assert_allclose(a, b, atol=1e-9, rtol=1e-9, err_msg=name)
    fs = _filter(params, y, u, "sequential")
    fp = _filter(params, y, u, "parallel")
    for name, a, b in zip(fs._fields, fs, fp):
        np.testing.assert_allclose(a, b, atol=1e-9, rtol=1e-9, err_msg=name)
    assert _rel(_ll(params, y, u, "parallel"), seq.log_likelihood) < 1e-12


@jax.jit
def _single_step(params, y):
    return (
        K.dense_log_likelihood(params, y),
        *(K.kalman_smoother(params, y, method=m) for m in METHODS),
    )


def test_single_step_without_inputs():
    params = _system(6, m=0)
    y, _ = _data(params, 6, T=1)
    ref, *outs = _single_step(params, y)
    for res in outs:
        assert _rel(res.log_likelihood, ref) < 1e-10
        assert res.smoothed_cross_covs.shape == (0, N, N)
        np.testing.assert_allclose(res.smoothed_covs, res.filtered_covs, atol=1e-12)
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, atol=1e-10)


# ----------------------------------------------------------------------------- dynamax


@pytest.fixture
def dynamax_inference():
    """dynamax's LGSSM inference module.  Importing dynamax sets the process-wide
    ``jax_default_matmul_precision`` to "float32"; restore it so no other test (and no
    compilation-cache key) is affected."""
    saved = jax.config.jax_default_matmul_precision
    try:
        inf = pytest.importorskip("dynamax.linear_gaussian_ssm.inference")
    finally:
        jax.config.update("jax_default_matmul_precision", saved)
    return inf


def test_matches_dynamax(dynamax_inference):
    inf = dynamax_inference
    params = _system(7)
    y, u = _data(params, 7)
    # dynamax: x_{t+1} = F x_t + B u_{t+1} + b and y_t = H x_t + D u_t + d, so feed it
    # [u_t, u_{t-1}] with input weights [0, B] (dynamics) and [D, 0] (emissions)
    u_dyn = np.concatenate([u, np.vstack([np.zeros((1, M)), u[:-1]])], axis=1)
    zb, zd = np.zeros((N, M)), np.zeros((P, M))
    dp = inf.make_lgssm_params(
        params.m0, params.P0, params.A, params.Q, params.C, params.R,
        dynamics_bias=params.b, dynamics_input_weights=jnp.concatenate([zb, params.B], axis=1),
        emissions_bias=params.d, emissions_input_weights=jnp.concatenate([params.D, zd], axis=1),
    )
    theirs = jax.jit(inf.lgssm_smoother)(dp, jnp.asarray(y), jnp.asarray(u_dyn))
    for method in METHODS:
        ours = _smoother(params, y, u, method)
        assert _rel(ours.log_likelihood, theirs.marginal_loglik) < 1e-10
        np.testing.assert_allclose(ours.filtered_means, theirs.filtered_means, atol=1e-9)
        np.testing.assert_allclose(ours.filtered_covs, theirs.filtered_covariances, atol=1e-9)
        np.testing.assert_allclose(ours.smoothed_means, theirs.smoothed_means, atol=1e-9)
        np.testing.assert_allclose(ours.smoothed_covs, theirs.smoothed_covariances, atol=1e-9)
        # dynamax returns E[x_t x_{t+1}^T | y]; ours is Cov(x_{t+1}, x_t | y)
        ms = np.asarray(theirs.smoothed_means)
        cross = np.asarray(theirs.smoothed_cross_covariances) - ms[:-1, :, None] * ms[1:, None, :]
        np.testing.assert_allclose(ours.smoothed_cross_covs, np.swapaxes(cross, 1, 2), atol=1e-9)


# ----------------------------------------------------------------------------- gradients


def _perturbation(params, seed):
    """A random direction in parameter space (symmetric for the covariances)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, val in params._asdict().items():
        d = rng.normal(size=val.shape)
        if name in ("Q", "R", "P0"):
            d = 0.05 * (d + d.T)
        out[name] = jnp.asarray(d)
    return K.LGSSMParams(**out)


@pytest.mark.parametrize("method", METHODS)
def test_grad_matches_finite_differences(method):
    params = _system(8)
    y, u = _data(params, 8, nans="both")
    g, gy, gu = _grad(params, y, u, method=method)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves((g, gy, gu)))
    assert float(jnp.abs(gy[np.isnan(y)]).max()) == 0.0  # missing entries carry no gradient
    h = 1e-5
    for seed in range(3):
        d = _perturbation(params, 10 + seed)
        shift = lambda s: jax.tree.map(lambda a, b: a + s * h * b, params, d)  # noqa: E731
        fd = (float(_ll(shift(1.0), y, u, method)) - float(_ll(shift(-1.0), y, u, method))) / 2 / h
        ad = sum(float(jnp.vdot(a, b)) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(d)))
        assert abs(fd - ad) <= 1e-6 * max(abs(ad), 1.0), (seed, fd, ad)
    # d/dy and d/du against finite differences of single entries
    for arr, grad_arr, idx in ((y, gy, (4, 1)), (u, gu, (7, 0))):
        plus, minus = arr.copy(), arr.copy()
        plus[idx] += h
        minus[idx] -= h
        args = (lambda a: (a, u)) if arr is y else (lambda a: (y, a))
        fd = (float(_ll(params, *args(plus), method)) - float(_ll(params, *args(minus), method)))
        fd /= 2 * h
        assert fd == pytest.approx(float(grad_arr[idx]), rel=1e-6, abs=1e-8)


def test_grads_of_twins_agree():
    params = _system(8)
    y, u = _data(params, 8, nans="both")
    gs = [_grad(params, y, u, method=m) for m in METHODS]
    for a, b in zip(jax.tree.leaves(gs[0]), jax.tree.leaves(gs[1])):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-9)
    for name in ("Q", "R", "P0"):  # symmetric covariances get symmetric gradients
        g = getattr(gs[0][0], name)
        np.testing.assert_allclose(g, g.T, atol=1e-12)


# ----------------------------------------------------------------------------- vmap / jit


@jax.jit
def _batched(params, ys, us):
    """vmap over trajectories as the callers do: both twins, and the value-and-grad of the
    summed batch (what a NumPyro factor over trajectories sees)."""
    seq = jax.vmap(functools.partial(K.log_likelihood, method="sequential"), in_axes=(None, 0, 0))
    par = jax.vmap(functools.partial(K.log_likelihood, method="parallel"), in_axes=(None, 0, 0))
    val, grad = jax.value_and_grad(lambda pr: jnp.sum(seq(pr, ys, us)))(params)
    return seq(params, ys, us), par(params, ys, us), val, grad


def test_vmap_over_sequences_equals_loop():
    params = _system(11)
    ys, us = zip(*[_data(params, 20 + i, nans="scattered" if i % 2 else "none") for i in range(8)])
    ys, us = np.stack(ys), np.stack(us)
    seq, par, val, grad = _batched(params, ys, us)  # must terminate (no LAPACK in the loop)
    loop = [float(_ll(params, ys[i], us[i], "sequential")) for i in range(8)]
    np.testing.assert_allclose(seq, loop, rtol=1e-12)
    np.testing.assert_allclose(par, loop, rtol=1e-10)
    assert float(val) == pytest.approx(sum(loop), rel=1e-12)
    g_loop = [_grad(params, ys[i], us[i], method="sequential")[0] for i in range(8)]
    for name in grad._fields:
        np.testing.assert_allclose(
            getattr(grad, name), sum(getattr(g, name) for g in g_loop),
            rtol=1e-9, atol=1e-9, err_msg=name,
        )


def test_vmap_over_parameters():
    ps = [_system(30 + i) for i in range(4)]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *ps)
    y, u = _data(ps[0], 30)
    batched = jax.jit(jax.vmap(K.log_likelihood, in_axes=(0, None, None)))(stacked, y, u)
    loop = [float(_ll(p_, y, u, "sequential")) for p_ in ps]
    np.testing.assert_allclose(batched, loop, rtol=1e-12)


# ----------------------------------------------------------------------------- API


def test_make_params_defaults_and_errors():
    pr = K.make_params(np.eye(2), np.ones((1, 2)), np.eye(2), np.eye(1))
    assert pr.B.shape == (2, 0) and pr.D.shape == (1, 0)
    np.testing.assert_array_equal(pr.P0, np.eye(2))
    np.testing.assert_array_equal(pr.m0, np.zeros(2))
    assert pr.A.dtype == jnp.float64
    eye2, c12, eye1 = np.eye(2), np.ones((1, 2)), np.eye(1)
    assert K.make_params(eye2, c12, eye2, eye1, D=np.ones((1, 3))).B.shape == (2, 3)
    with pytest.raises(DataError):
        K.make_params(np.eye(2), np.ones((1, 3)), np.eye(2), np.eye(1))
    with pytest.raises(DataError):
        K.make_params(eye2, c12, eye2, eye1, B=np.ones((2, 1)), D=np.ones((1, 2)))
    with pytest.raises(DataError):
        K.log_likelihood(_system(0), np.zeros((5, P)))  # the model has inputs
    with pytest.raises(DataError):
        K.log_likelihood(_system(0, m=0), np.zeros((5, P + 1)))
    with pytest.raises(ValueError):
        K.log_likelihood(_system(0, m=0), np.zeros((5, P)), method="fast")


def test_choose_method(monkeypatch):
    from causalid.dynamics import scan

    assert scan.choose_method(10**6) == "sequential"  # CPU
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert scan.choose_method(scan.PARALLEL_MIN_STEPS) == "parallel"
    assert scan.choose_method(scan.PARALLEL_MIN_STEPS - 1) == "sequential"
