"""Starting points, degenerate fits, the variance floor and the initial-distribution options."""

import warnings

import jax
import numpy as np
import pytest
from causalid.models.hmm import HMMConfig, make_hmm_params
from scipy import optimize, stats

import causalid
from causalid.datasets import load_earthquakes
from causalid.hmm.data import SequenceData
from causalid.hmm.em import emission_signature
from causalid.hmm.starts import DegenerateFitWarning, degeneracy, initial_params

JAX_X64 = True  # drives the JAX kernels from JAX code (see tests/conftest.py)


@pytest.mark.parametrize("K, published", [(2, 342.3183), (3, 329.4603)])
def test_stationary_start_reproduces_published_earthquake_fits(K, published):
    """Zucchini & MacDonald (2009), section 3.4 / table 4.1: the Poisson HMMs of the earthquake
    counts with a stationary initial distribution, -log L 342.3183 (2 states) and 329.4603 (3)."""
    y = load_earthquakes()["count"].to_numpy()
    fit = causalid.fit_hmm(y, K, "poisson", initial="stationary", tol=1e-10, max_iters=5000, progress=False)
    assert abs(-fit.log_likelihood - published) < 1e-3
    # the initial distribution is the transition matrix's stationary one
    p = fit.params
    np.testing.assert_allclose(p.init[0] @ p.trans[0], p.init[0], atol=1e-10)
    assert fit.config.initial == "stationary" and fit.num_params == K * K - K + K
    assert fit.converged and not fit.degenerate


def _stationary_nll(trans, dens):
    K = trans.shape[0]
    delta = np.linalg.solve((np.eye(K) - trans + 1.0).T, np.ones(K))
    a, ll = delta * dens[0], 0.0
    for t in range(len(dens)):
        if t:
            a = (a @ trans) * dens[t]
        s = a.sum()
        ll += np.log(s)
        a = a / s
    return -ll


def _unpack(x, family):
    off = 1.0 / (1.0 + np.exp(-x[:2]))
    trans = np.array([[1 - off[0], off[0]], [off[1], 1 - off[1]]])
    return trans, x[2:]


def _dens(theta, y, family):
    if family == "poisson":
        return stats.poisson.pmf(y[:, None], np.exp(theta)[None])
    return stats.norm.pdf(y[:, None], theta[None, :2], np.exp(theta[None, 2:]))


@pytest.mark.parametrize("family", ["poisson", "gaussian"])
def test_stationary_start_matches_direct_numerical_maximisation(family):
    """Oracle: the stationary-start likelihood maximised by SciPy from many starts (a dense,
    independent NumPy forward pass) on a tiny series."""
    rng = np.random.default_rng(4)
    z = np.repeat(rng.integers(0, 2, 12), 5)
    y = rng.poisson(np.where(z == 0, 3.0, 9.0)).astype(float) if family == "poisson" else \
        np.where(z == 0, -1.0, 1.5) + rng.normal(size=z.size) * np.where(z == 0, 0.6, 1.0)

    def nll(x):
        trans, theta = _unpack(x, family)
        return _stationary_nll(trans, _dens(theta, y, family))

    best = np.inf
    for s in range(8):
        r = np.random.default_rng(s)
        x0 = np.r_[r.normal(-1.5, 1.0, 2), np.log([2.0, 10.0]) + r.normal(0, 0.3, 2)] if family == "poisson" else \
            np.r_[r.normal(-1.5, 1.0, 2), -1.0 + r.normal(0, 0.3), 1.5 + r.normal(0, 0.3), r.normal(0, 0.3, 2)]
        res = optimize.minimize(nll, x0, method="BFGS", options={"gtol": 1e-8})
        best = min(best, res.fun)
    fit = causalid.fit_hmm(y, 2, family, initial="stationary", min_covar=0.0, tol=1e-10, max_iters=3000,
                           progress=False)
    assert abs(-fit.log_likelihood - best) < 1e-6
    free = causalid.fit_hmm(y, 2, family, min_covar=0.0, tol=1e-10, max_iters=3000, progress=False)
    assert free.log_likelihood >= fit.log_likelihood - 1e-8  # the free start nests the stationary one


def test_a_given_initial_distribution_is_kept_by_em():
    y = load_earthquakes()["count"].to_numpy()
    fit = causalid.fit_hmm(y, 2, "poisson", initial=[0.25, 0.75], tol=1e-10, max_iters=3000, progress=False)
    free = causalid.fit_hmm(y, 2, "poisson", tol=1e-10, max_iters=3000, progress=False)
    assert sorted(fit.params.init[0].tolist()) == [0.25, 0.75]
    assert fit.config.initial == "fixed" and fit.num_params == free.num_params - 1
    assert fit.log_likelihood <= free.log_likelihood + 1e-8
    # EM with the free fit's own initial distribution held fixed stays at the free optimum
    same = causalid.fit_hmm(y, 2, "poisson", initial=free.params.init[0], tol=1e-10, max_iters=3000,
                            progress=False)
    assert abs(same.log_likelihood - free.log_likelihood) < 1e-6
    with pytest.raises(causalid.DataError, match="summing to 1"):
        causalid.fit_hmm(y, 2, "poisson", initial=[0.5, 0.6], progress=False)
    with pytest.raises(causalid.DataError, match="initial must be"):
        causalid.fit_hmm(y, 2, "poisson", initial="uniform", progress=False)
    with pytest.raises(causalid.DataError, match="available with method='em'"):
        causalid.fit_hmm(y, 2, "poisson", initial="stationary", method="map", progress=False)


@pytest.mark.parametrize("emission", ["gaussian", "poisson", "categorical"])
def test_starts_are_data_driven_and_diverse(emission):
    config = HMMConfig(3, emission, 2, 1, num_categories=4 if emission == "categorical" else None)
    rng = np.random.default_rng(0)
    z = rng.integers(0, 3, 300)
    y = {"gaussian": lambda: np.array([[0, 0], [3, 1], [-2, 4]])[z] + rng.normal(size=(300, 2)),
         "poisson": lambda: rng.poisson(np.array([[1, 2], [6, 3], [15, 9]])[z]).astype(float),
         "categorical": lambda: (z[:, None] + rng.integers(0, 2, (300, 2))).astype(float)}[emission]()
    data = SequenceData.from_arrays(y)
    starts = initial_params(jax.random.PRNGKey(0), data, config, 12)
    sig = emission_signature(starts, emission)[:, 0]  # (R, K, F)
    sig = np.sort(sig.reshape(12, -1), axis=-1)
    distinct = [i for i in range(12) if all(np.max(np.abs(sig[i] - sig[j])) > 1e-3 for j in range(i))]
    assert len(distinct) >= 8  # (well-separated clusters may give two k-means++ starts one partition)
    if emission == "gaussian":  # centres inside the data
        m = starts.emissions.means[:, 0]
        assert np.all((m >= y.min(0) - 1e-9) & (m <= y.max(0) + 1e-9))
    elif emission == "poisson":
        assert np.all(starts.emissions.rates > 0) and np.all(starts.emissions.rates[:, 0] <= y.max() * 1.25 + 1)
    else:
        np.testing.assert_allclose(starts.emissions.probs.sum(-1), 1.0)
    np.testing.assert_allclose(starts.trans.sum(-1), 1.0)


def test_degeneracy_names_empty_duplicated_and_spiky_states():
    config = HMMConfig(3, "gaussian", 1, 1)
    p = make_hmm_params(np.ones(3) / 3, np.full((3, 3), 1 / 3), means=[[0.0], [0.01], [5.0]],
                        covs=[[[1.0]], [[1.02]], [[1.5e-3]]])
    found = degeneracy(p, config, np.array([[40.0, 50.0, 0.5]]), floor=np.array([1e-3]))
    assert any("states 0 and 1 have the same emission parameters" in f for f in found)
    assert any("state 2 is empty" in f for f in found)
    found = degeneracy(p, config, np.array([[40.0, 50.0, 30.0]]), floor=np.array([1e-3]))
    assert any("state 2 has the variance floor" in f for f in found)
    sound = make_hmm_params(np.ones(2) / 2, np.full((2, 2), 0.5), rates=[[2.0], [9.0]])
    assert degeneracy(sound, HMMConfig(2, "poisson", 1, 1), np.array([[30.0, 30.0]])) == []



def test_a_spike_on_coded_values_is_reported_with_the_floor_recorded(coded):
    y = coded()
    with pytest.warns(DegenerateFitWarning, match="variance floor") as info:
        fit = causalid.fit_hmm(y, 3, num_restarts=8, progress=False)
    assert "Fit fewer states" in str(info[0].message)
    assert any("variance floor" in d for d in fit.degenerate)
    np.testing.assert_allclose(fit.settings["variance_floor"], [1e-3 * np.var(y)])
    assert fit.settings["min_covar"] == 1e-3
    assert "DEGENERATE" in fit.summary()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sound = causalid.fit_hmm(y, 2, num_restarts=8, progress=False)
    assert sound.degenerate == []


@pytest.mark.parametrize("emission", ["gaussian", "poisson"])
def test_map_em_climbs_the_posterior_to_its_stationary_point(emission, coded):
    """MAP-EM's trace (log-likelihood + log prior) never decreases, and at convergence the
    gradient of the log posterior vanishes in the emission parameters."""
    import jax.numpy as jnp

    from causalid.hmm.em import EMPrior, conjugate_prior, log_prior
    from causalid.models.hmm import sequence_log_likelihoods

    y = coded(3, 200) if emission == "gaussian" else load_earthquakes()["count"].to_numpy().astype(float)
    fit = causalid.fit_hmm(y, 2, emission, em_prior="weak", min_covar=0.0, tol=1e-11, max_iters=4000,
                           num_restarts=6, progress=False)
    assert fit.settings["em_prior"]["alpha"] == EMPrior().alpha
    tr = fit.trace[np.isfinite(fit.trace)]
    assert np.all(np.diff(tr) > -1e-8)
    data = SequenceData.from_arrays(y)
    pri = conjugate_prior(data, fit.config, EMPrior())

    def objective(p):
        ll = jnp.sum(sequence_log_likelihoods(p, jnp.asarray(data.y), fit.config, jnp.asarray(data.lengths)))
        return ll + log_prior(p, pri, fit.config)

    grad = jax.grad(objective)(jax.tree.map(jnp.asarray, fit.params))
    leaves = jax.tree.leaves(grad.emissions)
    assert max(float(np.max(np.abs(g))) for g in leaves) < 1e-4 * len(y)
    assert fit.log_likelihood <= causalid.fit_hmm(y, 2, emission, min_covar=0.0, tol=1e-11, max_iters=4000,
                                                  num_restarts=6, progress=False).log_likelihood + 1e-6


@pytest.mark.filterwarnings("ignore::causalid.ConvergenceWarning")  # (restarts find different spikes)
def test_map_em_keeps_a_spike_state_away_from_zero_variance(coded):
    y = coded()
    with pytest.warns(DegenerateFitWarning):
        ml = causalid.fit_hmm(y, 3, min_covar=1e-12, num_restarts=8, progress=False)
    sd_ml = np.sqrt(np.diagonal(ml.params.emissions.covs[0], axis1=-2, axis2=-1)).min()
    mapped = causalid.fit_hmm(y, 3, min_covar=0.0, em_prior="weak", num_restarts=8, progress=False)
    sd_map = np.sqrt(np.diagonal(mapped.params.emissions.covs[0], axis1=-2, axis2=-1)).min()
    assert sd_ml < 1e-5 * np.std(y) and sd_map > 0.02 * np.std(y)
    with pytest.raises(causalid.DataError, match="em_prior must be"):
        causalid.fit_hmm(y, 2, em_prior="strong", progress=False)


def test_a_free_initial_distribution_is_not_locked_at_the_wrong_state():
    """For one sequence the likelihood is linear in the initial distribution, so the free-start
    maximum is the best of the K fits with the start fixed at one state; EM alone cannot leave
    a vertex it reached (a zero initial probability stays zero), the polish from every vertex can."""
    config = HMMConfig(3, "gaussian", 1, 1)
    from causalid.models.hmm import random_hmm_params, simulate_hmm

    params = random_hmm_params(102, config, separation=3.0)
    y = simulate_hmm(202, config, params, num_sequences=1, num_steps=300)["y"][0, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        free = causalid.fit_hmm(y, 3, key=2, progress=False)
        fixed = [causalid.fit_hmm(y, 3, key=2, initial=np.eye(3)[k], progress=False).log_likelihood
                 for k in range(3)]
    assert free.log_likelihood >= max(fixed) - 1e-4
    assert np.max(free.params.init) > 0.99  # (the free maximum is a vertex)
