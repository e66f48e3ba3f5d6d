"""``causalid fit-hmm``: fit a (multi-environment) hidden Markov model to a long table.

    causalid fit-hmm FILE --env-col COL [--time-col COL] [--sequence-col COL] --columns C1 C2 ...
                     --states K --emission {gaussian,poisson,categorical}
                     [--shared all|transitions|emissions|none] [--covariance full|diag]
                     [--method em|map|nuts] [--restarts R] [--max-iters N] [--seed S]
                     [--initial free|stationary] [--min-covar F] [--em-prior none|weak]
                     --out result.json [--plot fig.png] [--states-out states.csv] [--quiet]
    causalid fit-hmm --example earthquakes [--states K] [...]

The table has one row per time step; rows are grouped into environments (``--env-col``) and,
inside an environment, into sequences (``--sequence-col``), and ordered by ``--time-col``.
Empty cells are missing observations.  ``--states-out`` writes the input rows back with the
most probable (Viterbi) state and the smoothed state probabilities of each row.

"""

from __future__ import annotations

import sys

import numpy as np

from causalid._io import read_table, write_table
from causalid._plotting import pyplot
from causalid.datasets import load_earthquakes
from causalid.errors import DataError
from causalid.hmm.data import SequenceData
from causalid.hmm.fit import fit_hmm

_ROW = "__causalid_row__"


def add_parser(subparsers) -> None:
    """Add the ``fit-hmm`` sub-command to ``causalid``'s sub-parsers."""
    h = subparsers.add_parser(
        "fit-hmm", help="fit a hidden Markov model to multi-environment sequences (one row per time step)")
    h.add_argument("file", nargs="?", help="CSV or Parquet file, one row per time step (long format)")
    h.add_argument("--example", choices=["earthquakes"],
                   help="fit the shipped annual earthquake counts 1900-2006 (Zucchini & MacDonald) instead "
                        "of FILE: a 2-state Poisson HMM unless --states/--emission say otherwise")
    h.add_argument("--env-col", help="column naming the environment of each row (default: one environment)")
    h.add_argument("--time-col", help="column ordering the rows of a sequence (default: file order)")
    h.add_argument("--sequence-col", help="column naming separate sequences inside an environment")
    h.add_argument("--columns", nargs="+", help="observed columns (default: every other numeric column)")
    h.add_argument("--states", type=int, help="number of hidden states K (--example: 2)")
    h.add_argument("--emission", choices=["gaussian", "poisson", "categorical"],
                   help="emission distribution (default: gaussian; --example: poisson)")
    h.add_argument("--shared", choices=["all", "transitions", "emissions", "none"], default="all",
                   help="mechanisms shared by all environments: all (one HMM), transitions (emissions vary), "
                        "emissions (transitions vary), none (both vary) (default: all)")
    h.add_argument("--covariance", choices=["full", "diag"], default="full",
                   help="gaussian emission covariance (default: full)")
    h.add_argument("--method", choices=["em", "map", "nuts"], default="em",
                   help="em: Baum-Welch with restarts; map: posterior mode; nuts: posterior draws (default: em)")
    h.add_argument("--restarts", type=int, default=30,
                   help="data-driven EM starts, screened for 10 iterations; the best 8 run to convergence "
                        "(default: 30)")
    h.add_argument("--initial", choices=["free", "stationary"], default="free",
                   help="initial state distribution: estimated (free) or the transition matrix's stationary one "
                        "(default: free)")
    h.add_argument("--min-covar", type=float, default=1e-3,
                   help="gaussian variance floor, relative to each column's variance (default: 1e-3)")
    h.add_argument("--em-prior", choices=["none", "weak"], default="none",
                   help="MAP-EM with weak conjugate priors (weak) or maximum likelihood (none, the default)")
    h.add_argument("--max-iters", type=int, default=500, help="EM iterations per restart (default: 500)")
    h.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    h.add_argument("--out", help="write the result as JSON (load with causalid.HMMResult.load)")
    h.add_argument("--plot", help="write a figure: data coloured by state, state probabilities (PNG/PDF/SVG)")
    h.add_argument("--states-out", metavar="STATES.csv",
                   help="write the input rows with the Viterbi state and the state probabilities of each")
    h.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _positive(value, flag: str) -> None:
    if value is not None and value < 1:
        raise DataError(f"{flag} {value}: must be at least 1")


def _load(args):
    """(table, SequenceData, row index (E, N, T) of every step in ``table``, or -1 on padding)."""
    if args.example == "earthquakes":
        given = [f for f, v in (("--env-col", args.env_col), ("--time-col", args.time_col),
                                ("--sequence-col", args.sequence_col), ("--columns", args.columns)) if v]
        if given:
            raise DataError(f"--example earthquakes brings its own data (columns year, count); leave out "
                            f"{', '.join(given)}")

        table = load_earthquakes()
        keys = {"env": None, "time": "year", "columns": ["count"], "sequence": None}
    else:

        table = read_table(args.file)
        keys = {"env": args.env_col, "time": args.time_col, "columns": args.columns, "sequence": args.sequence_col}
        if _ROW in table.columns:
            raise DataError(f"column name '{_ROW}' is reserved; rename that column")
    data = SequenceData.from_frame(table, **keys)
    # the same grouping applied to the row numbers tells where each step came from
    rows = SequenceData.from_frame(table.assign(**{_ROW: np.arange(len(table), dtype=float)}),
                                   **{**keys, "columns": [_ROW]})
    index = np.where(np.isnan(rows.y[..., 0]), -1, rows.y[..., 0]).astype(np.int64)
    return table, data, index


def _states_table(result, data, table, index):
    """``table`` with the Viterbi state and the smoothed state probabilities of every row."""
    K = result.config.num_states
    state = np.full(len(table), -1, dtype=np.int64)
    probs = np.full((len(table), K), np.nan)
    for (e, n), (z, post) in result.decode(data).items():
        rows = index[e, n, : len(z)]
        state[rows] = z
        probs[rows] = post
    out = table.copy()
    out["state"] = state
    for k in range(K):
        out[f"p_state_{k}"] = probs[:, k]
    return out


def run(args) -> int:
    """Run ``causalid fit-hmm``; returns the exit status."""
    if args.example and args.file:
        raise DataError("give either FILE or --example, not both")
    if not args.example and not args.file:
        raise DataError("give a data FILE (with --env-col, --time-col and --columns) or --example earthquakes")
    _positive(args.states, "--states")
    _positive(args.restarts, "--restarts")
    _positive(args.max_iters, "--max-iters")
    states = args.states if args.states is not None else (2 if args.example else None)
    if states is None:
        raise DataError("give the number of hidden states with --states K")
    table, data, index = _load(args)
    emission = args.emission or ("poisson" if args.example == "earthquakes" else "gaussian")
    if not args.quiet:
        print(f"data: {data}", file=sys.stderr)
    result = fit_hmm(data, states, emission, shared=args.shared, covariance=args.covariance,
                      method=args.method, num_restarts=args.restarts, max_iters=args.max_iters,
                      key=args.seed, initial=args.initial, min_covar=args.min_covar,
                      em_prior=None if args.em_prior == "none" else args.em_prior, progress=not args.quiet)
    if not args.quiet:
        print(result.summary())
    if args.out:
        result.save(args.out)
        if not args.quiet:
            print(f"wrote {args.out}")
    if args.states_out:
        write_table(_states_table(result, data, table, index), args.states_out, "states file")
        if not args.quiet:
            print(f"wrote {args.states_out}")
    if args.plot:
        fig = result.plot(data=data, path=args.plot)

        pyplot().close(fig)
        if not args.quiet:
            print(f"wrote {args.plot}")
    return 0
