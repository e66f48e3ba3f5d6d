import itertools

import networkx as nx
import numpy as np
import pytest

from causalid.exchangeable.metrics import direction_accuracy, edge_precision_recall, normalized_shd, shd


def _brute_shd(a, b):
    """Minimum number of single-edge additions, deletions and reversals, by definition."""
    d = a.shape[0]
    cost = 0
    for i, j in itertools.combinations(range(d), 2):
        sa, sb = (a[i, j], a[j, i]), (b[i, j], b[j, i])
        if sa != sb:
            cost += 1
    return cost


def test_shd_against_definition_on_all_three_node_pairs():
    graphs = []
    for bits in itertools.product([0, 1, 2], repeat=3):  # 0 none, 1 i->j, 2 j->i
        a = np.zeros((3, 3), int)
        for (i, j), s in zip(itertools.combinations(range(3), 2), bits):
            if s == 1:
                a[i, j] = 1
            elif s == 2:
                a[j, i] = 1
        graphs.append(a)
    for a in graphs:
        for b in graphs:
            assert shd(a, b) == _brute_shd(a, b)


def test_reference_normalized_shd_and_friends():
    truth = np.array([[0, 1, 1], [0, 0, 0], [0, 0, 0]])
    est = np.array([[0, 0, 1], [1, 0, 0], [0, 0, 0]])  # one correct, one reversed
    assert shd(est, truth) == 1
    assert normalized_shd(est, truth) == pytest.approx(2 / 4)  # reversed counts twice
    assert normalized_shd(np.zeros((3, 3)), truth) == 1.0
    assert normalized_shd(np.zeros((3, 3)), np.zeros((3, 3))) == 0.0
    assert edge_precision_recall(est, truth) == (0.5, 0.5)
    assert direction_accuracy(est, truth) == 0.5


def test_networkx_graphs_compared_by_name():
    t = nx.DiGraph([("a", "b"), ("b", "c")])
    e = nx.DiGraph([("c", "b"), ("a", "b")])
    assert shd(e, t) == 1
