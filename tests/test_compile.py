"""causalid._compile: ahead-of-time compilation with causalid's CPU options."""

import jax
import jax.numpy as jnp
import numpy as np

import causalid  # noqa: F401  (float64)
from causalid import _compile

JAX_X64 = True  # drives the JAX kernels from JAX code (see tests/conftest.py)


def test_compiled_matches_the_jit_and_is_cached_per_shape():
    f = jax.jit(lambda x, p, *, k: k * jnp.cumsum(x) * p["a"], static_argnames=("k",))
    x = np.random.default_rng(0).normal(size=7)
    run = _compile.compiled(f, x, {"a": np.float64(2.0)}, k=3)
    np.testing.assert_array_equal(run(x, {"a": np.float64(2.0)}), f(x, {"a": np.float64(2.0)}, k=3))
    assert _compile.compiled(f, np.zeros(7), {"a": np.float64(1.0)}, k=3) is run
    assert _compile.compiled(f, np.zeros(8), {"a": np.float64(1.0)}, k=3) is not run
    assert _compile.compiled(f, np.zeros(7), {"a": np.float64(1.0)}, k=4) is not run


def test_compiled_falls_back_when_xla_lacks_an_option(monkeypatch):
    f = jax.jit(lambda x, p, *, k: k * x * p["a"], static_argnames=("k",))
    monkeypatch.setattr(_compile, "CPU_COMPILER_OPTIONS", {"xla_no_such_option": True})
    monkeypatch.setattr(_compile, "_COMPILED", {})
    run = _compile.compiled(f, np.ones(3), {"a": np.float64(2.0)}, k=3)
    np.testing.assert_array_equal(run(np.arange(3.0), {"a": np.float64(2.0)}), [0.0, 6.0, 12.0])


def test_to_device_copies_numpy_values_and_passes_jax_arrays_through():
    x = np.arange(6.0).reshape(2, 3)
    got = _compile.to_device(x)
    assert isinstance(got, jax.Array) and got.dtype == np.float64 and not got.weak_type
    np.testing.assert_array_equal(got, x)
    assert _compile.to_device(got) is got
    assert _compile.to_device(np.zeros(2, bool)).dtype == bool
