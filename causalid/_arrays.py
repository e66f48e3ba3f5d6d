"""Small helpers for the data containers: ragged blocks padded to arrays, checked names."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from causalid.errors import DataError

__all__ = ["check_names", "pad_blocks"]


def pad_blocks(blocks: Sequence[Sequence[np.ndarray]], lengths: np.ndarray, channels: int,
               fill: float = np.nan) -> np.ndarray:
    """``(E, N, T_max, channels)`` array of environment → trajectory blocks of ``(T, channels)``.

    ``lengths`` is ``(E, N)``; steps after each trajectory's length (and trajectories an
    environment does not have) hold ``fill``.
    """
    E, N = lengths.shape
    out = np.full((E, N, int(lengths.max()), channels), fill)
    for e, trajectories in enumerate(blocks):
        for n, a in enumerate(trajectories):
            out[e, n, : len(a)] = a
    return out


def check_names(names, k: int, prefix: str, what: str) -> tuple[str, ...]:
    """``k`` distinct names as strings; ``None`` gives ``prefix0, prefix1, ...``."""
    if names is None:
        return tuple(f"{prefix}{i}" for i in range(k))
    names = tuple(str(n) for n in names)
    if len(names) != k:
        raise DataError(f"got {len(names)} {what} names for {k} {what}s")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"duplicated {what} name(s) {dup}; every {what} needs its own name")
    return names
