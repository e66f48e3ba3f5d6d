"""Issue 19's "done when" for the HMM sweep: 4 cells x 12 replicates (EM with 5 restarts) fitted
as one vectorised batch per cell against the same replicates fitted one at a time, in the same
run, with identical stores.

    pytest -m benchmark -s tests/benchmarks/test_hmm_sweep.py

Each way runs ``causalid verify`` in a fresh process (imports, compilation and all, as a user
waits for it) with an empty compilation cache of its own, then in a second process with that
cache filled, then the cells again in-process once everything is compiled (``warm``).  The
one-at-a-time way is the sweep with its batched fit switched off (each replicate through
``fit_hmm``: the loop it replaced).  The stores must hold the same values.  The machine may be
shared: the load average is printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from causalid.verify import load_results

SWEEP = """
name = "hmm-sweep-bench"
family = "hmm"
seed = 7
replicates = 12
metrics = ["state_accuracy", "trans_error", "emission_error", "loglik_gap", "converged"]

[generator]
states = 2
envs = 3
sequences = 4
emission = "gaussian"
env_spread = 1.0

[grid]
steps = [50, 100]
vary = ["transitions", "emissions"]

[engines.em]
method = "em"
restarts = 5
"""

_RUN = textwrap.dedent("""
    import sys, time
    import causalid
    from causalid.hmm import sweep
    sweep.BATCH_ON_CPU = True
    if sys.argv[1] == "alone":
        def off(*a, **k):
            raise causalid.DataError("batched fit off")
        sweep.fit_hmm_batch = off
    from causalid.cli.main import main
    sys.argv = ["causalid", "verify", sys.argv[2], "--out", sys.argv[3], "--quiet"]
    t = time.perf_counter()
    try:
        main()
    except SystemExit as e:
        assert not e.code, e.code
    print("VERIFY_S", time.perf_counter() - t)
""")


def _verify(way: str, toml, out, cache) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env["CAUSALID_CACHE_DIR"] = str(cache)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", _RUN, way, str(toml), str(out)], capture_output=True, text=True,
                         env=env, check=False)
    wall = time.perf_counter() - t0
    assert res.returncode == 0, res.stderr[-3000:]
    inner = float(res.stdout.split("VERIFY_S")[-1])
    return wall, inner


def _warm(way: str) -> float:
    """The 4 cells again in this process, compiled (the scoring function of the sweep)."""
    import jax

    from causalid._x64 import float64
    from causalid.hmm import sweep

    base = {"states": 2, "envs": 3, "sequences": 4, "emission": "gaussian", "obs_dim": 1, "covariance": "full",
            "num_categories": 3, "self_prob": 0.8, "separation": 3.0, "env_spread": 1.0}
    opts = {"shared": "truth", "restarts": 5, "max_iters": 500, "num_warmup": 1, "num_samples": 1, "num_chains": 1}
    metrics = ("state_accuracy", "loglik_gap")
    cells = [dict(base, steps=T, vary=v) for T in (50, 100) for v in ("transitions", "emissions")]
    sims = [float64(sweep._simulate_hmm)(jax.random.PRNGKey(3), s, 12) for s in cells]
    run = float64(lambda sim: sweep._hmm_fit_score("em", opts, sim, jax.random.PRNGKey(4), metrics))
    saved, saved_switch = sweep.fit_hmm_batch, sweep.BATCH_ON_CPU
    sweep.BATCH_ON_CPU = True
    if way == "alone":
        import causalid

        def off(*a, **k):
            raise causalid.DataError("batched fit off")

        sweep.fit_hmm_batch = off
    try:
        for sim in sims:  # compile
            run(sim)
        t = time.perf_counter()
        for sim in sims:
            run(sim)
        return time.perf_counter() - t
    finally:
        sweep.fit_hmm_batch, sweep.BATCH_ON_CPU = saved, saved_switch


def test_batched_hmm_sweep_against_one_at_a_time(tmp_path):
    toml = tmp_path / "sweep.toml"
    toml.write_text(SWEEP)
    load = os.getloadavg()[0]
    # each way with its own compilation cache: empty (a first process), then filled (a second)
    batch_wall, batch_in = _verify("batch", toml, tmp_path / "batch", tmp_path / "cache_batch")
    alone_wall, alone_in = _verify("alone", toml, tmp_path / "alone", tmp_path / "cache_alone")
    batch2, _ = _verify("batch", toml, tmp_path / "batch2", tmp_path / "cache_batch")
    alone2, _ = _verify("alone", toml, tmp_path / "alone2", tmp_path / "cache_alone")
    warm_batch, warm_alone = _warm("batch"), _warm("alone")
    a = load_results(tmp_path / "batch").sort_values(["cell", "replicate", "metric"])
    b = load_results(tmp_path / "alone").sort_values(["cell", "replicate", "metric"])
    print(f"\nHMM sweep, 4 cells x 12 replicates, EM with 5 restarts ({os.cpu_count()} CPUs, 1-min load {load:.1f} "
          f"before, {os.getloadavg()[0]:.1f} after; shared machine)")
    print(f"fresh process, empty compilation cache (causalid verify): batched {batch_wall:.1f} s ({batch_in:.1f} s "
          f"in verify), one at a time {alone_wall:.1f} s ({alone_in:.1f} s): ratio {alone_wall / batch_wall:.2f}x")
    print(f"second process, cache filled: batched {batch2:.1f} s, one at a time {alone2:.1f} s: ratio "
          f"{alone2 / batch2:.2f}x")
    print(f"compiled, in-process: batched {warm_batch:.2f} s, one at a time {warm_alone:.2f} s: ratio "
          f"{warm_alone / warm_batch:.2f}x")
    assert len(a) == len(b) == 4 * 12 * 5
    assert list(a["error"]) == list(b["error"])
    np.testing.assert_allclose(a["value"].to_numpy(float), b["value"].to_numpy(float), rtol=1e-7, atol=1e-9)
