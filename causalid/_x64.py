"""64-bit floats where causalid's numerics need them, without touching the user's JAX setup.

Ranks, condition numbers, long likelihood sums and small-variance Cholesky factors need
float64, but importing causalid must not switch the whole process to it.  Every entry point
that computes with JAX is decorated with :func:`float64`: it runs inside
``jax.enable_x64(True)`` (a thread-local setting that is restored on return), so its arrays,
its traced programs and its compiled-program cache entries are float64 whatever the global
``jax_enable_x64`` flag says.

What a user who mixes causalid with their own float32 JAX code should expect:

* the flag is left as it was: their own programs stay float32;
* causalid's inputs may be NumPy arrays, lists, or JAX arrays of any float dtype; float32
  inputs are promoted (the precision they carry is what it is — pass NumPy arrays for full
  precision);
* results hold NumPy arrays; the pure-JAX kernels of :mod:`causalid.dynamics` and the
  simulators of :mod:`causalid.models` return float64 JAX arrays, which are best converted with
  ``numpy.asarray`` or used inside ``with jax.enable_x64(True):`` (outside it, JAX would
  truncate new float64 arrays derived from them to float32, with a warning);
* the NumPyro programs themselves (``icm_model``, ``lti_model``, ``hmm_model``) run in the
  precision of whoever runs them: inside causalid's engines float64, inside a user's own
  ``numpyro.infer.MCMC`` whatever that user's configuration is.

Work that causalid moves to another thread (a compilation in the background) enters the
context again there, since the setting is per thread.

The same per-call context switches on the persistent compilation cache
(:mod:`causalid._cache`), so that a fresh process reuses the programs an earlier one compiled.
"""

from __future__ import annotations

import functools

import jax

from causalid._cache import persistent_cache

__all__ = ["float64"]


def float64(fn):
    """Run ``fn`` inside ``jax.enable_x64(True)`` with the persistent compilation cache on
    (see the module docstring)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with jax.enable_x64(True), persistent_cache():
            return fn(*args, **kwargs)

    return wrapper
