"""The result of a structure search: graph, edge scores, settings, save/load and a plot."""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import pandas as pd

from causalid._results import Result
from causalid.errors import DataError
from causalid.exchangeable.metrics import structure_metrics
from causalid.exchangeable.plots import plot_graph


@dataclass
class StructureResult(Result):
    """A causal graph recovered from multi-environment data.

    Attributes
    ----------
    graph : networkx.DiGraph
        The estimated DAG over the variable names (edge attribute ``score``).
    edges : pandas.DataFrame
        One row per scored ordered pair ``source -> target``: for ``method="cdf"`` the
        p-values of the tests behind each decision (``test``, ``pvalue``, ``adjusted``,
        ``conditioning``); for ``method="bayes"`` the posterior edge probability.  Built on
        first access from ``records`` (so that thousands of results stay cheap).
    method : str
        ``"cdf"`` or ``"bayes"``.
    settings : dict
        Every option the engine ran with (alpha, CI test, seeds, ...).
    names : list of str
        Variable names, in the data's column order.
    layers : list of list of str, optional
        Sink layers (first = sinks) found by the multivariate causal de Finetti algorithm.
    mechanisms : pandas.DataFrame, optional
        Regime diagnostic: for every variable, the p-value of "its mechanism is shared by
        all environments" and the verdict ``varies``.
    changes : pandas.DataFrame, optional
        Mechanism-change verdict of ``method="bayes"`` on few large environments or with
        intervention targets: one row per (``environment``, ``variable``) with the posterior
        ``probability`` that its mechanism differs from the shared one, ``changed``
        (probability > 0.5) and the ``prior`` probability (1 for an assumed target).
    info : dict
        Engine-specific extras (MCMC diagnostics, top DAGs, ...), JSON-serialisable.
    """

    graph: nx.DiGraph
    records: list[dict] = field(repr=False)
    method: str
    settings: dict
    names: list[str]
    layers: list[list[str]] | None = None
    mechanisms: pd.DataFrame | None = None
    info: dict = field(default_factory=dict)
    changes: pd.DataFrame | None = None

    # ------------------------------------------------------------------ views
    @property
    def edges(self) -> pd.DataFrame:
        if not hasattr(self, "_edges"):
            self._edges = pd.DataFrame.from_records(self.records)
        return self._edges

    def adjacency(self) -> np.ndarray:
        """0/1 matrix ``A[i, j] = 1`` for ``names[i] -> names[j]``."""
        return nx.to_numpy_array(self.graph, nodelist=self.names, weight=None).astype(int)

    @property
    def regime(self) -> str | None:
        """For two variables with an edge: ``both``, ``cause``, ``mechanism`` or ``neither``.

        Which mechanisms vary across environments (Guo et al. 2023; Reizinger et al. 2025): cause-only
        variability leaves the effect's mechanism shared, mechanism-only leaves the cause's.
        """
        if self.mechanisms is None or len(self.names) != 2 or self.graph.number_of_edges() != 1:
            return None
        (cause, effect), = self.graph.edges
        v = {k: _verdict(x) for k, x in self.mechanisms.set_index("variable")["varies"].items()}
        if None in (v[cause], v[effect]):
            return None
        return {(True, True): "both", (True, False): "cause", (False, True): "mechanism",
                (False, False): "neither"}[(bool(v[cause]), bool(v[effect]))]

    def compare(self, truth) -> dict[str, float]:
        """SHD, normalised SHD, precision, recall and direction accuracy against ``truth``."""
        if isinstance(truth, nx.DiGraph):
            unknown = set(truth.nodes) ^ set(self.names)
            if unknown:
                raise DataError(f"the true graph and the result disagree on nodes {sorted(unknown)}")
            return structure_metrics(self.graph, truth)
        return structure_metrics(self.adjacency(), np.asarray(truth))

    def summary(self) -> str:
        lines = [f"{self.method} structure over {len(self.names)} variables: "
                 f"{self.graph.number_of_edges()} edge(s)"]
        for u, v, s in self.graph.edges(data="score"):
            lines.append(f"  {u} -> {v}" + (f"   ({self.info.get('score_name', 'score')} {s:.3g})" if s is not None else ""))
        if self.layers:
            lines.append("  layers (sinks first): " + " | ".join(", ".join(layer) for layer in self.layers))
        if self.mechanisms is not None:
            verdicts = [(r.variable, _verdict(r.varies)) for r in self.mechanisms.itertuples()]
            varying = [n for n, v in verdicts if v is True]
            unknown = [n for n, v in verdicts if v is None]
            if unknown:
                lines.append(f"  mechanism verdict not computable (NA) for: {unknown}")
            lines.append(f"  mechanisms varying across environments: {varying or 'none'}")
        targets = self.settings.get("targets")
        if targets is not None:
            shown = {e: (t if isinstance(t, str) else (", ".join(t) or "none")) for e, t in targets.items()}
            lines.append("  intervention targets assumed: " + "; ".join(f"{e}: {t}" for e, t in shown.items()))
        if self.changes is not None:
            changed = self.changes[self.changes["changed"] & (self.changes["prior"] < 1)]
            by_env = changed.groupby("environment", sort=False)["variable"].apply(list).to_dict()
            what = "; ".join(f"{e}: {', '.join(v)}" for e, v in by_env.items()) or "none"
            lines.append(f"  mechanism changes found (posterior > 0.5, beyond assumed targets): {what}")
        if self.regime:
            lines.append(f"  regime: {self.regime}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"StructureResult(method={self.method!r}, edges={sorted(self.graph.edges)})"

    def to_frame(self) -> pd.DataFrame:
        """The scored pairs, :attr:`edges`."""
        return self.edges

    # ------------------------------------------------------------------ persistence
    REQUIRED = ("method", "names", "edges_found", "edges")

    def _to_payload(self) -> dict:
        return {
            "method": self.method,
            "names": list(self.names),
            "edges_found": [[u, v, _num(s)] for u, v, s in self.graph.edges(data="score")],
            "edges": self.records,
            "settings": self.settings,
            "layers": self.layers,
            "mechanisms": None if self.mechanisms is None else _records(self.mechanisms),
            "info": self.info,
            "changes": None if self.changes is None else _records(self.changes),
        }

    @classmethod
    def _from_payload(cls, d: dict) -> StructureResult:
        names = d["names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError("'names' must be a list of variable names (strings)")
        if len(set(names)) != len(names):
            raise DataError(f"'names' repeats variable(s) {sorted({n for n in names if names.count(n) > 1})}")
        if not isinstance(d["method"], str):
            raise DataError(f"'method' must be a string, not {type(d['method']).__name__}")
        known = set(names)
        g = nx.DiGraph()
        g.add_nodes_from(names)
        if not isinstance(d["edges_found"], list):
            raise DataError("'edges_found' must be a list of [source, target, score] triples")
        for item in d["edges_found"]:
            if not isinstance(item, list) or len(item) != 3:
                raise DataError(f"edge {item!r} is not a [source, target, score] triple")
            u, v, s = item
            for node in (u, v):
                if node not in known:
                    raise DataError(f"edge {u!r} -> {v!r} names {node!r}, which is not one of the variables {names}")
            g.add_edge(u, v, score=_score(s, f"edge {u} -> {v}", probability=d["method"] == "bayes"))
        if not nx.is_directed_acyclic_graph(g):
            loop = nx.find_cycle(g)
            cycle = " -> ".join(str(n) for n in [e[0] for e in loop] + [loop[0][0]])
            raise DataError(f"the graph is not acyclic (cycle {cycle}); a causalid structure is a DAG")
        records = d["edges"]
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise DataError("'edges' must be a list of records (one object per scored pair)")
        for r in records:
            for col in _PROBABILITY_FIELDS.intersection(r):
                _score(r[col], f"'{col}' of {r.get('source')!r} -> {r.get('target')!r}", probability=True)
        mech = None if d.get("mechanisms") is None else pd.DataFrame(d["mechanisms"])
        changes = None
        if d.get("changes") is not None:
            if not isinstance(d["changes"], list) or not all(isinstance(r, dict) for r in d["changes"]):
                raise DataError("'changes' must be a list of records (environment, variable, probability, ...)")
            for r in d["changes"]:
                _score(r.get("probability"), f"change probability of {r.get('variable')!r} in "
                       f"{r.get('environment')!r}", probability=True)
            changes = pd.DataFrame(d["changes"])
        return cls(graph=g, records=records, method=d["method"], settings=d.get("settings", {}),
                   names=names, layers=d.get("layers"), mechanisms=mech, info=d.get("info", {}),
                   changes=changes)

    # ------------------------------------------------------------------ plot
    def _plot(self, ax=None, truth: nx.DiGraph | None = None):
        """The graph on a circle; with ``truth`` edges coloured as correct / reversed / extra /
        missing."""
        return plot_graph(self.graph, truth=truth, ax=ax,
                          title=f"causalid {self.method}: {self.graph.number_of_edges()} edges")


_PROBABILITY_FIELDS = frozenset({"probability", "pvalue", "adjusted"})


def _score(value, what: str, *, probability: bool):
    """A stored score: None (NaN) or a real number, in [0, 1] when it is a probability."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{what}: score {value!r} is not a number")
    if probability and not (0.0 <= value <= 1.0) and not np.isnan(value):
        raise DataError(f"{what}: {value!r} is not a probability in [0, 1]")
    return value


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready records: NA and NaN become None."""
    obj = frame.astype(object)
    return obj.where(frame.notna(), None).to_dict(orient="records")


def _verdict(v):
    """A stored verdict: True, False, or None when it could not be computed (NA)."""
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    return bool(v)


def _num(s):
    return None if s is None else float(s)
