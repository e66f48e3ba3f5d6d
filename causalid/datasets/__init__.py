"""Data shipped with causalid.

Sachs et al. (2005) flow cytometry: 11 proteins measured in 9 conditions (environments),
7,466 cells, with the literature graphs used as ground truth.  See ``sachs/PROVENANCE.md``
for where every file comes from and its known quirks.

Zucchini & MacDonald's annual counts of major earthquakes, 1900–2006 (:func:`load_earthquakes`),
the standard Poisson hidden Markov model example; see ``earthquakes/PROVENANCE.md``.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import networkx as nx
import pandas as pd

from causalid.errors import DataError
from causalid.exchangeable.data import MultiEnvData, Transform, load

SACHS_VARIABLES = ("Raf", "Mek", "Plcg", "PIP2", "PIP3", "Erk", "Akt", "PKA", "PKC", "P38", "Jnk")
SACHS_GRAPHS = ("bnlearn17", "tetrad20", "cdt18", "gnies_consensus", "gnies_mooij", "gnies_eaton")


def _root() -> Path:
    return Path(str(resources.files("causalid.datasets"))) / "sachs"


def sachs_path() -> Path:
    """Path of the shipped 9-condition CSV (long format, environment column ``condition``)."""
    return _root() / "sachs2005_9conditions_raw.csv"


def verify_sachs() -> None:
    """Check the shipped files against ``MANIFEST.sha256``; raise :class:`DataError` on mismatch."""
    root = _root()
    for line in (root / "MANIFEST.sha256").read_text().splitlines():
        if not line.strip():
            continue
        digest, name = line.split(maxsplit=1)
        got = hashlib.sha256((root / name.strip()).read_bytes()).hexdigest()
        if got != digest:
            raise DataError(f"shipped file '{name.strip()}' is corrupted (sha256 mismatch); reinstall causalid")


def load_sachs(transform: Transform = "log") -> MultiEnvData:
    """The Sachs et al. (2005) data: 9 conditions as environments, 11 proteins.

    ``transform="log"`` (default) takes the natural log of the raw intensities, which are
    strictly positive and heavily right-skewed.
    """
    return load(sachs_path(), env="condition", variables=list(SACHS_VARIABLES), transform=transform)


def sachs_conditions() -> pd.DataFrame:
    """Per-condition description: reagent, nominal intervention target, cell count."""
    return pd.read_csv(_root() / "conditions.csv")


def sachs_targets() -> dict[str, list[str]]:
    """The nominal intervention target of each of the 9 main conditions, from ``conditions.csv``.

    Keys are the environment labels of :func:`load_sachs` (the ``condition`` column), values
    the targeted proteins (empty for the two observational conditions).  Condition
    ``cd3cd28+ly`` inhibits PI3K, which is not measured; its target is taken as PIP3, PI3K's
    product (as in Wang et al. 2017 and the GnIES paper).  The inhibitors act on the activity
    of their target, so the interventions are soft.

    Examples
    --------
    >>> targets = sachs_targets()
    >>> targets["cd3cd28"], targets["cd3cd28+aktinhib"], targets["cd3cd28+ly"]
    ([], ['Akt'], ['PIP3'])
    """
    table = sachs_conditions()
    table = table[table["in_main_9_conditions"].astype(str) == "True"]
    out = {}
    for cond, node in zip(table["condition"], table["nominal_target_node"]):
        node = str(node).split(" ")[0]
        if node != "none" and node not in SACHS_VARIABLES:
            raise DataError(f"conditions.csv names target {node!r} for {cond!r}, which is not a Sachs variable")
        out[str(cond)] = [] if node == "none" else [node]
    return out


def sachs_graph(name: str = "bnlearn17") -> nx.DiGraph:
    """A literature graph over :data:`SACHS_VARIABLES` (cause -> effect).

    ``bnlearn17`` is the 17-edge consensus used by most papers; ``tetrad20`` the 20-edge
    graph; see ``PROVENANCE.md`` for the others.
    """
    table = pd.read_csv(_root() / "ground_truth" / "all_graphs_edgelist.csv")
    known = sorted(table["graph"].unique())
    if name not in known:
        raise DataError(f"unknown Sachs graph '{name}'; choose one of {known}")
    g = nx.DiGraph()
    g.add_nodes_from(SACHS_VARIABLES)
    sub = table[table["graph"] == name]
    g.add_edges_from(zip(sub["cause"], sub["effect"]))
    return g


def load_earthquakes() -> pd.DataFrame:
    """Annual counts of major earthquakes (magnitude 7 and above) worldwide, 1900–2006.

    W. Zucchini & I. L. MacDonald (2009), *Hidden Markov Models for Time Series: An
    Introduction Using R*, Chapman & Hall/CRC, Table 1.1 (2nd ed. with R. Langrock, 2016,
    doi:10.1201/b20790); originally from the USGS National Earthquake Information Center
    (accessed 25 July 2007 — later USGS revisions differ).  The book's fitted 2- and 3-state
    Poisson HMMs (Tables 4.1 and 4.2) are the published reference values of
    ``examples/earthquakes.py``.  ``earthquakes/PROVENANCE.md`` lists the sources checked,
    the reference fits and the known quirks.

    Returns
    -------
    pandas.DataFrame
        107 rows, columns ``year`` (int) and ``count`` (int).

    Examples
    --------
    >>> quakes = load_earthquakes()
    >>> list(quakes.columns), len(quakes), int(quakes["year"].iloc[0])
    (['year', 'count'], 107, 1900)
    """
    with resources.files("causalid.datasets").joinpath("earthquakes/earthquakes.csv").open("r") as f:
        return pd.read_csv(f)
