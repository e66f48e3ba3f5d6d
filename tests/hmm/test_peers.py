"""Exact HMM log-likelihoods against hmmlearn on identical parameters (the reference library
through a case table: Gaussian full / diagonal, Poisson, categorical), for both twins of the
forward pass, single sequences and several ragged ones."""

import jax.numpy as jnp
import numpy as np
import pytest
from causalid.models.hmm import HMMConfig, HMMParams, emission_log_lik, sequence_log_likelihoods

import causalid  # noqa: F401  (float64)
from causalid.dynamics.hmm import hmm_log_likelihood

JAX_X64 = True  # drives the JAX kernels from JAX code (see tests/conftest.py)

hmm = pytest.importorskip("hmmlearn.hmm", reason="needs hmmlearn (the test extra): pip install '.[test]'")

K = 3


def _chain(rng):
    init = rng.dirichlet(np.ones(K))
    trans = rng.dirichlet(np.ones(K) * 2.0, size=K) + 2.0 * np.eye(K)
    return init, trans / trans.sum(1, keepdims=True)


def _case(kind, rng):
    """(hmmlearn model, causalid config, per-state emission parameters, sampler of (T, D) data)."""
    init, trans = _chain(rng)
    if kind in ("gaussian-full", "gaussian-diag"):
        D = 2
        means = rng.normal(scale=2.0, size=(K, D))
        a = rng.normal(size=(K, D, D)) * 0.5
        covs = a @ np.swapaxes(a, 1, 2) + 0.3 * np.eye(D)
        full = kind == "gaussian-full"
        if not full:
            covs = covs * np.eye(D)
        peer = hmm.GaussianHMM(K, covariance_type="full" if full else "diag", init_params="", params="")
        peer.means_ = means
        peer.covars_ = covs if full else np.diagonal(covs, axis1=1, axis2=2)
        config = HMMConfig(K, "gaussian", D, covariance="full" if full else "diag")
        params = {"means": means, "covs": covs}
    elif kind == "poisson":
        rates = rng.uniform(0.5, 15.0, size=(K, 2))
        peer = hmm.PoissonHMM(K, init_params="", params="")
        peer.lambdas_ = rates
        config = HMMConfig(K, "poisson", 2)
        params = {"rates": rates}
    else:
        C = 5
        probs = rng.dirichlet(np.ones(C), size=K)
        peer = hmm.CategoricalHMM(K, n_features=C, init_params="", params="")
        peer.emissionprob_ = probs
        config = HMMConfig(K, "categorical", 1, num_categories=C)
        params = {"probs": probs[:, None, :]}
    peer.startprob_, peer.transmat_ = init, trans
    params.update(init=init, trans=trans)

    def sample(T, seed):
        X, _ = peer.sample(T, random_state=seed)
        return X.astype(float)

    return peer, config, params, sample


CASES = ["gaussian-full", "gaussian-diag", "poisson", "categorical"]


@pytest.mark.parametrize("kind", CASES)
@pytest.mark.parametrize("method", ["sequential", "parallel"])
def test_single_sequence_matches_hmmlearn(kind, method):
    rng = np.random.default_rng(CASES.index(kind))
    peer, config, params, sample = _case(kind, rng)
    X = sample(500, seed=1)
    params = HMMParams.from_dict({k: jnp.asarray(v) for k, v in params.items()})
    ours = hmm_log_likelihood(params.init, params.trans, emission_log_lik(params.emissions, jnp.asarray(X), config),
                              method=method)
    theirs = peer.score(X.astype(int) if kind in ("poisson", "categorical") else X)
    assert float(ours) == pytest.approx(theirs, rel=1e-8, abs=0)


@pytest.mark.parametrize("kind", CASES)
def test_ragged_sequences_match_hmmlearn(kind):
    """Three sequences of different lengths, padded (E=1, N=3): the sum of our per-sequence
    log-likelihoods equals hmmlearn's score with ``lengths``."""
    rng = np.random.default_rng(10 + CASES.index(kind))
    peer, config, params, sample = _case(kind, rng)
    lengths = [120, 37, 400]
    seqs = [sample(L, seed=i) for i, L in enumerate(lengths)]
    D = seqs[0].shape[1]
    y = np.full((1, 3, max(lengths), D), np.nan)
    for n, s in enumerate(seqs):
        y[0, n, : len(s)] = s
    batched = HMMParams.from_dict({k: jnp.asarray(v)[None] for k, v in params.items()})   # the environment axis
    ours = sequence_log_likelihoods(batched, jnp.asarray(y), config, jnp.asarray([lengths]))
    X = np.concatenate(seqs)
    X = X.astype(int) if kind in ("poisson", "categorical") else X
    each = [peer.score(s.astype(int) if kind in ("poisson", "categorical") else s) for s in seqs]
    np.testing.assert_allclose(np.asarray(ours)[0], each, rtol=1e-8, atol=0)
    assert float(np.sum(ours)) == pytest.approx(peer.score(X, lengths), rel=1e-8, abs=0)
