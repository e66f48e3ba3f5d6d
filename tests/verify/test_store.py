"""The sweep store: schema, resuming without repeating or losing a cell, refusing another sweep.

The kill test runs the sweep as a user does (a subprocess of ``causalid verify``), kills it with
SIGKILL at a random moment after the first cell landed, restarts it (in-process), and compares
the store with an uninterrupted run row by row (every column but ``seconds``, a timing).
"""

import os
import random
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from causalid import parse_sweep, run_sweep
from causalid.verify import (
    ResultStore,
    StoreError,
    execute,
    load_results,
    load_table,
    write_table,
)

# eight cells of the same shapes and program: one compilation, then about 0.1 s a cell
TINY = """
name = "tiny"
family = "lti"
seed = 11
replicates = 2
metrics = ["mcc", "A_tilde_error", "B_tilde_amari"]
[generator]
states = 2
steps = 200
[grid]
zero_means = [false, true]
use_B = [false, true]
use_C = [false, true]
"""
# the store's columns for TINY: cell, grid axes, engine, replicate, metric, value, time, error
COLUMNS = ["cell", "zero_means", "use_B", "use_C", "engine", "replicate", "metric", "value",
           "seconds", "error"]


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal stores: the same rows, columns, types and values (seconds aside)."""
    pd.testing.assert_frame_equal(
        a.drop(columns="seconds"), b.drop(columns="seconds"), check_exact=True
    )


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """An uninterrupted in-process run of TINY."""
    out = tmp_path_factory.mktemp("whole")
    run = run_sweep(parse_sweep(TINY), out, progress=False)
    assert run.computed == list(range(8)) and run.skipped == []
    return out


def test_rows_follow_the_documented_schema(whole):
    df = load_results(whole)
    assert list(df.columns) == COLUMNS
    assert df.dtypes.astype(str).tolist() == [
        "int64",
        "bool",
        "bool",
        "bool",
        "str",
        "int64",
        "str",
        "float64",
        "float64",
        "str",
    ]
    assert len(df) == 8 * 1 * 2 * 3  # cells x engines x replicates x metrics
    assert df["cell"].tolist() == sorted(df["cell"])
    first = df.groupby("cell")[["zero_means", "use_B", "use_C"]].first()
    assert first.iloc[1].tolist() == [False, False, True] and first.iloc[6].tolist() == [
        True,
        True,
        False,
    ]
    assert df["engine"].eq("moment").all() and df["error"].eq("").all()
    assert df.groupby(["cell", "engine", "replicate"]).size().eq(3).all()
    mcc = df[df.metric == "mcc"]["value"]
    assert mcc.between(
        0.9, 1.0
    ).all()  # noiseless, identifiable: the closed form recovers the sources
    assert (df["seconds"] > 0).all()
    assert df.attrs["manifest"]["num_cells"] == 8


def test_rerunning_a_finished_sweep_repeats_nothing(whole):
    files = sorted((whole / "cells").glob("*.parquet"))
    stamps = [f.stat().st_mtime_ns for f in files]
    run = run_sweep(parse_sweep(TINY), whole, progress=False)
    assert run.computed == [] and run.skipped == list(range(8))
    assert [f.stat().st_mtime_ns for f in files] == stamps


def test_interrupted_sweep_resumes_where_it_stopped(whole, tmp_path, monkeypatch):
    sweep = parse_sweep(TINY)
    real = execute.run_cell

    def fail_on_cell_5(sweep, index):
        if index == 5:
            raise KeyboardInterrupt
        return real(sweep, index)

    monkeypatch.setattr(execute, "run_cell", fail_on_cell_5)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, tmp_path, progress=False)
    assert ResultStore.read(tmp_path).finished() == {0, 1, 2, 3, 4}
    monkeypatch.setattr(execute, "run_cell", real)
    run = run_sweep(sweep, tmp_path, progress=False)
    assert run.computed == [5, 6, 7] and run.skipped == [0, 1, 2, 3, 4]
    _same(load_results(tmp_path), load_results(whole))


def test_killed_sweep_restarts_into_exactly_the_uninterrupted_store(
    whole, tmp_path, tmp_path_factory
):
    toml = tmp_path / "tiny.toml"
    toml.write_text(TINY)
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "causalid.cli",
        "verify",
        str(toml),
        "--out",
        str(out),
        "--quiet",
    ]
    # a compilation cache shared by this session's subprocesses and Dask workers (they all run
    # the same programs): only the first of them compiles
    env = {
        **os.environ,
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "jax-cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    try:
        while not list((out / "cells").glob("cell-*.parquet")):
            assert proc.poll() is None, (
                f"the sweep ended before a cell landed: {proc.communicate()}"
            )
            assert time.monotonic() < deadline, "no cell landed in 10 minutes"
            time.sleep(0.01)
        # a random moment after the first cell landed
        time.sleep(random.Random(20240611).uniform(0.0, 0.2))
    finally:
        proc.kill()
        proc.communicate()
    landed = ResultStore.read(out).finished()
    assert 1 <= len(landed) < 8, f"the kill should land mid-sweep; cells stored: {sorted(landed)}"
    # restart (in-process: the compiled programs of this session are reused)
    restart = run_sweep(parse_sweep(TINY), out, progress=False)
    assert sorted(restart.computed) == sorted(set(range(8)) - landed)
    assert restart.skipped == sorted(landed)
    assert not list(out.glob("**/.*.tmp"))
    _same(load_results(out), load_results(whole))


def test_a_different_sweep_is_refused(whole, tmp_path):
    other = parse_sweep(TINY.replace("seed = 11", "seed = 12"))
    with pytest.raises(
        StoreError, match="holds results of a different sweep .*give a new --out directory"
    ):
        run_sweep(other, whole, progress=False)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty and is not a sweep store"):
        run_sweep(parse_sweep(TINY), tmp_path, progress=False)
    with pytest.raises(StoreError, match="no manifest.json"):
        load_results(tmp_path)


def test_presentation_changes_resume_and_update_the_manifest(tmp_path):
    sweep = parse_sweep(TINY)
    store = ResultStore.open(tmp_path, sweep)
    assert store.finished() == set()
    empty = load_results(tmp_path)
    assert empty.empty and list(empty.columns) == COLUMNS
    renamed = parse_sweep(TINY.replace('name = "tiny"', 'name = "renamed"'))
    assert ResultStore.open(tmp_path, renamed).manifest["sweep"]["name"] == "renamed"
    assert ResultStore.read(tmp_path).manifest["sweep"]["name"] == "renamed"
    assert (tmp_path / "sweep.toml").read_text(encoding="utf-8") == renamed.text


def test_a_sweep_killed_while_creating_its_store_starts_again(tmp_path):
    # what creation writes before the manifest: cells/, sweep.toml, a dead writer's temporary file
    sweep = parse_sweep(TINY)
    (tmp_path / "cells").mkdir()
    (tmp_path / "sweep.toml").write_text("half a sw", encoding="utf-8")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".manifest.json.{dead.pid}.tmp"
    stale.write_bytes(b"{")
    store = ResultStore.open(tmp_path, sweep)
    assert store.finished() == set() and not stale.exists()
    assert (tmp_path / "sweep.toml").read_text(encoding="utf-8") == sweep.text
    assert ResultStore.read(tmp_path).manifest["hash"] == sweep.hash
    # anything else in the folder is still refused
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty and is not a sweep store"):
        ResultStore.open(other, sweep)


def test_resuming_with_another_causalid_version_warns(tmp_path, monkeypatch):
    from causalid.verify import store

    sweep = parse_sweep(TINY)
    ResultStore.open(tmp_path, sweep)
    monkeypatch.setattr(store, "__version__", "99.0")
    with pytest.warns(UserWarning, match="mixes results of both versions"):
        ResultStore.open(tmp_path, sweep)


def test_temporary_files_of_dead_writers_are_removed(tmp_path):
    sweep = parse_sweep(TINY)
    ResultStore.open(tmp_path, sweep)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / "cells" / f".cell-000000.parquet.{dead.pid}.tmp"
    live = tmp_path / "cells" / f".cell-000001.parquet.{os.getpid()}.tmp"
    stale.write_bytes(b"half a file")
    live.write_bytes(b"being written")
    store = ResultStore.open(tmp_path, sweep)
    assert not stale.exists() and live.exists()
    assert store.finished() == set()


def test_extra_tables_round_trip(tmp_path):
    ResultStore.open(tmp_path, parse_sweep(TINY))
    rng = np.random.default_rng(0)
    a = pd.DataFrame(
        {
            "parameter": ["mu"] * 5,
            "rank": rng.integers(0, 10, 5),
            "num_draws": 9,
            "replicate": np.arange(5),
            "model": "right",
        }
    )
    b = a.assign(model="wrong", replicate=np.arange(5, 10))
    write_table(tmp_path, "sbc", a, "a")
    write_table(tmp_path, "sbc", b, "b")
    back = load_table(tmp_path, "sbc")
    pd.testing.assert_frame_equal(back, pd.concat([a, b], ignore_index=True), check_dtype=False)
    assert ResultStore.read(tmp_path).tables() == ["sbc"]
    with pytest.raises(StoreError, match="table name"):
        write_table(tmp_path, "cells", a, "x")
    with pytest.raises(StoreError, match="no table 'other'"):
        load_table(tmp_path, "other")
