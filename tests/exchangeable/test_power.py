"""Power analysis for the causal de Finetti engine."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

import causalid.exchangeable.power as discover_module
from causalid.design import PowerAnalysis, power_analysis
from causalid.exchangeable.power import _wilson
from causalid.errors import DataError


def test_wilson_interval_known_values():
    # 95 % Wilson score intervals (z = 1.96): 8/10 -> (0.4902, 0.9433); 0/10 -> (0, 0.2775)
    lo, hi = _wilson(8, 10)
    assert np.isclose(lo, 0.4902, atol=1e-4) and np.isclose(hi, 0.9433, atol=1e-4)
    lo, hi = _wilson(0, 10)
    assert lo == 0.0 and np.isclose(hi, 0.2775, atol=1e-4)


class _Fake:
    def __init__(self, adj):
        self._adj = adj

    def adjacency(self):
        return self._adj


def fake_simulate(model, key, E, N, R, regime, num_vars, graph=None):
    """Stand-in generator: noise data and a truth cycling through X→Y, Y→X and no edge."""
    x = np.random.default_rng(0).normal(size=(R, E, N, 2))
    adj = np.zeros((R, 2, 2), dtype=int)
    adj[0::3, 0, 1] = 1
    adj[1::3, 1, 0] = 1
    return x, adj


def test_bookkeeping_with_an_engine_that_needs_100_environments(monkeypatch):
    # stand-ins for the generator and the engine (it recovers the truth exactly when E >= 100 and
    # returns the empty graph otherwise); the nesting of settings, scoring and decision are real
    seen = {}

    def fake_batch(x, method="cdf", **kw):
        R, E = x.shape[:2]
        seen[E] = x
        truth = fake_simulate(None, None, E, 2, R, None, None)[1]
        return [_Fake(truth[r] if E >= 100 else np.zeros((2, 2), dtype=int)) for r in range(R)]

    monkeypatch.setattr("causalid.exchangeable.power._simulate", fake_simulate)
    monkeypatch.setattr(discover_module, "discover_batch", fake_batch)
    pa = power_analysis("bivariate", envs=(50, 100, 200), replicates=6, target=0.9)
    t = pa.table
    assert list(t["num_envs"]) == [50, 100, 200] and list(t["replicates"]) == [6, 6, 6]
    assert list(t["regime"]) == ["both"] * 3 and pa.best_regime == "both"
    assert list(t["accuracy"]) == [2 / 6, 1.0, 1.0]                 # the 2 no-edge truths are "recovered"
    assert pa.first["num_envs"] == 100 and pa.first["accuracy"] == 1.0
    assert list(t["mean_shd"]) == [4 / 6, 0.0, 0.0]
    # smaller settings are the first environments of the largest draw
    np.testing.assert_array_equal(seen[50], seen[200][:, :50])
    # the conservative rule uses the Wilson lower bound: 6/6 gives 0.61 < 0.9, so nothing reaches it
    strict = power_analysis("bivariate", envs=(50, 100, 200), replicates=6, target=0.9, conservative=True)
    assert strict.first is None and "no setting reached" in strict.summary()


@pytest.mark.parametrize("kwargs, match", [
    ({"model": "gaussian"}, "unknown model"),
    ({"samples": (1,)}, "at least 2 samples"),
    ({"target": 1.5}, "target"),
    ({"regime": "neither"}, "unknown regime"),
    ({"envs": ()}, "at least one value"),
    ({"model": "binary", "regime": "cause"}, "varies every mechanism"),
    ({"regime": []}, "at least one candidate"),
    ({"regime": ["both", "both"]}, "twice"),
    ({"regime": [{"X"}]}, "needs model='icm' and a graph"),
    ({"model": "icm", "graph": nx.DiGraph([("X", "Y")]), "regime": [{"W"}]}, r"\['W'\] are not in the graph"),
    ({"model": "bivariate", "graph": nx.DiGraph([("X", "Y")])}, "model='icm' only"),
    ({"model": "icm", "graph": nx.DiGraph([("X", "Y"), ("Y", "X")])}, "without cycles"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(DataError, match=match):
        power_analysis(**kwargs)


@pytest.mark.slow
def test_real_generator_and_engine_gain_power_with_environments():
    pa = power_analysis("bivariate", envs=(20, 200), replicates=20, target=0.8, key=1)
    acc = pa.table["accuracy"].to_numpy()
    assert acc[1] > acc[0] and acc[1] >= 0.7       # published: 0.82 at E = 200 with KCI


def test_candidates_are_compared_and_the_cheapest_to_reach_the_target_is_recommended(monkeypatch, tmp_path):
    # stand-in engine: with regime "cause" it recovers the truth from 100 environments, with
    # "mechanism" from 200, with "both" never; the generator is told the regime of each block
    regimes = []

    def fake_sim(model, key, E, N, R, regime, num_vars, graph=None):
        regimes.append(regime)
        x, adj = fake_simulate(model, key, E, N, R, regime, num_vars)
        return x + {"both": 0.0, "cause": 1.0, "mechanism": 2.0}[regime], adj

    def fake_batch(x, method="cdf", **kw):
        R, E = x.shape[:2]
        need = {1: 100, 2: 200}.get(int(round(x.mean())), 10**9)
        truth = fake_simulate(None, None, E, 2, R, None, None)[1]
        return [_Fake(truth[r] if E >= need else np.ones((2, 2), dtype=int)) for r in range(R)]

    monkeypatch.setattr("causalid.exchangeable.power._simulate", fake_sim)
    monkeypatch.setattr(discover_module, "discover_batch", fake_batch)
    pa = power_analysis("bivariate", envs=(50, 100, 200), replicates=6, target=0.9,
                        regime=["both", "mechanism", "cause"])
    assert regimes == ["both", "mechanism", "cause"]
    assert list(pa.table["regime"]) == ["both"] * 3 + ["mechanism"] * 3 + ["cause"] * 3
    assert pa.by_regime["both"] is None
    assert pa.by_regime["mechanism"]["num_envs"] == 200 and pa.by_regime["cause"]["num_envs"] == 100
    assert pa.best_regime == "cause" and pa.first["num_envs"] == 100
    text = pa.summary()
    assert "only the root (cause) mechanisms varying" in text and "both: does not reach the target" in text
    assert "not clear-cut" not in text
    assert pa.settings["regime"] == ["both", "mechanism", "cause"]
    # JSON round trip and a plot with one line (and band) per candidate
    path = tmp_path / "pa.json"
    pa.save(path)
    back = PowerAnalysis.load(path)
    pd.testing.assert_frame_equal(back.table, pa.table)
    assert back.first == pa.first and back.by_regime == pa.by_regime and back.summary() == pa.summary()
    fig = pa.plot(path=tmp_path / "pa.png")
    assert len(fig.axes[0].lines) == 4 and (tmp_path / "pa.png").stat().st_size > 0
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(DataError, match=r"is not a causalid.PowerAnalysis/1 file"):
        PowerAnalysis.load(tmp_path / "bad.json")


def test_a_hypothesised_graph_is_simulated_for_every_replicate_with_the_chosen_interventions():
    from causalid.exchangeable.power import _candidates, _check_graph, _simulate

    g = _check_graph(nx.DiGraph([("X", "Y"), ("Y", "Z")]), "icm")
    (label, nodes), = _candidates([("Y",)], "icm", g)
    assert label == "intervene on Y" and nodes == frozenset({"Y"})
    key = np.array([0, 7], dtype=np.uint32)
    x, adj = _simulate("icm", key, 40, 3, 4, nodes, None, graph=g)
    assert x.shape == (4, 40, 3, 3) and adj.shape == (4, 3, 3)
    np.testing.assert_array_equal(adj[2], [[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    assert not np.allclose(x[0], x[1])                                  # replicates differ
    # the generator gets the node set: only Y's mechanism parameters are per-environment sites
    from causalid.models import exchangeable as ex

    dims, _ = ex.site_dims(g, "linear_gaussian", nodes, ["X", "Y", "Z"], 3)
    varying = {k.split("_")[0] for k, d in dims.items() if d[:1] == ("env",) and d != ("env", "sample")}
    assert varying == {"Y"}


def test_a_tie_between_candidates_is_reported_as_not_clear_cut(monkeypatch):
    def fake_sim(model, key, E, N, R, regime, num_vars, graph=None):
        x, adj = fake_simulate(model, key, E, N, R, regime, num_vars)
        return x + {"cause": 1.0, "mechanism": 2.0}[regime], adj

    def fake_batch(x, method="cdf", **kw):      # both candidates recover everything from 100
        R, E = x.shape[:2]
        truth = fake_simulate(None, None, E, 2, R, None, None)[1]
        return [_Fake(truth[r] if E >= 100 else np.ones((2, 2), dtype=int)) for r in range(R)]

    monkeypatch.setattr("causalid.exchangeable.power._simulate", fake_sim)
    monkeypatch.setattr(discover_module, "discover_batch", fake_batch)
    pa = power_analysis("bivariate", envs=(50, 100), replicates=6, target=0.9, regime=["cause", "mechanism"])
    assert pa.best_regime == "cause"                  # equal: the first listed wins the tie
    assert "mechanism reach(es) the target at the same setting" in pa.summary()
