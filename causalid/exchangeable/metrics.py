"""Structure-recovery metrics.

Graphs may be given as :class:`networkx.DiGraph` (compared over the union of their nodes,
in the order of the true graph) or as 0/1 adjacency matrices with ``A[i, j] = 1`` for
``i -> j``.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from causalid.errors import DataError


def _pair(estimate, truth) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(truth, nx.DiGraph) or isinstance(estimate, nx.DiGraph):
        if not (isinstance(truth, nx.DiGraph) and isinstance(estimate, nx.DiGraph)):
            raise DataError("compare two networkx DiGraphs or two adjacency matrices, not a mix")
        nodes = list(truth.nodes) + [n for n in estimate.nodes if n not in truth]
        a = nx.to_numpy_array(estimate, nodelist=nodes, weight=None)
        b = nx.to_numpy_array(truth, nodelist=nodes, weight=None)
    else:
        a, b = np.asarray(estimate), np.asarray(truth)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise DataError(f"adjacency shapes differ or are not square: {a.shape} vs {b.shape}")
    a, b = (a != 0).astype(int), (b != 0).astype(int)
    np.fill_diagonal(a, 0)
    np.fill_diagonal(b, 0)
    return a, b


def shd(estimate, truth) -> int:
    """Standard structural Hamming distance: missing + extra + reversed edges.

    A reversed edge counts once (the number of single-edge insertions, deletions and
    reversals that turn ``estimate`` into ``truth``).
    """
    a, b = _pair(estimate, truth)
    skel_a, skel_b = np.triu(a + a.T) > 0, np.triu(b + b.T) > 0
    missing_or_extra = int(np.sum(skel_a != skel_b))
    both = skel_a & skel_b
    reversed_ = int(np.sum(both & (np.triu(a) != np.triu(b))))
    return missing_or_extra + reversed_


def normalized_shd(estimate, truth) -> float:
    """The causal de Finetti reference's normalised SHD, ``(|Ê \\ E| + |E \\ Ê|) / (|E| + |Ê|)``.

    Edges are directed pairs, so a reversed edge counts twice.  An empty estimate scores
    ``|E \\ Ê| / |E|`` as in the reference code (1 when the truth has edges); both empty is 0.
    """
    a, b = _pair(estimate, truth)
    ea, eb = int(a.sum()), int(b.sum())
    diff = int(np.sum((a == 1) & (b == 0)) + np.sum((b == 1) & (a == 0)))
    if ea == 0:
        return float(diff / eb) if eb else 0.0
    return diff / (ea + eb)


def edge_precision_recall(estimate, truth) -> tuple[float, float]:
    """Precision and recall of directed edges (an empty estimate has precision 1)."""
    a, b = _pair(estimate, truth)
    tp = int(np.sum((a == 1) & (b == 1)))
    prec = tp / a.sum() if a.sum() else 1.0
    rec = tp / b.sum() if b.sum() else 1.0
    return float(prec), float(rec)


def direction_accuracy(estimate, truth) -> float:
    """Among true edges whose adjacency was found, the fraction oriented correctly (nan if none)."""
    a, b = _pair(estimate, truth)
    found = (b == 1) & ((a + a.T) > 0)
    if not found.any():
        return float("nan")
    return float(np.sum(found & (a == 1)) / found.sum())


def structure_metrics(estimate, truth) -> dict[str, float]:
    """All structure metrics in one dictionary."""
    p, r = edge_precision_recall(estimate, truth)
    return {
        "shd": shd(estimate, truth),
        "normalized_shd": normalized_shd(estimate, truth),
        "precision": p,
        "recall": r,
        "direction_accuracy": direction_accuracy(estimate, truth),
    }
