"""Execution: a local Dask cluster on loopback gives exactly the in-process results."""

import os
import sys

import jax
import numpy as np
import pandas as pd
import pytest

from causalid.errors import DataError
from causalid import load_results, parse_sweep, run_sweep
from causalid.verify import plugin

# four cells of the same shapes (one compilation per process), two tasks per worker
TINY = """
name = "tiny-dask"
family = "lti"
seed = 5
replicates = 2
metrics = ["mcc", "A_tilde_error", "B_tilde_amari"]
[generator]
states = 2
steps = 200
[grid]
use_B = [false, true]
use_C = [false, true]
"""


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        a.drop(columns="seconds"), b.drop(columns="seconds"), check_exact=True
    )


@pytest.fixture
def worker_cache(tmp_path_factory, monkeypatch):
    """Worker processes inherit the environment: share this session's compilation cache."""
    monkeypatch.setenv(
        "JAX_COMPILATION_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "jax-cache")
    )
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def test_local_cluster_gives_the_in_process_results(tmp_path, worker_cache):
    pytest.importorskip("distributed")
    sweep = parse_sweep(TINY)
    local = run_sweep(sweep, tmp_path / "local", progress=False)
    dask = run_sweep(sweep, tmp_path / "dask", workers=2, chunk_size=1, progress=False)
    assert local.computed == sorted(dask.computed) == [0, 1, 2, 3]  # dask: in order of completion
    a, b = load_results(local.path), load_results(dask.path)
    assert len(a) == 4 * 2 * 3 and a["value"].notna().all()
    _same(a, b)
    # the cells came back from other processes and were written by this one
    assert sorted(p.name for p in (tmp_path / "dask" / "cells").iterdir()) == sorted(
        [f"cell-{i:06d}.parquet" for i in range(4)] + [f"cell-{i:06d}.parquet.sha256" for i in range(4)]
    )


@pytest.mark.slow
def test_existing_scheduler_gives_the_in_process_results(tmp_path, worker_cache):
    distributed = pytest.importorskip("distributed")
    sweep = parse_sweep(TINY)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    ) as cluster:
        remote = run_sweep(
            sweep,
            tmp_path / "remote",
            scheduler=cluster.scheduler_address,
            chunk_size=3,
            progress=False,
        )
    local = run_sweep(sweep, tmp_path / "local", progress=False)
    assert sorted(remote.computed) == [0, 1, 2, 3]
    _same(load_results(local.path), load_results(remote.path))


def test_missing_dask_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(
        DataError, match=r"needs dask\[distributed\], a dependency of causalid"
    ):
        run_sweep(parse_sweep(TINY), tmp_path / "out", workers=2, progress=False)
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"workers": 2, "scheduler": "tcp://127.0.0.1:8786"}, "either workers .* or scheduler"),
        ({"workers": 0}, "workers = 0: give a positive number"),
        ({"chunk_size": 0}, "chunk_size = 0: give a positive number"),
        ({"chunk_size": 2}, "only with workers or a scheduler"),
    ],
)
def test_bad_execution_options(tmp_path, kwargs, message):
    with pytest.raises(DataError, match=message):
        run_sweep(parse_sweep(TINY), tmp_path / "out", progress=False, **kwargs)
    assert not os.path.exists(tmp_path / "out")                  # nothing was created


def test_command_line_checks_execution_options_before_creating_the_store(tmp_path, capsys):
    from causalid.cli import main

    sweep = tmp_path / "tiny.toml"
    sweep.write_text(TINY, encoding="utf-8")
    for extra in (["--workers", "0"], ["--chunk-size", "0"]):
        assert main(["verify", str(sweep), "--out", str(tmp_path / "out"), *extra]) == 2
        assert "give a positive number" in capsys.readouterr().err
        assert not os.path.exists(tmp_path / "out")


def _draw(key, scale, n):
    return scale * jax.random.normal(key, (n,))


def test_generator_compiled_ahead_draws_what_the_jit_draws():
    # in-process runs compile the next cell's generator in a helper thread (execute._in_process)
    keys = jax.random.split(jax.random.PRNGKey(0), 5)
    by_jit = plugin.draw_replicates(_draw, (2.0, 3), keys)
    job = plugin.compile_ahead(_draw, (2.0, 3), 5)
    assert job is not None and (_draw, (2.0, 3), 5) not in plugin._AHEAD
    job()
    assert (_draw, (2.0, 3), 5) in plugin._AHEAD
    assert plugin.compile_ahead(_draw, (2.0, 3), 5) is None  # compiled once
    np.testing.assert_array_equal(np.asarray(plugin.draw_replicates(_draw, (2.0, 3), keys)), by_jit)
    assert np.asarray(by_jit).shape == (5, 3)
