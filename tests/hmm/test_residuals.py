"""Pseudo-residuals: uniform / normal under the true model (calibration), flag a misfit."""

import matplotlib
import numpy as np
import pytest
from causalid.models.hmm import HMMConfig, make_hmm_params

import causalid

matplotlib.use("Agg")

TRANS = np.array([[0.9, 0.1], [0.15, 0.85]])


def _chain(rng, T):
    z = np.zeros(T, dtype=int)
    z[0] = rng.integers(2)
    for t in range(1, T):
        z[t] = rng.uniform() < TRANS[z[t - 1], 1]
    return z


def _truth(emission):
    kw = {"gaussian": {"means": [[-1.0], [1.5]], "covs": [[[1.0]], [[0.5]]]},
          "poisson": {"rates": [[3.0], [11.0]]},
          "categorical": {"probs": [[[0.6, 0.3, 0.1]], [[0.1, 0.2, 0.7]]]}}[emission]
    params = make_hmm_params([0.6, 0.4], TRANS, **kw)
    config = HMMConfig(2, emission, 1, 1, num_categories=3 if emission == "categorical" else None)
    return params, config


def _draw(emission, rng, T):
    z = _chain(rng, T)
    if emission == "gaussian":
        return np.where(z == 0, -1.0, 1.5) + np.where(z == 0, 1.0, np.sqrt(0.5)) * rng.normal(size=T)
    if emission == "poisson":
        return rng.poisson(np.where(z == 0, 3.0, 11.0)).astype(float)
    p = np.array([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])[z]
    return (rng.uniform(size=T)[:, None] > np.cumsum(p, axis=1)).sum(1).astype(float)


def _result(params, config, T):
    return causalid.HMMResult(params=params, config=config, log_likelihood=0.0, num_observations=T)


@pytest.mark.parametrize("emission", ["gaussian", "poisson", "categorical"])
@pytest.mark.parametrize("kind", ["ordinary", "forecast"])
def test_pseudo_residuals_are_calibrated_under_the_true_model(emission, kind):
    """Over 40 replicate series from the model, the Kolmogorov-Smirnov p-values of the
    residuals are uniform: about 5 % fall below 0.05 (binomial: 8 or more of 40 has chance
    < 0.01), and the pooled u are uniform."""
    params, config = _truth(emission)
    rng = np.random.default_rng(1)
    fit = _result(params, config, 150)
    p_values, pooled = [], []
    for r in range(40):
        check = fit.pseudo_residuals(_draw(emission, rng, 150), kind, key=r)
        p_values.append(check.tests["ks_p_value"].item())
        pooled.append(check.residuals["u"].to_numpy())
    assert np.sum(np.array(p_values) < 0.05) < 8
    from scipy import stats

    assert stats.kstest(np.concatenate(pooled), "uniform").pvalue > 0.01


@pytest.mark.parametrize("emission", ["gaussian", "poisson"])
def test_pseudo_residuals_flag_a_misspecified_model(emission, tmp_path):
    """A one-state model of two-state data: the forecast residuals are not normal and are
    autocorrelated (the regimes persist); the true model passes on the same data."""
    params, config = _truth(emission)
    y = _draw(emission, np.random.default_rng(5), 600)
    good = _result(params, config, 600).pseudo_residuals(y, "forecast")
    assert good.consistent, good.summary()
    one = make_hmm_params([1.0], [[1.0]], **({"means": [[y.mean()]], "covs": [[[y.var()]]]} if emission == "gaussian"
                                             else {"rates": [[y.mean()]]}))
    bad = _result(one, HMMConfig(1, emission, 1, 1), 600).pseudo_residuals(y, "forecast")
    assert not bad.consistent
    assert bad.tests["ljung_box_p_value"].item() < 1e-6
    assert "does NOT fit" in bad.summary()
    fig = bad.plot(path=tmp_path / "res.png")
    assert len(fig.axes) == 2 and (tmp_path / "res.png").exists()
    back = causalid.ResidualCheck.load(bad.save(tmp_path / "res.json"))
    assert back.tests["ks_p_value"].tolist() == bad.tests["ks_p_value"].tolist()


def test_pseudo_residuals_of_a_fit_and_missing_values():
    y = _draw("poisson", np.random.default_rng(2), 300)
    y[10:13] = np.nan
    fit = causalid.fit_hmm(y, 2, "poisson", num_restarts=6, progress=False)
    check = fit.pseudo_residuals(y, "ordinary")
    assert len(check.residuals) == 297 and check.consistent
    with pytest.raises(causalid.DataError, match="kind must be"):
        fit.pseudo_residuals(y, "pearson")
