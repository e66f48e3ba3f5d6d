"""``causalid discover``: a causal graph from a table with an environment column."""

from __future__ import annotations

import sys

from causalid._plotting import pyplot
from causalid.cli.loaders import read_truth
from causalid.datasets import load_sachs
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
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--truth", help="true graph to score against: a Sachs graph name (e.g. bnlearn17) or an edge-list CSV (cause,effect)")
    d.add_argument("--out", help="write the result as JSON")
    d.add_argument("--plot", help="write a picture of the graph (PNG/PDF/SVG)")
    d.add_argument("--quiet", action="store_true", help="no progress display")


def run(args) -> int:
    if args.example and args.file:
        raise DataError("give either FILE or --example, not both")
    if args.example == "sachs":

        data = load_sachs(transform=args.transform or "log")
        method = args.method or "bayes"
        truth_spec = args.truth or "bnlearn17"
    elif args.file:
        data = load(args.file, env=args.env_col or "condition", variables=args.variables,
                             transform=args.transform)
        method = args.method or "cdf"
        truth_spec = args.truth
    else:
        raise DataError("give a data FILE (with --env-col) or --example sachs")
    if not args.quiet:
        print(f"data: {data}", file=sys.stderr)
    truth = read_truth(truth_spec, data.names) if truth_spec else None   # a bad graph fails before the work
    result = discover(data, method=method, alpha=args.alpha, ci_test=args.ci_test,
                               correction=args.correction, key=args.seed, progress=not args.quiet)
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
