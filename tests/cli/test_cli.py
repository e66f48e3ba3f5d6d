"""The command line, as a user runs it (subprocess: real exit codes, no traceback)."""

import json
import subprocess
import sys

import pandas as pd
import pytest


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "causalid.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_readme_main_job_runs_on_the_shipped_example(tmp_path):
    # the README's first command (after `pip install .`)
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text().splitlines()
    first = next(line for line in readme if line.startswith("pip install . && causalid "))
    args = first.split("&& causalid ", 1)[1].split()
    out = run(*args, "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "against 'bnlearn17'" in out.stdout
    result = json.loads((tmp_path / "sachs.json").read_text())
    assert result["method"] == "bayes" and len(result["names"]) == 11
    assert result["info"]["comparison"]["shd"] < 17  # better than the empty graph
    assert (tmp_path / "sachs.png").stat().st_size > 10_000


def test_simulate_then_discover_roundtrip(tmp_path):
    data = tmp_path / "sim.csv"
    out = run("simulate", "bivariate", "--envs", "300", "--seed", "3", "--out", str(data))
    assert out.returncode == 0, out.stderr
    table = pd.read_csv(data)
    assert list(table.columns) == ["env", "X", "Y"] and len(table) == 600
    res = tmp_path / "r.json"
    out = run("discover", str(data), "--env-col", "env", "--truth", str(data) + ".truth.csv",
              "--out", str(res), "--plot", str(tmp_path / "g.png"), "--quiet")
    assert out.returncode == 0, out.stderr
    assert "shd" in out.stdout
    assert json.loads(res.read_text())["settings"]["ci_test"] == "gcm"


@pytest.mark.parametrize("args, message", [
    (["discover", "missing.csv", "--env-col", "env"], "does not exist"),
    (["discover"], "give a data FILE"),
    (["discover", "DATA", "--env-col", "nope"], "environment column 'nope' not found"),
    (["discover", "DATA", "--env-col", "env", "--transform", "log"], "transform 'log' needs positive values"),
    (["simulate", "icm", "--vars", "1", "--out", "x.csv"], "--vars must be at least 2"),
])
def test_user_errors_are_one_line_without_traceback(tmp_path, args, message):
    data = tmp_path / "d.csv"
    pd.DataFrame({"env": [0, 0, 1, 1], "a": [1.0, -2.0, 3.0, 4.0], "b": [2.0, 1.0, 0.0, 5.0]}).to_csv(data, index=False)
    out = run(*[str(data) if a == "DATA" else a for a in args], cwd=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("where", ["checkout", "elsewhere"])
def test_models_import_from_a_checkout_and_from_an_install(tmp_path, where):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    cwd = repo if where == "checkout" else tmp_path
    out = subprocess.run([sys.executable, "-c", "import causalid.models.exchangeable as m; print(m.__name__)"],
                         capture_output=True, text=True, cwd=cwd)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "causalid.models.exchangeable"
