"""Published Poisson-HMM fits, and the mechanism-change test on simulations with a known answer."""

import numpy as np
import pytest
from causalid.models.hmm import HMMConfig, random_hmm_params, simulate_hmm

import causalid
from causalid.hmm.compare import MechanismReport, compare_mechanisms


@pytest.mark.parametrize("K, published", [(2, 341.87870), pytest.param(3, 328.52748, marks=pytest.mark.slow)])
def test_poisson_hmm_reproduces_published_earthquake_fits(K, published):
    """Zucchini & MacDonald (2009), Tables 4.1-4.2: EM fits with a free initial distribution
    (see causalid/datasets/earthquakes/PROVENANCE.md); -log L to 4 significant digits."""
    from causalid.datasets import load_earthquakes

    y = load_earthquakes()["count"].to_numpy()
    res = causalid.fit_hmm(y, K, "poisson", num_restarts=10, tol=1e-10, max_iters=5000, progress=False)
    assert float(f"{-res.log_likelihood:.4g}") == float(f"{published:.4g}")
    assert abs(-res.log_likelihood - published) < 1e-4


def _simulate(truth: str, seed: int):
    vary = {"neither": (), "transitions": ("transitions",), "emissions": ("emissions",),
            "both": ("transitions", "emissions")}[truth]
    config = HMMConfig(2, "gaussian", 1, 20, vary)
    params = random_hmm_params(seed, config, env_spread=0.5)
    return simulate_hmm(seed + 1, config, params, num_sequences=5, num_steps=50)["y"]


@pytest.mark.slow
@pytest.mark.parametrize("truth", ["transitions", "emissions"])
def test_compare_mechanisms_finds_the_varying_mechanism(truth, tmp_path):
    y = _simulate(truth, 3)
    report = compare_mechanisms(y, 2, null="chi2", num_restarts=2, max_iters=200, progress=False)
    assert report.verdict == truth, report.summary()
    assert truth in report.summary()
    ll = report.models.set_index("model")["log_likelihood"]
    assert ll["both"] >= max(ll["transitions"], ll["emissions"]) - 1e-6  # nested fits
    report.save(tmp_path / "r.json")
    back = MechanismReport.load(tmp_path / "r.json")
    assert back.verdict == truth
    assert back.tests["p_value"].tolist() == report.tests["p_value"].tolist()


@pytest.mark.slow
def test_bootstrap_null_is_calibrated_reference():
    """Under 'neither', the bootstrap p-values are not small; the statistics are the observed
    likelihood ratios and the bootstrap replicates are non-negative."""
    y = _simulate("neither", 3)
    report = compare_mechanisms(y, 2, num_bootstrap=40, num_restarts=2, max_iters=200, progress=False)
    assert report.verdict == "neither", report.summary()
    for mech in ("transitions", "emissions"):
        assert len(report.null_statistics[mech]) == 40
        assert np.all(report.null_statistics[mech] >= 0)


def test_needs_two_environments():
    with pytest.raises(causalid.DataError, match="at least 2 environments"):
        compare_mechanisms(np.random.default_rng(0).normal(size=50), 2, progress=False)


def _warns_small_bootstrap(B, alpha):
    """Whether compare_mechanisms warns that B replicates can never declare a change (it stops
    at fitting: num_restarts = -1 is refused after the argument checks)."""
    import warnings

    y = {e: [np.random.default_rng(e).normal(size=30)] for e in range(2)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(causalid.DataError, match="num_restarts"):
            compare_mechanisms(y, 2, num_bootstrap=B, alpha=alpha, num_restarts=-1, progress=False)
    return any("no change can be declared" in str(w.message) for w in caught)


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.03, 0.01])
def test_small_bootstrap_warning_sits_at_the_exact_boundary(alpha):
    """Holm declares a change when twice the smaller p-value is below alpha, and a bootstrap
    p-value is at least 1 / (B + 1): the warning must name, and stop at, the smallest B with
    2 / (B + 1) < alpha (found here by counting up)."""
    need = next(B for B in range(1, 10_000) if 2 / (B + 1) < alpha)
    assert _warns_small_bootstrap(need - 1, alpha)
    assert not _warns_small_bootstrap(need, alpha)


def test_a_given_initial_distribution_holds_in_every_fit():
    y = {e: [np.random.default_rng(e).normal(size=40) + 3.0 * (np.arange(40) // 10 % 2)] for e in range(2)}
    report = compare_mechanisms(y, 2, null="chi2", initial=[0.5, 0.5], num_restarts=2, max_iters=50,
                                progress=False)
    for fit in report.fits.values():
        assert fit.config.initial == "fixed"
        np.testing.assert_allclose(fit.params.init, 0.5)
    with pytest.raises(causalid.DataError, match="stationary start"):
        compare_mechanisms(y, 2, initial="stationary", progress=False)


def test_bootstrap_size_is_checked():
    y = {e: [np.random.default_rng(e).normal(size=30)] for e in range(2)}
    with pytest.raises(causalid.DataError, match="num_bootstrap must be a positive integer; got 0"):
        compare_mechanisms(y, 2, num_bootstrap=0, progress=False)
    with pytest.raises(causalid.DataError, match="positive integer; got True"):
        compare_mechanisms(y, 2, num_bootstrap=True, progress=False)
    with pytest.warns(UserWarning, match="no change can be declared; use at least 40 replicates"):
        report = compare_mechanisms(y, 2, num_bootstrap=9, num_restarts=1, max_iters=10, progress=False)
    assert report.tests["p_value"].min() >= 0.1  # 1 / (9 + 1)

