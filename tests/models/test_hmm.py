"""The HMM program's emission densities and its random-parameter generator."""

import numpy as np
import pytest
from scipy import stats

import causalid  # noqa: F401  (float64)
from causalid.models.hmm import GaussianEmissions, HMMConfig, emission_log_lik, random_hmm_params

JAX_X64 = True  # drives the JAX kernels from JAX code (see tests/conftest.py)


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_gaussian_emission_densities_match_scipy_with_missing_channels(offset):
    """Full rows, partly and wholly missing rows against scipy's (marginal) normal densities,
    also far from the origin where an expanded quadratic form could cancel digits."""
    rng = np.random.default_rng(0)
    K, D, T = 3, 3, 40
    means = offset + rng.normal(size=(K, D)) * 3.0
    a = rng.normal(size=(K, D, D))
    covs = a @ np.swapaxes(a, 1, 2) + 0.3 * np.eye(D)
    y = offset + rng.normal(size=(T, D)) * 3.0
    y[5, 1] = np.nan
    y[9, [0, 2]] = np.nan
    y[12] = np.nan
    config = HMMConfig(K, "gaussian", D, 1)
    for partial in (False, True):
        rows = y if partial else y[~np.isnan(y).any(axis=1)]
        got = np.asarray(emission_log_lik(GaussianEmissions(means, covs), rows, config, partial))
        ref = np.zeros_like(got)
        for t, row in enumerate(rows):
            o = ~np.isnan(row)
            for k in range(K):
                if o.any():
                    ref[t, k] = stats.multivariate_normal(means[k, o], covs[k][np.ix_(o, o)]).logpdf(row[o])
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("K, D", [(2, 1), (4, 1), (3, 3)])
def test_random_gaussian_hmms_keep_their_states_apart(K, D):
    """Shared state means are at least ``separation`` apart for every seed, whatever
    ``env_spread`` is (the generator's promise; drawn independently, two states of K = 2, D = 1
    were less than one standard deviation apart in 6 of 25 draws, and a shared draw of the
    per-environment perturbation brought them to 1.3 apart in one benchmark seed)."""
    config = HMMConfig(K, "gaussian", D, 4, ("transitions",))
    for seed in range(30):
        params = random_hmm_params(seed, config, separation=3.0, env_spread=0.5)
        means = np.asarray(params.emissions.means)
        np.testing.assert_array_equal(means, np.broadcast_to(means[0], means.shape))
        gaps = np.linalg.norm(means[0][:, None] - means[0][None], axis=-1)[np.triu_indices(K, 1)]
        assert gaps.min() >= 3.0 - 1e-9, (seed, gaps)
        trans = np.asarray(params.trans)  # the varying mechanism differs between environments
        assert np.abs(trans - trans[0]).max() > 1e-3


@pytest.mark.parametrize("emission, site", [("gaussian", "means"), ("poisson", "rates"), ("categorical", "probs")])
def test_random_hmms_perturb_only_the_varying_mechanisms(emission, site):
    """``env_spread`` moves varying mechanisms per environment and leaves shared ones at the base."""
    kw = {"num_categories": 3} if emission == "categorical" else {}
    for vary in [(), ("transitions",), ("emissions",), ("transitions", "emissions")]:
        config = HMMConfig(3, emission, 2, 5, vary, **kw)
        params = random_hmm_params(7, config, env_spread=0.5)
        base = random_hmm_params(7, config, env_spread=0.0)
        for name, mech in [("trans", "transitions"), ("init", "transitions"), (site, "emissions")]:
            got, ref = np.asarray(params.to_dict()[name]), np.asarray(base.to_dict()[name])
            if mech in vary:
                assert np.abs(got - got[0]).max() > 1e-3, (vary, name)
            else:
                np.testing.assert_array_equal(got, ref, err_msg=f"{vary} {name}")


def test_hmm_params_constructor_checks_shapes_and_round_trips_the_flat_layout():
    import jax

    from causalid.models.hmm import HMMParams, PoissonEmissions, make_hmm_params

    p = make_hmm_params([0.3, 0.7], [[0.9, 0.1], [0.2, 0.8]], means=[[0.0, 1.0], [3.0, 4.0]],
                        covs=np.broadcast_to(np.eye(2), (2, 2, 2)), num_envs=3)
    assert p.emission == "gaussian" and (p.num_envs, p.num_states) == (3, 2)
    assert p.emissions.means.shape == (3, 2, 2) and p.emissions.covs.shape == (3, 2, 2, 2)
    flat = p.to_dict()
    assert sorted(flat) == ["covs", "init", "means", "trans"]
    back = HMMParams.from_dict(flat)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(p)):
        np.testing.assert_array_equal(a, b)
    # a pytree: tree.map keeps the structure, replace routes emission fields by name
    doubled = jax.tree.map(lambda v: 2 * v, p)
    assert isinstance(doubled, HMMParams) and isinstance(doubled.emissions, type(p.emissions))
    moved = p.replace(means=p.emissions.means + 1.0, init=p.init[:, ::-1])
    np.testing.assert_array_equal(moved.emissions.means, p.emissions.means + 1.0)
    np.testing.assert_array_equal(moved.init[0], [0.7, 0.3])
    q = make_hmm_params([[1.0, 0.0]], [[[0.5, 0.5], [0.5, 0.5]]], rates=[[[1.0], [2.0]]])
    assert isinstance(q.emissions, PoissonEmissions) and q.emissions.rates.shape == (1, 2, 1)
    with pytest.raises(ValueError, match="exactly one emission family"):
        make_hmm_params([0.5, 0.5], np.eye(2), rates=[1.0, 2.0], probs=np.ones((2, 3)) / 3)
    with pytest.raises(ValueError, match="trans has shape"):
        make_hmm_params([0.5, 0.5], np.eye(3), rates=[1.0, 2.0])
    with pytest.raises(ValueError, match="no emission parameters"):
        HMMParams.from_dict({"init": q.init, "trans": q.trans})
