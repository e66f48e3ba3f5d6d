"""Pairs of exchangeable samples drawn inside each environment.

The causal de Finetti tests compare two samples of the same environment, ``X^(1)`` and
``X^(2)``: dependence between them can only flow through the environment's mechanism
parameters.  With ``N_e = 2`` (the reference setting) the two samples are the pair; with
more samples per environment disjoint pairs are drawn at random (each sample is used at
most once per orientation) and both orientations ``(n, m)`` and ``(m, n)`` are kept.
Rows from one environment are then dependent, so only cluster-robust tests (``gcm``)
may use more than one pair per environment; the others use one pair, which is what the
i.i.d.-row tests assume.
"""

from __future__ import annotations

import numpy as np


def make_pairs(
    values: np.ndarray, mask: np.ndarray, max_pairs: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Draw up to ``max_pairs`` ordered sample pairs per environment.

    Parameters
    ----------
    values : ndarray, shape (..., env, sample, var)
    mask : ndarray, shape (..., env, sample)
        Real samples (padding is never paired).
    max_pairs : int
        1 keeps one ordered pair per environment; larger values keep
        ``min(max_pairs, 2 * floor(N_e / 2))`` pairs (disjoint pairs, both orientations).
    seed : int
        Seed of the random permutation inside each environment.

    Returns
    -------
    pairs : ndarray, shape (..., env, pair, 2, var)
    weights : ndarray, shape (..., env, pair)
        1.0 for real pairs, 0.0 for padding pairs.
    """
    values = np.asarray(values, dtype=float)
    mask = np.asarray(mask, dtype=bool)
    rng = np.random.default_rng(seed)
    nmax = values.shape[-2]
    # a random order of the real samples inside every environment, padding last
    keys = np.where(mask, rng.random(mask.shape), np.inf)
    order = np.argsort(keys, axis=-1)
    counts = mask.sum(axis=-1)
    half = nmax // 2
    if max_pairs <= 1:
        first, second = order[..., :1], order[..., 1:2]
        valid = counts[..., None] >= 2
    else:
        npair = max(1, min(max_pairs // 2, half))
        a = order[..., 0 : 2 * npair : 2]
        b = order[..., 1 : 2 * npair : 2]
        ok = (2 * np.arange(npair) + 1) < counts[..., None]
        first = np.concatenate([a, b], axis=-1)
        second = np.concatenate([b, a], axis=-1)
        valid = np.concatenate([ok, ok], axis=-1)
    take = lambda idx: np.take_along_axis(values, idx[..., None], axis=-2)  # noqa: E731
    pairs = np.stack([take(first), take(second)], axis=-2)
    return pairs, valid.astype(float)
