"""The ``causalid`` command.

    causalid discover FILE --env-col COL [--method cdf|bayes] [--transform log] --out result.json [--plot graph.png]
    causalid discover --example sachs [--method ...] [--out ...] [--plot ...]
    causalid simulate {bivariate,binary,icm} --envs E --samples N --out data.csv [--seed S]
    causalid simulate lti --system {random,dc-motor} [--states N] [--envs E] --steps T
                          [--design {random,max-variability}] [--obs-noise VAR] --out data.csv
    causalid identify FILE --env-col COL [--time-col COL] --outputs Y1 Y2 ... [--inputs U1 ...]
                      [--input-law LAW.csv] --method {moment,mle,bayes,markov} --out result.json [--plot fig.png]
    causalid identify --example dc-motor [--method ...] [--out ...] [--plot ...]
    causalid fit-hmm FILE --env-col COL --time-col COL --columns C1 C2 ... --states K
                     --emission {gaussian,poisson,categorical} [--shared all|transitions|emissions|none]
                     [--covariance full|diag] [--method em|map|nuts] [--restarts R] [--max-iters N]
                     [--seed S] [--sequence-col COL] --out result.json [--plot fig.png] [--states-out states.csv]
    causalid fit-hmm --example earthquakes [--states K] [--out ...] [--plot ...]
    causalid design lti --inputs M --envs E --var-bounds LO HI [--mean-bound B] [--steps T]
                        [--criterion pairwise|cond|moment|d-optimal|eig] [--system prior.json]
                        --out design.json [--law law.csv] [--plot fig.png]
    causalid design next --data data.csv --env-col COL --outputs Y1 ... --input-law LAW.csv
                         [--result result.json] --var-bounds LO HI [--steps T] --out next.json
    causalid design power [--model bivariate|binary|icm] [--envs E1 E2 ...] [--samples N ...]
                          [--replicates R] [--target 0.8] [--out table.csv]

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

    i = sub.add_parser("identify", help="identify a linear time-invariant (LTI) system from multi-environment time series")
    i.add_argument("file", nargs="?", help="CSV or Parquet file, one row per time step (long format)")
    i.add_argument("--example", choices=["dc-motor"],
                   help="simulate the DC motor (3 environments x 5000 steps) and identify it instead of FILE")
    i.add_argument("--env-col", help="column naming the environment (experiment / recording) of each row")
    i.add_argument("--time-col", help="column with the time of each row (regular grid; sets dt)")
    i.add_argument("--trajectory-col", help="column naming separate trajectories inside an environment")
    i.add_argument("--outputs", nargs="+", help="output columns (default: every other numeric column)")
    i.add_argument("--inputs", nargs="+", help="measured input columns")
    i.add_argument("--input-law", metavar="LAW.csv",
                   help="designed input laws: one row per environment with the --env-col column and "
                        "mean_<input> / var_<input> columns (no mean_ columns: means unknown)")
    i.add_argument("--input-names", nargs="+", help="inputs of --input-law (default: from its var_ columns)")
    i.add_argument("--dt", type=float, help="sampling interval in seconds (default: from --time-col)")
    i.add_argument("--method", choices=["moment", "mle", "bayes", "markov"], default="moment",
                   help="moment: closed form; mle: maximum likelihood with standard errors; bayes: NUTS; "
                        "markov: Markov parameters / ERA (partial observation) (default: moment)")
    i.add_argument("--state-dim", type=int, help="model order n (default: number of outputs, or selected "
                                                 "from the data for measured inputs)")
    i.add_argument("--obs-noise", metavar="VAR|estimate",
                   help="observation-noise variance r, or 'estimate' (Kalman likelihood; mle/bayes)")
    i.add_argument("--process-noise", action="store_true", help="estimate a process-noise variance q")
    i.add_argument("--feedthrough", action="store_true", help="estimate a feedthrough D (measured inputs, mle)")
    i.add_argument("--warn-unidentifiable", action="store_true",
                   help="warn instead of stopping when the data do not identify B̃")
    i.add_argument("--truth", metavar="SYSTEM.json",
                   help="true system (as written by 'causalid simulate lti' to <out>.truth.json) to score against")
    i.add_argument("--out", help="write the result as JSON (load with causalid.LTIResult.load)")
    i.add_argument("--plot", help="write an overview figure (PNG/PDF/SVG)")
    i.add_argument("--seed", type=int, default=0, help="random seed (bayes; the --example simulation)")
    i.add_argument("--quiet", action="store_true", help="print nothing but errors")

    s = sub.add_parser("simulate", help="write a simulated multi-environment data set (CSV with an 'env' column)")
    s.add_argument("model", choices=["bivariate", "binary", "icm", "lti"],
                   help="bivariate: science.md's continuous reference; binary: the multivariate binary reference; "
                        "icm: linear-Gaussian ICM on a random DAG; lti: multi-environment LTI time series")
    s.add_argument("--envs", type=int, default=None,
                   help="number of environments (default 200; lti: m + 1 for --design max-variability, else 2m + 1)")
    s.add_argument("--samples", type=int, default=2, help="samples per environment")
    s.add_argument("--vars", type=int, default=3, help="number of variables (binary, icm)")
    s.add_argument("--regime", choices=["both", "cause", "mechanism"], default="both")
    s.add_argument("--system", choices=["random", "dc-motor"], default="random",
                   help="lti: a random stable system (n states, inputs and outputs) or the DC motor")
    s.add_argument("--states", type=int, default=2, help="lti: state dimension n of the random system")
    s.add_argument("--steps", type=int, default=1000, help="lti: time steps per environment")
    s.add_argument("--design", choices=["random", "max-variability"], default="random",
                   help="lti: input laws of the environments")
    s.add_argument("--obs-noise", type=float, default=0.0, help="lti: observation-noise variance r")
    s.add_argument("--process-noise", type=float, default=0.0, help="lti: process-noise variance q")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True,
                   help="CSV file to write; the truth goes to <out>.truth.csv (lti: <out>.truth.json, and the "
                        "input laws to <out>.law.csv)")
    from causalid.cli_hmm import add_parser as _add_hmm

    _add_hmm(sub)
    from causalid.design.cli import add_parser as _add_design

    _add_design(sub)
    from causalid.verify.cli import add_report_parser, add_verify_parser

    add_verify_parser(sub)
    add_report_parser(sub)
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from causalid.errors import CausalIDError

    try:
        if args.command == "fit-hmm":
            from causalid.cli_hmm import run as _run_hmm

            return _run_hmm(args)
        if args.command == "design":
            from causalid.design.cli import run

            return run(args)
        if args.command == "verify":
            from causalid.verify.cli import run_verify

            return run_verify(args)
        if args.command == "report":
            from causalid.verify.cli import run_report

            return run_report(args)
        if args.command == "discover":
            return _discover(args)
        if args.command == "identify":
            return _identify(args)
        if args.model == "lti":
            return _simulate_lti(args)
        return _simulate(args)
    except CausalIDError as exc:
        print(f"causalid: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"causalid: error: {exc.strerror}: '{exc.filename}'", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # an interrupted sweep has said what is stored and how to resume
        return 130


def _read_truth(spec: str, names, option: str = "--truth"):
    import networkx as nx
    import pandas as pd

    from causalid.datasets import SACHS_GRAPHS, sachs_graph
    from causalid.errors import DataError

    if spec in SACHS_GRAPHS:
        return sachs_graph(spec)
    path = Path(spec)
    if not path.exists():
        raise DataError(f"{option} '{spec}' is neither a file nor a Sachs graph name ({', '.join(SACHS_GRAPHS)})")
    table = pd.read_csv(path)
    if not {"cause", "effect"} <= set(table.columns):
        raise DataError(f"{option} file '{spec}' needs columns 'cause' and 'effect'")
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

    if args.envs is None:
        args.envs = 200
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

# ---------------------------------------------------------------------- LTI
_DC_MOTOR_DESIGN = {"env_names": ["baseline", "push", "pull"], "mean": [[0.0], [0.5], [-0.5]],
                    "var": [[1e-2], [1.0], [4.0]]}
"""Input laws of ``causalid identify --example dc-motor``: a quiet baseline and two
environments with larger voltage variance and opposite mean voltages (the variance profile
identifies B̃, the means fix its sign)."""


def _obs_noise(value):
    from causalid.errors import DataError

    if value is None:
        return None
    if value.strip().lower() == "estimate":
        return True
    try:
        r = float(value)
    except ValueError:
        raise DataError(f"--obs-noise {value!r}: give a variance (a number >= 0) or 'estimate'") from None
    if not r >= 0 or r == float("inf"):
        raise DataError(f"--obs-noise {value!r}: the observation-noise variance must be finite and >= 0")
    return r


def _attach_input_law(data, law_path: str, env_col: str, input_names):
    """``data`` (outputs only) with the designed input laws of ``law_path`` attached, by environment."""
    import numpy as np
    import pandas as pd

    from causalid.data.io import read_table
    from causalid.data.lti import LTIData
    from causalid.errors import DataError

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


def _lti_data_from_file(args):
    from causalid.data.io import read_table
    from causalid.data.lti import LTIData
    from causalid.errors import DataError

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
        data = _attach_input_law(data, args.input_law, args.env_col, args.input_names)
    return data


def _dc_motor_example(seed: int):
    import jax

    from causalid.data.lti import LTIData
    from causalid.dynamics.system import InputDesign
    from causalid.models import lti

    system = lti.dc_motor()
    design = InputDesign(_DC_MOTOR_DESIGN["mean"], _DC_MOTOR_DESIGN["var"], name="dc-motor example")
    sim = lti.simulate_lti(jax.random.PRNGKey(seed), system, design=design, num_steps=5000,
                           process_noise_var=1e-8)
    data = LTIData.from_arrays(sim["y"], input_mean=design.mean, input_var=design.var, dt=system.dt,
                               output_names=["current", "speed"], input_names=["voltage"],
                               env_names=_DC_MOTOR_DESIGN["env_names"])
    return data, system


def _read_system(path: str):
    from causalid.dynamics.system import LTISystem
    from causalid.errors import DataError

    try:
        d = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read a system from --truth '{path}': {exc}") from None
    if not isinstance(d, dict) or not all(k in d for k in "ABC"):
        raise DataError(f"--truth '{path}' is not a system (a JSON object with A, B, C as written by "
                        "'causalid simulate lti')")
    return LTISystem.from_dict(d)


def _compare_lti(result, truth) -> dict:
    """Eigenvalue error, and in observed coordinates the errors of Ã and (column-aligned) B̃."""
    import numpy as np

    from causalid.identify.lti_metrics import align_columns, eigenvalue_error, relative_error

    out = {}
    if truth.n == result.A.shape[0]:
        out["eigenvalue_error"] = eigenvalue_error(truth.A, result.A)
    C = truth.C
    if (result.coordinates == "observed" and C.shape[0] == C.shape[1] == result.A.shape[0]
            and truth.m == result.B.shape[1] and abs(np.linalg.det(C)) > 0):
        At, Bt = C @ truth.A @ np.linalg.inv(C), C @ truth.B
        out["A_tilde_relative_error"] = relative_error(At, result.A)
        perm, scale = align_columns(Bt, result.B)
        out["B_tilde_relative_error"] = relative_error(Bt, result.B[:, perm] * scale)
    return out


def _identify(args) -> int:
    import causalid
    from causalid.errors import DataError

    if args.example and args.file:
        raise DataError("give either FILE or --example, not both")
    obs_noise = _obs_noise(args.obs_noise)
    if args.state_dim is not None and args.state_dim < 1:
        raise DataError(f"--state-dim {args.state_dim}: the model order must be at least 1")
    truth = None
    process_noise = args.process_noise
    if args.example == "dc-motor":
        if args.inputs or args.input_law:
            raise DataError("--example dc-motor brings its own input laws; leave out --inputs/--input-law")
        data, truth = _dc_motor_example(args.seed)
        if args.method in ("mle", "bayes") and args.obs_noise is None and not process_noise:
            # one input drives two outputs: without noise the transition density is singular
            process_noise = True
            if not args.quiet:
                print("note: the DC motor has 1 input for 2 outputs; estimating a process-noise variance "
                      "(--process-noise)", file=sys.stderr)
    elif args.file:
        data = _lti_data_from_file(args)
    else:
        raise DataError("give a data FILE (with --env-col, --outputs and --inputs or --input-law) "
                        "or --example dc-motor")
    if args.truth:
        truth = _read_system(args.truth)
    if not args.quiet:
        print(f"data: {data}", file=sys.stderr)
    result = causalid.identify_lti(
        data, method=args.method, state_dim=args.state_dim, obs_noise=obs_noise,
        process_noise=process_noise, feedthrough=args.feedthrough,
        on_unidentifiable="warn" if args.warn_unidentifiable else "raise", key=args.seed,
        progress=not args.quiet,
    )
    if truth is not None:
        scores = _compare_lti(result, truth)
        result.info["comparison"] = {"truth": args.truth or args.example, **scores}
    if not args.quiet:
        print(result.summary())
        if truth is not None and result.info["comparison"]:
            print(f"against the true system ({result.info['comparison']['truth']}): " + ", ".join(
                f"{k} {v:.3g}" for k, v in result.info["comparison"].items() if k != "truth"))
    if args.out:
        result.save(args.out)
        if not args.quiet:
            print(f"wrote {args.out}")
    if args.plot:
        import matplotlib.pyplot as plt

        fig = result.plot(args.plot, truth=truth)
        plt.close(fig)
        if not args.quiet:
            print(f"wrote {args.plot}")
    return 0


def _simulate_lti(args) -> int:
    import jax
    import numpy as np
    import pandas as pd

    import causalid  # noqa: F401  (64-bit JAX, causalid.models)
    from causalid.errors import DataError
    from causalid.models import lti

    if args.steps < 2:
        raise DataError(f"--steps {args.steps}: identification needs at least 2 time steps")
    k_sys, k_design, k_sim = jax.random.split(jax.random.PRNGKey(args.seed), 3)
    if args.system == "dc-motor":
        system = lti.dc_motor()
    else:
        if args.states < 1:
            raise DataError(f"--states {args.states}: the state dimension must be at least 1")
        system = lti.random_system(k_sys, args.states)
    m = system.m
    if args.design == "max-variability":
        if args.envs is not None and args.envs != m + 1:
            raise DataError(f"--design max-variability has m + 1 = {m + 1} environments for {m} input(s); "
                            f"leave out --envs (got {args.envs}) or use --design random")
        design = lti.max_variability_design(m, key=k_design)
    else:
        envs = 2 * m + 1 if args.envs is None else args.envs
        if envs < 1:
            raise DataError(f"--envs {envs}: give at least 1 environment")
        design = lti.random_design(k_design, envs, m)
    sim = lti.simulate_lti(k_sim, system, design=design, num_steps=args.steps,
                           obs_noise_var=args.obs_noise, process_noise_var=args.process_noise)
    y = sim["y"][:, 0]                                             # (E, T, p)
    E, T, p = y.shape
    outputs = [f"y{j}" for j in range(p)]
    inputs = [f"u{j}" for j in range(m)]
    t = np.arange(T) if system.dt is None else np.round(np.arange(T) * system.dt, 12)
    table = pd.DataFrame(y.reshape(E * T, p), columns=outputs)
    table.insert(0, "time", np.tile(t, E))
    table.insert(0, "env", np.repeat(np.arange(E), T))
    out = Path(args.out)
    table.to_csv(out, index=False)
    law = pd.DataFrame({"env": np.arange(E)})
    for j, u in enumerate(inputs):
        law[f"mean_{u}"] = design.mean[:, j]
    for j, u in enumerate(inputs):
        law[f"var_{u}"] = design.var[:, j]
    law_path = out.with_name(out.name + ".law.csv")
    law.to_csv(law_path, index=False)
    truth = system.to_dict()
    truth.update(design=design.to_dict(), obs_noise_var=args.obs_noise, process_noise_var=args.process_noise,
                 output_names=outputs, input_names=inputs)
    truth_path = out.with_name(out.name + ".truth.json")
    truth_path.write_text(json.dumps(truth, default=float))
    print(json.dumps({"data": str(out), "law": str(law_path), "truth": str(truth_path), "envs": E, "steps": T,
                      "outputs": outputs, "inputs": inputs}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
