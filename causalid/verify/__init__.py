"""Verifying identifiability on simulations: the family-free core of sweeps.

A *sweep* (a TOML file, :mod:`causalid.verify.sweep`) names a model family, its generator
settings, a grid over them, the engines to compare, the metrics, the seed and the replicates.
A sweep simulates → fits → scores every cell of the grid, vectorised over replicates where
the family allows it, and appends each finished cell to a Parquet store
(:mod:`causalid.verify.store`) so that an interrupted sweep resumes where it stopped; it runs
in-process or on Dask (:mod:`causalid.verify.execute`).  :func:`load_results` reads the store
as one long table and :func:`write_report` turns it into tables, plots and an HTML page;
:mod:`causalid.verify.sbc` runs simulation-based calibration of Bayesian engines.

Nothing here names a family: a family is a plug-in (:mod:`causalid.verify.plugin`) that its
wing implements, and :mod:`causalid.families` lists them.  Read and run sweeps with
:func:`causalid.load_sweep` and :func:`causalid.run_sweep`, which use that registry:

    causalid verify examples/sweeps/bivariate.toml --out runs/bivariate [--workers 2]
    causalid report runs/bivariate
"""

from causalid.verify.execute import SweepRun, run_cell
from causalid.verify.report import write_report
from causalid.verify.store import ResultStore, StoreError, load_results, load_table, write_table
from causalid.verify.sweep import Cell, Sweep, SweepError

__all__ = [
    "Cell",
    "ResultStore",
    "StoreError",
    "Sweep",
    "SweepError",
    "SweepRun",
    "load_results",
    "load_table",
    "run_cell",
    "write_report",
    "write_table",
]
