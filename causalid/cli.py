"""The ``causalid`` command.

    causalid discover FILE --env-col COL [--method cdf|bayes] [--transform log] --out result.json [--plot graph.png]
    causalid discover --example sachs [--method ...] [--out ...] [--plot ...]
    causalid simulate {bivariate,binary,icm} --envs E --samples N --out data.csv [--seed S]

User errors print one line (``causalid: error: ...``) and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="causalid", description="Causal identification from multi-environment data.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("discover", help="recover a causal graph from a CSV/Parquet file with an environment column")
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

    s = sub.add_parser("simulate", help="write a simulated multi-environment data set (CSV with an 'env' column)")
    s.add_argument("model", choices=["bivariate", "binary", "icm"],
                   help="bivariate: science.md's continuous reference; binary: the multivariate binary reference; "
                        "icm: linear-Gaussian ICM on a random DAG")
    s.add_argument("--envs", type=int, default=200, help="number of environments")
    s.add_argument("--samples", type=int, default=2, help="samples per environment")
    s.add_argument("--vars", type=int, default=3, help="number of variables (binary, icm)")
    s.add_argument("--regime", choices=["both", "cause", "mechanism"], default="both")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="CSV file to write; the true graph goes to <out>.truth.csv")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from causalid.errors import CausalIDError

    try:
        if args.command == "discover":
            return _discover(args)
        return _simulate(args)
    except CausalIDError as exc:
        print(f"causalid: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"causalid: error: {exc.strerror}: '{exc.filename}'", file=sys.stderr)
        return 2


def _read_truth(spec: str, names):
    import networkx as nx
    import pandas as pd

    from causalid.datasets import SACHS_GRAPHS, sachs_graph
    from causalid.errors import DataError

    if spec in SACHS_GRAPHS:
        return sachs_graph(spec)
    path = Path(spec)
    if not path.exists():
        raise DataError(f"--truth '{spec}' is neither a file nor a Sachs graph name ({', '.join(SACHS_GRAPHS)})")
    table = pd.read_csv(path)
    if not {"cause", "effect"} <= set(table.columns):
        raise DataError(f"--truth file '{spec}' needs columns 'cause' and 'effect'")
    g = nx.DiGraph()
    g.add_nodes_from(names)
    g.add_edges_from(zip(table["cause"].astype(str), table["effect"].astype(str)))
    return g


def _discover(args) -> int:
    import causalid
    from causalid.errors import DataError

    if args.example and args.file:
        raise DataError("give either FILE or --example, not both")
    if args.example == "sachs":
        from causalid.datasets import load_sachs

        data = load_sachs(transform=args.transform or "log")
        method = args.method or "bayes"
        truth_spec = args.truth or "bnlearn17"
    elif args.file:
        data = causalid.load(args.file, env=args.env_col or "condition", variables=args.variables,
                             transform=args.transform)
        method = args.method or "cdf"
        truth_spec = args.truth
    else:
        raise DataError("give a data FILE (with --env-col) or --example sachs")
    if not args.quiet:
        print(f"data: {data}", file=sys.stderr)
    result = causalid.discover(data, method=method, alpha=args.alpha, ci_test=args.ci_test,
                               correction=args.correction, seed=args.seed, progress=not args.quiet)
    print(result.summary())
    truth = _read_truth(truth_spec, data.names) if truth_spec else None
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
        result.plot(args.plot, truth=truth)
        print(f"wrote {args.plot}")
    return 0


def _simulate(args) -> int:
    import numpy as np
    import pandas as pd

    from causalid.errors import DataError
    from causalid.simulate import simulate_dataset

    if args.envs < 1 or args.samples < 1:
        raise DataError("--envs and --samples must be positive")
    x, adjacency, names = simulate_dataset(args.model, num_envs=args.envs, num_samples=args.samples,
                                           num_vars=args.vars, regime=args.regime, seed=args.seed)
    E, N, d = x.shape
    table = pd.DataFrame(x.reshape(E * N, d), columns=names)
    table.insert(0, "env", np.repeat(np.arange(E), N))
    out = Path(args.out)
    table.to_csv(out, index=False)
    src, dst = np.nonzero(adjacency)
    truth_path = out.with_name(out.name + ".truth.csv")
    pd.DataFrame({"cause": [names[i] for i in src], "effect": [names[j] for j in dst]}).to_csv(truth_path, index=False)
    print(json.dumps({"data": str(out), "truth": str(truth_path), "envs": E, "samples": N, "vars": names}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
