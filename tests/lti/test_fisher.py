"""The expected Fisher information of (vec Ã, vec B̃) (causalid.lti.fisher) against oracles:
an autodiff Fisher information of the transition density, finite-difference and exact
Hessians of the density and of the NumPyro program, a Monte-Carlo score outer product, and the
OLS variance of Ã."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.linalg import solve_triangular
from numpyro.infer.util import log_density
from scipy.linalg import solve_discrete_lyapunov

from causalid._linalg import logdet_spd
from causalid.dynamics.system import InputDesign, LTISystem
from causalid.errors import DataError
from causalid.lti.fisher import fisher_aux, fisher_information, lti_fisher
from causalid.lti.identifiability import check_lti
from causalid.models import lti

JAX_X64 = True  # drives the JAX kernels from JAX code (see tests/conftest.py)


def _max_variability(m):
    var = np.full((m + 1, m), 1e-4)
    var[1:] += 0.9999 * np.eye(m)
    return InputDesign(None, var, "max-variability")


# ------------------------------------------------------------------ the autodiff oracle
_DOUBLING_STEPS = 64


def _stationary_moments(A, S, b):
    """(I − A)⁻¹ b and the solution P of P = A P Aᵀ + S, by doubling (matmuls only).

    After k steps ``A_k = A^{2^k}``, ``N_k = Π_{i<k} (I + A^{2^i}) = Σ_{j<2^k} A^j`` and
    ``P_k = Σ_{j<2^k} A^j S A^jᵀ``; for a stable A the truncation error is O(ρ(A)^{2^k}), nil
    after the fixed 64 steps.  Cheaper to compile than LU solves and differentiable.
    """

    def body(_, carry):
        P, Ak, N = carry
        return P + Ak @ P @ Ak.T, Ak @ Ak, N + Ak @ N

    P, _, N = jax.lax.fori_loop(0, _DOUBLING_STEPS, body, (S, A, jnp.eye(A.shape[0], dtype=A.dtype)))
    return N @ b, 0.5 * (P + P.T)


def _fisher_env(A, B, Qy, mu, s2):
    """Expected Fisher information of one stationary transition in one environment."""
    n, m = B.shape
    theta0 = jnp.concatenate([A.T.reshape(-1), B.T.reshape(-1)])  # (vec Ã, vec B̃), vec stacks columns

    def unpack(theta):
        return theta[: n * n].reshape(n, n).T, theta[n * n:].reshape(m, n).T

    def mean_fn(theta, y):
        At, Bt = unpack(theta)
        return At @ y + Bt @ mu

    def cov_fn(theta):
        _, Bt = unpack(theta)
        return (Bt * s2) @ Bt.T + Qy

    S = cov_fn(theta0)
    S_chol = jnp.linalg.cholesky(S)
    S_inv_half = solve_triangular(S_chol, jnp.eye(n, dtype=S.dtype), lower=True)  # L⁻¹, S⁻¹ = L⁻ᵀ L⁻¹
    # stationary law of y_t: mean (I − Ã)⁻¹ B̃ μ, covariance P = Ã P Ãᵀ + S
    ybar, P = _stationary_moments(A, S, B @ mu)
    P_chol = jnp.linalg.cholesky(P)
    # the mean is affine in y_t, so with P = L Lᵀ the average over y_t is exact on n + 1 points:
    # E[Jᵀ S⁻¹ J] = J(ȳ)ᵀ S⁻¹ J(ȳ) + Σ_i (J(ȳ + L_i) − J(ȳ))ᵀ S⁻¹ (J(ȳ + L_i) − J(ȳ))
    points = jnp.concatenate([ybar[None], ybar[None] + P_chol.T], axis=0)
    J = jax.vmap(lambda y: jax.jacfwd(mean_fn)(theta0, y))(points)  # (n + 1, n, d)
    W = jnp.einsum("ab,kbd->kad", S_inv_half, J)  # whitened Jacobians L⁻¹ J
    W = jnp.concatenate([W[:1], W[1:] - W[:1]], axis=0)
    info_mean = jnp.einsum("kad,kae->de", W, W)
    # ½ tr(S⁻¹ ∂_iS S⁻¹ ∂_jS) = ½ tr(M_i M_j) with the symmetric M_i = L⁻¹ ∂_iS L⁻ᵀ
    dS = jax.jacfwd(cov_fn)(theta0)  # (n, n, d)
    M = jnp.einsum("ab,bcd,ec->aed", S_inv_half, dS, S_inv_half)
    info_cov = 0.5 * jnp.einsum("abi,abj->ij", M, M)
    return info_mean + info_cov


@jax.jit
def _fisher_env_jit(A, B, Qy, mu, s2):
    return _fisher_env(A, B, Qy, mu, s2)


def autodiff_fisher(A_tilde, B_tilde, mean, var, *, Q_tilde=None, num_steps=1.0) -> jax.Array:
    """The test oracle: expected Fisher information of θ = (vec Ã, vec B̃) by automatic
    differentiation (a loop over environments; the library's closed form is lti_fisher).

    Per environment e the transition density is Gaussian,

        y_{t+1} | y_t ~ N(m_e(θ; y_t), Σ_e(θ)),  m_e = Ã y_t + B̃ μ_e,  Σ_e = B̃ diag(σ²_e) B̃ᵀ + Q̃,

    and the information of one transition is

        I_e(θ) = E_{y_t}[Jᵀ Σ_e⁻¹ J] + ½ [tr(Σ_e⁻¹ ∂_iΣ_e Σ_e⁻¹ ∂_jΣ_e)]_{ij},

    with the Jacobians J = ∂m_e/∂θ and ∂Σ_e/∂θ computed by ``jax.jacfwd`` and y_t averaged
    over its stationary law N((I − Ã)⁻¹ B̃ μ_e, P_e), ``P_e = Ã P_e Ãᵀ + Σ_e`` (exactly, since
    m_e is affine in y_t).  The total is ``Σ_e T_e I_e``.  Everything is JAX, so e.g.
    ``jax.grad`` of ``log det`` of the result with respect to ``var`` gives the D-optimality
    gradient of a design.

    Parameters
    ----------
    A_tilde : array (n, n)
        Must be stable (spectral radius < 1); not checked here.
    B_tilde : array (n, m)
    mean, var : arrays (E, m)
        The input law of each environment.
    Q_tilde : array (n, n), optional
        Process-noise covariance in y coordinates, C Q Cᵀ.  Every Σ_e must be positive
        definite (not checked here; m ≥ n with B̃ of rank n, or Q̃ > 0).
    num_steps : float or array (E,)
        Transitions T_e per environment.

    Returns
    -------
    jax.Array, shape (n² + nm, n² + nm)
        Ordered as θ = [vec Ã; vec B̃] with vec stacking columns (Fortran order).
    """
    A = jnp.asarray(A_tilde, dtype=jnp.float64)
    B = jnp.asarray(B_tilde, dtype=jnp.float64)
    mean = jnp.asarray(mean, dtype=jnp.float64)
    var = jnp.asarray(var, dtype=jnp.float64)
    n = A.shape[0]
    Qy = jnp.zeros((n, n)) if Q_tilde is None else jnp.asarray(Q_tilde, dtype=jnp.float64)
    w = jnp.broadcast_to(jnp.asarray(num_steps, dtype=jnp.float64), (var.shape[0],))
    # one compiled kernel per (n, m), reused for every environment and any number of them
    info = sum(w[e] * _fisher_env_jit(A, B, Qy, mean[e], var[e]) for e in range(var.shape[0]))
    return 0.5 * (info + info.T)


# ------------------------------------------------------------------ tests
def _tiny():
    A = np.array([[0.6, 0.2], [-0.1, 0.5]])
    B = np.array([[1.0, 0.3], [0.2, 0.8]])
    Q = np.array([[0.05, 0.01], [0.01, 0.03]])
    mean = np.array([[0.5, -0.2], [0.0, 0.4], [-0.3, 0.1]])
    var = np.array([[0.5, 1.0], [1.5, 0.2], [0.7, 0.7]])
    return A, B, Q, mean, var


def _unpack(theta, n, m):
    return theta[: n * n].reshape(n, n).T, theta[n * n:].reshape(m, n).T


def _expected_loglik(theta, A0, B0, Q, mean, var):
    """Σ_e E_θ0[log p_θ(y_{t+1} | y_t)] in closed form (NumPy), y_t stationary under θ0."""
    n, m = B0.shape
    A, B = _unpack(theta, n, m)
    total = 0.0
    for mu, s2 in zip(mean, var):
        S0 = (B0 * s2) @ B0.T + Q
        ybar = np.linalg.solve(np.eye(n) - A0, B0 @ mu)
        P = solve_discrete_lyapunov(A0, S0)
        dA, dB = A0 - A, B0 - B
        Eyy = P + np.outer(ybar, ybar)
        resid = dA @ Eyy @ dA.T + dA @ np.outer(ybar, mu) @ dB.T + dB @ np.outer(mu, ybar) @ dA.T \
            + dB @ np.outer(mu, mu) @ dB.T
        S = (B * s2) @ B.T + Q
        total += -0.5 * (n * np.log(2 * np.pi) + np.linalg.slogdet(S)[1] + np.trace(np.linalg.solve(S, S0 + resid)))
    return total


def test_fisher_matches_finite_difference_hessian_of_expected_loglik():
    A, B, Q, mean, var = _tiny()
    F = np.asarray(autodiff_fisher(A, B, mean, var, Q_tilde=Q))
    theta0 = np.concatenate([A.T.ravel(), B.T.ravel()])
    d, h = theta0.size, 1e-4
    H = np.zeros((d, d))
    for i in range(d):
        for j in range(d):
            def f(si, sj):
                th = theta0.copy()
                th[i] += si * h
                th[j] += sj * h
                return _expected_loglik(th, A, B, Q, mean, var)
            H[i, j] = (f(1, 1) - f(1, -1) - f(-1, 1) + f(-1, -1)) / (4 * h * h)
    np.testing.assert_allclose(F, -H, atol=1e-5 * np.abs(F).max())


def test_fisher_matches_monte_carlo_score_outer_product():
    A, B, Q, mean, var = _tiny()
    n, m = B.shape
    theta0 = jnp.asarray(np.concatenate([A.T.ravel(), B.T.ravel()]))
    rng = np.random.default_rng(8)

    def logp(theta, y, y_next, mu, s2):
        At, Bt = _unpack(theta, n, m)
        S = (Bt * s2) @ Bt.T + Q
        return jax.scipy.stats.multivariate_normal.logpdf(y_next, At @ y + Bt @ mu, S)

    score = jax.jit(jax.vmap(jax.grad(logp), in_axes=(None, 0, 0, None, None)))
    N = 100_000
    F_mc = 0.0
    for mu, s2 in zip(mean, var):
        S = (B * s2) @ B.T + Q
        ybar = np.linalg.solve(np.eye(n) - A, B @ mu)
        y = rng.multivariate_normal(ybar, solve_discrete_lyapunov(A, S), size=N)
        y_next = y @ A.T + B @ mu + rng.multivariate_normal(np.zeros(n), S, size=N)
        g = np.asarray(score(theta0, y, y_next, mu, s2))
        F_mc = F_mc + g.T @ g / N
    F = np.asarray(autodiff_fisher(A, B, mean, var, Q_tilde=Q))
    assert np.linalg.norm(F_mc - F) / np.linalg.norm(F) < 0.05


def test_fisher_is_singular_with_one_environment_on_B_tilde_only():
    A, B, _, _, _ = _tiny()
    n = m = 2
    sys = LTISystem(A, B, np.eye(2))
    design = InputDesign(np.zeros((1, 2)), np.array([[0.5, 1.0]]))
    F = fisher_information(sys, design, num_steps=1000)
    ev = np.linalg.eigvalsh(F)
    assert ev[0] < 1e-12 * ev[-1] < ev[1]  # one rotation of the two columns of B̃ is flat
    check = check_lti(design, sys)["fisher_information"]
    assert check.passed is False and check.value["rank"] == n * n + n * m - m * (m - 1) // 2
    assert set(check.affects) == {"B_tilde", "sources"}
    full = check_lti(_max_variability(2), sys)["fisher_information"]
    assert full.passed and full.value["rank"] == n * n + n * m


def test_fisher_information_uses_tilde_coordinates():
    rng = np.random.default_rng(9)
    A, B, _, mean, var = _tiny()
    C = rng.normal(size=(2, 2))
    design = InputDesign(mean, var)
    F = fisher_information(LTISystem(A, B, C), design, num_steps=[10, 20, 30])
    Ci = np.linalg.inv(C)
    F_tilde = np.asarray(autodiff_fisher(C @ A @ Ci, C @ B, mean, var, num_steps=np.array([10, 20, 30])))
    np.testing.assert_allclose(F, F_tilde, rtol=1e-10)
    np.testing.assert_allclose(F, F.T)


def test_fisher_log_det_is_differentiable_in_the_design():
    A, B, Q, mean, var = _tiny()

    def logdet(v):
        return jnp.linalg.slogdet(autodiff_fisher(A, B, mean, v, Q_tilde=Q))[1]

    direction = np.random.default_rng(12).normal(size=var.shape)
    _, slope = jax.jvp(logdet, (jnp.asarray(var),), (jnp.asarray(direction),))  # forward mode: cheap
    h = 1e-6
    fd = (float(logdet(var + h * direction)) - float(logdet(var - h * direction))) / (2 * h)
    assert float(slope) == pytest.approx(fd, rel=1e-5)


def test_fisher_information_errors():
    A, B, _, _, _ = _tiny()
    design = _max_variability(2)
    with pytest.raises(DataError, match="square and invertible"):
        fisher_information(LTISystem(A, B, np.array([[1.0, 0.0]])), design)
    with pytest.raises(DataError, match="spectral radius"):
        fisher_information(LTISystem(1.2 * np.eye(2), B, np.eye(2)), design)
    with pytest.raises(DataError, match="singular"):
        fisher_information(LTISystem(A, B[:, :1], np.eye(2)), InputDesign(None, np.ones((2, 1))))
    # with process noise a single input is fine
    F = fisher_information(LTISystem(A, B[:, :1], np.eye(2), Q=0.1 * np.eye(2)),
                           InputDesign(None, np.array([[1.0], [2.0]])))
    assert F.shape == (6, 6)


def test_inverse_fisher_matches_ols_variance_with_one_environment():
    # zero means: the Ã block decouples from B̃, and OLS of y_{t+1} on y_t is efficient for Ã
    A, B, _, _, _ = _tiny()
    n = 2
    s2 = np.array([0.5, 1.0])
    T, R = 400, 400
    rng = np.random.default_rng(10)
    S = (B * s2) @ B.T
    y = rng.multivariate_normal(np.zeros(n), solve_discrete_lyapunov(A, S), size=R)
    Y = np.empty((T + 1, R, n))
    Y[0] = y
    for t in range(T):
        Y[t + 1] = Y[t] @ A.T + (rng.normal(size=(R, 2)) * np.sqrt(s2)) @ B.T
    est = []
    for r in range(R):
        X, Z = Y[:-1, r], Y[1:, r]
        W = np.linalg.lstsq(X, Z, rcond=None)[0]  # Z ≈ X W, so Â = Wᵀ
        est.append(W.ravel())  # = Â.T.ravel() = vec Â with columns stacked
    emp = np.cov(np.array(est).T)
    F = fisher_information(LTISystem(A, B, np.eye(n)), InputDesign(np.zeros((1, 2)), s2[None]), num_steps=T)
    pred = np.linalg.inv(F[: n * n, : n * n])
    np.testing.assert_allclose(np.diag(emp), np.diag(pred), rtol=0.25)


@pytest.mark.parametrize("n, m, with_q", [(2, 2, False), (3, 2, True), (4, 5, True)])
def test_closed_form_fisher_equals_the_autodiff_fisher(n, m, with_q):
    """The closed form against the autodiff information of the model's transition density,
    m < n, = n and > n inputs (float64; agreement to rounding)."""
    rng = np.random.default_rng(n * 10 + m)
    A = rng.normal(size=(n, n))
    A *= 0.8 / np.max(np.abs(np.linalg.eigvals(A)))
    B = rng.normal(size=(n, m))
    E = m + 2
    mean, var = rng.normal(size=(E, m)), rng.uniform(0.1, 2.0, size=(E, m))
    Q = 0.1 * np.eye(n) if with_q else None
    steps = rng.integers(10, 100, size=E).astype(float)
    ref = np.asarray(autodiff_fisher(A, B, mean, var, Q_tilde=Q, num_steps=steps))
    got = np.asarray(lti_fisher(A, B, mean, var, steps, Q))
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * np.max(np.abs(ref)))


def test_lti_fisher_matches_the_autodiff_oracle_on_a_random_system():
    rng = np.random.default_rng(0)
    system = lti.random_system(jax.random.PRNGKey(3), 3)
    At = system.C @ system.A @ np.linalg.inv(system.C)
    Bt = system.C @ system.B
    mean, var = rng.normal(size=(4, 3)), np.exp(rng.uniform(-3, 0, (4, 3)))
    steps = np.array([10.0, 20, 30, 40])
    for Q in (None, 0.1 * np.eye(3)):
        ours = np.asarray(lti_fisher(At, Bt, mean, var, steps, Q))
        ref = np.asarray(autodiff_fisher(At, Bt, mean, var, Q_tilde=Q, num_steps=steps))
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())


def _expected_neg_hessian(neg_hess, A, B, mu, s2):
    """E[−∂²ℓ/∂θ²] over one stationary transition y_0 → y_1, exactly: −∂²ℓ is a polynomial of
    degree 2 in (y_0, y_1 − E[y_1 | y_0]), so its mean over the 4n symmetric sigma points of
    their joint Gaussian law is exact."""
    from scipy.linalg import solve_discrete_lyapunov

    n = A.shape[0]
    S = (B * s2) @ B.T
    ybar = np.linalg.solve(np.eye(n) - A, B @ mu)
    P = solve_discrete_lyapunov(A, S)
    L = np.linalg.cholesky(np.block([[P, np.zeros((n, n))], [np.zeros((n, n)), S]]))
    k = 2 * n
    H = 0.0
    for sign in (1.0, -1.0):
        for i in range(k):
            z = sign * np.sqrt(k) * L[:, i]
            y0 = ybar + z[:n]
            y1 = A @ y0 + B @ mu + z[n:]
            H = H + np.asarray(neg_hess(jnp.asarray(y0), jnp.asarray(y1))) / (2 * k)
    return H


_A2 = np.array([[0.5, 0.2], [-0.1, 0.3]])


_B2 = np.array([[1.0, 0.3], [-0.4, 0.8]])
_MU2, _S2 = np.array([0.7, -0.2]), np.array([0.5, 1.5])


@pytest.mark.slow
def test_lti_fisher_is_the_expected_hessian_of_the_transition_density():
    # the density the model program adds for noise-free full-state data (models.lti)
    def loglik(theta, y0, y1):
        At, Bt = theta[:4].reshape(2, 2).T, theta[4:].reshape(2, 2).T
        y = jnp.stack([y0, y1])[None, None]
        return lti._transition_loglik(At, Bt, jnp.eye(2), _MU2[None], _S2[None], y, 0.0)

    theta0 = jnp.concatenate([_A2.T.reshape(-1), _B2.T.reshape(-1)])
    hess = jax.jit(jax.hessian(loglik))
    H = _expected_neg_hessian(lambda y0, y1: -hess(theta0, y0, y1), _A2, _B2, _MU2, _S2)
    F = np.asarray(lti_fisher(_A2, _B2, _MU2[None], _S2[None], [1.0]))
    np.testing.assert_allclose(H, F, rtol=1e-8, atol=1e-8 * np.abs(F).max())


@pytest.mark.slow
def test_lti_fisher_is_the_expected_hessian_of_the_numpyro_program():
    # the same through numpyro's log density of lti_model (prior included, then removed).  With
    # init_var > 0, y_0 enters through a θ-free term N(y_0; 0, init_var I) whichever route the
    # program takes for traced data, so the θ-Hessian is that of the transition density.
    n = m = 2
    prior = lti.LTIPrior()
    cfg = lti.LTIModelConfig(state_dim=n, input_dim=m, obs_dim=n, num_envs=1, num_steps=2,
                             obs_matrix="identity", init_var=1.0)
    kwargs = {"config": cfg, "prior": prior, "input_mean": _MU2[None], "input_var": _S2[None]}

    def logp(theta, y0, y1):
        At, Bt = theta[:4].reshape(2, 2).T, theta[4:].reshape(2, 2).T
        y = jnp.stack([y0, y1])[None, None]
        return log_density(lti.lti_model, (y,), kwargs, {"A": At, "B": Bt})[0]

    theta0 = jnp.concatenate([_A2.T.reshape(-1), _B2.T.reshape(-1)])
    hess = jax.jit(jax.hessian(logp))
    H = _expected_neg_hessian(lambda y0, y1: -hess(theta0, y0, y1), _A2, _B2, _MU2, _S2)
    prior_precision = np.diag([1 / prior.a_scale**2] * 4 + [1 / prior.b_scale**2] * 4)
    F = np.asarray(lti_fisher(_A2, _B2, _MU2[None], _S2[None], [1.0]))
    np.testing.assert_allclose(H - prior_precision, F, rtol=1e-8, atol=1e-8 * np.abs(F).max())


def test_lti_fisher_gradient_matches_finite_differences():

    rng = np.random.default_rng(1)
    system = lti.random_system(jax.random.PRNGKey(4), 2)
    At, Bt = system.C @ system.A @ np.linalg.inv(system.C), system.C @ system.B
    mean, var = rng.normal(size=(3, 2)), np.exp(rng.uniform(-2, 0, (3, 2)))

    aux = fisher_aux(At, Bt)

    @jax.jit
    def f(v, mu):
        return logdet_spd(lti_fisher(None, None, mu, v, jnp.ones(3), aux=aux))

    gv, gm = jax.jit(jax.grad(f, argnums=(0, 1)))(jnp.asarray(var), jnp.asarray(mean))
    eps = 1e-6
    for (e, j) in [(0, 0), (2, 1)]:
        dv = np.zeros_like(var)
        dv[e, j] = eps
        assert np.isclose(gv[e, j], (f(var + dv, mean) - f(var - dv, mean)) / (2 * eps), rtol=1e-5)
        assert np.isclose(gm[e, j], (f(var, mean + dv) - f(var, mean - dv)) / (2 * eps), rtol=1e-5)
