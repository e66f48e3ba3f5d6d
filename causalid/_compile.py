"""Ahead-of-time compilation with the XLA options that suit causalid's programs on CPU.

Most causalid calls run a compiled program once or a few times per process (one sweep cell,
one design, one batch of tests), so XLA compilation, not execution, is often what a user
waits for.  On CPU the MLIR "fusion emitters" of recent XLA take about twice as long to
compile these programs as the classic emitters and run them no faster (jaxlib 0.10.2: the
vmapped GCM test of the causal de Finetti engine compiles in 1.7 s instead of 3.4 s and runs
in 62 ms instead of 57 ms; the n = m = 10 design objective in 0.6 s instead of 0.9 s).
:func:`compiled` and :func:`compile_lowered` compile with the classic emitters on CPU; on
other backends, or with an XLA that does not know the option, they use XLA's defaults.  The
numbers computed are the same programs' numbers (the option chooses code generation, not
the algorithm).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

#: XLA options used on CPU (see the module docstring).
CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}

_COMPILED: dict = {}
_MAX_COMPILED = 64
_LOCK = threading.Lock()  # the cache may be filled from a background thread (see fit_hmm)


def compile_lowered(lowered) -> Callable[..., Any]:
    """Compile a ``jax.stages.Lowered`` with :data:`CPU_COMPILER_OPTIONS` on CPU."""
    if jax.default_backend() == "cpu":
        try:
            return lowered.compile(compiler_options=CPU_COMPILER_OPTIONS)
        except (RuntimeError, TypeError, ValueError):  # an XLA without the option
            pass
    return lowered.compile()


def compiled(jitted, *args, **static) -> Callable[..., Any]:
    """The executable of ``jitted(*args, **static)`` for arguments shaped like ``args``.

    ``jitted`` is a ``jax.jit`` function whose keyword arguments ``static`` are static; the
    result is called with positional arguments like ``args`` (same shapes, dtypes and
    pytree structure).  Executables are cached per function, static arguments and argument
    shapes and the (thread-local) 64-bit setting (the last 64).
    """
    leaves, tree = jax.tree.flatten(args)
    # the 64-bit setting is part of the key: Python scalars trace to float32 or float64 by it
    key = (jitted, bool(jax.config.jax_enable_x64), tuple(sorted(static.items())), tree,
           tuple((np.shape(x), str(getattr(x, "dtype", type(x))), bool(getattr(x, "weak_type", False)))
                 for x in leaves))
    with _LOCK:
        executable = _COMPILED.get(key)
    if executable is None:  # compiled outside the lock: two threads may compile different programs
        executable = compile_lowered(jitted.lower(*args, **static))
        with _LOCK:
            if len(_COMPILED) >= _MAX_COMPILED:
                _COMPILED.pop(next(iter(_COMPILED)))
            _COMPILED[key] = executable
    return executable


def to_device(x):
    """A JAX array holding the NumPy value ``x``, made without compiling anything.

    ``jnp.asarray`` of a NumPy array runs a small compiled program per shape in this JAX
    (``lax.stage``: about 20 ms each on CPU), and ``jnp.full`` / ``jnp.broadcast_to`` outside
    ``jit`` do the same; a cold front-door call made a dozen of them before its real work.
    ``jax.device_put`` copies the buffer instead.  A JAX array is returned unchanged.
    """
    if isinstance(x, jax.Array):
        return x
    return jax.device_put(np.asarray(x))

