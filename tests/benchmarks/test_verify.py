"""Issue 6's "done when": the bivariate causal de Finetti curve (5 values of E, 100 replicates)
reproduces from its example sweep in under a minute on a 2-core CPU.

    pytest -m benchmark -s tests/benchmarks/test_verify.py

Runs ``causalid verify examples/sweeps/bivariate.toml --out DIR`` as a user does (a fresh
process: imports, compilation and all), prints the wall time, the machine's load and the
accuracy per E next to the published figures (Guo et al. 2023).  The machine may be shared:
the load average is printed so that an inflated time can be told from a slow sweep.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from causalid.verify import load_results

SWEEP = Path(__file__).resolve().parents[2] / "examples" / "sweeps" / "bivariate.toml"
PUBLISHED = {100: 0.70, 200: 0.82, 300: 0.87, 400: 0.90, 500: 0.91}
LIMIT_S = 60.0


def _verify(out: Path, *extra: str) -> float:
    cmd = [
        sys.executable,
        "-m",
        "causalid.cli",
        "verify",
        str(SWEEP),
        "--out",
        str(out),
        "--quiet",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    t0 = time.perf_counter()
    res = subprocess.run([*cmd, *extra], capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    assert res.returncode == 0, res.stderr
    return wall


def _accuracy(out: Path) -> dict:
    df = load_results(out)
    acc = df[df.metric == "accuracy"].groupby("envs")["value"]
    return {int(e): (v.mean(), v.std() / np.sqrt(len(v))) for e, v in acc}


def test_bivariate_curve_reproduces_in_under_a_minute(tmp_path):
    load_before = os.getloadavg()
    wall = _verify(tmp_path / "run")
    load_after = os.getloadavg()
    acc = _accuracy(tmp_path / "run")
    print(
        f"\ncausalid verify {SWEEP.name}: {wall:.1f} s wall on {os.cpu_count()} CPU(s); 1-min load "
        f"average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    print(f"{'E':>5} {'accuracy':>9} {'± se':>6} {'published':>9}")
    for E, (mean, se) in acc.items():
        print(f"{E:>5} {mean:>9.2f} {se:>6.2f} {PUBLISHED[E]:>9.2f}")
    assert sorted(acc) == sorted(PUBLISHED)
    # reproduces: at least the published accuracy, up to two standard errors
    assert all(mean >= PUBLISHED[E] - 2 * se for E, (mean, se) in acc.items())
    assert wall < LIMIT_S, (
        f"{wall:.0f} s (load average {load_after[0]:.1f} on {os.cpu_count()} CPUs)"
    )


def test_bivariate_curve_on_two_local_dask_workers(tmp_path):
    """The same sweep with --workers 2, for comparison (tests/verify checks equal results)."""
    pytest.importorskip("distributed")
    wall = _verify(tmp_path / "run", "--workers", "2")
    acc = _accuracy(tmp_path / "run")
    print(
        f"\ncausalid verify {SWEEP.name} --workers 2: {wall:.1f} s wall; load average "
        f"{os.getloadavg()[0]:.1f}; accuracy "
        + ", ".join(f"E={E}: {m:.2f}" for E, (m, _) in acc.items())
    )
    assert sorted(acc) == sorted(PUBLISHED)
