"""Importing causalid changes no global setting; its numerics are float64 inside every call."""

from __future__ import annotations

import subprocess
import sys
import warnings

import jax
import numpy as np

import causalid
from causalid.dynamics.kalman import log_likelihood, make_params


def test_importing_causalid_leaves_the_jax_configuration_as_it_was():
    code = ("import jax; before = jax.config.jax_enable_x64; import causalid, causalid.cli; "
            "import causalid.models.lti, causalid.verify.sbc; print(before, jax.config.jax_enable_x64)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"JAX_ENABLE_X64": "1", "PATH": ""})
    assert out.stdout.split() == ["True", "True"]


def test_a_kernel_is_float64_inside_and_the_callers_setting_is_restored():
    assert not jax.config.jax_enable_x64                    # the suite runs with JAX's defaults
    rng = np.random.default_rng(0)
    y = rng.normal(size=(200, 2)) * 1e-4 + 1e4              # needs float64: float32 loses the signal
    params = make_params(A=0.5 * np.eye(2), C=np.eye(2), Q=1e-8 * np.eye(2), R=1e-8 * np.eye(2),
                         m0=np.full(2, 1e4), P0=np.eye(2))
    ll = log_likelihood(params, y)
    assert ll.dtype == np.float64 and np.isfinite(float(ll))
    assert not jax.config.jax_enable_x64
    with jax.enable_x64(True):
        assert float(log_likelihood(params, y)) == float(ll)


def test_a_front_door_gives_the_same_answer_whatever_the_global_setting():
    x, _ = causalid.models.exchangeable.scm_bivariate_continuous(jax.random.PRNGKey(3), 80, 2, "both")
    x = np.asarray(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        off = causalid.discover(x, method="cdf")
    with jax.enable_x64(True):
        on = causalid.discover(x, method="cdf")
    a, b = off.to_dict(), on.to_dict()
    a["info"].pop("seconds"), b["info"].pop("seconds")
    assert a == b
