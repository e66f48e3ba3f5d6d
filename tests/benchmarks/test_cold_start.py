"""What a user waits for from a fresh process: cold starts with an empty and a filled
compilation cache, and where each command's wall time goes.

    pytest -m benchmark -s tests/benchmarks/test_cold_start.py

* The 500-run bivariate sweep (``causalid verify examples/sweeps/bivariate.toml``) in a fresh
  process with an empty cache, then in a second process with the cache filled, against the
  published causal-learn KCI pipeline on the same 500 data sets, measured in the same run.
* The README's main job and each family's example command, first with an empty cache and then
  again, split into import, tracing, lowering, compiling and the rest (running) from JAX's
  monitoring events, so that a regression shows where it is.

The machine may be shared: the load average is printed next to the times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ROOT / "examples" / "sweeps" / "bivariate.toml"

# run a CLI command in this process and report JAX's durations as JSON on the last line
PROFILE = r"""
import json, sys, time
t0 = time.perf_counter()
import jax, jax.monitoring
durations = {}
def listen(name, seconds, **kw):
    durations[name] = durations.get(name, 0.0) + seconds
jax.monitoring.register_event_duration_secs_listener(listen)
from causalid.cli.main import main
t_import = time.perf_counter() - t0
code = main(sys.argv[1:])
total = time.perf_counter() - t0
pick = lambda key: sum(v for k, v in durations.items() if key in k)
print(json.dumps({"code": code, "import": t_import, "total": total, "trace": pick("jaxpr_trace"),
                  "lower": pick("to_mlir_module"), "compile": pick("backend_compile"),
                  "cache_read": pick("cache_retrieval")}))
"""

COMMANDS = {
    "discover --example sachs": ["discover", "--example", "sachs", "--out", "{tmp}/sachs.json"],
    "identify --example dc-motor": ["identify", "--example", "dc-motor", "--out", "{tmp}/motor.json"],
    "fit-hmm --example earthquakes": ["fit-hmm", "--example", "earthquakes", "--out", "{tmp}/quakes.json",
                                      "--quiet"],
}


def _env(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION_CACHE", "CAUSALID_CACHE"))}
    env["CAUSALID_CACHE_DIR"] = str(cache)
    return env


def _profile(argv, cache: Path, tmp: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", PROFILE, *[a.format(tmp=tmp) for a in argv]], env=_env(cache),
                         capture_output=True, text=True, timeout=900, cwd=tmp)
    assert out.returncode == 0, out.stderr[-2000:]
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["code"] == 0
    row["run"] = row["total"] - row["import"] - row["trace"] - row["lower"] - row["compile"]
    return row


def test_cli_wall_time_profile(tmp_path):
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; seconds")
    print(f"{'command':<32} {'cache':<7} {'total':>6} {'import':>7} {'trace':>6} {'lower':>6} {'compile':>8} "
          f"{'run':>6}")
    for name, argv in COMMANDS.items():
        cache = tmp_path / f"cache-{name.split()[0]}"
        rows = [_profile(argv, cache, tmp_path) for _ in range(2)]
        for label, r in zip(("empty", "filled"), rows):
            print(f"{name:<32} {label:<7} {r['total']:>6.1f} {r['import']:>7.1f} {r['trace']:>6.1f} "
                  f"{r['lower']:>6.1f} {r['compile']:>8.1f} {r['run']:>6.1f}")
        print(f"{'':<32} second / first: {rows[0]['total'] / rows[1]['total']:.2f}x faster")
        assert rows[1]["compile"] < rows[0]["compile"], "the filled cache saved no compilation"


def _verify(out: Path, cache: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "causalid.cli", "verify", str(SWEEP), "--out", str(out), "--quiet"],
                   env=_env(cache), check=True, timeout=1800)
    return time.perf_counter() - t0


def test_bivariate_sweep_from_a_fresh_process_vs_kci(tmp_path, peers):
    from causalid.verify import load_results
    from causalid.models.exchangeable import scm_bivariate_continuous

    cache = tmp_path / "cache"
    cold = _verify(tmp_path / "cold", cache)
    warm = _verify(tmp_path / "warm", cache)
    a, b = load_results(tmp_path / "cold"), load_results(tmp_path / "warm")
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())
    # the peer on 500 data sets of the same design (100 per E)
    t0 = time.perf_counter()
    for E in (100, 200, 300, 400, 500):
        keys = jax.random.split(jax.random.PRNGKey(42 + E), 100)
        with jax.enable_x64(True):
            x, _ = jax.vmap(lambda k: scm_bivariate_continuous(k, E, 2))(keys)
        peers.cdf_kci_reference(np.asarray(x))
    kci = time.perf_counter() - t0
    print(f"\nload average {os.getloadavg()[0]:.1f}; 500-run bivariate sweep: causal-learn KCI {kci:.1f} s; "
          f"causalid verify from a fresh process {cold:.1f} s with an empty cache (x{kci / cold:.1f}), "
          f"{warm:.1f} s from a second process (x{kci / warm:.1f})")
    assert warm < cold
