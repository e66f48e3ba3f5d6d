"""Tests of the NUTS parameter posterior of a chosen DAG (causalid.exchangeable.posterior)."""

import causalid  # noqa: F401  (float64)
import jax
import networkx as nx
import numpy as np
import pandas as pd
import pytest

from causalid import MultiEnvData
from causalid.errors import ConvergenceWarning, DataError
from causalid.exchangeable.posterior import fit_parameters
from causalid.models.exchangeable import simulate

G = nx.DiGraph([("X", "Y")])
E, N = 20, 50
ENVS = [f"lab{e}" for e in range(E)]


@pytest.fixture(scope="module")
def fitted():
    # IEM cause variability: X's mechanism varies per environment, Y's is shared
    x, truth = simulate(G, jax.random.PRNGKey(11), E, N, regime="cause")
    x = np.asarray(x)
    # ragged environments, and columns in the order (Y, X) unlike the graph's node order
    blocks = [x[e, : N - 10 * (e % 3), ::-1] for e in range(E)]
    data = MultiEnvData.from_arrays(blocks, names=["Y", "X"], envs=ENVS)
    post = fit_parameters(data, G, regime="cause", num_warmup=400, num_samples=1000, key=1)
    return post, truth


@pytest.mark.slow
def test_posterior_covers_the_truth(fitted):
    post, truth = fitted
    p = post.idata.posterior
    shared = ["Y_bias", "Y_weight", "Y_log_noise", "X_bias_mu", "X_log_noise_mu", "X_bias_tau"]
    per_env = ["X_bias", "X_log_noise"]  # every environment's own parameter too
    for site in shared + per_env:
        draws = p[site].stack(s=("chain", "draw"))
        z = (draws.mean("s").values - truth[site]) / draws.std("s").values
        assert np.all(np.abs(z) < 4), (site, z)


def test_idata_has_named_coordinates(fitted):
    post, _ = fitted
    p = post.idata.posterior
    assert p["X_bias"].dims == ("chain", "draw", "env")
    assert list(p["env"].values) == ENVS
    assert p["Y_weight"].dims == ("chain", "draw", "Y_feature")
    assert list(p["Y_weight"]["Y_feature"].values) == ["X"]
    assert p["Y_bias"].dims == ("chain", "draw") and "Y_bias_mu" not in p
    assert p.sizes["chain"] == 2 and p.sizes["draw"] == 1000
    assert post.idata.observed_data["Y"].dims == ("env", "sample")


def test_diagnostics_are_reported(fitted):
    post, _ = fitted
    d = post.diagnostics
    assert d.ok and d.problems() == []
    assert 0.99 < d.max_r_hat <= 1.01 and d.min_ess_bulk >= 200 and d.num_divergences == 0
    s = post.summary()
    assert isinstance(s, pd.DataFrame) and {"mean", "sd", "r_hat", "ess_bulk"} <= set(s.columns)
    assert "X_bias[lab0]" in s.index and s["r_hat"].max() == pytest.approx(d.max_r_hat, abs=0.01)


def test_bad_run_warns():
    # five warm-up steps cannot adapt the step size: r_hat and ESS must flag the run
    # (one chain: r_hat compares its two halves)
    g = nx.DiGraph()
    g.add_node("X")
    x, _ = simulate(g, jax.random.PRNGKey(2), 4, 10)
    data = MultiEnvData.from_arrays(np.asarray(x), names=["X"])
    with pytest.warns(ConvergenceWarning, match="r_hat|ESS|divergent"):
        post = fit_parameters(
            data, g, num_warmup=5, num_samples=40, num_chains=1, key=3, noncentered=True,
            log_likelihood=True,
        )
    assert not post.diagnostics.ok and post.diagnostics.problems()
    p = post.idata.posterior
    assert p["X_bias_decentered"].dims == p["X_bias"].dims == ("chain", "draw", "env")
    assert post.idata.log_likelihood["X"].dims == ("chain", "draw", "env", "sample")


def test_graph_must_match_the_data():
    x = np.random.default_rng(0).normal(size=(2, 3, 2))
    data = MultiEnvData.from_arrays(x, names=["X", "Y"])
    with pytest.raises(DataError, match="'Z'"):
        fit_parameters(data, nx.DiGraph([("X", "Z")]))
    with pytest.raises(DataError, match="'Y'"):
        fit_parameters(data, nx.DiGraph([("X", "X2")]).subgraph(["X"]).copy())
    with pytest.raises(DataError, match="noncentered"):
        fit_parameters(data, G, noncentered=["nope"])
    with pytest.raises(DataError, match="family 'binary'"):
        fit_parameters(data, G, family="binary")
