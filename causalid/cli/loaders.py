"""File loaders shared by the commands: data tables with their input laws, true graphs and systems.

Each raises :class:`~causalid.DataError` with one line that names the file and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

from causalid._io import read_table
from causalid.datasets import SACHS_GRAPHS, sachs_graph
from causalid.dynamics.system import LTISystem
from causalid.errors import DataError
from causalid.exchangeable.result import StructureResult
from causalid.lti.data import LTIData

__all__ = ["attach_input_law", "lti_data_from_file", "read_system", "read_truth"]


def read_truth(spec: str, names, option: str = "--truth"):
    """A DAG from a Sachs graph name, an edge-list table (columns ``cause``, ``effect``) or a
    saved :class:`~causalid.StructureResult` (``.json``); with ``names`` (the data's variables)
    every node must be one of them."""
    if spec in SACHS_GRAPHS:
        return sachs_graph(spec)
    path = Path(spec)
    if not path.exists():
        raise DataError(f"{option} '{spec}' is neither a file nor a Sachs graph name ({', '.join(SACHS_GRAPHS)})")
    if path.suffix.lower() == ".json":
        g = StructureResult.load(path).graph.copy()
    else:
        table = read_table(path)
        if not {"cause", "effect"} <= set(table.columns):
            raise DataError(f"{option} file '{spec}' needs columns 'cause' and 'effect'; it has {list(table.columns)}")
        g = nx.DiGraph()
        g.add_edges_from(zip(table["cause"].astype(str), table["effect"].astype(str)))
    if names:
        unknown = sorted(set(g.nodes) - set(names))
        if unknown:
            raise DataError(f"{option} '{spec}' names {unknown}, which are not variables of the data {list(names)}")
        g.add_nodes_from(names)
    if not nx.is_directed_acyclic_graph(g):
        loop = nx.find_cycle(g)
        cycle = " -> ".join(str(n) for n in [e[0] for e in loop] + [loop[0][0]])
        raise DataError(f"{option} '{spec}' is not acyclic (cycle {cycle}); give a DAG")
    return g


def attach_input_law(data, law_path: str, env_col: str, input_names):
    """``data`` (outputs only) with the designed input laws of ``law_path`` attached, by environment."""
    law = read_table(law_path)
    if env_col not in law.columns:
        raise DataError(f"input law '{law_path}' needs the environment column '{env_col}' (as in --env-col); "
                        f"it has columns {list(map(str, law.columns))}")
    labels = law[env_col].astype(str)
    dup = sorted(set(labels[labels.duplicated()]))
    if dup:
        raise DataError(f"input law '{law_path}' has several rows for environment(s) {dup}; give one row each")
    if input_names:
        names = [str(n) for n in input_names]
    else:
        names = [str(c)[4:] for c in law.columns if str(c).startswith("var_")]
        if not names:
            raise DataError(f"input law '{law_path}' has no var_<input> columns; add one per designed input "
                            "(and mean_<input> when the means are known)")
    missing = [f"var_{n}" for n in names if f"var_{n}" not in law.columns]
    if missing:
        raise DataError(f"input law '{law_path}' lacks column(s) {missing}")
    has_mean = [f"mean_{n}" in law.columns for n in names]
    if any(has_mean) and not all(has_mean):
        absent = [f"mean_{n}" for n, h in zip(names, has_mean) if not h]
        raise DataError(f"input law '{law_path}' lacks column(s) {absent}; give the mean of every input or of none "
                        "(unknown means)")
    absent_envs = [e for e in data.env_names if e not in set(labels)]
    if absent_envs:
        raise DataError(f"input law '{law_path}' has no row for environment(s) {absent_envs} of the data; "
                        f"it covers {sorted(set(labels))}")
    rows = law.set_index(labels).loc[list(data.env_names)]

    def column(name):
        values = pd.to_numeric(rows[name], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            raise DataError(f"input law '{law_path}': column '{name}' is empty or not a number for environment "
                            f"'{data.env_names[int(np.flatnonzero(bad)[0])]}'")
        return values

    var = np.column_stack([column(f"var_{n}") for n in names])
    mean = np.column_stack([column(f"mean_{n}") for n in names]) if all(has_mean) else None
    y = [[data.y[e, i, : data.lengths[e, i]] for i in range(data.num_trajectories)] for e in range(data.num_envs)]
    return LTIData.from_arrays(y, input_mean=mean, input_var=var, dt=data.dt, output_names=data.output_names,
                               input_names=names, env_names=data.env_names)


def lti_data_from_file(args):
    if args.inputs and args.input_law:
        raise DataError("give either measured inputs (--inputs) or designed input laws (--input-law), not both")
    if args.input_names and not args.input_law:
        raise DataError("--input-names names the inputs of --input-law; for measured inputs use --inputs")
    if not args.inputs and not args.input_law:
        raise DataError("say how the inputs entered: measured input columns with --inputs, or a table of "
                        "designed input laws (one row per environment) with --input-law")
    if args.input_law and not args.env_col:
        raise DataError("--input-law matches its rows to environments: give the environment column with --env-col")
    table = read_table(args.file)
    data = LTIData.from_frame(table, env=args.env_col, time=args.time_col, outputs=args.outputs,
                              inputs=args.inputs, trajectory=args.trajectory_col, dt=args.dt)
    if args.input_law:
        data = attach_input_law(data, args.input_law, args.env_col, args.input_names)
    return data


def read_system(path: str):
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read a system from --truth '{path}': {exc}") from None
    if not isinstance(d, dict) or not all(k in d for k in "ABC"):
        raise DataError(f"--truth '{path}' is not a system (a JSON object with A, B, C as written by "
                        "'causalid simulate lti')")
    return LTISystem.from_dict(d)
