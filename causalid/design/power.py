r"""Power analysis for exchangeable multi-environment data (science.md §1, §4).

How many environments E, and samples N per environment, does the causal de Finetti engine
(``causalid.discover(data, method="cdf")``) need to recover the causal structure with a
target probability?  :func:`power_analysis` answers by simulation.  It draws ``replicates``
data sets from a reference generator (a fresh truth each time) at the largest E and N of
the grid; every setting (E, N) uses the first E environments and first N samples of each
(environments and samples are i.i.d. given the truth, so these are draws of the smaller
design, and the settings share their random numbers, which sharpens comparisons between
them).  The engine runs on all replicates of a setting in one vectorised call
(:func:`causalid.discover_batch`); the table reports the proportion of exactly recovered
graphs with a 95 % Wilson interval, the mean structural Hamming distance (SHD) and the mean
normalised SHD.  (In the bivariate reference, exactly half of the E_max environments carry
the nonlinear term; a subset carries about half.)  The engine compiles once per number of
environments, which dominates the run time of a small grid.

Generators (``model``):

``"bivariate"``  science.md §1.4's continuous reference (X, Y; truth uniform over X→Y, Y→X
                 and no edge); ``regime`` chooses which mechanisms vary across environments
                 ("both", "cause", "mechanism").  Replicates come from one vmapped program.
``"binary"``     the multivariate binary reference on ``num_vars`` nodes (vmapped).
``"icm"``        the linear-Gaussian exchangeable ICM model on a random DAG of ``num_vars``
                 nodes (one draw per replicate).

The first setting to reach the target is the one with the fewest samples in total (E·N,
then fewer environments) whose accuracy — or, with ``conservative=True``, the lower end of
its Wilson interval — is at least ``target``.  Defaults are deliberately small (a handful of
settings, 20 replicates) so that a first answer takes seconds; with 20 replicates the
interval is about ±0.2 wide, so raise ``replicates`` before trusting a close call.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

import jax
import numpy as np
import pandas as pd

from causalid.errors import DataError

__all__ = ["PowerAnalysis", "power_analysis"]

_MODELS = ("bivariate", "binary", "icm")


@dataclass
class PowerAnalysis:
    """The outcome of :func:`power_analysis`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (num_envs, num_samples): ``replicates``, ``accuracy`` (proportion of
        exactly recovered graphs), ``ci_low``/``ci_high`` (95 % Wilson interval),
        ``mean_shd``, ``mean_normalized_shd``, ``reached`` and ``seconds`` (the engine's time
        for the setting, including its compilation for a new number of environments).
    first : dict or None
        The first setting (fewest samples in total) that reaches the target, as a row of
        ``table``; None when none does.
    target : float
    settings : dict
    """

    table: pd.DataFrame
    first: dict | None
    target: float
    settings: dict = field(default_factory=dict)

    def summary(self) -> str:
        s = self.settings
        head = (f"Power analysis of causal de Finetti ('{s.get('model')}' data, regime '{s.get('regime')}', "
                f"{s.get('replicates')} replicates per setting, alpha {s.get('alpha')}): target accuracy "
                f"{self.target:g}" + (" (Wilson lower bound)" if s.get("conservative") else ""))
        body = self.table.to_string(index=False, float_format=lambda x: f"{x:.3g}")
        if self.first is None:
            tail = "no setting reached the target; try more environments or samples per environment"
        else:
            tail = (f"first to reach it: {self.first['num_envs']} environments x {self.first['num_samples']} "
                    f"samples (accuracy {self.first['accuracy']:.2f}, 95% CI {self.first['ci_low']:.2f}–"
                    f"{self.first['ci_high']:.2f})")
        return f"{head}\n{body}\n{tail}"

    def __str__(self) -> str:
        return self.summary()


def _wilson(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def _simulate(model: str, key, E: int, N: int, R: int, regime: str, num_vars: int):
    """R replicate data sets (R, E, N, d) and their true adjacency matrices (R, d, d)."""
    from causalid.models import exchangeable as ex

    keys = jax.random.split(key, R)
    if model == "bivariate":
        x, label = jax.vmap(lambda k: ex.scm_bivariate_continuous(k, E, N, regime=regime))(keys)
        label = np.asarray(label)
        adj = np.zeros((R, 2, 2), dtype=int)
        adj[label == 0, 0, 1] = 1
        adj[label == 1, 1, 0] = 1
        return np.asarray(x), adj
    if model == "binary":
        x, adj = jax.vmap(lambda k: ex.scm_multivariate_binary(k, E, N, num_vars))(keys)
        return np.asarray(x), np.asarray(adj, dtype=int)
    import networkx as nx

    from causalid.simulate import random_dag

    xs, adjs = [], []
    for r in range(R):
        seed = int(jax.random.randint(keys[r], (), 0, 2**31 - 1))
        g = random_dag(num_vars, seed=seed)
        names = list(g.nodes)
        x, _ = ex.simulate(g, keys[r], E, N, family="linear_gaussian", regime=regime, names=names)
        xs.append(np.asarray(x))
        adjs.append(nx.to_numpy_array(g, nodelist=names, weight=None).astype(int))
    return np.stack(xs), np.stack(adjs)


def power_analysis(
    model: str = "bivariate",
    envs=(50, 100, 200),
    samples=(2,),
    *,
    target: float = 0.8,
    replicates: int = 20,
    alpha: float = 0.05,
    regime: str = "both",
    num_vars: int = 3,
    ci_test: str | None = None,
    conservative: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> PowerAnalysis:
    """How many environments and samples per environment reach a target accuracy, by simulation.

    Parameters
    ----------
    model : {"bivariate", "binary", "icm"}
        Reference generator (see the module docstring).
    envs, samples : sequences of int
        Grid of environments E and samples per environment N (N ≥ 2).
    target : float
        Required proportion of exactly recovered graphs, in (0, 1].
    replicates : int
        Data sets per setting.
    alpha, ci_test
        Passed to the causal de Finetti engine.
    regime : {"both", "cause", "mechanism"}
        Which mechanisms vary across environments (bivariate and icm generators).
    num_vars : int
        Variables of the binary and icm generators.
    conservative : bool
        Decide "reached" by the lower end of the 95 % Wilson interval instead of the
        estimate.
    seed : int
    progress : bool
        Print one line per setting.

    Returns
    -------
    PowerAnalysis

    Examples
    --------
    >>> from causalid.design import power_analysis
    >>> pa = power_analysis("bivariate", envs=(40, 80), replicates=4, target=0.5)
    >>> list(pa.table.columns[:4])
    ['num_envs', 'num_samples', 'replicates', 'accuracy']
    """
    from causalid.design.lti import _positive_int
    from causalid.identify.metrics import normalized_shd, shd
    from causalid.infer.discover import discover_batch

    if model not in _MODELS:
        raise DataError(f"unknown model {model!r}; choose one of {list(_MODELS)}")
    if regime not in ("both", "cause", "mechanism"):
        raise DataError(f"unknown regime {regime!r}; choose 'both', 'cause' or 'mechanism'")
    if model == "binary" and regime != "both":
        raise DataError(f"regime={regime!r}: the binary reference varies every mechanism across environments; "
                        "choosing which mechanisms vary is available for model='bivariate' or 'icm'")
    if not (0 < float(target) <= 1):
        raise DataError(f"target={target}: give a proportion in (0, 1]")
    R = _positive_int(replicates, "replicates")
    try:
        env_grid = sorted({_positive_int(e, "envs") for e in envs})
        sample_grid = sorted({_positive_int(n, "samples") for n in samples})
    except TypeError:
        raise DataError("envs and samples must be sequences of positive integers") from None
    if not env_grid or not sample_grid:
        raise DataError("envs and samples must each hold at least one value")
    if sample_grid[0] < 2:
        raise DataError("the causal de Finetti tests need at least 2 samples per environment; "
                        f"got samples={list(sample_grid)}")
    if model != "bivariate":
        num_vars = _positive_int(num_vars, "num_vars")
        if num_vars < 2:
            raise DataError("num_vars must be at least 2")
    key = jax.random.PRNGKey(int(seed))
    t_sim = time.perf_counter()
    x_all, truth = _simulate(model, key, env_grid[-1], sample_grid[-1], R, regime, num_vars)
    t_sim = time.perf_counter() - t_sim
    rows = []
    for E, N in itertools.product(env_grid, sample_grid):
        t0 = time.perf_counter()
        x = np.ascontiguousarray(x_all[:, :E, :N])
        results = discover_batch(x, method="cdf", alpha=alpha, ci_test=ci_test, seed=int(seed))
        est = [np.asarray(r.adjacency(), dtype=int) for r in results]
        exact = sum(int(np.array_equal(a, b)) for a, b in zip(est, truth))
        lo, hi = _wilson(exact, R)
        rows.append({"num_envs": E, "num_samples": N, "replicates": R, "accuracy": exact / R, "ci_low": lo,
                     "ci_high": hi, "mean_shd": float(np.mean([shd(a, b) for a, b in zip(est, truth)])),
                     "mean_normalized_shd": float(np.mean([normalized_shd(a, b) for a, b in zip(est, truth)])),
                     "seconds": time.perf_counter() - t0})
        if progress:
            r = rows[-1]
            print(f"E={E} N={N}: accuracy {r['accuracy']:.2f} [{lo:.2f}, {hi:.2f}] ({r['seconds']:.1f} s)")
    table = pd.DataFrame(rows)
    table["reached"] = (table["ci_low"] if conservative else table["accuracy"]) >= float(target)
    order = table.assign(total=table["num_envs"] * table["num_samples"]).sort_values(["total", "num_envs"],
                                                                                     kind="stable")
    hits = order[order["reached"]]
    first = None if hits.empty else {k: (v.item() if hasattr(v, "item") else v)
                                     for k, v in hits.drop(columns="total").iloc[0].to_dict().items()}
    settings = {"model": model, "regime": regime, "replicates": R, "alpha": float(alpha), "ci_test": ci_test,
                "num_vars": None if model == "bivariate" else num_vars, "conservative": bool(conservative),
                "seed": int(seed), "simulation_seconds": t_sim}
    return PowerAnalysis(table=table, first=first, target=float(target), settings=settings)
