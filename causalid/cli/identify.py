"""``causalid identify``: a linear time-invariant system from multi-environment time series."""

from __future__ import annotations

import sys

import jax
import numpy as np

from causalid._plotting import pyplot
from causalid.cli.loaders import lti_data_from_file, read_system
from causalid.dynamics.system import InputDesign
from causalid.errors import DataError
from causalid.lti.data import LTIData
from causalid.lti.fit import identify_lti
from causalid.lti.metrics import align_columns, eigenvalue_error, relative_error
from causalid.models import lti


def add_parser(subparsers) -> None:
    """Add the sub-command to ``causalid``'s sub-parsers."""
    i = subparsers.add_parser("identify", help="identify a linear time-invariant (LTI) system from multi-environment time series")
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
    i.add_argument("--method", choices=["pem", "moment", "mle", "bayes", "markov"], default=None,
                   help="pem: prediction-error identification (measured inputs); moment: closed form; mle: "
                        "maximum likelihood with standard errors; bayes: NUTS; markov: Markov parameters / ERA "
                        "(default: pem with measured --inputs, moment with --input-law)")
    i.add_argument("--state-dim", type=int, help="model order n (default: number of outputs for designed laws; "
                                                 "chosen by held-out prediction error for measured inputs)")
    i.add_argument("--max-order", type=int, help="pem: the largest order tried by the automatic order selection")
    i.add_argument("--criterion", choices=["prediction", "simulation"], default="prediction",
                   help="pem: fit one-step prediction errors (with a noise model) or free-run simulation "
                        "errors (output error) (default: prediction)")
    i.add_argument("--validate", metavar="FILE",
                   help="measured inputs: validation record(s) with the same columns; prints fit %% per output")
    i.add_argument("--split", type=float, metavar="FRACTION",
                   help="measured inputs: fit on the first FRACTION of every record, validate on the rest")
    i.add_argument("--compare-plot", metavar="PATH",
                   help="with --validate or --split: write the measured-vs-simulated figure (PNG/PDF/SVG)")
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


_DC_MOTOR_DESIGN = {"env_names": ["baseline", "push", "pull"], "mean": [[0.0], [0.5], [-0.5]],
                    "var": [[1e-2], [1.0], [4.0]]}
"""Input laws of ``causalid identify --example dc-motor``: a quiet baseline and two
environments with larger voltage variance and opposite mean voltages (the variance profile
identifies B̃, the means fix its sign)."""


def _obs_noise(value):
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


def _dc_motor_example(seed: int):
    system = lti.dc_motor()
    design = InputDesign(_DC_MOTOR_DESIGN["mean"], _DC_MOTOR_DESIGN["var"], name="dc-motor example")
    sim = lti.simulate_lti(jax.random.PRNGKey(seed), system, design=design, num_steps=5000,
                           process_noise_var=1e-8)
    data = LTIData.from_arrays(sim["y"], input_mean=design.mean, input_var=design.var, dt=system.dt,
                               output_names=["current", "speed"], input_names=["voltage"],
                               env_names=_DC_MOTOR_DESIGN["env_names"])
    return data, system


def _compare_lti(result, truth) -> dict:
    """Eigenvalue error, and in observed coordinates the errors of Ã and (column-aligned) B̃."""
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


def _validation_data(args, data):
    """--validate FILE (read like FILE) or --split FRACTION: (estimation, validation) or the validation data."""
    if args.validate is None and args.split is None:
        if args.compare_plot:
            raise DataError("--compare-plot needs --validate FILE or --split FRACTION")
        return None
    if args.validate is not None and args.split is not None:
        raise DataError("give either --validate FILE or --split FRACTION, not both")
    if not data.has_measured_inputs:
        raise DataError("--validate/--split compare free-run simulations: they need measured --inputs")
    if args.split is not None:
        if not 0 < args.split < 1:
            raise DataError(f"--split {args.split}: give the fraction of every record to fit on, between 0 and 1")
        return data.split_time(args.split)
    import argparse

    other = argparse.Namespace(**{**vars(args), "file": args.validate})
    return lti_data_from_file(other)


def run(args) -> int:
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
        data = lti_data_from_file(args)
    else:
        raise DataError("give a data FILE (with --env-col, --outputs and --inputs or --input-law) "
                        "or --example dc-motor")
    if args.truth:
        truth = read_system(args.truth)
    validation = _validation_data(args, data)
    if validation is not None and args.split is not None:
        data, validation = validation
    if not args.quiet:
        print(f"data: {data}", file=sys.stderr)
    extra = {}
    if data.has_measured_inputs and args.method in (None, "pem"):
        extra = dict(criterion=args.criterion, max_order=args.max_order)
    elif args.max_order is not None or args.criterion != "prediction":
        raise DataError("--max-order and --criterion apply to method pem (measured --inputs)")
    result = identify_lti(
        data, method=args.method, state_dim=args.state_dim, obs_noise=obs_noise,
        process_noise=process_noise, feedthrough=args.feedthrough,
        on_unidentifiable="warn" if args.warn_unidentifiable else "raise", key=args.seed,
        progress=not args.quiet, **extra,
    )
    if validation is not None:
        comparison = result.compare(validation)
        result.info["validation"] = {"fit_percent": comparison.fit.tolist(),
                                     "source": args.validate or f"last {1 - args.split:.0%} of every record"}
        if not args.quiet:
            print("validation: " + comparison.summary())
        if args.compare_plot:
            fig = comparison.plot(path=args.compare_plot)
            pyplot().close(fig)
            if not args.quiet:
                print(f"wrote {args.compare_plot}")
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

        fig = result.plot(path=args.plot, truth=truth)
        pyplot().close(fig)
        if not args.quiet:
            print(f"wrote {args.plot}")
    return 0
