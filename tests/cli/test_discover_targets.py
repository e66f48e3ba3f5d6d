"""``causalid discover --targets``: a targets file, unknown targets, and the errors a user meets."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "causalid.cli", *args], capture_output=True, text=True, cwd=cwd)


def _write(tmp_path, n=200):
    rng = np.random.default_rng(0)
    rows = []
    for env, (sx, cut) in {"obs": (1.0, False), "wide_x": (2.0, False), "do_y": (1.0, True)}.items():
        x = sx * rng.normal(size=n)
        y = rng.normal(size=n) if cut else 0.9 * x + 0.5 * rng.normal(size=n)
        z = -0.7 * y + 0.5 * rng.normal(size=n)
        rows.append(pd.DataFrame({"lab": env, "x": x, "y": y, "z": z}))
    data = tmp_path / "d.csv"
    pd.concat(rows).to_csv(data, index=False)
    targets = tmp_path / "t.csv"
    pd.DataFrame({"lab": ["obs", "wide_x", "do_y"], "targets": ["", "x", "y"]}).to_csv(targets, index=False)
    return data, targets


def test_targets_file_and_unknown_targets(tmp_path):
    data, targets = _write(tmp_path)
    out = run("discover", str(data), "--env-col", "lab", "--targets", str(targets), "--out",
              str(tmp_path / "r.json"), "--quiet")
    assert out.returncode == 0, out.stderr
    assert "x -> y" in out.stdout and "y -> z" in out.stdout
    assert "intervention targets assumed: obs: none; wide_x: x; do_y: y" in out.stdout
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["settings"]["targets"] == {"obs": [], "wide_x": ["x"], "do_y": ["y"]}
    assert len(saved["changes"]) == 9
    out = run("discover", str(data), "--env-col", "lab", "--targets", "unknown", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "wide_x: x; do_y: y" in out.stdout                  # the changes it found


@pytest.mark.parametrize("table, message", [
    ({"lab": ["obs", "wide_x", "do_y"], "targets": ["", "w", "y"]}, "are not columns of the data"),
    ({"lab": ["obs", "wide_x"], "targets": ["", "x"]}, "no entry for environment(s) ['do_y']"),
    ({"lab": ["obs", "wide_x", "do_y", "lab4"], "targets": ["", "x", "y", ""]}, "['lab4'] that are not in the data"),
    ({"env": ["obs", "wide_x", "do_y"], "targets": ["", "x", "y"]}, "needs the environment column 'lab'"),
])
def test_bad_targets_files_are_one_line_errors(tmp_path, table, message):
    data, targets = _write(tmp_path, n=20)
    pd.DataFrame(table).to_csv(targets, index=False)
    out = run("discover", str(data), "--env-col", "lab", "--targets", str(targets), "--quiet")
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr


def test_targets_with_the_cdf_method_are_refused(tmp_path):
    data, targets = _write(tmp_path, n=20)
    out = run("discover", str(data), "--env-col", "lab", "--method", "cdf", "--targets", "unknown", "--quiet")
    assert out.returncode == 2 and "--method bayes only" in out.stderr
