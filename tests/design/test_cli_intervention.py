"""`causalid design intervention`, run in-process through causalid.cli.main."""

import numpy as np
import pandas as pd

import causalid
from causalid.cli import main


def _files(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for env, n, sx in (("obs", 80, 1.0), ("doX", 60, 2.0)):
        x = sx * rng.normal(size=n)
        y = 0.8 * x + 0.6 * rng.normal(size=n)
        z = -0.7 * y + 0.6 * rng.normal(size=n)
        rows.append(pd.DataFrame({"condition": env, "X": x, "Y": y, "Z": z}))
    pd.concat(rows).to_csv(tmp_path / "data.csv", index=False)
    pd.DataFrame({"condition": ["obs", "doX"], "targets": ["", "X"]}).to_csv(tmp_path / "targets.csv", index=False)
    pd.DataFrame({"candidate": ["inhibit-Y", "knock-Z", "both"], "targets": ["Y", "Z", "Y;Z"],
                  "cost": [1.0, 1.0, 2.5]}).to_csv(tmp_path / "cands.csv", index=False)


def test_design_intervention_ranks_the_candidates_and_writes_the_result(tmp_path, capsys):
    _files(tmp_path)
    out, table, fig = tmp_path / "next.json", tmp_path / "rank.csv", tmp_path / "rank.png"
    rc = main(["design", "intervention", str(tmp_path / "data.csv"), "--env-col", "condition",
               "--targets", str(tmp_path / "targets.csv"), "--candidates", str(tmp_path / "cands.csv"),
               "--samples", "20", "60", "--draws", "64", "--quiet",
               "--out", str(out), "--table", str(table), "--plot", str(fig)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "best:" in text and "EIG of" in text
    res = causalid.InterventionDesign.load(out)
    assert set(res.table["candidate"]) == {"inhibit-Y", "knock-Z", "both"}
    assert list(res.curve["samples"]) == [20, 60]
    ranked = pd.read_csv(table)
    assert ranked.set_index("candidate").loc["both", "targets"] == "Y;Z"
    assert ranked.set_index("candidate").loc["both", "cost"] == 2.5
    assert fig.stat().st_size > 0


def test_design_intervention_bad_candidates_file_is_a_one_line_error(tmp_path, capsys):
    _files(tmp_path)
    pd.DataFrame({"name": ["a"], "targets": ["Y"]}).to_csv(tmp_path / "bad.csv", index=False)
    rc = main(["design", "intervention", str(tmp_path / "data.csv"), "--env-col", "condition",
               "--targets", str(tmp_path / "targets.csv"), "--candidates", str(tmp_path / "bad.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "needs columns 'candidate' and 'targets'" in err
    assert len(err.strip().splitlines()) == 1
