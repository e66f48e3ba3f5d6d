"""Tests of the multi-environment LTI program, its fitting routes and the reference simulators."""

import causalid  # noqa: F401  (float64)
import control
import jax
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer.util import log_density
from scipy import stats

from causalid.dynamics.system import InputDesign
from causalid.errors import DataError
from causalid.models.lti import (
    LTIModelConfig,
    _draw,
    dc_motor,
    lti_model,
    max_variability_design,
    random_design,
    random_system,
    simulate_lti,
    spring_mass_damper,
)

JAX_X64 = True  # drives the JAX kernels from JAX code (see tests/conftest.py)

KEY = jax.random.PRNGKey(0)
n = m = p = 3  # one size for the simulation tests: each new shape costs a compilation
E, N, T = 4, 2, 3000


@pytest.fixture(scope="module")
def system():
    return random_system(jax.random.PRNGKey(1), n)


@pytest.fixture(scope="module")
def design():
    return random_design(jax.random.PRNGKey(2), E, m)


@pytest.fixture(scope="module")
def noise_free(system, design):
    return simulate_lti(KEY, system, design=design, num_steps=T, num_trajectories=N)


Q_VAR, R_VAR = 0.01, 0.04
X0 = np.arange(E * n, dtype=float).reshape(E, n) / 10


@pytest.fixture(scope="module")
def noisy(system, design):
    return simulate_lti(KEY, system, design=design, num_steps=T, num_trajectories=N,
                        process_noise_var=Q_VAR, obs_noise_var=R_VAR, x0=X0)


def _logp(y, *params, **kwargs):
    """Log joint of lti_model at each parameter dict, in one compiled, vmapped call.

    ``y`` is a constant of the compiled function, so the program sees a concrete array."""
    stacked = jax.tree.map(lambda *a: np.stack(a), *params)
    lp = jax.jit(jax.vmap(lambda prm: log_density(lti_model, (y,), kwargs, prm)[0]))(stacked)
    return [float(v) for v in lp] if len(params) > 1 else float(lp[0])


def _prior_logpdf(params, prior_scales):
    """Prior log density of the matrix sites (independent normal entries)."""
    return sum(stats.norm.logpdf(np.asarray(params[k]), 0.0, s).sum()
               for k, s in prior_scales.items())


# ----------------------------------------------------------------------------- simulators
def test_random_system_radius_controllable_observable():
    for key, kw in [(0, {}), (1, dict(use_B=False)), (2, dict(use_C=False)), (3, dict(m=1, p=2))]:
        s = random_system(jax.random.PRNGKey(key), n, **kw)
        assert s.A.shape == (n, n) and s.B.shape == (n, kw.get("m", n)) and s.C.shape[1] == n
        assert np.abs(np.linalg.eigvals(s.A)).max() == pytest.approx(0.9, abs=1e-12)
        assert np.linalg.matrix_rank(control.ctrb(s.A, s.B)) == n
        assert np.linalg.matrix_rank(control.obsv(s.A, s.C)) == n
        if kw.get("use_B") is False:
            np.testing.assert_array_equal(s.B, np.eye(n))
        if kw.get("use_C") is False:
            np.testing.assert_array_equal(s.C, np.eye(n))
    with pytest.raises(DataError, match="m == n"):
        random_system(KEY, n, m=2, use_B=False)


def test_physical_systems():
    motor = dc_motor()
    np.testing.assert_allclose(motor.A, [[0.98020, 0.00019], [-0.00942, 0.90484]], atol=1e-4)
    assert motor.B.shape == (2, 1) and motor.dt == 0.01
    np.testing.assert_array_equal(motor.C, np.eye(2))
    smd = spring_mass_damper()
    np.testing.assert_array_equal(smd.C, [[1.0, 0.0]])
    # the discrete poles are exp(dt * (-0.1 ± 0.3i))
    poles = np.sort_complex(np.linalg.eigvals(smd.A))
    continuous = np.array([-0.1 - 0.3j, -0.1 + 0.3j])
    np.testing.assert_allclose(poles, np.sort_complex(np.exp(smd.dt * continuous)))


def test_designs():
    d = max_variability_design(3, zero_means=True)
    assert d.num_envs == 4 and d.input_dim == 3
    expected = np.full((4, 3), 1e-4)
    expected[1:] += 0.9999 * np.eye(3)
    np.testing.assert_allclose(d.var, expected, rtol=1e-15)
    np.testing.assert_array_equal(d.mean, 0.0)
    assert not np.allclose(max_variability_design(3, key=KEY).mean, 0.0)
    with pytest.raises(DataError, match="key"):
        max_variability_design(3)
    r = random_design(KEY, E, 3, zero_means=True)
    assert r.var.shape == (E, 3) and (r.var > 0).all() and (r.mean == 0).all()


# ----------------------------------------------------------------------------- simulation
def test_simulation_equals_numpy_recursion(system, design, noisy):
    out = noisy
    # the draws behind it: the same compiled program and key (cached) expose every site
    sites = _draw(KEY, LTIModelConfig(
        state_dim=n, input_dim=m, obs_dim=p, num_envs=E, num_trajectories=N, num_steps=T,
        input_law="known", obs_matrix="latent", process_noise_var="latent",
        obs_noise_var="latent", init_var=1.0),
        {"A": system.A, "B": system.B, "C": system.C, "process_noise_var": Q_VAR,
         "obs_noise_var": R_VAR, "x0": np.broadcast_to(X0[:, None, None], (E, N, 1, n))},
        dict(input_mean=design.mean, input_var=design.var))
    u, w, v = (np.asarray(sites[k]) for k in "uwv")
    np.testing.assert_array_equal(out["u"], u)
    assert w.std() == pytest.approx(np.sqrt(Q_VAR), rel=0.02)  # variances, not std devs
    assert v.std() == pytest.approx(np.sqrt(R_VAR), rel=0.02)
    x = np.empty((E, N, T, n))
    x[:, :, 0] = X0[:, None]
    for t in range(T - 1):
        x[:, :, t + 1] = x[:, :, t] @ system.A.T + u[:, :, t] @ system.B.T + w[:, :, t]
    np.testing.assert_allclose(out["x"], x, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out["y"], x @ system.C.T + v, rtol=1e-10, atol=1e-10)
    assert out["system"] is system and out["design"] is design


def test_simulated_input_moments_match_design(noisy, noise_free, design):
    u = noisy["u"]  # (E, N, T, m)
    assert u.shape == (E, N, T, m) and noisy["y"].shape == (E, N, T, p)
    K = N * T
    mean, var = u.mean(axis=(1, 2)), u.var(axis=(1, 2), ddof=1)
    # 5 standard errors: a false alarm over 24 checks has probability < 1e-5
    assert (np.abs(mean - design.mean) < 5 * np.sqrt(design.var / K)).all()
    assert (np.abs(var - design.var) < 5 * design.var * np.sqrt(2 / (K - 1))).all()
    np.testing.assert_array_equal(noise_free["x"][:, :, 0], 0.0)  # x_0 = 0, so y_0 = 0
    np.testing.assert_array_equal(noise_free["y"][:, :, 0], 0.0)


def test_measured_inputs_drive_the_system(system):
    u = np.asarray(jax.random.normal(KEY, (1, 1, 20, m)))
    out = simulate_lti(KEY, system, inputs=u, num_steps=20)
    x = np.zeros((20, n))
    for t in range(19):
        x[t + 1] = system.A @ x[t] + system.B @ u[0, 0, t]
    np.testing.assert_allclose(out["x"][0, 0], x, atol=1e-12)
    assert out["design"] is None
    np.testing.assert_array_equal(out["u"], u)


def test_intervention_on_input_variance_with_do(system):
    """do(input_var) on one environment changes its simulated input variance, nothing else."""
    cfg = LTIModelConfig(state_dim=n, input_dim=m, obs_dim=p, num_envs=E, num_trajectories=N,
                         num_steps=T, input_law="latent")
    truth = {"A": system.A, "B": system.B, "C": system.C}
    natural = {"input_var": np.full((E, m), 0.5), "input_mean": np.zeros((E, m))}
    new = natural["input_var"].copy()
    new[1] = [25.0, 0.5, 4.0]

    @jax.jit
    def simulate(key):
        model = handlers.substitute(lti_model, {**truth, **natural})
        model = handlers.do(model, {"input_var": new})
        tr = handlers.trace(handlers.seed(model, key)).get_trace(config=cfg)
        return tr["u"]["value"]

    u = np.asarray(simulate(KEY))
    var = u.var(axis=(1, 2), ddof=1)
    K = N * T
    assert (np.abs(var - new) < 5 * new * np.sqrt(2 / (K - 1))).all()
    assert var[1, 0] > 20 and var[0, 0] < 1


# ----------------------------------------------------------------------------- fitting
def _transition_loglik_numpy(A, B, C, mean, var, y):
    """Hand-written exact density of y_{1:T-1} given y_0 (noise-free, C invertible)."""
    At, Bt = C @ A @ np.linalg.inv(C), C @ B
    total = 0.0
    for e in range(y.shape[0]):
        law = stats.multivariate_normal(np.zeros(len(C)), Bt @ np.diag(var[e]) @ Bt.T)
        resid = y[e, :, 1:] - y[e, :, :-1] @ At.T - Bt @ mean[e]
        total += law.logpdf(resid.reshape(-1, len(C))).sum()
    return total


def test_noise_free_log_density_is_transition_density(system, design, noise_free):
    y = noise_free["y"]
    cfg = LTIModelConfig(state_dim=n, input_dim=m, obs_dim=p)
    params = {"A": system.A, "B": system.B, "C": system.C}
    law = dict(input_mean=design.mean, input_var=design.var)
    worse = {**params, "A": system.A + 0.01}
    lp, lp_worse = _logp(y, params, worse, config=cfg, **law)
    loglik = lp - _prior_logpdf(params, {"A": 0.5, "B": 1.0, "C": 1.0})
    expected = _transition_loglik_numpy(system.A, system.B, system.C, design.mean, design.var, y)
    assert loglik == pytest.approx(expected, rel=1e-10)
    assert lp_worse < lp  # noise-free data pin A down sharply


def test_noise_free_fast_path_agrees_with_kalman_route(system, design, noise_free):
    """Same density by both routes, including the y_0 term of a random x_0."""
    y = noise_free["y"][:, :, :200]
    cfg = LTIModelConfig(state_dim=n, input_dim=m, obs_dim=p, init_var=0.5)
    params = {"A": system.A, "B": system.B, "C": system.C}
    law = dict(input_mean=design.mean, input_var=design.var)
    fast = _logp(y, params, config=cfg, **law)
    # a traced y cannot be checked for NaN, so the program takes the Kalman route
    kalman = jax.jit(lambda y: log_density(lti_model, (y,), dict(config=cfg, **law), params)[0])(y)
    assert float(kalman) == pytest.approx(fast, rel=1e-8)


def _dense_loglik(A, B, C, q, r, P0, mean, var, y, u=None):
    """Oracle: log N(y_obs; mean, cov) of one trajectory from the dense joint Gaussian.

    The designed law u ~ N(mean, diag var) is marginalised (u=None) or u is given."""
    T_, n_ = y.shape[0], A.shape[0]
    Q = q * np.eye(n_) + (B @ np.diag(var) @ B.T if u is None else 0)
    drive = [B @ mean if u is None else B @ u[t] for t in range(T_)]
    mu_x, cov_x = np.zeros((T_, n_)), np.zeros((T_, n_, T_, n_))
    Apow = [np.linalg.matrix_power(A, k) for k in range(T_)]
    for t in range(1, T_):
        mu_x[t] = A @ mu_x[t - 1] + drive[t - 1]
    for t in range(T_):
        for s in range(T_):
            c = Apow[t] @ P0 @ Apow[s].T
            for k in range(min(t, s)):
                c = c + Apow[t - 1 - k] @ Q @ Apow[s - 1 - k].T
            cov_x[t, :, s, :] = c
    pp = C.shape[0]
    mu_y = (mu_x @ C.T).reshape(-1)
    cov_y = np.einsum("ij,tjsk,lk->tisl", C, cov_x, C).reshape(T_ * pp, T_ * pp)
    cov_y = cov_y + r * np.eye(T_ * pp)
    obs = ~np.isnan(y.reshape(-1))
    return stats.multivariate_normal(mu_y[obs], cov_y[np.ix_(obs, obs)]).logpdf(y.reshape(-1)[obs])


def test_noisy_log_density_matches_dense_gaussian_with_missing_values():
    rng = np.random.default_rng(0)
    n_, m_, p_, E_, N_, T_ = 2, 1, 1, 2, 2, 6  # partial observation, latent noise, x_0 random
    A = np.array([[0.8, 0.3], [-0.2, 0.7]])
    B, C = rng.normal(size=(n_, m_)), rng.normal(size=(p_, n_))
    q, r, P0 = 0.05, 0.2, 0.5
    mean, var = rng.normal(size=(E_, m_)), rng.uniform(0.5, 2, size=(E_, m_))
    y = rng.normal(size=(E_, N_, T_, p_))
    y[0, 1, 2] = np.nan
    y[1, 0, :3] = np.nan
    cfg = LTIModelConfig(state_dim=n_, input_dim=m_, obs_dim=p_, process_noise_var="latent",
                         obs_noise_var="latent", init_var=P0)
    params = {"A": A, "B": B, "C": C, "process_noise_var": q, "obs_noise_var": r}
    law = dict(input_mean=mean, input_var=var)
    lp = _logp(y, params, config=cfg, **law)
    # q and r have HalfNormal(1) priors
    prior = _prior_logpdf(params, {"A": 0.5, "B": 1.0, "C": 1.0})
    prior += stats.halfnorm.logpdf([q, r]).sum()
    expected = sum(_dense_loglik(A, B, C, q, r, P0 * np.eye(n_), mean[e], var[e], y[e, i])
                   for e in range(E_) for i in range(N_))
    assert lp - prior == pytest.approx(expected, rel=1e-9)


def test_measured_inputs_log_density_matches_dense_gaussian():
    """Measured inputs with r = 0 and x_0 = 0: y_0 = 0 is a point mass and is left out."""
    rng = np.random.default_rng(1)
    n_, m_, T_ = 2, 1, 5
    A, B, C = np.array([[0.5, 0.1], [0.0, 0.9]]), rng.normal(size=(n_, m_)), np.eye(n_)
    q = 0.3
    u = rng.normal(size=(1, 1, T_, m_))
    y = rng.normal(size=(1, 1, T_, n_))
    cfg = LTIModelConfig(state_dim=n_, input_dim=m_, input_law="measured", obs_matrix="identity",
                         process_noise_var=q)
    lp = _logp(y, {"A": A, "B": B}, config=cfg, inputs=u)
    prior = _prior_logpdf({"A": A, "B": B}, {"A": 0.5, "B": 1.0})
    # oracle: y_1.. given x_0 = 0, i.e. x_1 ~ N(B u_0, q I) then inputs u_1..; the oracle starts
    # from a zero-mean state, so subtract the free response to x_1's mean A^t B u_0
    free = [np.linalg.matrix_power(A, t) @ B @ u[0, 0, 0] for t in range(T_ - 1)]
    y1 = y[0, 0, 1:] - np.array(free)
    expected = _dense_loglik(A, B, C, q, 0.0, q * np.eye(n_), None, None, y1, u=u[0, 0, 1:])
    assert lp - prior == pytest.approx(expected, rel=1e-9)


def test_nan_in_y_is_accepted(system, design, noise_free):
    """Missing values switch the noise-free program to the Kalman route, which handles them."""
    y = noise_free["y"][:, :, :100].copy()
    y[0, 0, 5, 1] = np.nan
    y[2, 1, 10:20] = np.nan
    cfg = LTIModelConfig(state_dim=n, input_dim=m, obs_dim=p)
    params = {"A": system.A, "B": system.B, "C": system.C}
    assert np.isfinite(_logp(y, params, config=cfg, input_mean=design.mean, input_var=design.var))


def test_configuration_errors(system, design):
    law = dict(input_mean=design.mean, input_var=design.var)
    params = {"A": system.A, "B": system.B, "C": system.C}
    y = np.zeros((E, 1, 10, p))
    with pytest.raises(DataError, match="environments disagree"):
        cfg = LTIModelConfig(n, m, num_envs=E + 1)
        log_density(lti_model, (y,), dict(config=cfg, **law), params)
    with pytest.raises(DataError, match="degenerate"):
        cfg = LTIModelConfig(n, m, input_law="measured")
        log_density(lti_model, (y,), dict(config=cfg, inputs=np.zeros((E, 1, 10, m))), params)
    with pytest.raises(DataError, match="input_var"):
        log_density(lti_model, (y,), dict(config=LTIModelConfig(n, m)), params)
    with pytest.raises(DataError, match="exactly one"):
        simulate_lti(KEY, system, num_steps=5)
    with pytest.raises(DataError):
        InputDesign(design.mean, -design.var)
