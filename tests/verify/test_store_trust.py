"""A store that can be trusted: damaged cells are found and recomputed, two drivers on one store
share the work, and a run that cannot start leaves nothing behind.

Each test ends by comparing the store, row by row (every column but ``seconds``), with an
uninterrupted in-process run of the same sweep.
"""

import builtins
import os
import subprocess
import sys

import pandas as pd
import pytest

from causalid import parse_sweep, run_sweep
from causalid.verify import ResultStore, StoreError, load_results

# eight cells of one shape: one compilation, then a fraction of a second a cell
SMALL = """
name = "small"
family = "lti"
seed = 5
replicates = 2
metrics = ["mcc", "A_tilde_error"]
[generator]
states = 2
steps = 150
[grid]
zero_means = [false, true]
use_C = [false, true]
use_B = [false, true]
"""
NUM_CELLS = 8


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"), check_exact=True)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    run = run_sweep(parse_sweep(SMALL), out, progress=False)
    assert sorted(run.computed) == list(range(NUM_CELLS))
    return out


@pytest.mark.parametrize("damage", ["truncate", "empty", "flip", "no-checksum-and-truncated"])
def test_a_damaged_cell_is_recomputed_with_a_warning(whole, tmp_path, damage):
    out = tmp_path / "store"
    run_sweep(parse_sweep(SMALL), out, progress=False)
    store = ResultStore.read(out)
    cell = store.cell_path(3)
    data = cell.read_bytes()
    if damage == "truncate":
        cell.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        cell.write_bytes(b"")
    elif damage == "flip":
        cell.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    else:
        store.checksum_path(3).unlink()
        cell.write_bytes(data[:-10])
    with pytest.warns(UserWarning, match="cell-000003.parquet' is damaged"):
        again = run_sweep(parse_sweep(SMALL), out, progress=False)
    assert again.computed == [3]
    assert (out / "cells" / "cell-000003.parquet.damaged").exists()
    _same(load_results(out), load_results(whole))


def test_a_cell_without_checksum_that_reads_back_whole_is_kept(whole, tmp_path):
    out = tmp_path / "store"
    run_sweep(parse_sweep(SMALL), out, progress=False)
    store = ResultStore.read(out)
    store.checksum_path(2).unlink()  # as written by an older causalid
    again = run_sweep(parse_sweep(SMALL), out, progress=False)
    assert again.computed == [] and store.checksum_path(2).exists()


def test_claims_exclude_live_drivers_and_dead_ones_are_taken_over(tmp_path):
    store = ResultStore.open(tmp_path / "s", parse_sweep(SMALL))
    assert store.claim(0) and store.claim(0)          # this process, twice
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    import socket

    store.claim_path(1).write_text(f"{socket.gethostname()} {dead}")
    assert store.claim(1)                              # a dead driver's claim
    store.claim_path(2).write_text(f"{socket.gethostname()} {os.getppid()}")
    assert not store.claim(2) and store.claimed_by_others(2)   # a live one
    store.claim_path(3).write_text("elsewhere.example 1")
    assert not store.claim(3)                          # another host: respected
    store.release(0)
    assert not store.claim_path(0).exists()


def test_two_concurrent_drivers_share_the_work_and_leave_one_store(whole, tmp_path, tmp_path_factory):
    toml = tmp_path / "small.toml"
    toml.write_text(SMALL)
    out = tmp_path / "shared"
    script = (
        "import json, sys\n"
        "from causalid import run_sweep\n"
        "run = run_sweep(sys.argv[1], sys.argv[2], progress=False)\n"
        "print(json.dumps(run.computed))\n"
    )
    env = {
        **os.environ,
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "jax-cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
    # both start at once, so they race for the store's creation and then for its cells
    first, second = (subprocess.Popen([sys.executable, "-c", script, str(toml), str(out)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(2))
    outs = [p.communicate(timeout=600) for p in (first, second)]
    for p, (o, e) in zip((first, second), outs):
        assert p.returncode == 0, e
    import json

    a, b = (json.loads(o.strip().splitlines()[-1]) for o, _ in outs)
    print("computed by each driver:", a, b)
    assert not set(a) & set(b), f"both drivers computed cells {sorted(set(a) & set(b))}"
    assert sorted(a + b) == list(range(NUM_CELLS))
    assert not list((out / "cells").glob(".claim-*"))
    _same(load_results(out), load_results(whole))


def test_a_run_that_cannot_start_leaves_no_store(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    out = tmp_path / "never"
    with pytest.raises(StoreError, match="pyarrow"):
        run_sweep(parse_sweep(SMALL), out, progress=False)
    assert not out.exists()
