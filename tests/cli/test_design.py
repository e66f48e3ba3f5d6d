"""`causalid design lti | next | power`, run in-process through causalid.cli.main."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import causalid
import causalid.exchangeable.power as discover_module
from causalid.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
FAST = ["--starts", "8", "--iters", "100"]        # the settings of tests/design/test_design_lti.py


def test_design_lti_writes_design_law_and_plot(tmp_path, capsys):
    out, law, fig = tmp_path / "design.json", tmp_path / "law.csv", tmp_path / "design.png"
    rc = main(["design", "lti", "--inputs", "2", "--envs", "3", "--var-bounds", "0.01", "1", *FAST,
               "--out", str(out), "--law", str(law), "--plot", str(fig)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "criterion 'pairwise'" in text and "identifiable" in text
    design = causalid.Design.load(out)
    assert design.var.shape == (3, 2) and design.report.identifiable["B_tilde"]
    table = pd.read_csv(law)
    assert list(table.columns) == ["env", "mean_u0", "mean_u1", "var_u0", "var_u1"]
    np.testing.assert_allclose(table[["var_u0", "var_u1"]].to_numpy(), design.var)
    assert fig.read_bytes()[:8] == PNG


def test_design_lti_too_few_environments_is_a_one_line_error(capsys):
    rc = main(["design", "lti", "--inputs", "3", "--envs", "3"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("causalid: error:") and "at least m + 1 = 4" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_design_lti_with_a_prior_system_file(tmp_path):
    system = causalid.LTISystem(0.5 * np.eye(2), np.array([[1.0, 0.2], [0.1, 1.0]]), np.eye(2))
    prior = tmp_path / "prior.json"
    prior.write_text(json.dumps(system.to_dict()))
    rc = main(["design", "lti", "--inputs", "2", "--envs", "3", "--criterion", "d-optimal", "--system", str(prior),
               "--steps", "500", *FAST, "--quiet", "--out", str(tmp_path / "d.json")])
    assert rc == 0
    d = causalid.Design.load(tmp_path / "d.json")
    assert d.criterion == "d-optimal" and d.system["A"] == system.A.tolist()


def test_design_next_from_simulated_data(tmp_path, capsys):
    data = tmp_path / "data.csv"
    # n = m = 3, 4 environments of 300 steps: the shapes of tests/design/test_design_next.py
    assert main(["simulate", "lti", "--system", "random", "--states", "3", "--envs", "4", "--steps", "300",
                 "--seed", "1", "--out", str(data)]) == 0
    out, table = tmp_path / "next.json", tmp_path / "shrink.csv"
    rc = main(["design", "next", "--data", str(data), "--env-col", "env", "--time-col", "time",
               "--outputs", "y0", "y1", "y2", "--input-law", str(data) + ".law.csv", "--steps", "299",
               "--starts", "4", "--iters", "60", "--draws", "8",     # as in tests/design/test_design_next.py
               "--out", str(out), "--table", str(table)])
    assert rc == 0
    assert "Next environment" in capsys.readouterr().out
    nxt = causalid.design.NextDesign.load(out)
    assert nxt.var.shape == (3,) and np.all((nxt.var >= 1e-2) & (nxt.var <= 1.0))
    shrink = pd.read_csv(table)
    assert len(shrink) == 18 and (shrink["sd_next"] <= shrink["sd_now"] * (1 + 1e-12)).all()
    rc = main(["design", "next", "--data", str(data), "--env-col", "env", "--time-col", "time",
               "--outputs", "y0", "y1", "y2", "--input-law", str(tmp_path / "missing.csv")])
    assert rc == 2


def test_design_power_table(tmp_path, monkeypatch, capsys):
    # stand-ins for the generator and the engine (always the empty graph): a test of the command
    class Empty:
        def adjacency(self):
            return np.zeros((2, 2), dtype=int)

    monkeypatch.setattr(discover_module, "discover_batch", lambda x, **kw: [Empty() for _ in range(len(x))])
    monkeypatch.setattr("causalid.exchangeable.power._simulate",
                        lambda model, key, E, N, R, regime, num_vars, graph=None: (
                            np.zeros((R, E, N, 2)), np.eye(2, k=1, dtype=int)[None].repeat(R, 0)))
    out = tmp_path / "power.csv"
    rc = main(["design", "power", "--envs", "50", "100", "200", "--replicates", "6", "--target", "0.99", "--quiet",
               "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "no setting reached the target" in text
    table = pd.read_csv(out)
    assert list(table["num_envs"]) == [50, 100, 200] and (table["replicates"] == 6).all()
    assert (table["regime"] == "both").all()


def test_design_power_compares_interventions_on_a_hypothesised_graph(tmp_path, monkeypatch, capsys):
    # stand-in engine that recovers the graph only when Y's mechanism varies: the command must
    # read the graph, pass one candidate per --intervene node and recommend Y
    seen = []

    def fake_sim(model, key, E, N, R, regime, num_vars, graph=None):
        seen.append((model, regime, sorted(graph.edges)))
        adj = np.array([[0, 1], [0, 0]])
        return np.full((R, E, N, 2), float("Y" in regime)), adj[None].repeat(R, 0)

    class Fit:
        def __init__(self, adj):
            self._adj = adj

        def adjacency(self):
            return self._adj

    monkeypatch.setattr("causalid.exchangeable.power._simulate", fake_sim)
    monkeypatch.setattr(discover_module, "discover_batch",
                        lambda x, **kw: [Fit(np.array([[0, 1], [0, 0]]) * int(x.mean() > 0.5)) for _ in x])
    graph = tmp_path / "graph.csv"
    graph.write_text("cause,effect\nX,Y\n")
    out = tmp_path / "power.csv"
    rc = main(["design", "power", "--model", "icm", "--graph", str(graph), "--intervene", "X", "Y",
               "--envs", "50", "--replicates", "4", "--quiet", "--out", str(out),
               "--json", str(tmp_path / "power.json"), "--plot", str(tmp_path / "power.png")])
    assert rc == 0
    from causalid.design import PowerAnalysis

    assert PowerAnalysis.load(tmp_path / "power.json").best_regime == "intervene on Y"
    assert (tmp_path / "power.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert seen == [("icm", frozenset("X"), [("X", "Y")]), ("icm", frozenset("Y"), [("X", "Y")])]
    text = capsys.readouterr().out
    assert "with intervene on Y (only those mechanisms varying)" in text
    assert list(pd.read_csv(out)["regime"]) == ["intervene on X", "intervene on Y"]
    assert main(["design", "power", "--intervene", "X"]) == 2
    assert "--intervene needs --graph" in capsys.readouterr().err


def test_design_lti_refuses_a_file_that_is_not_a_system(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"not": "a system"}))
    assert main(["design", "lti", "--inputs", "2", "--envs", "3", "--criterion", "d-optimal",
                 "--system", str(bad)]) == 2
    assert "neither a system" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["design"], ["design", "lti"], ["design", "power", "--model", "gaussian"]])
def test_design_usage_errors(argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
