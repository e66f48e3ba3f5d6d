"""``causalid simulate``: write a simulated multi-environment data set with its truth."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from causalid._io import write_table, write_text
from causalid.errors import DataError
from causalid.exchangeable.simulate import simulate_dataset
from causalid.models import lti


def add_parser(subparsers) -> None:
    """Add the sub-command to ``causalid``'s sub-parsers."""
    s = subparsers.add_parser("simulate", help="write a simulated multi-environment data set (CSV with an 'env' column)")
    s.add_argument("model", choices=["bivariate", "binary", "icm", "lti"],
                   help="bivariate: the continuous reference of Guo et al. 2023; binary: the multivariate binary reference; "
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


def run(args) -> int:
    """Run ``causalid simulate``; returns the exit status."""
    if args.model == "lti":
        return _simulate_lti(args)
    return _simulate(args)


def _simulate(args) -> int:
    if args.envs is None:
        args.envs = 200
    if args.envs < 1 or args.samples < 1:
        raise DataError("--envs and --samples must be positive")
    x, adjacency, names = simulate_dataset(args.model, num_envs=args.envs, num_samples=args.samples,
                                           num_vars=args.vars, regime=args.regime, key=args.seed)
    E, N, d = x.shape
    table = pd.DataFrame(x.reshape(E * N, d), columns=names)
    table.insert(0, "env", np.repeat(np.arange(E), N))
    out = Path(args.out)
    write_table(table, out, "data file")
    src, dst = np.nonzero(adjacency)
    truth_path = out.with_name(out.name + ".truth.csv")
    truth_table = pd.DataFrame({"cause": [names[i] for i in src], "effect": [names[j] for j in dst]})
    write_table(truth_table, truth_path, "truth file")
    print(json.dumps({"data": str(out), "truth": str(truth_path), "envs": E, "samples": N, "vars": names}))
    return 0


def _simulate_lti(args) -> int:
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
    write_table(table, out, "data file")
    law = pd.DataFrame({"env": np.arange(E)})
    for j, u in enumerate(inputs):
        law[f"mean_{u}"] = design.mean[:, j]
    for j, u in enumerate(inputs):
        law[f"var_{u}"] = design.var[:, j]
    law_path = out.with_name(out.name + ".law.csv")
    write_table(law, law_path, "input-law file")
    truth = system.to_dict()
    truth.update(design=design.to_dict(), obs_noise_var=args.obs_noise, process_noise_var=args.process_noise,
                 output_names=outputs, input_names=inputs)
    truth_path = out.with_name(out.name + ".truth.json")
    write_text(json.dumps(truth, default=float), truth_path, "truth file")
    print(json.dumps({"data": str(out), "law": str(law_path), "truth": str(truth_path), "envs": E, "steps": T,
                      "outputs": outputs, "inputs": inputs}))
    return 0
