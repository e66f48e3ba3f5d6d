"""Peer pipelines (causal-learn) measured in the same run as causalid."""

from __future__ import annotations

import numpy as np


def cdf_kci_reference(x: np.ndarray) -> list[set]:
    """The published causal de Finetti pipeline: causal-learn KCI on (X1, X2, Y1, Y2), one
    call per test, and the published decision rule.  ``x`` is (R, E, 2, 2)."""
    from causallearn.utils.cit import CIT

    out = []
    for data in x:
        X, Y = data[:, :, 0], data[:, :, 1]  # (E, 2) each: columns sample 1, sample 2
        kci = CIT(np.hstack((X, Y)), "kci")
        p_xy = kci([0], [3], [1])  # X1 ⊥ Y2 | X2
        p_yx = kci([2], [1], [3])  # Y1 ⊥ X2 | Y2
        p_ind = kci([0], [2])  # X1 ⊥ Y1
        a = 0.05
        if p_xy >= a and p_yx <= a and p_ind <= a:
            out.append({(0, 1)})
        elif p_xy <= a and p_yx >= a and p_ind <= a:
            out.append({(1, 0)})
        elif p_xy >= a and p_yx >= a and p_ind >= a:
            out.append(set())
        else:
            out.append([{(0, 1)}, {(1, 0)}, set()][int(np.argmax([p_xy, p_yx, p_ind]))])
    return out


def causallearn_graph(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """causal-learn's endpoint matrix -> (directed adjacency, undirected adjacency).

    ``G[j, i] = 1, G[i, j] = -1`` is i -> j; ``G[i, j] = G[j, i] = -1`` is i — j."""
    d = g.shape[0]
    directed = np.zeros((d, d), dtype=int)
    undirected = np.zeros((d, d), dtype=int)
    for i in range(d):
        for j in range(d):
            if g[j, i] == 1 and g[i, j] == -1:
                directed[i, j] = 1
            elif i < j and g[i, j] == -1 and g[j, i] == -1:
                undirected[i, j] = undirected[j, i] = 1
    return directed, undirected


def shd_cpdag(directed: np.ndarray, undirected: np.ndarray, truth: np.ndarray) -> tuple[int, int]:
    """SHD of a CPDAG against a DAG: (undirected edges counted as wrongly oriented,
    undirected edges oriented in the truth's favour)."""
    from causalid.exchangeable.metrics import shd

    pessimistic = directed.copy()
    optimistic = directed.copy()
    iu = np.argwhere(np.triu(undirected))
    for i, j in iu:
        if truth[i, j]:
            pessimistic[j, i] = 1
            optimistic[i, j] = 1
        else:
            pessimistic[i, j] = 1
            optimistic[j, i] = 1
    return shd(pessimistic, truth), shd(optimistic, truth)
