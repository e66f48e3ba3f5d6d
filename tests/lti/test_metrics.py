import numpy as np
import pytest

from causalid.dynamics.system import LTISystem
from causalid.errors import DataError
from causalid.lti.metrics import (
    align_columns,
    amari_distance,
    eigenvalue_error,
    eigenvalue_match,
    h2_error,
    h2_norm,
    lti_metrics,
    markov_parameter_error,
    mcc,
    relative_error,
)


def _random_system(rng, n=3, m=2, p=2, rho=0.8):
    A0 = rng.normal(size=(n, n))
    A = rho * A0 / np.max(np.abs(np.linalg.eigvals(A0)))
    return LTISystem(A, rng.normal(size=(n, m)), rng.normal(size=(p, n)), rng.normal(size=(p, m)))


def _similar(sys, T):
    Ti = np.linalg.inv(T)
    return LTISystem(T @ sys.A @ Ti, T @ sys.B, sys.C @ Ti, sys.D)


# ---------------------------------------------------------------- MCC
def test_mcc_is_one_under_permutation_scaling_sign_and_offset():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(4, 300, 3))
    est = u[..., [2, 0, 1]] * np.array([-3.0, 0.5, 2.0]) + 7.0
    assert mcc(u, est) == pytest.approx(1.0, abs=1e-12)


def test_mcc_pools_leading_dimensions():
    rng = np.random.default_rng(1)
    u = rng.normal(size=(3, 200, 2))
    est = u + 0.5 * rng.normal(size=u.shape)
    assert mcc(u, est) == pytest.approx(mcc(u.reshape(-1, 2), est.reshape(-1, 2)))


def test_mcc_decreases_with_noise_and_is_near_zero_for_independent():
    rng = np.random.default_rng(2)
    u = rng.normal(size=(5000, 2))
    noise = rng.normal(size=u.shape)
    scores = [mcc(u, u + s * noise) for s in (0.0, 0.3, 1.0, 3.0)]
    assert all(a > b for a, b in zip(scores, scores[1:]))
    assert mcc(u, rng.normal(size=u.shape)) < 0.05


def test_mcc_drops_rows_with_nan():
    rng = np.random.default_rng(3)
    u = rng.normal(size=(500, 2))
    est = 2.0 * u[:, ::-1]
    est[10, 0] = np.nan
    u2 = u.copy()
    u2[20, 1] = np.nan
    assert mcc(u2, est) == pytest.approx(1.0, abs=1e-12)


def test_mcc_rejects_mismatched_lengths():
    with pytest.raises(DataError, match="numbers of samples"):
        mcc(np.zeros((10, 2)), np.zeros((9, 2)))


# ---------------------------------------------------------------- Amari, alignment
def test_amari_zero_for_permuted_scaled_columns_and_in_unit_interval():
    rng = np.random.default_rng(4)
    B = rng.normal(size=(4, 4))
    Bhat = B[:, [3, 1, 0, 2]] * np.array([2.0, -0.1, 5.0, -1.0])
    assert amari_distance(B, Bhat) == pytest.approx(0.0, abs=1e-12)
    for _ in range(20):
        d = amari_distance(B, rng.normal(size=(4, 4)))
        assert 0.0 < d <= 1.0
    # the worst case: all entries of P equal in modulus -> exactly 1
    assert amari_distance(np.ones((2, 2)), np.eye(2)) == pytest.approx(1.0)


def test_amari_grows_with_perturbation():
    rng = np.random.default_rng(5)
    B = rng.normal(size=(3, 3))
    direction = rng.normal(size=(3, 3))
    d = [amari_distance(B, B + s * direction) for s in (0.0, 0.01, 0.1, 0.5)]
    assert d[0] == pytest.approx(0.0, abs=1e-12)
    assert all(a < b for a, b in zip(d, d[1:]))


def test_align_columns_recovers_permutation_and_scale():
    rng = np.random.default_rng(6)
    B = rng.normal(size=(3, 3))
    perm_true = np.array([2, 0, 1])
    s = np.array([-2.0, 0.5, 3.0])
    Bhat = np.empty_like(B)
    Bhat[:, perm_true] = B * s  # column j of B sits at perm_true[j], scaled by s[j]
    perm, scale = align_columns(B, Bhat)
    np.testing.assert_array_equal(perm, perm_true)
    np.testing.assert_allclose(scale, 1.0 / s)
    np.testing.assert_allclose(Bhat[:, perm] * scale, B, atol=1e-12)


def test_relative_error():
    M = np.array([[3.0, 0.0], [0.0, 4.0]])
    assert relative_error(M, M) == 0.0
    assert relative_error(M, M + np.array([[0.0, 0.5], [0.0, 0.0]])) == pytest.approx(0.1)
    with pytest.raises(DataError, match="zero true matrix"):
        relative_error(np.zeros(2), np.ones(2))


# ---------------------------------------------------------------- eigenvalues
def test_eigenvalue_error_of_known_perturbation():
    A = np.diag([0.9, 0.5, -0.2])
    Ahat = np.diag([-0.21, 0.9, 0.55])  # same values, shuffled and perturbed
    assert eigenvalue_error(A, Ahat) == pytest.approx(0.1)  # 0.05 / 0.5
    lt, le = eigenvalue_match(A, Ahat)
    np.testing.assert_allclose(lt, [0.9, 0.5, -0.2])
    np.testing.assert_allclose(le, [0.9, 0.55, -0.21])


def test_eigenvalue_error_similarity_invariant_and_complex_pairs():
    rng = np.random.default_rng(7)
    th = 0.3
    A = 0.9 * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    T = rng.normal(size=(2, 2))
    assert eigenvalue_error(A, T @ A @ np.linalg.inv(T)) < 1e-12
    assert eigenvalue_error(A, 1.1 * A) == pytest.approx(0.1)


# ---------------------------------------------------------------- Markov and H2
def test_markov_and_h2_errors_vanish_under_similarity():
    rng = np.random.default_rng(8)
    sys = _random_system(rng)
    sim = _similar(sys, rng.normal(size=(3, 3)))
    assert markov_parameter_error(sys, sim, horizon=30) < 1e-10
    assert h2_error(sys, sim) < 1e-6


def test_errors_grow_with_perturbation():
    rng = np.random.default_rng(9)
    sys = _random_system(rng)
    dA = rng.normal(size=sys.A.shape)
    errs_m, errs_h = [], []
    for s in (0.001, 0.01, 0.05):
        pert = LTISystem(sys.A + s * dA, sys.B, sys.C, sys.D)
        errs_m.append(markov_parameter_error(sys, pert))
        errs_h.append(h2_error(sys, pert))
    assert all(a < b for a, b in zip(errs_m, errs_m[1:]))
    assert all(a < b for a, b in zip(errs_h, errs_h[1:]))


@pytest.mark.parametrize("a,b,c", [(0.5, 1.0, 1.0), (-0.9, 2.0, 0.3), (0.0, 1.5, -2.0)])
def test_h2_norm_scalar_closed_form(a, b, c):
    sys = LTISystem([[a]], [[b]], [[c]])
    assert h2_norm(sys) == pytest.approx(np.sqrt(c**2 * b**2 / (1 - a**2)), rel=1e-12)
    assert h2_norm(sys.to_statespace()) == pytest.approx(h2_norm(sys), rel=1e-12)


def test_h2_error_scalar_closed_form():
    # G = c b z^-1 / (1 - a z^-1) and Ĝ = same with gain 0.9: error is exactly 0.1
    sys = LTISystem([[0.7]], [[1.0]], [[2.0]])
    est = LTISystem([[0.7]], [[0.9]], [[2.0]])
    assert h2_error(sys, est) == pytest.approx(0.1, rel=1e-10)


def test_h2_norm_matches_impulse_response_sum():
    rng = np.random.default_rng(10)
    sys = _random_system(rng, rho=0.6)
    G = sys.markov_parameters(400)
    assert h2_norm(sys) == pytest.approx(np.sqrt(np.sum(G**2)), rel=1e-10)


def test_h2_error_rejects_unstable_system():
    stable = LTISystem([[0.5]], [[1.0]], [[1.0]])
    unstable = LTISystem([[1.01]], [[1.0]], [[1.0]])
    with pytest.raises(DataError, match="spectral radius"):
        h2_error(stable, unstable)
    with pytest.raises(DataError, match="not stable"):
        h2_norm(unstable)
    assert np.isfinite(markov_parameter_error(stable, unstable, horizon=10))


# ---------------------------------------------------------------- convenience
def test_lti_metrics_on_exact_recovery_up_to_ambiguities():
    rng = np.random.default_rng(11)
    n = m = 3
    A0 = rng.normal(size=(n, n))
    A = 0.9 * A0 / np.max(np.abs(np.linalg.eigvals(A0)))
    B, C = rng.normal(size=(n, m)), rng.normal(size=(n, n))
    truth = LTISystem(A, B, C)
    # an estimate in other state coordinates with permuted / rescaled input channels
    T = rng.normal(size=(n, n))
    perm, s = np.array([1, 2, 0]), np.array([2.0, -1.0, 0.5])
    est = _similar(LTISystem(A, B[:, perm] * s, C), T)
    u = rng.normal(size=(2, 100, m))
    out = lti_metrics(truth, est, sources_true=u, sources_est=u[..., perm] / s)
    assert out["B_tilde_amari"] < 1e-10
    assert out["B_tilde_error"] < 1e-10
    assert out["A_tilde_error"] < 1e-10
    assert out["eigenvalue_error"] < 1e-10
    assert out["mcc"] == pytest.approx(1.0)
    # input permutation changes the transfer function: Markov/H2 compare the raw system
    assert out["markov_error"] > 0.1 and "h2_error" in out
