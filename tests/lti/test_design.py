"""The LTI input-law designer: constraints, criteria against oracles, errors, persistence."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from causalid.models import lti

import causalid
from causalid import Design, InputDesign, LTIData, LTISystem, design_lti, identify_lti
from causalid.lti.design import design_criteria, moment_error
from causalid.errors import DataError, IdentifiabilityError
from causalid.lti.identifiability import separability_index
from causalid.lti.metrics import amari_distance
from causalid.lti.fit import joint_diagonalize

JAX_X64 = True  # drives the JAX kernels from JAX code (see tests/conftest.py)

# small settings shared by most tests, so that the compiled programs are reused
FAST = {"num_starts": 8, "num_iters": 100}
BOX = (1e-4, 1.0)                      # the box of the reference max-variability design


# ---------------------------------------------------------------------- acceptance: E = m + 1
@pytest.mark.parametrize("criterion, key, sense", [("pairwise", "pairwise", 1), ("cond", "sigma_min_rel", 1),
                                                   ("moment", "moment", -1)])
def test_finds_max_variability_design_or_better(criterion, key, sense):
    # the one-hot design is never shown to the optimiser; it must match or beat it by its own
    # criterion (m = 2..6 in tests/benchmarks/test_design.py)
    m = 3
    ref = design_criteria(lti.max_variability_design(m, zero_means=True), var_bounds=BOX)[key]
    d = design_lti(m, m + 1, var_bounds=BOX, criterion=criterion, key=0, **FAST)
    assert sense * (d.value - ref) >= -1e-9 * abs(ref), (d.value, ref)
    assert d.report.identifiable["B_tilde"]


@pytest.mark.parametrize("key", [0, 1])
def test_moment_criterion_keeps_the_one_hot_structure(key):
    # the closed-form engine's criterion prefers a quiet baseline with one loud channel per
    # environment (not the mirror image, which ties on the Fisher-based criteria): its designs
    # have at most one loud channel per environment and every channel loud somewhere.  The
    # one-hot design itself is not always the optimum (for m = 3 moving one environment's
    # quiet channels off the lower bound, or repeating a loud channel, can do slightly
    # better), so its value is the bar, not its layout.
    one_hot = design_criteria(lti.max_variability_design(3, zero_means=True), var_bounds=BOX)["moment"]
    d = design_lti(3, 4, var_bounds=BOX, criterion="moment", key=key, **FAST)
    loud = d.var > 0.5
    assert loud.sum(axis=1).max() == 1 and loud.any(axis=0).all(), d.var
    assert d.value <= one_hot * (1 + 1e-9)


# ---------------------------------------------------------------------- hard constraints
def test_hard_constraints_and_bounds_hold():
    lo, hi = 1e-2, 1.0
    d = design_lti(3, 4, var_bounds=(lo, hi), key=1, **FAST)
    assert np.all(d.var >= lo) and np.all(d.var <= hi)
    assert np.all(d.mean == 0)
    assert d.report["diversity_rank"].passed and d.report["pairwise_separability"].passed
    prec = 1 / d.var
    smin = np.linalg.svd(prec[1:] - prec[:1], compute_uv=False)[-1]
    assert smin >= 0.1 * (1 / lo - 1 / hi) * (1 - 1e-9)
    S = separability_index(d.var)
    assert np.isclose(S[np.triu_indices(3, 1)].min(), d.values["pairwise"], rtol=1e-10)


def test_rank_margin_is_enforced_where_the_criterion_alone_would_violate_it():
    # for m = 2, E = 3 the unconstrained pairwise optimum repeats an environment (rank L = 1)
    d = design_lti(2, 3, var_bounds=(1e-2, 1.0), key=0, rank_margin=0.5, **FAST)
    assert d.values["sigma_min_rel"] >= 0.5 * (1 - 1e-9)


def test_mean_bound_gives_vertex_means_of_full_rank():
    d = design_lti(3, 4, var_bounds=(1e-2, 1.0), mean_bound=2.0, key=0, **FAST)
    assert np.allclose(np.abs(d.mean), 2.0)
    assert np.linalg.matrix_rank(d.mean) == 3


def test_polish_moves_infeasible_vertices_to_feasibility():
    # from the all-quiet and the all-loud vertices (rank L = 0) single flips must first open up
    # every direction of L (σ_min stays 0 until the last one: the shortfall, not σ_min, guides
    # them), then improve the criterion: both reach a one-hot-type design of full rank
    from causalid.lti.design import _base_params, _polish, _Scorer

    E, m, lo, hi = 4, 3, 1e-2, 1.0
    scorer = _Scorer("pairwise", _base_params(lo, hi, None, np.ones(E), 0.1), lo, hi, 0.1)
    u = np.stack([np.zeros((E, m)), np.ones((E, m))])
    assert not scorer(lo * (hi / lo) ** u, np.zeros_like(u))[2].any()
    u_pol, _ = _polish(scorer, u, np.zeros_like(u), lo, hi, max_rounds=E * m)
    score, shortfall, feasible = scorer(lo * (hi / lo) ** u_pol, np.zeros_like(u))
    assert feasible.all() and np.all(shortfall == 0)
    one_hot = design_criteria(InputDesign(None, lo * (hi / lo) ** np.vstack([np.zeros((1, m)), np.eye(m)])),
                              var_bounds=(lo, hi))["pairwise"]
    np.testing.assert_allclose(np.exp(score), one_hot, rtol=1e-9)


def test_ascend_reaches_the_projected_optimum_and_keeps_the_best_finite_point():
    from causalid._optim import ascend

    target = np.array([0.3, 1.7, -0.4])                   # optimum on the box [0, 1]: (0.3, 1, 0)

    def value_and_grad(z):
        f = -np.sum((z - target) ** 2, axis=1)
        f[1] = np.nan                                      # start 1: the objective is NaN everywhere
        return f, -2.0 * (z - target)

    z0 = np.array([[0.9, 0.1, 0.5], [0.5, 0.5, 0.5]])
    z, value = ascend(value_and_grad, z0, 300, 0.05, 0.0, 1.0)
    np.testing.assert_allclose(z[0], [0.3, 1.0, 0.0], atol=1e-3)
    assert np.isclose(value[0], -(1.7 - 1) ** 2 - 0.4**2, atol=1e-5)
    np.testing.assert_array_equal(z[1], z0[1])
    assert value[1] == -np.inf


def test_mean_criterion_gradient_is_that_of_jax():
    from causalid._linalg import logdet_spd
    from causalid.lti.design import _mean_value_and_grad

    M = np.random.default_rng(2).uniform(-1, 1, (3, 5, 4))
    value, grad = _mean_value_and_grad(M)

    def logdet(Mi):
        return logdet_spd(Mi.T @ Mi / 5 + 1e-12 * jnp.eye(4))

    ref_value, ref_grad = jax.jit(jax.vmap(jax.value_and_grad(logdet)))(M)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------- errors
def test_too_few_environments_says_the_minimum():
    with pytest.raises(IdentifiabilityError, match=r"at least m \+ 1 = 4 environments"):
        design_lti(3, 3)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"var_bounds": (1.0, 0.5)}, DataError, "0 < lo ≤ hi"),
    ({"var_bounds": (0.0, 1.0)}, DataError, "0 < lo"),
    ({"var_bounds": "wide"}, DataError, "two numbers"),
    ({"var_bounds": (0.3, 0.3)}, IdentifiabilityError, "no room"),
    ({"criterion": "bogus"}, DataError, "unknown criterion"),
    ({"criterion": "d-optimal"}, DataError, "needs prior knowledge of the system"),
    ({"criterion": "eig"}, DataError, "needs prior knowledge of the system"),
    ({"mean_bound": -1.0}, DataError, "mean_bound"),
    ({"steps": [10, 10]}, DataError, "steps"),
    ({"rank_margin": 1.5}, DataError, "rank_margin"),
    ({"key": "seed"}, DataError, "key"),
])
def test_bad_arguments_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        design_lti(2, 3, **kwargs)


def test_single_input_needs_a_single_channel_criterion():
    with pytest.raises(DataError, match="criterion='cond'"):
        design_lti(1, 2, criterion="pairwise")


@pytest.mark.slow
def test_single_input_design():
    d = design_lti(1, 2, var_bounds=(1e-2, 1.0), criterion="cond", key=0, **FAST)
    assert np.isclose(d.values["sigma_min_rel"], 1.0) and d.report.identifiable["B_tilde"]


def test_an_estimate_extends_the_report_of_a_system_free_design():
    # an LTIResult is accepted as the system of any criterion (the CLI's --system takes one);
    # n = m = 3, 4 environments of 300 steps: the shapes of tests/design/test_design_next.py
    system = lti.random_system(jax.random.PRNGKey(0), 3)
    law = lti.max_variability_design(3, zero_means=True)
    sim = lti.simulate_lti(jax.random.PRNGKey(1), system, design=law, num_steps=300)
    fit = identify_lti(LTIData.from_arrays(sim["y"], input_mean=law.mean, input_var=law.var), method="moment")
    d = design_lti(3, 4, var_bounds=(1e-2, 1.0), system=fit, key=0, **FAST)
    names = [c.name for c in d.report.checks]
    assert "controllability" in names and "fisher_information" in names
    assert d.system is not None and d.system["A"] == np.asarray(fit.A).tolist()


def test_system_with_wrong_input_count_is_refused():
    with pytest.raises(DataError, match="input"):
        design_lti(2, 3, criterion="d-optimal", system=LTISystem(0.5 * np.eye(3), np.eye(3), np.eye(3)))


# ---------------------------------------------------------------------- reproducibility, persistence
def test_reproducible_for_int_and_key_seeds():
    a = design_lti(2, 3, key=5, **FAST)
    b = design_lti(2, 3, key=jax.random.PRNGKey(5), **FAST)
    np.testing.assert_array_equal(a.var, b.var)
    np.testing.assert_array_equal(a.mean, b.mean)
    assert a.settings["key"] == [0, 5]


def test_int_seeds_stand_for_their_prng_keys():
    from causalid.lti.design import seed_words

    for s in (0, 5, -1, 2**33 + 3, 2**63 - 1, -(2**63)):
        assert seed_words(s) == tuple(np.asarray(jax.random.PRNGKey(s)).tolist()), s
    assert seed_words(jax.random.key(7)) == (0, 7)
    with pytest.raises(DataError, match="out of range"):
        seed_words(2**64)


def test_save_load_frame_summary_and_plot(tmp_path):
    d = design_lti(2, 3, var_bounds=(1e-2, 1.0), key=0, input_names=["volt", "heat"], **FAST)
    path = tmp_path / "design.json"
    d.save(path)
    back = Design.load(path)
    np.testing.assert_array_equal(back.var, d.var)
    assert back.criterion == d.criterion and back.value == d.value
    assert back.report.identifiable == d.report.identifiable
    law = d.to_input_design()
    assert isinstance(law, InputDesign) and law.var.shape == (3, 2)
    table = d.to_frame()
    assert list(table.columns) == ["env", "mean_volt", "mean_heat", "var_volt", "var_heat"]
    text = d.summary()
    assert "pairwise" in text and "volt" in text and "identifiable" in text
    import matplotlib.pyplot as plt

    fig = d.plot(path=tmp_path / "design.png")
    plt.close(fig)
    assert (tmp_path / "design.png").stat().st_size > 0
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(DataError, match=r"is not a causalid.Design/1 file"):
        Design.load(tmp_path / "other.json")
    (tmp_path / "cut.json").write_text('{"format": "causalid.Design/1", "mean": [[0.0]]}')
    with pytest.raises(DataError, match=r"cut.json.*lacks field\(s\) \['var'"):
        Design.load(tmp_path / "cut.json")


# ---------------------------------------------------------------------- criteria against oracles




def test_moment_error_predicts_the_joint_diagonalisation_error():
    # Monte Carlo of the closed-form engine's B̃ step alone: sample covariances of T_e Gaussian
    # residuals with covariance diag(σ²_e) (B̃ = I, the engine is equivariant), joint
    # diagonalisation with weights T_e, Amari distance of the mixing estimate.  60 replicates
    # give the mean within ~5 % (one sd); the first-order formula is asymptotic, so allow 20 %.
    rng = np.random.default_rng(0)
    designs = {"one-hot": np.array([[1e-2] * 3, [1, 1e-2, 1e-2], [1e-2, 1, 1e-2], [1e-2, 1e-2, 1]]),
               "mirror": np.array([[1.0] * 3, [1e-2, 1, 1], [1, 1e-2, 1], [1, 1, 1e-2]])}
    T = np.array([3000, 3000, 3000, 3000])
    measured = {}
    for name, var in designs.items():
        errs = []
        for _ in range(60):
            S = np.stack([np.cov((rng.normal(size=(t, 3)) * np.sqrt(v)).T, bias=True) for v, t in zip(var, T)])
            _, M, _, _ = joint_diagonalize(S, weights=T)
            errs.append(amari_distance(np.eye(3), M))
        measured[name] = np.mean(errs)
        predicted = float(moment_error(var, T))
        assert 0.8 <= measured[name] / predicted <= 1.2, (name, measured[name], predicted)
    assert measured["one-hot"] < 0.5 * measured["mirror"]          # the engine prefers the quiet baseline


def test_design_criteria_of_the_one_hot_design():
    v = design_criteria(lti.max_variability_design(3, zero_means=True), var_bounds=BOX)
    assert np.isclose(v["sigma_min_rel"], 1.0) and np.isclose(v["cond"], 1.0)
    E, R = 4, 1.0 / 1e-4
    assert np.isclose(v["pairwise"], ((E - 2 + R + 1 / R) / E) ** 2 - 1, rtol=1e-9)
    with pytest.raises(DataError, match="outside"):
        design_criteria(lti.max_variability_design(3, zero_means=True), var_bounds=(1e-2, 1.0))


# ---------------------------------------------------------------------- system-based criteria
@pytest.mark.slow
def test_d_optimal_beats_the_one_hot_design_by_its_criterion():
    system = lti.random_system(jax.random.PRNGKey(3), 2)
    bounds = (1e-2, 1.0)
    d = design_lti(2, 3, var_bounds=bounds, criterion="d-optimal", system=system, steps=500, key=0, **FAST)
    one_hot = InputDesign(None, 1e-2 + (1 - 1e-2) * np.vstack([np.zeros((1, 2)), np.eye(2)]))
    ref = design_criteria(one_hot, var_bounds=bounds, steps=500, system=system)["d-optimal"]
    assert d.value >= ref - 1e-9 * abs(ref)
    assert d.report["fisher_information"].passed


@pytest.mark.slow
def test_eig_design_runs_on_a_prior_and_gains_information():
    system = lti.random_system(jax.random.PRNGKey(3), 2)
    d = design_lti(2, 3, var_bounds=(1e-2, 1.0), criterion="eig", system=system, steps=500, key=0,
                   num_samples=8, **FAST)
    assert np.isfinite(d.value) and d.value > 0
    assert d.info["num_parameter_draws"] == 8 and d.info["parameter_law"] == "prior"
    with pytest.raises(DataError, match="prior_scale"):
        design_lti(2, 3, criterion="eig", system=system, prior_scale=-1.0)


def test_d_optimal_refuses_a_degenerate_system():
    singular = LTISystem(0.5 * np.eye(2), np.array([[1.0], [0.0]]), np.eye(2))    # m < n, no noise
    with pytest.raises(DataError, match="singular"):
        design_lti(1, 2, criterion="d-optimal", system=singular)
    partial = LTISystem(0.5 * np.eye(2), np.eye(2), np.array([[1.0, 0.0]]))
    with pytest.raises(DataError, match="C square and invertible"):
        design_lti(2, 3, criterion="d-optimal", system=partial)


# ---------------------------------------------------------------------- slow: against the real engine
@pytest.mark.slow
def test_moment_error_predicts_the_engine_error_on_simulated_systems():
    var = np.array([[1e-2] * 3, [1, 1e-2, 1e-2], [1e-2, 1, 1e-2], [1e-2, 1e-2, 1]])
    law, T = InputDesign(None, var), 4000
    errs = []
    for s in range(10):
        system = lti.random_system(jax.random.PRNGKey(10 + s), 3)
        sim = lti.simulate_lti(jax.random.PRNGKey(s), system, design=law, num_steps=T)
        data = LTIData.from_arrays(sim["y"], input_mean=law.mean, input_var=law.var)
        errs.append(amari_distance(system.C @ system.B, identify_lti(data, method="moment", check=False).B))
    ratio = np.mean(errs) / float(moment_error(var, np.full(4, T - 1.0)))
    assert 0.6 <= ratio <= 1.3, ratio            # measured 0.87 (standard error 0.09)


def test_exports():
    assert causalid.design_lti is design_lti and causalid.Design is Design
    assert "design_next" in causalid.__all__
