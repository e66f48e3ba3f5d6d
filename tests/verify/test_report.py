"""The report (tables, plots, HTML page) and the command line end to end."""

import os
import re

import numpy as np
import pandas as pd
import pytest

from causalid import parse_sweep
from causalid.verify import ResultStore, write_report, write_table
from causalid.verify.store import cell_frame

PNG = b"\x89PNG\r\n\x1a\n"

CURVE = """
name = "curve"
family = "bivariate"
seed = 1
replicates = 6
metrics = ["accuracy", "shd"]
[grid]
envs = [50, 100, 200]
regime = ["both", "cause"]
[engines.cdf]
[engines.bayes]
[[reference]]
metric = "accuracy"
label = "published"
envs = [50, 200]
value = [0.5, 0.9]
"""


def _fill(store: ResultStore, sweep, cells, rng) -> None:
    """Known values for the given cells (the report reads only the store)."""
    R = sweep.replicates
    for i in cells:
        records = []
        for j, engine in enumerate(sweep.engines):
            acc = (rng.uniform(size=R) < 0.5 + 0.1 * j).astype(float)
            values = {"accuracy": acc, "shd": 1.0 - acc}
            errors = {m: [""] * R for m in sweep.metrics}
            if i == 0 and engine == "bayes":  # one failed fit
                values = {m: np.where(np.arange(R) == 2, np.nan, v) for m, v in values.items()}
                for m in sweep.metrics:
                    errors[m][2] = "DataError: a failure for the report to show"
            if i == 1 and engine == "bayes":  # a metric that does not apply
                values["shd"] = np.full(R, np.nan)
                errors["shd"] = ["not applicable to this engine"] * R
            records.append(
                {"engine": engine, "values": values, "errors": errors, "seconds": 0.5 + i}
            )
        store.write_cell(i, cell_frame(sweep, sweep.cells[i], records))


def _images(page) -> list[str]:
    return re.findall(r"<img src='([^']+)'", page.read_text())


def _check_images(page) -> list[str]:
    srcs = _images(page)
    assert srcs
    for src in srcs:
        path = page.parent / src
        assert path.is_file(), src
        assert path.read_bytes()[:8] == PNG, src
    return [os.path.basename(s) for s in srcs]


def test_report_has_every_table_and_plot(tmp_path):
    from causalid.verify.sbc import SBCResult

    sweep = parse_sweep(CURVE)
    store = ResultStore.open(tmp_path, sweep)
    _fill(store, sweep, range(6), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    uniform = pd.DataFrame(
        {
            "parameter": np.repeat(["a", "b"], 200),
            "rank": rng.integers(0, 20, 400),
            "num_draws": 19,
            "replicate": np.tile(np.arange(200), 2),
            "model": "right",
        }
    )
    SBCResult(uniform, settings=("model",)).save(tmp_path / "sbc" / "right.parquet")
    skewed = uniform.assign(
        rank=np.minimum(rng.integers(0, 20, 400), rng.integers(0, 20, 400)), model="wrong",
        accept_prob=rng.uniform(0.7, 0.9, 400),
    )
    # a plain table: its text column is a setting, its numeric one a per-replicate diagnostic
    write_table(tmp_path, "sbc", skewed, "wrong")

    page = write_report(tmp_path)
    assert page == tmp_path / "report" / "index.html"
    names = _check_images(page)
    assert set(names) == {
        "accuracy_vs_envs.png",
        "shd_vs_envs.png",
        "sbc_right.png",
        "sbc_wrong.png",
    }

    summary = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert list(summary.columns) == [
        "cell",
        "envs",
        "regime",
        "engine",
        "metric",
        "n",
        "missing",
        "not_applicable",
        "mean",
        "sd",
        "se",
        "seconds",
    ]
    assert len(summary) == 6 * 2 * 2
    rows = ResultStore.read(tmp_path).load()
    one = rows[(rows.cell == 3) & (rows.engine == "cdf") & (rows.metric == "accuracy")]["value"]
    got = summary[
        (summary.cell == 3) & (summary.engine == "cdf") & (summary.metric == "accuracy")
    ].iloc[0]
    assert got["mean"] == pytest.approx(one.mean()) and got["se"] == pytest.approx(
        one.std() / np.sqrt(6)
    )
    failed = summary[(summary.cell == 0) & (summary.engine == "bayes")]
    assert failed["missing"].tolist() == [1, 1] and failed["n"].tolist() == [5, 5]
    na = summary[(summary.cell == 1) & (summary.engine == "bayes")].set_index("metric")
    assert na.loc["shd", ["n", "missing", "not_applicable"]].tolist() == [0, 0, 6]

    md = (tmp_path / "report" / "summary.md").read_text()
    assert "| envs | regime | cdf | bayes | published |" in md
    assert "(1 missing)" in md and " ± " in md and "| n/a |" in md
    assert "6 of 6 cells finished" in md
    errors = pd.read_csv(tmp_path / "report" / "errors.csv")
    assert errors.to_dict("records") == [
        {"engine": "bayes", "error": "not applicable to this engine", "rows": 6},
        {"engine": "bayes", "error": "DataError: a failure for the report to show", "rows": 2},
    ]
    sbc = pd.read_csv(tmp_path / "report" / "sbc.csv")
    verdict = sbc.groupby("model")["passed"].all()
    assert bool(verdict["right"]) and not bool(verdict["wrong"])
    assert "accept_prob" not in sbc.columns
    assert sbc.groupby("model").size().to_dict() == {"right": 2, "wrong": 2}
    html = page.read_text()
    assert "Simulation-based calibration" in html and "Missing values" in html
    # a re-run without the SBC table leaves no stale table or plot behind
    import shutil

    shutil.rmtree(tmp_path / "sbc")
    write_report(tmp_path)
    assert not (tmp_path / "report" / "sbc.csv").exists()
    assert not list((tmp_path / "report" / "plots").glob("sbc_*.png"))


def test_report_of_an_unfinished_store_and_of_a_grid_without_numbers(tmp_path):
    sweep = parse_sweep(CURVE.replace("envs = [50, 100, 200]", "envs = [50]"))
    store = ResultStore.open(tmp_path, sweep)
    _fill(store, sweep, [1], np.random.default_rng(2))
    page = write_report(tmp_path, tmp_path / "elsewhere")
    assert page == tmp_path / "elsewhere" / "index.html"
    assert set(_check_images(page)) == {"accuracy_by_cell.png", "shd_by_cell.png"}
    assert "1 of 2 cells finished (incomplete" in page.read_text()


TINY = """
name = "tiny-cli"
family = "lti"
seed = 2
replicates = 2
metrics = ["mcc", "B_tilde_amari"]
[generator]
states = 2
steps = 200
[grid]
use_C = [false, true]
"""


def test_command_line_end_to_end(tmp_path, capsys):
    # in-process through the command's main (tests/verify/test_store.py runs it as a subprocess)
    from causalid.cli import main

    toml = tmp_path / "tiny.toml"
    toml.write_text(TINY)
    assert main(["verify", str(toml), "--out", str(tmp_path / "none"), "--dry-run"]) == 0
    assert (
        "2 cell(s) x 2 replicate(s)" in capsys.readouterr().out and not (tmp_path / "none").exists()
    )
    assert main(["verify", str(toml), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr()
    assert "2 cell(s) computed, 0 already stored" in out.out
    assert "verify tiny-cli" in out.err  # the progress bar
    assert main(["verify", str(toml), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["report", str(tmp_path / "run")]) == 0
    page = tmp_path / "run" / "report" / "index.html"
    assert f"wrote {page}" in capsys.readouterr().out
    assert set(_check_images(page)) == {"mcc_by_cell.png", "B_tilde_amari_by_cell.png"}
    assert (tmp_path / "run" / "sweep.toml").read_text() == TINY


@pytest.mark.parametrize(
    "args, message",
    [
        (["verify", "TOML", "--out", "OUT"], "TOML: engines.moment.tol: unknown key"),
        (["verify", "missing.toml", "--out", "OUT"], "sweep file 'missing.toml' does not exist"),
        (["report", "OUT"], "is not a sweep store (no manifest.json)"),
        (["verify", "GOOD", "--out", "OUT"], "is not empty and is not a sweep store"),
    ],
)
def test_user_errors_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    from causalid.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text(TINY + "[engines.moment]\ntol = 1e-3\n")
    (tmp_path / "good.toml").write_text(TINY)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("not a store")
    names = {"TOML": "bad.toml", "GOOD": "good.toml", "OUT": "out"}
    assert main([names.get(a, a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("causalid: error: ") and message.replace("TOML", "bad.toml") in err
    assert len(err.strip().splitlines()) == 1
