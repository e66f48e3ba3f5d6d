"""fit_hmm: EM fixed points, pooling, alignment, missing data and ragged sequences in every engine."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from causalid.models.hmm import HMMConfig, random_hmm_params, sequence_log_likelihoods, simulate_hmm

import causalid
from causalid.errors import DataError

JAX_X64 = True  # drives the JAX kernels from JAX code (see tests/conftest.py)


def _data(config, seed=0, N=2, T=300, **kw):
    params = random_hmm_params(seed, config, **kw)
    return params, simulate_hmm(seed + 1, config, params, num_sequences=N, num_steps=T)


def _total_loglik(params, data, config):
    y = jnp.asarray(data.y)
    return jnp.sum(sequence_log_likelihoods(params, y, config, jnp.asarray(data.lengths)))


def test_em_with_missing_channels_reaches_a_stationary_point_of_the_observed_likelihood():
    """Exact EM for missing data: at convergence the gradient of the observed-data log-likelihood
    vanishes in the emission parameters, and in the transitions up to the simplex constraint."""
    config = HMMConfig(2, "gaussian", 2, 1)
    _, sim = _data(config, seed=3, N=2, T=250, separation=2.5)
    y = sim["y"][0].copy()
    rng = np.random.default_rng(0)
    y[rng.uniform(size=y.shape) < 0.15] = np.nan  # some rows partly, a few wholly missing
    seqs = [y[0], y[1, :170]]  # ragged
    res = causalid.fit_hmm(seqs, 2, num_restarts=2, max_iters=1000, tol=1e-9, min_covar=1e-12, progress=False)
    assert res.converged
    data = causalid.SequenceData.from_arrays(seqs)
    params = jax.tree.map(jnp.asarray, res.params)
    grad = jax.grad(_total_loglik)(params, data, res.config)
    scale = data.num_observations
    assert np.max(np.abs(grad.emissions.means)) < 1e-4 * scale
    assert np.max(np.abs(grad.emissions.covs)) < 1e-4 * scale
    g = np.asarray(grad.trans[0])
    # Lagrange condition on each row of the transition matrix: equal partial derivatives
    assert np.max(np.abs(g - g.mean(axis=1, keepdims=True))) < 1e-4 * scale
    np.testing.assert_allclose(res.log_likelihood, float(_total_loglik(params, data, res.config)), rtol=1e-12)
    # EM never decreases the likelihood
    assert np.all(np.diff(res.trace[np.isfinite(res.trace)]) > -1e-8)


def test_poisson_em_fixed_point_and_shared_pooling():
    config = HMMConfig(2, "poisson", 1, 3, ())
    _, sim = _data(config, seed=5, N=2, T=200)
    res = causalid.fit_hmm(list(map(list, sim["y"])), 2, "poisson", num_restarts=3, max_iters=3000, tol=1e-11,
                           progress=False)
    # one HMM for every environment: identical parameters across environments
    for v in jax.tree.leaves(res.params):
        np.testing.assert_allclose(v, np.broadcast_to(v[:1], v.shape))
    data = causalid.SequenceData.from_arrays(list(map(list, sim["y"])))
    grad = jax.grad(_total_loglik)(jax.tree.map(jnp.asarray, res.params), data, res.config)
    assert np.max(np.abs(np.sum(grad.emissions.rates, axis=0))) < 1e-4 * data.num_observations
    assert np.all(np.diff(res.params.emissions.rates[0, :, 0]) > 0)  # canonical order: increasing rate


def test_states_aligned_across_environments_when_both_mechanisms_vary():
    config = HMMConfig(3, "gaussian", 1, 4, ("transitions", "emissions"))
    truth = random_hmm_params(11, config, env_spread=0.3)
    shift = np.array([-4.0, 0.0, 4.0])[[2, 0, 1]]  # well separated, listed out of order
    truth = truth.replace(means=jnp.asarray(shift[None, :, None] + 0.3 * np.random.default_rng(0).normal(size=(4, 3, 1))),
                          covs=jnp.ones((4, 3, 1, 1)))
    sim = simulate_hmm(12, config, truth, num_sequences=3, num_steps=200)
    res = causalid.fit_hmm(list(map(list, sim["y"])), 3, shared="none", num_restarts=4, progress=False)
    order = np.argsort(shift)
    want = np.asarray(truth.emissions.means)[:, order, 0]
    # every environment's states in the same (canonical) order, each mean within 5 standard
    # errors (unit sd / sqrt(visits); a state gets >= 50 of an environment's 600 steps)
    np.testing.assert_array_less(np.abs(res.params.emissions.means[..., 0] - want), 5 / np.sqrt(50))


def test_categorical_em_recovers_symbol_profiles():
    config = HMMConfig(2, "categorical", 1, 2, ("transitions",), num_categories=4)
    truth = random_hmm_params(2, config)
    profiles = np.array([[0.7, 0.1, 0.1, 0.1], [0.05, 0.05, 0.2, 0.7]])
    truth = truth.replace(probs=jnp.asarray(np.broadcast_to(profiles[:, None, :], (2, 2, 1, 4))))
    sim = simulate_hmm(3, config, truth, num_sequences=3, num_steps=300)
    res = causalid.fit_hmm(list(map(list, sim["y"])), 2, "categorical", shared="emissions", num_restarts=4,
                           progress=False)
    assert res.params.emissions.probs.shape == (2, 2, 1, 4)
    # canonical order puts the low-symbol state first; the binomial sd of a frequency from
    # ~800 visits is <= 0.018, so 0.06 is over 3 sd
    np.testing.assert_allclose(res.params.emissions.probs[0, :, 0], profiles, atol=0.06)


@pytest.mark.parametrize("method", [pytest.param("map", marks=pytest.mark.slow), "nuts"])
def test_map_and_nuts_handle_missing_values_and_ragged_sequences(method):
    config = HMMConfig(2, "gaussian", 1, 1)
    truth, sim = _data(config, seed=7, N=2, T=120, separation=4.0)
    y = sim["y"][0].copy()
    y[0, 10:15] = np.nan
    seqs = [y[0], y[1, :60]]
    kw = {"num_warmup": 150, "num_samples": 150, "num_chains": 1} if method == "nuts" else {}
    res = causalid.fit_hmm(seqs, 2, method=method, num_restarts=2, progress=False, **kw)
    em = causalid.fit_hmm(seqs, 2, num_restarts=2, progress=False)
    np.testing.assert_allclose(res.params.emissions.means, em.params.emissions.means, atol=0.3)
    assert np.isfinite(res.log_likelihood)
    if method == "nuts":
        post = res.posterior.posterior
        assert post["means"].shape[:2] == (1, 150)
        lo, hi = np.quantile(post["means"].values[0, :, 0], [0.005, 0.995], axis=0)[..., 0]
        order = np.argsort(np.asarray(truth.emissions.means)[0, :, 0])
        m = np.asarray(truth.emissions.means)[0, order, 0]
        assert np.all((lo <= m) & (m <= hi))


def test_viterbi_smooth_score_and_save_load(tmp_path):
    config = HMMConfig(2, "gaussian", 2, 1)
    _, sim = _data(config, seed=1, N=1, T=400, separation=5.0)
    y = sim["y"][0, 0]
    res = causalid.fit_hmm(y, 2, num_restarts=2, progress=False)
    path = res.viterbi(y)
    z = sim["z"][0, 0]
    acc = max(np.mean(path == z), np.mean(path == 1 - z))
    assert acc > 0.97
    post = res.smooth(y)
    np.testing.assert_allclose(post.sum(axis=1), 1.0, atol=1e-12)
    assert abs(res.score(y) - res.log_likelihood) < 1e-8 * abs(res.log_likelihood)
    res.save(tmp_path / "fit.json")
    back = causalid.HMMResult.load(tmp_path / "fit.json")
    assert isinstance(back.params, causalid.HMMParams)
    for a, b in zip(jax.tree.leaves(back.params), jax.tree.leaves(res.params)):
        np.testing.assert_array_equal(a, b)
    assert back.bic == res.bic and back.config == res.config
    assert "2 states" in res.summary()
    # started only from a given fit (num_restarts=0), EM stays at that optimum
    again = causalid.fit_hmm(y, 2, num_restarts=0, init_params=res.params, progress=False)
    assert again.restart_log_likelihoods.shape == (1,)
    assert abs(again.log_likelihood - res.log_likelihood) < 1e-6


def test_bad_input_is_named():
    y = np.array([0.0, 1.0, 2.0, -1.0, 3.0])
    with pytest.raises(DataError, match="non-negative integers"):
        causalid.fit_hmm(y, 2, "poisson", progress=False)
    with pytest.raises(DataError, match="method must be"):
        causalid.fit_hmm(y, 2, method="gibbs", progress=False)
    with pytest.raises(DataError, match="shared must be"):
        causalid.fit_hmm(y, 2, shared="sometimes", progress=False)
    with pytest.raises(DataError, match="constant"):
        causalid.fit_hmm(np.ones(10), 2, progress=False)
    with pytest.raises(DataError, match="num_restarts must be at least 1; got 0"):
        causalid.fit_hmm(y, 2, num_restarts=0, progress=False)
    with pytest.raises(DataError, match="infinite value at step 1"):
        causalid.fit_hmm(np.array([0.0, np.inf, 1.0]), 2, progress=False)
    for bad in (0, -3, 2.5, True):  # 0 and -3 once ended in "cannot join thread before it is started"
        with pytest.raises(DataError, match=f"max_iters must be a positive integer; got {bad!r}"):
            causalid.fit_hmm(y, 2, max_iters=bad, progress=False)


def _free_entries(params, config):
    """The free parameters once: env 0 of a shared mechanism, the last simplex entry dropped."""
    out = {}
    for k, v in params.to_dict().items():
        v = np.asarray(v)
        vary = config.trans_vary if k in ("init", "trans") else config.emis_vary
        v = v if vary else v[:1]
        if k in ("init", "trans"):
            v = v[..., :-1]
        if k == "covs":
            v = v[..., np.triu_indices(v.shape[-1])[0], np.triu_indices(v.shape[-1])[1]]
        out[k] = v.ravel()
    return np.concatenate([out[k] for k in sorted(out)])


@pytest.mark.slow  # ~60 s of compilation and refits: the 20-environment check
def test_bootstrap_standard_errors_cover_the_truth_with_20_environments(tmp_path):
    """20 environments x 5 sequences, transitions varying: after alignment the estimates sit
    within their parametric-bootstrap uncertainty.  With n free parameters the z-scores should be
    ~N(0, 1): mean z^2 has standard error sqrt(2 / n) (about 0.18 here), so [0.5, 1.6] is
    +-3 standard errors around 1 (allowing ~10% Monte-Carlo error in B = 40 standard errors);
    95% intervals should cover at least 95% - 3 binomial standard errors."""
    from causalid.hmm.em import align_to

    config = HMMConfig(2, "gaussian", 1, 20, ("transitions",))
    truth, sim = _data(config, seed=11, N=5, T=60)
    res = causalid.fit_hmm(sim["y"], 2, shared="emissions", num_restarts=3, key=1, progress=False)
    with pytest.warns(causalid.ConvergenceWarning, match="at 0 or 1"):
        boot = res.bootstrap(sim["y"], 40, key=2, progress=False)
    assert res.standard_errors is None and boot.settings["num_bootstrap"] == 40
    truth = align_to(res.params, truth, config)
    est, se, tv = (_free_entries(p, config) for p in (boot.params, boot.standard_errors, truth))
    # with 5 sequences per environment some initial distributions are estimated on the boundary:
    # exactly those have NaN standard errors, and the warning counts them
    edge = np.isnan(se)
    assert np.all((est[edge] < 1e-6) | (est[edge] > 1 - 1e-6))
    assert np.all(se[~edge] > 0)
    z = (est - tv)[~edge] / se[~edge]
    n = len(z)
    assert n >= 20 * 2 + 4
    assert 0.5 < np.mean(z**2) < 1.6, np.mean(z**2)
    assert np.mean(np.abs(z) < 1.96) >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / n)
    # the standard errors reach the table and survive save / load
    table = boot.parameter_table()
    assert "se" in table and table["se"].notna().mean() > 0.8
    boot.save(tmp_path / "fit.json")
    back = causalid.HMMResult.load(tmp_path / "fit.json")
    for a, b in zip(jax.tree.leaves(back.standard_errors), jax.tree.leaves(boot.standard_errors)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(DataError, match="num_bootstrap"):
        res.bootstrap(sim["y"], 1)
    with pytest.raises(DataError, match="environment"):
        res.bootstrap(sim["y"][:3], 10)


def test_em_batches_compact_without_changing_any_fit(monkeypatch):
    """run_em gathers unfinished fits into smaller batches as the others converge; every fit of
    a batch of data sets must still be the fit that EM makes of that data set alone."""
    from causalid.hmm import em as hmm_mod

    config = HMMConfig(2, "gaussian", 1, 2, ("emissions",))
    params = jax.tree.map(jnp.asarray, random_hmm_params(4, config))
    sims = [simulate_hmm(s, config, params, num_sequences=2, num_steps=30)["y"] for s in range(12)]
    ys = jnp.asarray(np.stack(sims))  # 12 data sets; their fits converge after different iterations
    lengths = jnp.full((2, 2), 30)
    start = jax.tree.map(lambda v: jnp.broadcast_to(v, (12,) + v.shape), params)
    opts = dict(max_iters=120, tol=1e-7, min_covar=jnp.full((1,), 1e-6), partial=False, batch_y=True)
    monkeypatch.setattr(hmm_mod, "MIN_COMPACT_BATCH", 1)
    got, ll, done, trace = hmm_mod.run_em(start, ys, lengths, config, **opts)
    iters = np.sum(np.isfinite(trace), axis=0)
    assert iters.min() <= 50 < iters.max()  # blocks of 25: the batch was compacted at least once
    for r in range(12):
        one = jax.tree.map(lambda v, r=r: v[r:r + 1], start)
        p1, ll1, done1, trace1 = hmm_mod.run_em(one, ys[r:r + 1], lengths, config, **opts)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(p1)):
            np.testing.assert_allclose(np.asarray(a[r]), np.asarray(b[0]), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ll[r], ll1[0], rtol=1e-12)
        assert done[r] == done1[0]
        np.testing.assert_allclose(trace[:len(trace1), r], trace1[:, 0], rtol=1e-12)
        assert np.all(np.isnan(trace[len(trace1):, r]))


@pytest.mark.parametrize("emission", ["gaussian", "poisson", "categorical"])
@pytest.mark.filterwarnings("ignore::causalid.DegenerateFitWarning", "ignore::causalid.ConvergenceWarning")
def test_the_final_log_likelihood_program_compiled_during_em_is_the_one_used(monkeypatch, emission):
    """fit_hmm compiles its final log-likelihood in a background thread while EM runs; the
    shapes it compiles for must be those of the fitted parameters, or the work is thrown away
    and the program compiled again.  (The data are noise: a fit with duplicated states, refitted
    and reported, which is not what this test is about.)"""
    from causalid import _compile
    from causalid.hmm import fit as hmm_mod

    import threading

    monkeypatch.setattr(_compile, "_COMPILED", {})
    calls = []

    def recording(fn, *args, **static):
        out = _compile.compiled(fn, *args, **static)
        calls.append((fn, threading.current_thread() is threading.main_thread()))
        return out

    monkeypatch.setattr(hmm_mod, "compiled", recording)
    rng = np.random.default_rng(0)
    y = rng.poisson(3.0, size=(2, 2, 20, 2)).astype(float)
    y[0, 1, 5, 0] = np.nan
    causalid.fit_hmm({"a": list(y[0]), "b": list(y[1])}, 2, emission, shared="emissions",
                     num_restarts=2, max_iters=3, progress=False)
    # asked for twice (in the background during EM, then by the fit), compiled once
    assert [main for fn, main in calls if fn is hmm_mod._sequence_lls] == [False, True]
    programs = [k for k in _compile._COMPILED if k[0] is hmm_mod._sequence_lls]
    assert len(programs) == 1
