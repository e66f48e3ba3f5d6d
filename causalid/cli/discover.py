"""``causalid discover``: a causal graph from a table with an environment column."""

from __future__ import annotations

import sys

import math

from causalid._io import read_table
from causalid._plotting import pyplot
from causalid.cli.loaders import read_truth
from causalid.datasets import load_sachs, sachs_targets
from causalid.errors import DataError
from causalid.exchangeable.data import load
from causalid.exchangeable.discover import discover


def add_parser(subparsers) -> None:
    """Add the sub-command to ``causalid``'s sub-parsers."""
    d = subparsers.add_parser("discover", help="recover a causal graph from a CSV/Parquet file with an environment column")
    d.add_argument("file", nargs="?", help="CSV or Parquet file, one row per sample")
    d.add_argument("--example", choices=["sachs"], help="run on shipped example data instead of FILE")
    d.add_argument("--env-col", default=None, help="column naming the environment of each row (default: condition)")
    d.add_argument("--variables", nargs="+", help="columns to use (default: every numeric column)")
    d.add_argument("--method", choices=["cdf", "bayes"], default=None,
                   help="cdf: causal de Finetti tests; bayes: DAG posterior (default: bayes for --example sachs, else cdf)")
    d.add_argument("--ci-test", choices=["gcm", "kci", "rff", "fisherz", "gtest"], help="CI test of the cdf method")
    d.add_argument("--alpha", type=float, default=0.05, help="significance level of the cdf tests")
    d.add_argument("--correction", choices=["bonferroni", "holm", "bh"], help="multiple-testing control (cdf)")
    d.add_argument("--transform", choices=["log", "log1p", "standardize"], help="transform applied before discovery")
    d.add_argument("--targets", help="intervention targets (bayes): a CSV with the environment column and a "
                   "'targets' column (variable names separated by ';', empty = observational), 'unknown' "
                   "(inferred), or 'none' (the exchangeable model); default for --example sachs: the "
                   "nominal targets of conditions.csv, else none")
    d.add_argument("--intervention", choices=["soft", "perfect"], default="soft",
                   help="with --targets: a changed mechanism keeps its parents (soft) or loses them (perfect)")
    d.add_argument("--off-target", type=float, default=0.0,
                   help="with a targets file: prior probability that a mechanism not named as a target changes")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--truth", help="true graph to score against: a Sachs graph name (e.g. bnlearn17) or an edge-list CSV (cause,effect)")
    d.add_argument("--out", help="write the result as JSON")
    d.add_argument("--plot", help="write a picture of the graph (PNG/PDF/SVG)")
    d.add_argument("--quiet", action="store_true", help="no progress display")


def run(args) -> int:
    if args.example and args.file:
        raise DataError("give either FILE or --example, not both")
    env_col = args.env_col or "condition"
    if args.example == "sachs":

        data = load_sachs(transform=args.transform or "log")
        method = args.method or "bayes"
        truth_spec = args.truth or "bnlearn17"
        default_targets = sachs_targets() if method == "bayes" else None
    elif args.file:
        data = load(args.file, env=env_col, variables=args.variables,
                             transform=args.transform)
        method = args.method or ("bayes" if args.targets not in (None, "none") else "cdf")
        truth_spec = args.truth
        default_targets = None
    else:
        raise DataError("give a data FILE (with --env-col) or --example sachs")
    targets = default_targets if args.targets is None else read_targets(args.targets, env_col)
    if targets is not None and method != "bayes":
        raise DataError(f"--targets is used by --method bayes only; got --method {method}")
    if not args.quiet:
        print(f"data: {data}", file=sys.stderr)
    truth = read_truth(truth_spec, data.names) if truth_spec else None   # a bad graph fails before the work
    options = {} if targets is None else {"targets": targets, "intervention": args.intervention,
                                          "off_target": args.off_target}
    result = discover(data, method=method, alpha=args.alpha, ci_test=args.ci_test,
                      correction=args.correction, key=args.seed, progress=not args.quiet, **options)
    if targets is not None and args.targets is None:
        print("(targets: the nominal targets of conditions.csv; --targets none for the exchangeable model)")
    print(result.summary())
    if truth is not None:
        scores = result.compare(truth)
        result.info["comparison"] = {"truth": truth_spec, **scores}
        print(f"against '{truth_spec}' ({truth.number_of_edges()} edges): " + ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items()))
        if args.example == "sachs":
            print(f"  (the empty graph scores SHD {truth.number_of_edges()})")
    if args.out:
        result.save(args.out)
        print(f"wrote {args.out}")
    if args.plot:
        pyplot().close(result.plot(path=args.plot, truth=truth))
        print(f"wrote {args.plot}")
    return 0


def read_targets(spec: str, env_col: str):
    """``--targets``: ``"unknown"``, ``"none"`` (None) or a CSV file read into
    ``{environment: [variables]}`` (column ``env_col`` and a ``targets`` column, names separated
    by ``;``, an empty cell for an observational environment)."""
    if spec == "unknown":
        return "unknown"
    if spec == "none":
        return None
    table = read_table(spec)
    cols = list(table.columns)
    if env_col not in cols or "targets" not in cols:
        raise DataError(f"targets file '{spec}' needs the environment column '{env_col}' and a 'targets' "
                        f"column; it has {cols}")
    out = {}
    for env, cell in zip(table[env_col], table["targets"]):
        if isinstance(env, float) and math.isnan(env):
            raise DataError(f"targets file '{spec}': a row has no environment in column '{env_col}'")
        label = str(int(env)) if isinstance(env, float) and env.is_integer() else str(env)
        if label in out:
            raise DataError(f"targets file '{spec}' lists environment '{label}' twice; give one row per environment")
        empty = cell is None or (isinstance(cell, float) and math.isnan(cell))
        out[label] = [] if empty else [t.strip() for t in str(cell).split(";") if t.strip()]
    return out
