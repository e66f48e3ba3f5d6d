import json

import numpy as np
import pytest

from causalid.dynamics.system import InputDesign, LTISystem
from causalid.errors import DataError, IdentifiabilityError
from causalid.lti.identifiability import (
    IdentifiabilityWarning,
    LTIIdentifiabilityReport,
    check_lti,
    diversity_matrix,
    persistent_excitation,
    separability_index,
)

JAX_X64 = True  # drives the JAX kernels from JAX code (see tests/conftest.py)


def _stable(rng, n, rho=0.9):
    A0 = rng.normal(size=(n, n))
    return rho * A0 / np.max(np.abs(np.linalg.eigvals(A0)))


def _system(rng, n, m=None, **kw):
    m = n if m is None else m
    return LTISystem(_stable(rng, n), rng.normal(size=(n, m)), rng.normal(size=(n, n)), **kw)


def _max_variability(m):
    var = np.full((m + 1, m), 1e-4)
    var[1:] += 0.9999 * np.eye(m)
    return InputDesign(None, var, "max-variability")


def _failed(report):
    return {c.name for c in report.checks if c.passed is False}


def _lti_data():
    return pytest.importorskip("causalid.lti.data").LTIData


# ---------------------------------------------------------------- design-level checks
def test_one_environment_flags_B_tilde_and_sources_but_not_A_tilde():
    report = check_lti(InputDesign(np.zeros((1, 2)), np.array([[1.0, 2.0]])))
    # (A, B, C) needs a system to be checked, but the input mixing already rules it out
    assert report.identifiable == {"A_tilde": True, "B_tilde": False, "sources": False,
                                   "A_B_C_up_to_similarity": False}
    assert report["num_environments"].passed is False
    assert "add at least 2 more environments" in report["num_environments"].message
    with pytest.raises(IdentifiabilityError, match="only 1 environment"):
        report.raise_if("B_tilde")
    report.raise_if("A_tilde")  # identifiable: no error
    check_lti(_max_variability(2)).raise_if("A_B_C_up_to_similarity")  # undetermined: no error
    with pytest.warns(IdentifiabilityWarning, match="not identifiable"):
        assert report.warn_or_raise("sources", on_fail="warn") is False
    assert "NOT identifiable" in str(report) and "only 1 environment" in report.summary()


def test_single_input_single_environment_is_fine():
    report = check_lti(np.array([[0.5]]))
    assert report.identifiable["B_tilde"] and report.identifiable["sources"]


def test_proportional_variance_profiles_are_named():
    rng = np.random.default_rng(0)
    var = np.abs(rng.normal(size=(4, 3))) / 2 + 0.05
    var[:, 1] = 2.0 * var[:, 0]
    report = check_lti(var)
    assert report.identifiable["B_tilde"] is False
    msg = report["pairwise_separability"].message
    assert "'u0' and 'u1'" in msg and "'u2'" not in msg
    assert report["diversity_rank"].passed is False  # column 1 of L is column 0 / 2
    assert report["diversity_rank"].value["rank"] == 2

    LTIData = _lti_data()
    data = LTIData.from_arrays(np.zeros((4, 10, 2)), input_var=var, input_names=["heat", "fan", "pump"])
    msg = check_lti(data)["pairwise_separability"].message
    assert "'heat' and 'fan'" in msg


def test_two_environments_with_distinct_ratios_suffice_despite_rank_condition():
    # Pham–Cardoso: identifiable; the reference rank L = m condition needs E >= m + 1 and fails
    var = np.array([[1.0, 1.0, 1.0], [2.0, 0.5, 3.0]])
    report = check_lti(var)
    assert report.identifiable["B_tilde"] is True
    assert report["diversity_rank"].passed is False and report["diversity_rank"].affects == ()
    assert "still identifiable" in report["diversity_rank"].message


def test_separability_index_definition_and_zero_iff_proportional():
    rng = np.random.default_rng(1)
    var = np.abs(rng.normal(size=(5, 3))) + 0.1
    S = separability_index(var)
    for i in range(3):
        for j in range(3):
            r = var[:, i] / var[:, j]
            assert S[i, j] == pytest.approx(np.mean(r) * np.mean(1 / r) - 1, rel=1e-10, abs=1e-14)
    np.testing.assert_allclose(S, S.T)
    assert np.all(S[~np.eye(3, dtype=bool)] > 0)
    prop = np.column_stack([var[:, 0], 3.0 * var[:, 0]])
    assert separability_index(prop)[0, 1] < 1e-28  # zero up to rounding of the ratios


def test_diversity_matrix_rank_equivalence():
    rng = np.random.default_rng(2)
    for E, m in [(3, 2), (4, 3), (3, 3), (6, 4)]:
        var = np.abs(rng.normal(size=(E, m))) / 2
        L = diversity_matrix(var)
        assert L.shape == (E - 1, m)
        np.testing.assert_allclose(L, 1 / var[1:] - 1 / var[:1])
        K = np.column_stack([np.ones(E), 1 / var])
        assert (np.linalg.matrix_rank(L) == m) == (np.linalg.matrix_rank(K) == m + 1)


@pytest.mark.parametrize("m", [2, 3, 5, 10])
def test_designs_that_should_pass(m):
    rng = np.random.default_rng(m)
    for design in [_max_variability(m), InputDesign(None, np.abs(rng.normal(size=(m + 1, m))) / 2)]:
        report = check_lti(design)
        assert _failed(report) == {"unknown_means"}, report.summary()
        assert report.identifiable == {"A_tilde": True, "B_tilde": True, "sources": True}
    L = check_lti(_max_variability(m))["diversity_rank"].value
    assert L["cond"] == pytest.approx(1.0)


# ---------------------------------------------------------------- system-level checks
def test_passes_on_max_variability_with_a_system():
    rng = np.random.default_rng(3)
    sys = _system(rng, 3)
    report = check_lti(_max_variability(3), sys)
    assert _failed(report) == {"unknown_means"}, report.summary()
    assert all(report.identifiable[q] for q in
               ("A_tilde", "B_tilde", "sources", "A_B_C_up_to_similarity"))
    assert report["fisher_information"].value["rank"] == 3 * 3 + 3 * 3


def test_uncontrollable_pair_is_flagged():
    A = np.diag([0.5, 0.3])
    B = np.array([[1.0], [0.0]])  # the second mode is never driven
    sys = LTISystem(A, B, np.eye(2))
    report = check_lti(np.array([[1.0]]), sys)
    assert report["controllability"].passed is False
    assert report["controllability"].value["rank"] == 1
    assert report.identifiable["A_B_C_up_to_similarity"] is False
    assert report.identifiable["A_tilde"] is False  # no process noise: unexcited direction
    # full-rank process noise excites every direction, so Ã is again identifiable
    noisy = LTISystem(A, B, np.eye(2), Q=0.1 * np.eye(2))
    report = check_lti(np.array([[1.0]]), noisy)
    assert report.identifiable["A_tilde"] is True
    assert report.identifiable["A_B_C_up_to_similarity"] is False


def test_unobservable_pair_is_flagged():
    A = np.diag([0.5, 0.3])
    sys = LTISystem(A, np.eye(2), np.array([[1.0, 0.0]]))  # the second state never shows
    report = check_lti(_max_variability(2), sys)
    assert report["observability"].passed is False
    assert report["observability"].value["rank"] == 1
    assert report["full_state"].passed is False
    assert report.identifiable["A_B_C_up_to_similarity"] is False
    assert report.identifiable["A_tilde"] is False
    assert report["controllability"].passed is True


def test_state_dim_without_system():
    report = check_lti(_max_variability(2), state_dim=2)
    assert report.context["full_state"] == "assumed"  # no outputs known from a design
    too_many = check_lti(_max_variability(3), state_dim=2)
    assert too_many["input_rank"].passed is False and too_many.identifiable["sources"] is False
    LTIData = _lti_data()
    data = LTIData.from_arrays(np.zeros((3, 10, 1)), input_var=_max_variability(2).var)
    report = check_lti(data, state_dim=2)
    assert report["full_state"].passed is False and report.identifiable["A_tilde"] is False


def test_input_mismatch_and_bad_arguments():
    rng = np.random.default_rng(4)
    with pytest.raises(DataError, match="inputs"):
        check_lti(_max_variability(3), _system(rng, 2))
    with pytest.raises(DataError, match="InputDesign, an LTIData"):
        check_lti("variances")
    with pytest.raises(DataError, match="environments, inputs"):
        check_lti(np.ones(3))
    with pytest.raises(ValueError, match="unknown quantity"):
        check_lti(np.ones((3, 2))).raise_if("C")


# ---------------------------------------------------------------- persistent excitation
def _hankel_rank(u, order):
    T, m = u.shape
    H = np.column_stack([u[t:t + order].reshape(-1) for t in range(T - order + 1)])
    return np.linalg.matrix_rank(H)


def test_persistent_excitation_known_signals():
    t = np.arange(400)[:, None]
    constant = np.ones((400, 1))
    sine = np.sin(0.3 * t)
    two_sines = np.sin(0.3 * t) + np.sin(1.1 * t)
    noise = np.random.default_rng(5).normal(size=(400, 2))
    assert persistent_excitation(constant, 1).passed
    assert not persistent_excitation(constant, 2).passed
    pe = persistent_excitation(sine, 4)
    assert not pe.passed and pe.value["rank"] == 2 and pe.value["required"] == 4
    assert persistent_excitation(two_sines, 4).passed and not persistent_excitation(two_sines, 5).passed
    assert persistent_excitation(noise, 8).passed
    for u, L in [(sine, 4), (two_sines, 6), (noise[:50], 5)]:
        assert persistent_excitation(u, L).value["rank"] == _hankel_rank(u, L)


def test_persistent_excitation_pools_trajectories_and_skips_nan():
    rng = np.random.default_rng(6)
    u = rng.normal(size=(3, 4, 6, 2))  # (E, N, T, m): windows never cross trajectories
    pe = persistent_excitation(u, 3)
    assert pe.value["num_columns"] == 3 * 4 * (6 - 3 + 1) and pe.passed
    u[0, 0, 2] = np.nan
    assert persistent_excitation(u, 3).value["num_columns"] == 3 * 4 * 4 - 3
    # too short trajectories give no columns at all
    assert persistent_excitation(rng.normal(size=(5, 2, 2)), 3).value["num_columns"] == 0


def test_measured_inputs_in_data():
    LTIData = _lti_data()
    rng = np.random.default_rng(7)
    t = np.arange(200)
    y = rng.normal(size=(2, 200, 2))
    sine = np.stack([np.column_stack([np.sin(0.2 * t), np.cos(0.2 * t)])] * 2)
    bad = check_lti(LTIData.from_arrays(y, inputs=sine), pe_order=4)
    assert bad["persistent_excitation"].passed is False
    assert bad.identifiable["B_tilde"] is False and bad.identifiable["sources"] is True
    good = check_lti(LTIData.from_arrays(y, inputs=rng.normal(size=(2, 200, 2))))
    assert good["persistent_excitation"].passed and good["persistent_excitation"].value["order"] == 4
    assert good.identifiable == {"A_tilde": True, "B_tilde": True, "sources": True}


# ---------------------------------------------------------------- Fisher information


# ---------------------------------------------------------------- report plumbing
def test_report_round_trip_and_json():
    rng = np.random.default_rng(11)
    report = check_lti(_max_variability(2), _system(rng, 2))
    d = report.to_dict()
    json.dumps(d)
    back = LTIIdentifiabilityReport.from_dict(json.loads(json.dumps(d)))
    assert back.identifiable == report.identifiable
    assert [c.name for c in back.checks] == [c.name for c in report.checks]
    assert back.summary() == report.summary()
    with pytest.raises(ValueError, match="on_fail"):
        report.warn_or_raise("B_tilde", on_fail="ignore")


