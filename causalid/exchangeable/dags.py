"""Combinatorics of DAGs and parent sets, shared by the Bayesian structure engines.

Parent sets
    For node ``i`` the candidate parent sets are the subsets of the other ``d - 1`` nodes with
    at most ``K`` elements, listed by size and, within one size, in *colex* order.  In that
    order the rank of a ``k``-subset ``{c_1 < ... < c_k}`` of positions ``0..d-2`` (positions
    index the other nodes in increasing order) is given by the combinatorial number system,

        rank = sum_{j < k} C(d - 1, j) + sum_{t=1}^{k} C(c_t, t),

    so a parent set is turned into a row of the local-score table without any lookup table
    (:func:`parent_rank`, usable inside ``jit``).  Every node has the same number of
    candidate sets ``P = sum_{k <= K} C(d - 1, k)``, so local scores live in a dense
    ``(d, P)`` table.

DAGs
    :func:`enumerate_dags` lists every labelled DAG on ``d`` nodes (1, 1, 3, 25, 543, 29281
    for d = 0..5) as boolean adjacency matrices ``A[i, j] = True`` meaning ``i -> j``.
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from math import comb
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

MAX_EXHAUSTIVE_NODES = 5


class ParentSets(NamedTuple):
    """All candidate parent sets of every node, padded to a static size.

    Attributes
    ----------
    parents : ndarray, shape (var, P, K), int
        ``parents[i, s]`` lists the parents of node ``i`` in set ``s``; ``-1`` pads.
    member : ndarray, shape (var, P, var), bool
        ``member[i, s, j]`` is True when ``j`` belongs to set ``s`` of node ``i``.
    size : ndarray, shape (var, P), int
        Number of parents in each set.
    others : ndarray, shape (var, var - 1), int
        ``others[i]`` are the nodes other than ``i`` in increasing order (the positions
        that :func:`parent_rank` indexes).
    offsets : ndarray, shape (K + 2,), int
        ``offsets[k]`` is the rank of the first set of size ``k``.
    binom : ndarray, shape (var, K + 2), int
        ``binom[n, t] = C(n, t)``.
    max_parents : int
        ``K``.
    """

    parents: np.ndarray
    member: np.ndarray
    size: np.ndarray
    others: np.ndarray
    offsets: np.ndarray
    binom: np.ndarray
    max_parents: int


@lru_cache(maxsize=32)
def parent_sets(d: int, max_parents: int) -> ParentSets:
    """Candidate parent sets of every node of a ``d``-node graph, at most ``max_parents`` each.

    Sets are ordered by size and, within a size, in colex order of the positions of the
    parents among the other nodes, so that :func:`parent_rank` is their index.
    """
    k_max = int(min(max_parents, max(d - 1, 0)))
    n = d - 1
    combos: list[tuple[int, ...]] = []
    for k in range(k_max + 1):
        combos.extend(sorted(itertools.combinations(range(n), k), key=lambda c: c[::-1]))
    p = len(combos)
    width = max(k_max, 1)
    others = np.array([[j for j in range(d) if j != i] for i in range(d)], dtype=np.int64).reshape(
        d, n
    )
    parents = np.full((d, p, width), -1, dtype=np.int64)
    member = np.zeros((d, p, d), dtype=bool)
    size = np.zeros((d, p), dtype=np.int64)
    for i in range(d):
        for s, c in enumerate(combos):
            nodes = others[i, list(c)] if c else np.zeros(0, dtype=np.int64)
            parents[i, s, : len(c)] = nodes
            member[i, s, nodes] = True
            size[i, s] = len(c)
    offsets = np.cumsum([0] + [comb(n, k) for k in range(k_max + 1)])
    offsets = np.concatenate([offsets, [offsets[-1]]]).astype(
        np.int64
    )  # sizes > K map past the end
    binom = np.array(
        [[comb(a, t) for t in range(k_max + 2)] for a in range(max(d, 1))], dtype=np.int64
    )
    return ParentSets(parents, member, size, others, offsets, binom, k_max)


def parent_rank(indicator, sets: ParentSets):
    """Row index of a parent set in the local-score table (works on NumPy or JAX arrays).

    Parameters
    ----------
    indicator : array, shape (..., var - 1), bool
        Membership of the other nodes (in the order of ``sets.others[i]``).
    sets : ParentSets

    Returns
    -------
    rank : array, shape (...), int
        ``offsets[k] + sum_t C(c_t, t)``; meaningless when more than ``K`` parents are set
        (callers never ask for those).
    """
    xp = jnp if not isinstance(indicator, np.ndarray) else np
    ind = indicator.astype(bool)
    t = xp.cumsum(ind.astype(np.int64), axis=-1)
    k = t[..., -1] if ind.shape[-1] else xp.zeros(ind.shape[:-1], dtype=np.int64)
    kk = sets.max_parents + 1
    t_c = xp.minimum(t, kk)
    q = xp.arange(ind.shape[-1])
    binom = xp.asarray(sets.binom)
    contrib = xp.where(ind, binom[q, t_c] if ind.shape[-1] else 0, 0)
    return xp.asarray(sets.offsets)[xp.minimum(k, kk)] + contrib.sum(axis=-1)


def dag_ranks(adj, sets: ParentSets):
    """Parent-set ranks of every node of one or many DAGs.

    Parameters
    ----------
    adj : array, shape (..., var, var), bool
        ``adj[..., i, j]`` is True for an edge ``i -> j``.

    Returns
    -------
    ranks : array, shape (..., var), int
    """
    xp = jnp if not isinstance(adj, np.ndarray) else np
    d = adj.shape[-1]
    cols = xp.swapaxes(adj, -1, -2)  # cols[..., j, :] = parents indicator of j
    ind = xp.take_along_axis(
        cols, xp.broadcast_to(xp.asarray(sets.others), cols.shape[:-1] + (d - 1,)), axis=-1
    )
    return parent_rank(ind, sets)


@lru_cache(maxsize=8)
def enumerate_dags(d: int) -> np.ndarray:
    """Every labelled DAG on ``d`` nodes.

    A DAG is acyclic iff it is consistent with some topological order, so the DAGs are the
    union over the ``d!`` orders of all subsets of the ``d(d-1)/2`` forward edges; each DAG
    is encoded as a bit pattern and duplicates are removed.

    Returns
    -------
    adj : ndarray, shape (n_dags, var, var), bool
        Sorted by number of edges, then by bit pattern; the empty graph comes first.
        ``n_dags`` is 1, 3, 25, 543, 29281 for d = 1..5.
    """
    if d > MAX_EXHAUSTIVE_NODES:
        raise ValueError(
            f"enumerating DAGs on {d} nodes is not supported (at most {MAX_EXHAUSTIVE_NODES})"
        )
    if d <= 1:
        return np.zeros((1, d, d), dtype=bool)
    pairs = [(a, b) for a in range(d) for b in range(a + 1, d)]
    m = len(pairs)
    subsets = ((np.arange(2**m)[:, None] >> np.arange(m)) & 1).astype(np.int64)  # (2^m, m)
    codes = []
    for perm in itertools.permutations(range(d)):
        bit = np.array([perm[a] * d + perm[b] for a, b in pairs], dtype=np.int64)
        codes.append((subsets << bit).sum(axis=1))
    codes = np.unique(np.concatenate(codes))
    adj = ((codes[:, None] >> np.arange(d * d)) & 1).astype(bool).reshape(-1, d, d)
    order = np.lexsort((codes, adj.sum(axis=(1, 2))))
    return adj[order]


def reachability(adj):
    """Reflexive-transitive closure ``R[i, j]`` (a directed path ``i ~> j``, or ``i == j``).

    Works on NumPy or JAX boolean arrays of shape ``(..., var, var)`` by repeated squaring.
    """
    xp = jnp if not isinstance(adj, np.ndarray) else np
    d = adj.shape[-1]
    r = (adj | xp.eye(d, dtype=bool)).astype(np.float64)
    for _ in range(max(int(np.ceil(np.log2(max(d, 2)))), 1)):
        r = ((r @ r) > 0).astype(np.float64)
    return r > 0


def is_acyclic(adj) -> np.ndarray:
    """True where the graph(s) ``adj`` (shape ``(..., var, var)``) have no directed cycle."""
    adj = np.asarray(adj, dtype=bool)
    r = reachability(adj)
    # a cycle exists iff some edge i -> j has a path back j ~> i
    return ~np.any(adj & np.swapaxes(r, -1, -2), axis=(-1, -2))
