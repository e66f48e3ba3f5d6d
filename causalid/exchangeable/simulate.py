"""Simulated multi-environment data sets from the declared models (for the CLI and sweeps)."""

from __future__ import annotations

from typing import Literal

import networkx as nx
import numpy as np

from causalid._random import as_key, int_seed, key_or_seed
from causalid._x64 import float64
from causalid.errors import DataError
from causalid.models import exchangeable as ex


@float64
def random_dag(num_vars: int, edge_prob: float = 0.5, key=None, names=None, *, seed=None) -> nx.DiGraph:
    """Erdős–Rényi DAG: a random order, each forward pair an edge with ``edge_prob``.

    ``key``: an int seed (default 0) or a PRNG key; ``seed=`` is its deprecated alias."""
    rng = np.random.default_rng(int_seed(key_or_seed(key, seed, "random_dag")))
    names = list(names) if names is not None else [f"X{i}" for i in range(num_vars)]
    order = rng.permutation(num_vars)
    g = nx.DiGraph()
    g.add_nodes_from(names)
    for a in range(num_vars):
        for b in range(a + 1, num_vars):
            if rng.random() < edge_prob:
                g.add_edge(names[order[a]], names[order[b]])
    return g


@float64
def simulate_dataset(
    model: Literal["bivariate", "binary", "icm"],
    num_envs: int,
    num_samples: int,
    num_vars: int = 3,
    regime: str = "both",
    key=None,
    *,
    seed=None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Draw one data set.

    Returns ``(x, adjacency, names)`` with ``x`` of shape (env, sample, var) and
    ``adjacency[i, j] = 1`` for ``names[i] -> names[j]``.

    * ``bivariate``: Guo et al. 2023's continuous reference (X, Y; truth uniform over
      X→Y, Y→X, no edge), with the IEM ``regime``;
    * ``binary``: the multivariate binary reference on ``num_vars`` nodes;
    * ``icm``: the linear-Gaussian exchangeable ICM model on a random DAG.

    ``key``: an int seed (default 0) or a PRNG key; ``seed=`` is its deprecated alias.
    """
    seed = key_or_seed(key, seed, "simulate_dataset")
    key = as_key(seed)
    if model == "bivariate":
        x, label = ex.scm_bivariate_continuous(key, num_envs, num_samples, regime=regime)
        adjacency = np.zeros((2, 2), dtype=int)
        if int(label) == 0:
            adjacency[0, 1] = 1
        elif int(label) == 1:
            adjacency[1, 0] = 1
        return np.asarray(x), adjacency, ["X", "Y"]
    if model == "binary":
        x, adjacency = ex.scm_multivariate_binary(key, num_envs, num_samples, num_vars)
        return np.asarray(x), np.asarray(adjacency, dtype=int), [f"X{i}" for i in range(num_vars)]
    if model == "icm":
        if num_vars < 2:
            raise DataError("--vars must be at least 2")
        g = random_dag(num_vars, key=int_seed(seed))
        names = list(g.nodes)
        x, _ = ex.simulate(g, key, num_envs, num_samples, family="linear_gaussian", regime=regime, names=names)
        return np.asarray(x), nx.to_numpy_array(g, nodelist=names, weight=None).astype(int), names
    raise DataError(f"unknown model {model!r}; choose 'bivariate', 'binary' or 'icm'")
