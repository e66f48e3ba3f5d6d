"""Power analysis for the causal de Finetti engine."""

from __future__ import annotations

import numpy as np
import pytest

import causalid.infer.discover as discover_module
from causalid.design import power_analysis
from causalid.design.power import _wilson
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


def fake_simulate(model, key, E, N, R, regime, num_vars):
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

    monkeypatch.setattr("causalid.design.power._simulate", fake_simulate)
    monkeypatch.setattr(discover_module, "discover_batch", fake_batch)
    pa = power_analysis("bivariate", envs=(50, 100, 200), replicates=6, target=0.9)
    t = pa.table
    assert list(t["num_envs"]) == [50, 100, 200] and list(t["replicates"]) == [6, 6, 6]
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
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(DataError, match=match):
        power_analysis(**kwargs)


@pytest.mark.slow
def test_real_generator_and_engine_gain_power_with_environments():
    pa = power_analysis("bivariate", envs=(20, 200), replicates=20, target=0.8, seed=1)
    acc = pa.table["accuracy"].to_numpy()
    assert acc[1] > acc[0] and acc[1] >= 0.7       # published: 0.82 at E = 200 with KCI
