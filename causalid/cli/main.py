"""The ``causalid`` command: one sub-command per job, each in its own module.

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
    causalid design {lti,next,power,intervention} ...
    causalid verify SWEEP.toml --out DIR [--workers N | --scheduler ADDRESS]
    causalid report DIR

Each command module (:mod:`causalid.cli.discover`, :mod:`~causalid.cli.identify`,
:mod:`~causalid.cli.simulate`, :mod:`~causalid.cli.hmm`, :mod:`~causalid.cli.design`,
:mod:`~causalid.cli.verify`) has ``add_parser(subparsers)`` and ``run(args)``; the files they
read are loaded by :mod:`causalid.cli.loaders`.  User errors print one line
(``causalid: error: ...``) and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys

from causalid._io import check_output_path
from causalid._plotting import check_figure_path
from causalid.cli import design, discover, hmm, identify, simulate, verify
from causalid.errors import CausalIDError

# argument -> what it names; checked before any computation so that a bad path fails at once
# (``verify``/``report`` take folders and check them themselves)
OUTPUT_FILES = {"out": "output", "law": "input-law file", "table": "table", "json": "JSON output",
                "states_out": "states file"}
FIGURES = ("plot",)


def check_outputs(args) -> None:
    """Refuse, before anything is computed, output files whose folder is missing or not
    writable and figures of an unknown format."""
    if args.command in ("verify", "report"):
        return
    for attr, what in OUTPUT_FILES.items():
        if getattr(args, attr, None):
            check_output_path(getattr(args, attr), what)
    for attr in FIGURES:
        if getattr(args, attr, None):
            check_figure_path(getattr(args, attr))


# sub-command -> the module that runs it (``verify`` adds ``verify`` and ``report``)
COMMANDS = {
    "discover": discover,
    "identify": identify,
    "simulate": simulate,
    "fit-hmm": hmm,
    "design": design,
    "verify": verify,
    "report": verify,
}


def parser() -> argparse.ArgumentParser:
    """The ``causalid`` argument parser with every sub-command."""
    p = argparse.ArgumentParser(prog="causalid", description="Causal identification from multi-environment data.")
    sub = p.add_subparsers(dest="command", required=True)
    for module in dict.fromkeys(COMMANDS.values()):  # each module once, in order
        module.add_parser(sub)
    return p


def main(argv=None) -> int:
    """Run ``causalid`` with ``argv`` (default: the command line); returns the exit status."""
    args = parser().parse_args(argv)
    try:
        check_outputs(args)
        return COMMANDS[args.command].run(args)
    except CausalIDError as exc:
        print(f"causalid: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"causalid: error: {exc.strerror}: '{exc.filename}'", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # an interrupted sweep has said what is stored and how to resume
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
