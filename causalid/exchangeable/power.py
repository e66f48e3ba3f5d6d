r"""Power analysis for exchangeable multi-environment data (Guo et al. 2023; Reizinger et al. 2025).

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

``"bivariate"``  Guo et al. 2023's continuous reference (X, Y; truth uniform over X→Y, Y→X
                 and no edge); ``regime`` chooses which mechanisms vary across environments
                 ("both", "cause", "mechanism").  Replicates come from one vmapped program.
``"binary"``     the multivariate binary reference on ``num_vars`` nodes (vmapped).
``"icm"``        the linear-Gaussian exchangeable ICM model on a random DAG of ``num_vars``
                 nodes (one draw per replicate), or on the user's hypothesised ``graph``
                 (vmapped).

Which mechanism to vary, or which variable to intervene on: ``regime`` may list several
candidates — "both", "cause" (only the root mechanisms vary across environments, the others
are shared), "mechanism" (only the non-root mechanisms vary) and, with a ``graph``, sets of
nodes ("intervene on these": only their mechanisms vary).  Every candidate is simulated and
scored on the same grid; the table has one block per candidate, and the recommendation is the
candidate whose first setting to reach the target needs the fewest samples in total (then
fewer environments, then the higher accuracy).

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

from causalid._checks import positive_int
from causalid._plotting import figure_grid
from causalid._progress import show_progress
from causalid._random import int_seed, key_or_seed
from causalid._results import Result
from causalid._x64 import float64
from causalid.errors import DataError
from causalid.exchangeable.discover import discover_batch
from causalid.exchangeable.metrics import normalized_shd, shd
from causalid.exchangeable.simulate import random_dag
from causalid.models import exchangeable as ex

__all__ = ["PowerAnalysis", "power_analysis"]

_MODELS = ("bivariate", "binary", "icm")


@dataclass
class PowerAnalysis(Result):
    """The outcome of :func:`power_analysis`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (regime, num_envs, num_samples): ``replicates``, ``accuracy`` (proportion of
        exactly recovered graphs), ``ci_low``/``ci_high`` (95 % Wilson interval),
        ``mean_shd``, ``mean_normalized_shd``, ``reached`` and ``seconds`` (the engine's time
        for the setting, including its compilation for a new number of environments).
    first : dict or None
        The first setting (fewest samples in total, over all candidate regimes) that reaches
        the target, as a row of ``table``; None when none does.
    target : float
    settings : dict
    """

    table: pd.DataFrame
    first: dict | None
    target: float
    settings: dict = field(default_factory=dict)

    @property
    def by_regime(self) -> dict:
        """``{regime label: first row reaching the target, or None}`` for every candidate."""
        labels = self.settings.get("regime") or list(pd.unique(self.table["regime"]))
        return {label: _first(self.table[self.table["regime"] == label]) for label in labels}

    @property
    def best_regime(self) -> str | None:
        """The recommended candidate (the regime of :attr:`first`); None when none reached the target."""
        return None if self.first is None else self.first["regime"]

    def summary(self) -> str:
        s = self.settings
        labels = s.get("regime") or []
        head = (f"Power analysis of causal de Finetti ('{s.get('model')}' data, regime "
                f"{', '.join(repr(r) for r in labels)}, {s.get('replicates')} replicates per setting, "
                f"alpha {s.get('alpha')}): target accuracy {self.target:g}"
                + (" (Wilson lower bound)" if s.get("conservative") else ""))
        body = self.table.to_string(index=False, float_format=lambda x: f"{x:.3g}")
        if self.first is None:
            tail = "no setting reached the target; try more environments or samples per environment"
        else:
            tail = (f"first to reach it: {self.first['num_envs']} environments x {self.first['num_samples']} "
                    f"samples (accuracy {self.first['accuracy']:.2f}, 95% CI {self.first['ci_low']:.2f}–"
                    f"{self.first['ci_high']:.2f})")
            if len(labels) > 1:
                tail += f" with {_describe(self.first['regime'])}"
                f = self.first
                close, by_regime = [], self.by_regime
                for label in labels:
                    row = by_regime.get(label)
                    tail += (f"\n  {label}: " + ("does not reach the target on this grid" if row is None else
                             f"{row['num_envs']} x {row['num_samples']} (accuracy {row['accuracy']:.2f})"))
                    if (row is not None and label != f["regime"] and row["num_envs"] == f["num_envs"]
                            and row["num_samples"] == f["num_samples"] and row["ci_high"] >= f["ci_low"]):
                        close.append(label)
                if close:
                    tail += (f"\n  {', '.join(close)} reach(es) the target at the same setting with an overlapping "
                             "95% interval: the choice is not clear-cut; raise replicates or refine the grid")
        return f"{head}\n{body}\n{tail}"

    def to_frame(self) -> pd.DataFrame:
        """One row per (regime, num_envs, num_samples): :attr:`table`."""
        return self.table

    # ------------------------------------------------------------------ persistence
    LEGACY_FORMATS = ("causalid.power_analysis/1",)
    REQUIRED = ("table", "target")

    def _to_payload(self) -> dict:
        return {"table": self.table.to_dict(orient="list"), "first": self.first, "target": self.target,
                "settings": self.settings}

    @classmethod
    def _from_payload(cls, d: dict) -> PowerAnalysis:
        return cls(table=pd.DataFrame(d["table"]), first=d.get("first"), target=float(d["target"]),
                   settings=dict(d.get("settings") or {}))

    def _plot(self, ax=None):
        """Accuracy (with its 95 % interval) against environments, one line per candidate and
        number of samples, with the target."""
        fig, grid = figure_grid(ax, 1, 1, (6, 4))
        ax = fig.add_subplot(grid[0, 0])
        t = self.table
        for (regime, N), g in t.groupby(["regime", "num_samples"], sort=False):
            g = g.sort_values("num_envs")
            label = f"{regime}, N = {N}" if t["num_samples"].nunique() > 1 else str(regime)
            line, = ax.plot(g["num_envs"], g["accuracy"], marker="o", label=label)
            ax.fill_between(g["num_envs"], g["ci_low"], g["ci_high"], color=line.get_color(), alpha=0.15)
        ax.axhline(self.target, color="k", ls="--", lw=1, label=f"target {self.target:g}")
        ax.set_xlabel("environments E")
        ax.set_ylabel("proportion of exactly recovered graphs")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"power analysis ({self.settings.get('model')}, "
                     f"{self.settings.get('replicates')} replicates per setting)")
        ax.legend(fontsize="small")
        return fig


def _wilson(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


_REGIMES = ("both", "cause", "mechanism")


def _describe(label: str) -> str:
    """Plain words for a candidate's label."""
    if label == "both":
        return "every mechanism varying across environments"
    if label == "cause":
        return "only the root (cause) mechanisms varying"
    if label == "mechanism":
        return "only the non-root mechanisms varying"
    return f"{label} (only those mechanisms varying)"


def _candidates(regime, model: str, graph) -> list[tuple[str, str | frozenset]]:
    """``[(label, regime for the generator)]``: one candidate or several, checked."""
    items = [regime] if isinstance(regime, str) else list(regime)
    if not items:
        raise DataError("regime: give at least one candidate")
    out = []
    for item in items:
        if isinstance(item, str):
            if item not in _REGIMES:
                raise DataError(f"unknown regime {item!r}; choose 'both', 'cause' or 'mechanism', or (with a "
                                "graph) a set of nodes to intervene on")
            if model == "binary" and item != "both":
                raise DataError(f"regime={item!r}: the binary reference varies every mechanism across "
                                "environments; choosing which mechanisms vary is available for model='bivariate' "
                                "or 'icm'")
            out.append((item, item))
            continue
        nodes = frozenset(str(v) for v in item)
        if graph is None:
            raise DataError(f"regime {sorted(nodes)}: a set of nodes to intervene on needs model='icm' and a "
                            "graph (the hypothesised DAG)")
        unknown = sorted(nodes - {str(v) for v in graph.nodes})
        if not nodes:
            raise DataError("regime: an empty set of nodes to intervene on; name at least one node")
        if unknown:
            raise DataError(f"regime {sorted(nodes)}: node(s) {unknown} are not in the graph "
                            f"(nodes: {sorted(str(v) for v in graph.nodes)})")
        out.append(("intervene on " + ", ".join(sorted(nodes)), nodes))
    labels = [label for label, _ in out]
    if len(set(labels)) < len(labels):
        raise DataError(f"regime lists a candidate twice: {labels}")
    return out


def _check_graph(graph, model: str):
    import networkx as nx

    if graph is None:
        return None
    if model != "icm":
        raise DataError(f"graph is used by model='icm' only; got model={model!r}")
    if not isinstance(graph, nx.DiGraph) or not nx.is_directed_acyclic_graph(graph):
        raise DataError("graph must be a networkx.DiGraph without cycles (the hypothesised DAG)")
    if graph.number_of_nodes() < 2:
        raise DataError("graph needs at least 2 nodes")
    return nx.relabel_nodes(graph, {v: str(v) for v in graph.nodes})


def _simulate(model: str, key, E: int, N: int, R: int, regime, num_vars: int, graph=None):
    """R replicate data sets (R, E, N, d) and their true adjacency matrices (R, d, d)."""
    keys = jax.random.split(key, R)
    if graph is not None:  # the user's DAG: one vmapped program for all replicates
        import networkx as nx

        names = list(graph.nodes)
        x = jax.vmap(lambda k: ex.simulate(graph, k, E, N, family="linear_gaussian", regime=regime,
                                           names=names)[0])(keys)
        adj = nx.to_numpy_array(graph, nodelist=names, weight=None).astype(int)
        return np.asarray(x), np.broadcast_to(adj, (R, *adj.shape)).copy()
    if model == "bivariate":
        x, label = jax.vmap(lambda k: ex.scm_bivariate_continuous(k, E, N, regime=regime))(keys)
        return np.asarray(x), ex.bivariate_adjacency(label)
    if model == "binary":
        x, adj = jax.vmap(lambda k: ex.scm_multivariate_binary(k, E, N, num_vars))(keys)
        return np.asarray(x), np.asarray(adj, dtype=int)
    import networkx as nx

    xs, adjs = [], []
    for r in range(R):
        seed = int(jax.random.randint(keys[r], (), 0, 2**31 - 1))
        g = random_dag(num_vars, key=seed)
        names = list(g.nodes)
        x, _ = ex.simulate(g, keys[r], E, N, family="linear_gaussian", regime=regime, names=names)
        xs.append(np.asarray(x))
        adjs.append(nx.to_numpy_array(g, nodelist=names, weight=None).astype(int))
    return np.stack(xs), np.stack(adjs)


@float64
def power_analysis(
    model: str = "bivariate",
    envs=(50, 100, 200),
    samples=(2,),
    *,
    target: float = 0.8,
    replicates: int = 20,
    alpha: float = 0.05,
    regime="both",
    graph=None,
    num_vars: int = 3,
    ci_test: str | None = None,
    conservative: bool = False,
    key=None,
    progress: bool | None = None,
    seed=None,
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
    regime : {"both", "cause", "mechanism"}, or a list of candidates
        Which mechanisms vary across environments (bivariate and icm generators).  A list
        compares candidates: regime names and, with ``graph``, collections of node names to
        intervene on (only their mechanisms vary), e.g. ``[{"X"}, {"Y"}]``.
    graph : networkx.DiGraph, optional
        With ``model="icm"``: the hypothesised DAG to simulate (instead of random DAGs).
    num_vars : int
        Variables of the binary and icm generators (random DAGs).
    conservative : bool
        Decide "reached" by the lower end of the 95 % Wilson interval instead of the
        estimate.
    key : int or PRNG key
        Randomness of the simulations and the tests (default 0); ``seed=`` is its deprecated
        alias.
    progress : bool or None
        (None, the default: shown when someone watches, see :mod:`causalid._progress`.)
        Print one line per setting.

    Returns
    -------
    PowerAnalysis

    Examples
    --------
    >>> from causalid.design import power_analysis
    >>> pa = power_analysis("bivariate", envs=(40,), replicates=4, target=0.5)
    >>> list(pa.table.columns[:5])
    ['regime', 'num_envs', 'num_samples', 'replicates', 'accuracy']
    """
    progress = show_progress(progress)
    if model not in _MODELS:
        raise DataError(f"unknown model {model!r}; choose one of {list(_MODELS)}")
    graph = _check_graph(graph, model)
    candidates = _candidates(regime, model, graph)
    if not (0 < float(target) <= 1):
        raise DataError(f"target={target}: give a proportion in (0, 1]")
    R = positive_int(replicates, "replicates")
    try:
        env_grid = sorted({positive_int(e, "envs") for e in envs})
        sample_grid = sorted({positive_int(n, "samples") for n in samples})
    except TypeError:
        raise DataError("envs and samples must be sequences of positive integers") from None
    if not env_grid or not sample_grid:
        raise DataError("envs and samples must each hold at least one value")
    if sample_grid[0] < 2:
        raise DataError("the causal de Finetti tests need at least 2 samples per environment; "
                        f"got samples={list(sample_grid)}")
    if model != "bivariate" and graph is None:
        num_vars = positive_int(num_vars, "num_vars")
        if num_vars < 2:
            raise DataError("num_vars must be at least 2")
    seed = int_seed(key_or_seed(key, seed, "power_analysis"))
    key = jax.random.PRNGKey(seed)
    rows, t_sim = [], 0.0
    for label, gen_regime in candidates:
        t0 = time.perf_counter()
        x_all, truth = _simulate(model, key, env_grid[-1], sample_grid[-1], R, gen_regime, num_vars, graph=graph)
        t_sim += time.perf_counter() - t0
        for E, N in itertools.product(env_grid, sample_grid):
            t0 = time.perf_counter()
            x = np.ascontiguousarray(x_all[:, :E, :N])
            results = discover_batch(x, method="cdf", alpha=alpha, ci_test=ci_test, key=int(seed))
            est = [np.asarray(r.adjacency(), dtype=int) for r in results]
            exact = sum(int(np.array_equal(a, b)) for a, b in zip(est, truth))
            lo, hi = _wilson(exact, R)
            rows.append({"regime": label, "num_envs": E, "num_samples": N, "replicates": R, "accuracy": exact / R,
                         "ci_low": lo, "ci_high": hi,
                         "mean_shd": float(np.mean([shd(a, b) for a, b in zip(est, truth)])),
                         "mean_normalized_shd": float(np.mean([normalized_shd(a, b) for a, b in zip(est, truth)])),
                         "seconds": time.perf_counter() - t0})
            if progress:
                r = rows[-1]
                print(f"{label}: E={E} N={N}: accuracy {r['accuracy']:.2f} [{lo:.2f}, {hi:.2f}] "
                      f"({r['seconds']:.1f} s)")
    table = pd.DataFrame(rows)
    table["reached"] = (table["ci_low"] if conservative else table["accuracy"]) >= float(target)
    first = _first(table)
    settings = {"model": model, "regime": [label for label, _ in candidates], "replicates": R,
                "alpha": float(alpha), "ci_test": ci_test,
                "num_vars": None if model == "bivariate" else (graph.number_of_nodes() if graph is not None
                                                               else num_vars),
                "graph": None if graph is None else [list(e) for e in graph.edges],
                "conservative": bool(conservative), "seed": int(seed), "simulation_seconds": t_sim}
    return PowerAnalysis(table=table, first=first, target=float(target), settings=settings)


def _first(table: pd.DataFrame) -> dict | None:
    """The reached row with the fewest samples in total, then fewer environments, then higher accuracy."""
    order = table.assign(total=table["num_envs"] * table["num_samples"], neg=-table["accuracy"]).sort_values(
        ["total", "num_envs", "neg"], kind="stable")
    hits = order[order["reached"]]
    if hits.empty:
        return None
    return {k: (v.item() if hasattr(v, "item") else v)
            for k, v in hits.drop(columns=["total", "neg"]).iloc[0].to_dict().items()}
