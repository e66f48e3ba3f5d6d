"""Identification engines for multi-environment LTI systems (Rajendran et al. 2024, arXiv 2311.18048)."""

import warnings

import causalid
import jax
import numpy as np
import pytest
from causalid import LTIData, identify_lti
from causalid.errors import DataError, IdentifiabilityError
from causalid.lti.metrics import markov_parameter_error
from causalid.lti.fit import joint_diagonalize
from causalid.lti.result import LTIResult
from causalid.lti.subspace import era, n4sid, okid_markov, select_order
from causalid.models import lti

KEY = jax.random.PRNGKey


def reference_cell(n, seed, *, design="random", zero_means=False, use_B=True, use_C=True, steps=12000,
                   obs_noise_var=0.0):
    """One cell of the reference table: simulate and return (data, truth dict)."""
    k = jax.random.split(KEY(seed), 4)
    system = lti.random_system(k[0], n, use_B=use_B, use_C=use_C)
    des = (lti.max_variability_design(n, zero_means=zero_means, key=k[1]) if design == "max-variability"
           else lti.random_design(k[1], n + 1, n, zero_means=zero_means))
    sim = lti.simulate_lti(k[2], system, design=des, num_steps=steps, obs_noise_var=obs_noise_var)
    data = LTIData.from_arrays(sim["y"], input_mean=des.mean, input_var=des.var)
    Cinv = np.linalg.inv(system.C)
    truth = {"A": system.C @ system.A @ Cinv, "B": system.C @ system.B, "u": sim["u"][:, :, :-1]}
    return data, truth


def test_joint_diagonalize_recovers_mixing_exactly():
    rng = np.random.default_rng(0)
    M = rng.normal(size=(4, 4))
    lam = rng.uniform(0.1, 3.0, size=(5, 4))
    S = np.einsum("ij,ej,kj->eik", M, lam, M)
    W, Mhat, lam_hat, info = joint_diagonalize(S)
    P = W @ M                                              # must be a scaled permutation
    P = np.abs(P) / np.abs(P).max(axis=1, keepdims=True)
    assert np.allclose(np.sort(P, axis=1)[:, :-1], 0, atol=1e-8)
    off = np.einsum("ip,epq,jq->eij", W, S, W)
    assert np.allclose(off - np.einsum("eii->ei", off)[:, :, None] * np.eye(4), 0, atol=1e-9)


@pytest.mark.slow  # reference-table accuracy runs (tests/benchmarks has the whole table)
@pytest.mark.parametrize("design,zero_means,use_B,use_C", [
    ("random", False, False, False), ("random", True, True, True), ("max-variability", False, False, False)])
def test_reference_cells_n3(design, zero_means, use_B, use_C):
    data, truth = reference_cell(3, 0, design=design, zero_means=zero_means, use_B=use_B, use_C=use_C)
    for method in ("moment", "mle"):
        res = identify_lti(data, method=method)
        assert causalid.mcc(truth["u"], res.sources) >= 0.99, method
    assert causalid.relative_error(truth["A"], res.A) <= 2e-2
    # known variances fix the column order and scale of B̃ (signs too, via the means)
    B_err = np.linalg.norm(np.abs(res.B) - np.abs(truth["B"])) / np.linalg.norm(truth["B"])
    assert B_err < 5e-2
    # standard errors are honest: |error| / se is O(1) over the entries of Ã
    z = (res.A - truth["A"]) / res.A_se
    assert np.sqrt(np.mean(z**2)) < 3


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 3, 5, 8, 10])
def test_reference_table_full(n):
    """Rajendran et al. 2024 (arXiv 2311.18048): every column, 5 seeds.

    Every seed reaches pooled MCC >= 0.99; the relative error of Ã is averaged over the
    cell's 5 seeds, as the published table averages its MCC (single seeds are limited by
    the information in 12000 steps: n=3, seed 1, TTT gives 0.028 with honest standard errors).
    """
    cols = [(z, b, c, "random") for z in (False, True) for b in (False, True) for c in (False, True)]
    cols.append((False, False, False, "max-variability"))
    for zero_means, use_B, use_C, design in cols:
        errors = []
        for seed in range(5):
            data, truth = reference_cell(n, seed, design=design, zero_means=zero_means, use_B=use_B, use_C=use_C)
            res = identify_lti(data, method="mle")
            cell = (n, zero_means, use_B, use_C, design, seed)
            assert causalid.mcc(truth["u"], res.sources) >= 0.99, cell
            errors.append(causalid.relative_error(truth["A"], res.A))
        assert np.mean(errors) <= 2e-2, (n, zero_means, use_B, use_C, design, errors)


@pytest.mark.slow
def test_observation_noise_kalman_mle():
    """Observation-noise variance 1e-2 (v_t ~ N(0, 1e-2 I)): MCC >= 0.90 with the Kalman likelihood."""
    data, truth = reference_cell(2, 1, steps=4000, obs_noise_var=1e-2)
    res = identify_lti(data, method="mle", obs_noise=True)
    assert causalid.mcc(truth["u"], res.sources) >= 0.90
    assert res.R[0, 0] == pytest.approx(1e-2, rel=0.3)
    z = (res.A - truth["A"]) / res.A_se                    # error judged by its standard error
    assert np.sqrt(np.mean(z**2)) < 3
    assert res.info["likelihood"] == "kalman"


@pytest.mark.slow
@pytest.mark.parametrize("n", [3, 5])
def test_observation_noise_reference_n(n):
    data, truth = reference_cell(n, 0, obs_noise_var=1e-2)
    res = identify_lti(data, method="mle", obs_noise=True)
    assert causalid.mcc(truth["u"], res.sources) >= 0.90


def test_missing_values_use_the_kalman_likelihood():
    data, truth = reference_cell(2, 2, steps=3000)
    y = data.y.copy()
    rng = np.random.default_rng(0)
    y[rng.random(y.shape) < 0.05] = np.nan
    gappy = LTIData.from_arrays(y, input_mean=data.input_mean, input_var=data.input_var)
    assert gappy.has_missing
    res = identify_lti(gappy, method="mle", obs_noise=1e-8)
    assert causalid.relative_error(truth["A"], res.A) < 2e-2


def test_dc_motor_eigenvalues_within_one_percent():
    system = lti.dc_motor()
    des = causalid.InputDesign(np.array([[0.0], [0.5], [-0.5]]), np.array([[1e-2], [1.0], [4.0]]))
    sim = lti.simulate_lti(KEY(0), system, design=des, num_steps=5000)
    data = LTIData.from_arrays(sim["y"], input_mean=des.mean, input_var=des.var, dt=system.dt)
    res = identify_lti(data, method="moment")
    assert causalid.eigenvalue_error(system.A, res.A) < 1e-2
    assert res.to_statespace().dt == pytest.approx(0.01)


def _measured_data(seed=0, E=3, T=1500, noise=0.05):
    rng = np.random.default_rng(seed)
    n, m, p = 3, 2, 2
    A0 = rng.normal(size=(n, n))
    A = 0.9 * A0 / np.abs(np.linalg.eigvals(A0)).max()
    system = causalid.LTISystem(A, rng.normal(size=(n, m)), rng.normal(size=(p, n)))
    scales = np.array([1.0, 2.0, 0.5])[:E]
    U = rng.normal(size=(E, T, m)) * scales[:, None, None]
    Y = np.zeros((E, T, p))
    for e in range(E):
        x = rng.normal(size=n)
        for t in range(T):
            Y[e, t] = system.C @ x + noise * rng.normal(size=p)
            x = system.A @ x + system.B @ U[e, t] + noise * rng.normal(size=n)
    return LTIData.from_arrays(Y, inputs=U), system


def test_measured_inputs_subspace_okid_era_and_markov():
    data, system = _measured_data()
    assert select_order(data, max_order=6).order == 3
    sub = n4sid(data, 3)
    est = causalid.LTISystem(sub["A"], sub["B"], sub["C"], sub["D"])
    assert markov_parameter_error(system, est, 30) < 2e-2
    Y = okid_markov(data, 40, lags=15)
    A, B, C, D, _ = era(Y, 3)
    assert markov_parameter_error(system, causalid.LTISystem(A, B, C, D), 30) < 2e-2
    markov = identify_lti(data, method="markov", state_dim=3)
    assert markov.coordinates == "similarity"
    assert markov_parameter_error(system, markov.system, 30) < 2e-2


@pytest.mark.slow
def test_measured_inputs_mle_on_a_budget_warns_and_still_predicts():
    """A capped optimiser must say it stopped early; the estimate is still usable."""
    data, system = _measured_data()
    train, test = data.split_time(0.8)
    with pytest.warns(causalid.ConvergenceWarning, match="stopped before converging"):
        fit = identify_lti(train, method="mle", state_dim=3, max_iters=120)
    assert not fit.info["converged"]
    assert markov_parameter_error(system, fit.system, 30) < 2e-2
    pred = fit.predict(test)                               # held-out one-step prediction
    assert np.mean((pred[:, :, 20:] - test.y[:, :, 20:]) ** 2) < 0.2 * np.var(test.y)


@pytest.mark.slow
def test_measured_inputs_mle_converges():
    data, system = _measured_data()
    fit = identify_lti(data, method="mle", state_dim=3)
    assert fit.info["converged"]
    assert markov_parameter_error(system, fit.system, 30) < 2e-2
    assert causalid.eigenvalue_error(system.A, fit.A) < 2e-2


def test_markov_engine_partial_observation_from_designed_means():
    """Spring-mass-damper observed through C = [1, 0]: step responses to diverse designed means."""
    system = lti.spring_mass_damper()
    des = causalid.InputDesign(np.array([[0.0], [1.0], [-2.0]]), np.full((3, 1), 1e-2))
    sim = lti.simulate_lti(KEY(3), system, design=des, num_steps=200, num_trajectories=50)
    data = LTIData.from_arrays(sim["y"], input_mean=des.mean, input_var=des.var)
    res = identify_lti(data, method="markov", state_dim=2, horizon=120)
    assert causalid.eigenvalue_error(system.A, res.A) < 5e-2
    zero = LTIData.from_arrays(sim["y"], input_mean=np.zeros((3, 1)), input_var=des.var)
    with pytest.raises(IdentifiabilityError, match="means"):
        identify_lti(zero, method="markov", state_dim=2)


@pytest.mark.slow
def test_bayes_engine_posterior_agrees_with_mle():
    data, truth = reference_cell(2, 4, steps=300, use_B=False, use_C=False)
    mle = identify_lti(data, method="mle")
    res = identify_lti(data, method="bayes", num_warmup=300, num_samples=400)
    assert res.posterior is not None and "A" in res.posterior.posterior
    z = np.abs(res.A - mle.A) / res.A_se
    assert z.max() < 1.0                                   # posterior mean ≈ MLE under a weak prior
    assert np.allclose(res.A_se, mle.A_se, rtol=0.35)
    assert res.info["divergences"] == 0


def test_result_save_load_round_trip(tmp_path):
    data, _ = reference_cell(2, 5, steps=1000)
    res = identify_lti(data, method="mle")
    res.save(tmp_path / "r.json")
    back = LTIResult.load(tmp_path / "r.json")
    for k in ("A", "B", "C", "D", "A_se", "B_se", "source_var", "input_mean"):
        np.testing.assert_array_equal(getattr(back, k), getattr(res, k))
    np.testing.assert_array_equal(back.sources, res.sources)
    assert back.report.identifiable == res.report.identifiable
    assert back.log_likelihood == res.log_likelihood and back.bic == res.bic
    sys = back.to_statespace()
    assert sys.nstates == 2 and sys.ninputs == 2


def test_unidentifiable_requests_raise_or_warn():
    data, _ = reference_cell(2, 6, steps=500)
    one = data.subset_envs([0])
    with pytest.raises(IdentifiabilityError, match="1 environment"):
        identify_lti(one)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        identify_lti(one, on_unidentifiable="warn")
    assert any("not identifiable" in str(w.message) for w in caught)
    with pytest.raises(DataError, match="neither measured inputs nor a designed input law"):
        identify_lti(LTIData.from_arrays(data.y))
    with pytest.raises(DataError, match="unknown method"):
        identify_lti(data, method="sgd")


def test_unknown_input_law_recovers_b_up_to_permutation_and_scale():
    data, truth = reference_cell(3, 7, steps=6000)
    blind = LTIData.from_arrays(data.y, input_dim=3)
    for method in ("moment", "mle"):
        res = identify_lti(blind, method=method)
        assert causalid.amari_distance(truth["B"], res.B) < 2e-2, method
        assert causalid.mcc(truth["u"], res.sources) >= 0.99, method
        assert res.report.identifiable["B_tilde"]        # judged on the estimated variance profiles
    assert causalid.relative_error(truth["A"], res.A) < 2e-2
