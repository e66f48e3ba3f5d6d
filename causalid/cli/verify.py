"""``causalid verify`` and ``causalid report``: simulation sweeps from the command line.

    causalid verify SWEEP.toml --out DIR [--workers N | --scheduler ADDRESS] [--chunk-size K]
                    [--dry-run] [--quiet]
    causalid report DIR [--out REPORT_DIR] [--quiet]

``verify`` validates the sweep, then simulates → fits → scores every cell into the Parquet
store ``DIR`` (resuming an interrupted run; refusing a different sweep).  ``--workers N``
runs on a local Dask cluster of N processes (loopback only), ``--scheduler ADDRESS`` on an
existing one.  ``--dry-run`` prints the validated sweep and its cells and runs nothing.
``report`` writes tables, plots and ``index.html`` (default ``DIR/report``).

"""

from __future__ import annotations

import sys

from causalid.families import FAMILIES
from causalid.verify.execute import check_execution, run_sweep
from causalid.verify.report import write_report
from causalid.verify.store import ResultStore
from causalid.verify.sweep import load_sweep


def add_parser(subparsers) -> None:
    """Add the ``verify`` and ``report`` sub-commands to ``causalid``'s sub-parsers."""
    v = subparsers.add_parser(
        "verify",
        help="run a simulation sweep (TOML): simulate, fit, score each cell into a resumable store",
    )
    v.add_argument("sweep", metavar="SWEEP.toml", help="sweep definition (see examples/sweeps/)")
    v.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="store directory; rerunning the same sweep into it resumes where it stopped",
    )
    where = v.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run on a local Dask cluster of N worker processes (needs dask[distributed])",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on the Dask cluster of this scheduler, e.g. tcp://10.0.0.5:8786",
    )
    v.add_argument(
        "--chunk-size",
        type=int,
        metavar="K",
        help="cells per Dask task (default: the sweep's [execution] chunk_size, else 1)",
    )
    v.add_argument(
        "--dry-run", action="store_true", help="validate and list the cells; run nothing"
    )
    v.add_argument("--quiet", action="store_true", help="no progress bar; print nothing but errors")
    r = subparsers.add_parser("report", help="tables, plots and an HTML page of a sweep store")
    r.add_argument("store", metavar="DIR", help="store directory written by 'causalid verify'")
    r.add_argument("--out", metavar="REPORT_DIR", help="where to write (default: DIR/report)")
    r.add_argument("--quiet", action="store_true", help="print nothing but errors")


def run(args) -> int:
    """Run ``causalid verify`` or ``causalid report``; returns the exit status."""
    return _report(args) if args.command == "report" else _verify(args)


def _verify(args) -> int:
    sweep = load_sweep(args.sweep, FAMILIES)
    if args.dry_run:
        print(sweep.summary())
        print(sweep.cell_table().to_string(index=False))
        return 0
    check_execution(sweep, args.workers, args.scheduler, args.chunk_size)  # before the store exists
    ResultStore.open(args.out, sweep)  # refuse another sweep's store before saying anything
    if not args.quiet:
        print(sweep.summary(), file=sys.stderr)
    run = run_sweep(
        sweep,
        args.out,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=not args.quiet,
        chunk_size=args.chunk_size,
    )
    if not args.quiet:
        print(
            f"{len(run.computed)} cell(s) computed, {len(run.skipped)} already stored; results in "
            f"'{run.path}' (causalid.load_results reads them; 'causalid report {run.path}' "
            "writes tables and plots)"
        )
    return 0


def _report(args) -> int:
    page = write_report(args.store, args.out, progress=False)
    if not args.quiet:
        print(f"wrote {page}")
    return 0
