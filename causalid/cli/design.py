"""``causalid design``: plan experiments from the command line.

    causalid design lti --inputs M --envs E --var-bounds LO HI [--mean-bound B] [--steps T]
                        [--criterion pairwise|cond|moment|d-optimal|eig] [--system prior.json]
                        --out design.json [--law law.csv] [--plot fig.png]
    causalid design next --data data.csv --env-col COL --outputs Y1 Y2 ... --input-law LAW.csv
                         [--result result.json] --var-bounds LO HI [--mean-bound B] [--steps T]
                         [--candidates cands.csv] [--starts S --iters N --draws K] --out next.json
                         [--table shrinkage.csv]
    causalid design intervention FILE --env-col COL --targets TARGETS.csv --candidates CANDS.csv
                                 [--samples 200 500 1000] [--batch B] [--draws N]
                                 [--intervention soft|perfect] [--off-target P] [--out next.json]
                                 [--table ranking.csv] [--plot fig.png]
    causalid design power [--model bivariate|binary|icm] [--envs 50 100 200] [--samples 2]
                          [--regime both cause mechanism] [--graph GRAPH --intervene NODE ...]
                          [--replicates R] [--target 0.8] --out table.csv

:func:`add_parser` adds the sub-commands to the ``causalid`` parser; :func:`run` executes
one.  User errors raise :class:`~causalid.errors.CausalIDError`, which the ``causalid``
command prints as one line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from causalid._io import read_table, write_table
from causalid._plotting import pyplot
from causalid.cli.discover import read_targets
from causalid.cli.loaders import lti_data_from_file, read_truth
from causalid.design.interventions import next_intervention
from causalid.dynamics.system import InputDesign, LTISystem
from causalid.errors import DataError
from causalid.exchangeable.data import load
from causalid.exchangeable.power import power_analysis
from causalid.lti.design import CRITERIA, design_lti
from causalid.lti.result import LTIResult
from causalid.lti.sequential import design_next


def add_parser(subparsers) -> None:
    """Add ``design`` with its sub-commands ``lti``, ``next``, ``intervention`` and ``power``."""
    d = subparsers.add_parser("design", help="plan experiments: LTI input laws, the next environment, power analysis")
    sub = d.add_subparsers(dest="design_command", required=True)

    a = sub.add_parser("lti", help="design the input laws (mean, variance) of E environments for an LTI system")
    a.add_argument("--inputs", type=int, required=True, help="number of input channels m")
    a.add_argument("--envs", type=int, required=True, help="number of environments E (at least m + 1)")
    a.add_argument("--var-bounds", type=float, nargs=2, metavar=("LO", "HI"), default=(1e-2, 1.0),
                   help="bounds of every input variance (default 0.01 1)")
    a.add_argument("--mean-bound", type=float, help="bound on |mean| of every input (default: zero means)")
    a.add_argument("--steps", type=int, help="time steps per environment (weights; scale of the information)")
    a.add_argument("--criterion", choices=list(CRITERIA), default="pairwise",
                   help="pairwise: Pham–Cardoso separability (max-min); cond: sigma_min of the precision changes; "
                        "moment: predicted error of the closed-form engine; d-optimal / eig: Fisher information "
                        "/ expected information gain at a prior system (--system) (default: pairwise)")
    a.add_argument("--system", metavar="PRIOR.json",
                   help="prior system: a JSON with A, B, C (as 'causalid simulate lti' writes to <out>.truth.json) "
                        "or an identification result (causalid identify --out)")
    a.add_argument("--input-names", nargs="+", help="names of the inputs (default u0, u1, ...)")
    a.add_argument("--starts", type=int, default=32, help="random starts of the optimiser (default 32)")
    a.add_argument("--iters", type=int, default=200, help="optimiser steps (default 200)")
    a.add_argument("--rank-margin", type=float, default=0.1,
                   help="hard constraint sigma_min(L) >= margin * (1/LO - 1/HI) (default 0.1)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--out", help="write the design as JSON (load with causalid.Design.load)")
    a.add_argument("--law", metavar="LAW.csv",
                   help="write the laws as a table (env, mean_<input>, var_<input>) for 'causalid identify --input-law'")
    a.add_argument("--plot", help="write a figure of the design (PNG/PDF/SVG)")
    a.add_argument("--quiet", action="store_true", help="print nothing but errors")

    n = sub.add_parser("next", help="propose the next environment's input law by expected information gain")
    n.add_argument("--data", dest="file", required=True, help="CSV or Parquet file, one row per time step")
    n.add_argument("--env-col", required=True, help="column naming the environment of each row")
    n.add_argument("--time-col", help="column with the time of each row")
    n.add_argument("--trajectory-col", help="column naming trajectories inside an environment")
    n.add_argument("--outputs", nargs="+", help="output columns (default: every other numeric column)")
    n.add_argument("--input-law", metavar="LAW.csv", required=True,
                   help="designed input laws of the recorded environments (env column, mean_<input>, var_<input>)")
    n.add_argument("--input-names", nargs="+", help="inputs of --input-law (default: from its var_ columns)")
    n.add_argument("--dt", type=float, help="sampling interval in seconds")
    n.add_argument("--result", metavar="RESULT.json",
                   help="an identification of the data (causalid identify --out); default: fit with 'moment'")
    n.add_argument("--var-bounds", type=float, nargs=2, metavar=("LO", "HI"), default=(1e-2, 1.0),
                   help="bounds of the new environment's variances (default 0.01 1)")
    n.add_argument("--mean-bound", type=float, help="bound on |mean| (default: zero means)")
    n.add_argument("--steps", type=int, default=1000, help="time steps the new environment will record (default 1000)")
    n.add_argument("--candidates", metavar="CANDS.csv",
                   help="score these laws instead of optimising: one row per candidate, var_<input> (and "
                        "mean_<input>) columns")
    n.add_argument("--starts", type=int, default=16, help="random starts of the optimiser (default 16)")
    n.add_argument("--iters", type=int, default=150, help="optimiser steps (default 150)")
    n.add_argument("--draws", type=int, default=16, help="posterior draws of the EIG estimate (default 16)")
    n.add_argument("--seed", type=int, default=0)
    n.add_argument("--out", help="write the proposal as JSON")
    n.add_argument("--table", metavar="TABLE.csv", help="write the per-parameter sd shrinkage table")
    n.add_argument("--quiet", action="store_true", help="print nothing but errors")

    i = sub.add_parser("intervention", help="rank the next intervention experiments by expected information "
                                            "about the causal graph (interventional data)")
    i.add_argument("file", metavar="FILE", help="CSV or Parquet file, one row per sample (cell)")
    i.add_argument("--env-col", required=True, help="column naming the condition (environment) of each row")
    i.add_argument("--variables", nargs="+", help="variable columns (default: every other column)")
    i.add_argument("--transform", choices=["log", "log1p", "standardize"], help="transform of the values")
    i.add_argument("--targets", required=True,
                   help="targets of the recorded conditions: a CSV with the environment column and a 'targets' "
                        "column (names separated by ';', empty = observational), or 'unknown'")
    i.add_argument("--candidates", required=True, metavar="CANDS.csv",
                   help="the candidate experiments: a CSV with columns 'candidate', 'targets' (names separated "
                        "by ';') and optionally 'cost'; or 'single' for one experiment per variable")
    i.add_argument("--samples", type=int, nargs="+",
                   help="sample sizes of the new condition (the first ranks; the best candidate's information "
                        "is reported at each; default: the median condition size)")
    i.add_argument("--batch", type=int, default=1, help="experiments to choose (greedy joint information, <= 3)")
    i.add_argument("--draws", type=int, default=256, help="Monte Carlo draws per candidate (default 256)")
    i.add_argument("--intervention", choices=["soft", "perfect"], default="soft",
                   help="a changed mechanism keeps its parents (soft) or loses them (perfect)")
    i.add_argument("--off-target", type=float, default=0.0,
                   help="prior probability that an experiment also changes a mechanism it does not target")
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--out", help="write the ranking as JSON (causalid.InterventionDesign.load reads it)")
    i.add_argument("--table", metavar="TABLE.csv", help="write the ranking table")
    i.add_argument("--plot", help="write a figure of the ranking (PNG/PDF/SVG)")
    i.add_argument("--quiet", action="store_true", help="print nothing but errors")

    p = sub.add_parser("power", help="environments and samples the causal de Finetti engine needs (simulation)")
    p.add_argument("--model", choices=["bivariate", "binary", "icm"], default="bivariate",
                   help="reference generator (default: bivariate)")
    p.add_argument("--envs", type=int, nargs="+", default=[50, 100, 200], help="environments to try")
    p.add_argument("--samples", type=int, nargs="+", default=[2], help="samples per environment to try")
    p.add_argument("--replicates", type=int, default=20, help="simulated data sets per setting (default 20)")
    p.add_argument("--target", type=float, default=0.8, help="required proportion of recovered graphs")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--regime", choices=["both", "cause", "mechanism"], nargs="+",
                   help="which mechanisms vary across environments; several are compared (default: both, "
                        "or none when --intervene is given)")
    p.add_argument("--graph", metavar="GRAPH",
                   help="icm: the hypothesised DAG, a CSV with columns cause,effect or a Sachs graph name")
    p.add_argument("--intervene", nargs="+", metavar="NODE",
                   help="icm with --graph: compare intervening on each NODE (only its mechanism varies)")
    p.add_argument("--vars", type=int, default=3, help="variables (binary, icm on a random DAG)")
    p.add_argument("--ci-test", choices=["gcm", "kci", "rff", "fisherz", "gtest"])
    p.add_argument("--conservative", action="store_true", help="decide by the lower end of the 95%% interval")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the table as CSV")
    p.add_argument("--json", metavar="FILE", help="write the whole analysis as JSON (PowerAnalysis.load reads it)")
    p.add_argument("--plot", metavar="FIG", help="plot accuracy against environments (PNG, PDF, SVG)")
    p.add_argument("--quiet", action="store_true", help="no per-setting progress")


def run(args) -> int:
    """Execute ``causalid design <sub-command>``; returns the exit status."""
    if args.design_command == "lti":
        return _lti(args)
    if args.design_command == "next":
        return _next(args)
    if args.design_command == "intervention":
        return _intervention(args)
    return _power(args)


def _read_prior(path: str):
    """An LTISystem from a system JSON or an identification result JSON."""
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read a system from --system '{path}': {exc}") from None
    if isinstance(d, dict) and str(d.get("format", "")).startswith("causalid.LTIResult"):

        return LTIResult.load(path)
    if not isinstance(d, dict) or not all(k in d for k in "ABC"):
        raise DataError(f"--system '{path}' is neither a system (a JSON object with A, B, C) nor an "
                        "identification result")
    return LTISystem.from_dict(d)


def _lti(args) -> int:
    system = _read_prior(args.system) if args.system else None
    design = design_lti(args.inputs, args.envs, var_bounds=tuple(args.var_bounds), mean_bound=args.mean_bound,
                        steps=args.steps, criterion=args.criterion, system=system, key=args.seed,
                        num_starts=args.starts, num_iters=args.iters, rank_margin=args.rank_margin,
                        input_names=args.input_names)
    if not args.quiet:
        print(design.summary())
    if args.out:
        design.save(args.out)
        _wrote(args, args.out)
    if args.law:
        write_table(design.to_frame(), args.law, "input-law file")
        _wrote(args, args.law)
    if args.plot:

        pyplot().close(design.plot(path=args.plot))
        _wrote(args, args.plot)
    return 0


def _next(args) -> int:
    args.inputs = None
    data = lti_data_from_file(args)
    result = None
    if args.result:

        result = LTIResult.load(args.result)
    candidates = None
    if args.candidates:

        table = read_table(args.candidates)
        names = list(data.input_names)
        missing = [f"var_{u}" for u in names if f"var_{u}" not in table.columns]
        if missing:
            raise DataError(f"--candidates '{args.candidates}' lacks column(s) {missing}")
        var = table[[f"var_{u}" for u in names]].to_numpy(dtype=float)
        has_mean = [f"mean_{u}" in table.columns for u in names]
        mean = table[[f"mean_{u}" for u in names]].to_numpy(dtype=float) if all(has_mean) else np.zeros_like(var)
        candidates = InputDesign(mean, var)
    options = {"candidates": candidates, "var_bounds": tuple(args.var_bounds), "mean_bound": args.mean_bound,
               "steps": args.steps, "key": args.seed, "num_starts": args.starts, "num_iters": args.iters,
               "num_samples": args.draws}
    if result is None:
        nxt = design_next(data, **options)
    else:
        nxt = design_next(result, data=data, **options)
    if not args.quiet:
        print(f"data: {data}", file=sys.stderr)
        print(nxt.summary())
    if args.out:
        nxt.save(args.out)
        _wrote(args, args.out)
    if args.table:
        write_table(nxt.table, args.table)
        _wrote(args, args.table)
    return 0


def _read_candidates(spec: str, names):
    """``--candidates``: ``"single"`` or a CSV (candidate, targets[, cost]) -> the designer's dict."""
    if spec == "single":
        return list(names)
    table = read_table(spec)
    cols = list(table.columns)
    if "candidate" not in cols or "targets" not in cols:
        raise DataError(f"candidates file '{spec}' needs columns 'candidate' and 'targets' (and optionally "
                        f"'cost'); it has {cols}")
    out = {}
    for k, row in table.iterrows():
        label = str(row["candidate"])
        if label in out:
            raise DataError(f"candidates file '{spec}' lists candidate '{label}' twice")
        cell = row["targets"]
        tv = [] if not isinstance(cell, str) else [t.strip() for t in cell.split(";") if t.strip()]
        if not tv:
            raise DataError(f"candidates file '{spec}', row {k + 2}: candidate '{label}' names no targets")
        cost = float(row["cost"]) if "cost" in cols and not np.isnan(float(row["cost"])) else 1.0
        out[label] = {"targets": tv, "cost": cost}
    return out


def _intervention(args) -> int:
    data = load(args.file, env=args.env_col, variables=args.variables, transform=args.transform)
    targets = read_targets(args.targets, args.env_col)
    if targets is None:
        raise DataError("--targets none: the designer needs the targets of the recorded conditions (a CSV, "
                        "or 'unknown')")
    candidates = _read_candidates(args.candidates, data.names)
    if not args.quiet:
        print(f"data: {data}", file=sys.stderr)
    res = next_intervention(data, targets, candidates, samples=args.samples, batch=args.batch, key=args.seed,
                            draws=args.draws, intervention=args.intervention, off_target=args.off_target,
                            progress=not args.quiet)
    print(res.summary())
    if args.out:
        res.save(args.out)
        _wrote(args, args.out)
    if args.table:
        write_table(res.to_frame().assign(targets=lambda t: [";".join(v) for v in t["targets"]]), args.table)
        _wrote(args, args.table)
    if args.plot:
        pyplot().close(res.plot(path=args.plot))
        _wrote(args, args.plot)
    return 0


def _power(args) -> int:
    graph = None
    if args.graph:

        graph = read_truth(args.graph, [], option="--graph")
    if args.intervene and graph is None:
        raise DataError("--intervene needs --graph (the hypothesised DAG) and --model icm")
    regime = list(args.regime or ([] if args.intervene else ["both"])) + [(node,) for node in args.intervene or []]
    pa = power_analysis(args.model, envs=args.envs, samples=args.samples, target=args.target,
                        replicates=args.replicates, alpha=args.alpha, regime=regime, graph=graph, num_vars=args.vars,
                        ci_test=args.ci_test, conservative=args.conservative, key=args.seed,
                        progress=not args.quiet)
    print(pa.summary())
    if args.out:
        write_table(pa.table, args.out)
        _wrote(args, args.out)
    if args.json:
        pa.save(args.json)
        _wrote(args, args.json)
    if args.plot:
        pyplot().close(pa.plot(path=args.plot))
        _wrote(args, args.plot)
    return 0


def _wrote(args, path) -> None:
    if not args.quiet:
        print(f"wrote {path}")
