"""The persistent compilation cache: compiled programs kept on disk between processes.

Most of what a user waits for in a fresh process — the first ``causalid discover``, a sweep's
first cells — is XLA compiling programs that an earlier process already compiled.  causalid's
entry points (everything decorated with :func:`causalid._x64.float64`) therefore run with
JAX's persistent compilation cache switched on, in a folder of the user's cache directory:

* ``$CAUSALID_CACHE_DIR`` when set (``off``, ``0``, ``none`` or an empty value switch the cache
  off);
* otherwise ``$XDG_CACHE_HOME/causalid`` (``~/.cache/causalid`` when ``XDG_CACHE_HOME`` is not
  set; ``~/Library/Caches/causalid`` on macOS, ``%LOCALAPPDATA%\\causalid`` on Windows).

Programs live in a sub-folder named after the JAX version (``jax-0.10.2``).  JAX's own cache
key covers the program, the backend and device, the compiler flags and the jaxlib version, so
a backend or version change never loads a stale program; the version folder keeps old
programs from crowding a new installation's.  The cache is size-limited
(:data:`MAX_BYTES`, least recently used programs evicted), which makes JAX guard it with a
file lock: several processes (Dask workers, parallel test runners) share it safely.

Scope.  The settings are entered per call, like float64: the user's own JAX programs are not
cached by causalid, and a user who configured JAX's cache themselves (``JAX_COMPILATION_CACHE_DIR``
or ``jax.config.update("jax_compilation_cache_dir", ...)``) keeps their own folder — causalid
then uses it as it is.  One caveat of JAX's design: the cache is opened once per process, in
the folder active at the first compilation that uses it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import warnings
from pathlib import Path

import jax

try:  # the per-call switches of JAX's cache settings; without them causalid runs uncached
    from jax._src import config as _jax_config

    _STATES = (_jax_config.compilation_cache_dir, _jax_config.compilation_cache_max_size,
               _jax_config.persistent_cache_min_compile_time_secs,
               _jax_config.persistent_cache_min_entry_size_bytes)
except (ImportError, AttributeError):  # pragma: no cover - a JAX without these settings
    _STATES = None

__all__ = ["ENV", "MAX_BYTES", "cache_dir", "persistent_cache"]

ENV = "CAUSALID_CACHE_DIR"
MAX_BYTES = 2 * 1024**3
"""Size limit of the cache folder (2 GiB); the least recently used programs are evicted."""
MIN_COMPILE_SECONDS = 0.1
"""Programs that compile faster than this are not written (reading them back costs as much)."""
_OFF = {"", "0", "off", "none", "false", "no"}


def _user_cache_base() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    if sys.platform.startswith("win") and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"])
    return Path.home() / ".cache"


def cache_dir() -> Path | None:
    """The folder causalid's compiled programs go to, or None when the cache is off."""
    value = os.environ.get(ENV)
    if value is not None:
        if value.strip().lower() in _OFF:
            return None
        base = Path(value).expanduser()
    else:
        base = _user_cache_base() / "causalid"
    return base / f"jax-{jax.__version__}"


@functools.lru_cache(maxsize=8)
def _usable(path: Path) -> bool:
    """Create ``path`` once; warn (once) and run uncached when it cannot be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError as exc:
        warnings.warn(f"the compilation cache folder '{path}' is not writable ({exc.strerror}); causalid "
                      f"runs without it (set {ENV} to another folder, or to 'off')", RuntimeWarning, stacklevel=4)
        return False


def _has_filelock() -> bool:
    try:
        import filelock  # noqa: F401 - JAX locks a size-limited cache with it
    except ImportError:  # pragma: no cover - filelock is a dependency
        return False
    return True


@contextlib.contextmanager
def persistent_cache():
    """Compile inside this context with the persistent cache on (see the module docstring)."""
    if _STATES is None or _STATES[0].value is not None:  # no switch, or the user's own cache
        yield
        return
    path = cache_dir()
    if path is None or not _usable(path) or not _has_filelock():
        yield
        return
    folder, max_size, min_seconds, min_bytes = _STATES
    with folder(str(path)), max_size(MAX_BYTES), min_seconds(MIN_COMPILE_SECONDS), min_bytes(-1):
        yield
