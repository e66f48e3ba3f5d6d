"""The HMM program's emission densities and its random-parameter generator."""

import numpy as np
import pytest
from scipy import stats

import causalid  # noqa: F401  (float64)
from causalid.models.hmm import HMMConfig, emission_log_lik, random_hmm_params


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
        got = np.asarray(emission_log_lik({"means": means, "covs": covs}, rows, config, partial))
        ref = np.zeros_like(got)
        for t, row in enumerate(rows):
            o = ~np.isnan(row)
            for k in range(K):
                if o.any():
                    ref[t, k] = stats.multivariate_normal(means[k, o], covs[k][np.ix_(o, o)]).logpdf(row[o])
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("K, D", [(2, 1), (4, 1), (3, 3)])
def test_random_gaussian_hmms_keep_their_states_apart(K, D):
    """The shared state means are at least ``separation`` apart for every seed (the generator's
    promise; drawn independently, two states of K = 2, D = 1 were less than one standard
    deviation apart in 6 of 25 draws)."""
    config = HMMConfig(K, "gaussian", D, 4, ())
    for seed in range(30):
        means = np.asarray(random_hmm_params(seed, config, separation=3.0, env_spread=0.0)["means"])[0]
        gaps = np.linalg.norm(means[:, None] - means[None], axis=-1)[np.triu_indices(K, 1)]
        assert gaps.min() >= 3.0 - 1e-9, (seed, gaps)
