"""HMMResult's decoding kernels: exact posterior path draws, and one compilation per shape."""

from __future__ import annotations

import numpy as np
import pytest

import causalid
from causalid.hmm import result as result_module


@pytest.fixture(scope="module")
def fit_and_data():
    rng = np.random.default_rng(2)
    z = np.repeat(rng.integers(0, 2, size=30), 8)
    y = np.where(z == 0, -1.0, 1.0) + 1.2 * rng.normal(size=z.size)   # overlapping states
    data = causalid.SequenceData.from_arrays(y)
    return causalid.fit_hmm(data, 2, num_restarts=3, progress=False), data


def test_sampled_state_paths_have_the_smoothed_marginals(fit_and_data):
    fit, data = fit_and_data
    S = 4000
    paths = fit.sample_states(data, key=1, num_samples=S)            # (S, T)
    post = fit.smooth(data)                                           # (T, K)
    assert paths.shape == (S, post.shape[0])
    freq = np.stack([(paths == k).mean(axis=0) for k in range(2)], axis=1)
    se = np.sqrt(post * (1 - post) / S) + 1e-12
    assert np.max(np.abs(freq - post) / se) < 5.0                    # every step within 5 SE
    # the draws are paths, not independent marginals: consecutive states agree as often as
    # the posterior pair marginals imply, and more often than independent draws would
    same = (paths[:, 1:] == paths[:, :-1]).mean()
    independent = np.mean(np.sum(post[1:] * post[:-1], axis=1))
    assert same > independent


def test_decoding_compiles_once_per_kernel_and_shape(fit_and_data):
    fit, data = fit_and_data
    program = result_module._per_sequence_program
    fit.viterbi(data), fit.smooth(data)
    before = program._cache_size()
    for r in range(3):
        fit.viterbi(data), fit.smooth(data), fit.score(data)
        fit.sample_states(data, key=r, num_samples=5), fit.pseudo_residuals(data, key=r)
    # score, sampling and the forecast weights are new; new keys trace nothing again
    assert program._cache_size() == before + 3
    same_shape = causalid.SequenceData.from_arrays(np.asarray(data.y[0, 0, :, 0]) + 0.1)
    fit.viterbi(same_shape), fit.sample_states(same_shape, key=9, num_samples=5)
    assert program._cache_size() == before + 3


def test_results_saved_with_flat_parameter_dictionaries_still_load(fit_and_data, tmp_path):
    """Files keep the flat layout of earlier versions ({"init", "trans", "means", "covs"}), and
    such a file loads into typed parameters."""
    import json

    fit, data = fit_and_data
    path = fit.save(tmp_path / "fit.json")
    raw = json.loads(path.read_text())
    assert sorted(raw["params"]) == ["covs", "init", "means", "trans"]
    back = causalid.HMMResult.load(path)
    assert isinstance(back.params, causalid.HMMParams)
    np.testing.assert_array_equal(back.params.emissions.means, fit.params.emissions.means)
    np.testing.assert_array_equal(back.viterbi(data), fit.viterbi(data))
