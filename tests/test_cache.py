"""The persistent compilation cache: a second process reuses the first one's programs, the
user's JAX configuration is left alone, and the switches (folder, XDG, off) do what they say.

Each process check runs a fresh Python, as a user's second command does.
"""

import json
import os
import subprocess
import sys

import jax
import pytest

from causalid import _cache

# a causalid computation in a fresh process, counting JAX's persistent-cache events
SCRIPT = """
import json, jax, numpy as np
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
from causalid.dynamics.kalman import kalman_filter, make_params
rng = np.random.default_rng(0)
T, n, p = 64, 3, 2
params = make_params(0.9 * np.eye(n), rng.normal(size=(p, n)), np.eye(n), np.eye(p))
out = kalman_filter(params, rng.normal(size=(T, p)))
print(json.dumps({"hits": sum("cache_hits" in e for e in events),
                  "misses": sum("cache_misses" in e for e in events),
                  "global_dir": jax.config.jax_compilation_cache_dir,
                  "x64": bool(jax.config.jax_enable_x64),
                  "loglik": float(np.asarray(out.log_likelihood))}))
"""


def _run(env_updates: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT",
                                                                      "CAUSALID_CACHE"))}
    env.update(env_updates)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _programs(folder) -> list:
    return [p for p in folder.rglob("*-cache")] if folder.exists() else []


def test_a_second_process_loads_the_first_ones_programs(tmp_path):
    folder = tmp_path / "cache"
    first = _run({_cache.ENV: str(folder)})
    stored = _programs(folder / f"jax-{jax.__version__}")
    assert stored, "the first process wrote no program"
    second = _run({_cache.ENV: str(folder)})
    assert second["hits"] >= 1 and second["misses"] < first["misses"]
    assert second["loglik"] == first["loglik"]           # the cached program computes the same
    # the user's configuration is untouched: no global cache folder, float32 by default
    assert first["global_dir"] is None and first["x64"] is False


def test_xdg_cache_home_is_the_default_base(tmp_path):
    _run({"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert _programs(tmp_path / "xdg" / "causalid")


def test_the_off_switch_writes_nothing(tmp_path):
    out = _run({_cache.ENV: "off", "XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert out["hits"] == 0 and not (tmp_path / "xdg").exists()


def test_a_users_own_jax_cache_is_respected(tmp_path):
    theirs = tmp_path / "theirs"
    _run({"JAX_COMPILATION_CACHE_DIR": str(theirs), _cache.ENV: str(tmp_path / "ours"),
          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"})
    assert _programs(theirs) and not (tmp_path / "ours").exists()


@pytest.mark.parametrize("value", ["", "0", "OFF", "none"])
def test_cache_dir_switches(monkeypatch, tmp_path, value):
    monkeypatch.setenv(_cache.ENV, value)
    assert _cache.cache_dir() is None
    monkeypatch.setenv(_cache.ENV, str(tmp_path))
    assert _cache.cache_dir() == tmp_path / f"jax-{jax.__version__}"
    monkeypatch.delenv(_cache.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert _cache.cache_dir() == tmp_path / "x" / "causalid" / f"jax-{jax.__version__}"
