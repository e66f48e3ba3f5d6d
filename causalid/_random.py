"""Random keys: every front door takes ``key=``, an int seed or a JAX PRNG key.

An int ``s`` stands for ``jax.random.PRNGKey(s)``; the same int and the same key give the same
numbers.  Engines that draw on the host (NumPy) seed their generators from the key's words
(:func:`seed_words`), so they too give the same numbers for an int and its key.  ``seed=`` is
accepted as a deprecated alias where a front door had it (:func:`key_or_seed`).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from causalid.errors import DataError

__all__ = ["as_key", "generators", "host_key", "int_seed", "key_or_seed", "seed_int", "seed_words"]


def _is_int(key) -> bool:
    return isinstance(key, (int, np.integer)) and not isinstance(key, bool)


def as_key(key):
    """A JAX PRNG key from an int seed or a key (validated)."""
    if _is_int(key):
        return jax.random.PRNGKey(int(key))
    if isinstance(key, (jax.Array, np.ndarray)) and (
            jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or (key.shape == (2,) and key.dtype == jnp.uint32)):
        return key
    raise DataError(f"key must be an int seed or a jax.random.PRNGKey; got {type(key).__name__} "
                    f"{getattr(key, 'shape', '')}".rstrip())


def seed_words(key) -> tuple[int, ...]:
    """The raw words of the PRNG key ``key`` stands for: an int seed ``s`` gives those of
    ``jax.random.PRNGKey(s)`` (computed without JAX for the default threefry generator),
    a key its own data.  Host-side generators are seeded from them (:func:`generators`),
    so an int seed and the equivalent key give the same numbers."""
    if _is_int(key):
        s = int(key)
        if not -(2**63) <= s < 2**63:
            raise DataError(f"key={s} is out of range: give an int seed in [-2**63, 2**63)")
        if jax.config.jax_default_prng_impl == "threefry2x32":
            return ((s >> 32) & 0xFFFFFFFF, s & 0xFFFFFFFF)
    key = as_key(key)
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return tuple(int(w) for w in np.asarray(data).ravel())


def generators(seed: tuple[int, ...], num: int) -> list[np.random.Generator]:
    """``num`` independent NumPy generators from the words of :func:`seed_words`.

    Random starts drawn on the host need no compiled program: JAX's generator compiles a
    threefry program per shape, which can take as long as the work it seeds."""
    return [np.random.default_rng(child) for child in np.random.SeedSequence(list(seed)).spawn(num)]


def host_key(rng: np.random.Generator):
    """A JAX PRNG key drawn from the NumPy generator ``rng`` (for NumPyro's samplers)."""
    return jax.random.PRNGKey(int(rng.integers(0, 2**31 - 1)))


def seed_int(key) -> int:
    """A non-negative int32 seed drawn from a JAX key, for engines that take integer seeds."""
    return int(jax.random.randint(as_key(key), (), 0, 2**31 - 1))


def int_seed(key) -> int:
    """An int seed for engines that compile their seed in as a constant: an int as it is, a
    key through :func:`seed_int`."""
    if _is_int(key):
        return int(key)
    return seed_int(key)


def key_or_seed(key, seed, where: str, default=0):
    """The key of a front door that also accepts the deprecated ``seed=`` alias.

    ``key`` is ``None`` when not given; ``seed`` likewise.  Giving both is an error.
    """
    if seed is None:
        return default if key is None else key
    if key is not None:
        raise DataError(f"{where}: give key= (seed= is its deprecated alias), not both")
    warnings.warn(f"{where}: seed= is deprecated; pass key= (an int seed or a PRNG key)",
                  DeprecationWarning, stacklevel=3)
    return seed
