"""Verifying identifiability on simulations: sweeps, a resumable store, Dask execution, reports.

A *sweep* (a TOML file, :mod:`causalid.verify.sweep`) names a model family, its generator
settings, a grid over them, the engines to compare, the metrics, the seed and the replicates.
:func:`run_sweep` simulates → fits → scores every cell of the grid, vectorised over replicates,
and appends each finished cell to a Parquet store (:mod:`causalid.verify.store`) so that an
interrupted sweep resumes where it stopped; it runs in-process or on Dask
(:mod:`causalid.verify.execute`).  :func:`load_results` reads the store as one long table and
:func:`write_report` turns it into tables, plots and an HTML page.

    causalid verify examples/sweeps/bivariate.toml --out runs/bivariate [--workers 2]
    causalid report runs/bivariate

Examples
--------
>>> import tempfile
>>> from causalid.verify import load_results, parse_sweep, run_sweep
>>> sweep = parse_sweep('''
... family = "bivariate"
... replicates = 4
... [grid]
... envs = [40, 80]
... ''')
>>> out = tempfile.mkdtemp()
>>> _ = run_sweep(sweep, out, progress=False)
>>> table = load_results(out)
>>> sorted(table["envs"].unique().tolist()), sorted(table["metric"].unique())
([40, 80], ['accuracy', 'shd'])
"""

from causalid.verify.execute import SweepRun, run_cell, run_sweep
from causalid.verify.families import FAMILIES
from causalid.verify.store import ResultStore, StoreError, load_results, load_table, write_table
from causalid.verify.sweep import Cell, Sweep, SweepError, load_sweep, parse_sweep

__all__ = [
    "FAMILIES",
    "Cell",
    "ResultStore",
    "StoreError",
    "Sweep",
    "SweepError",
    "SweepRun",
    "load_results",
    "load_sweep",
    "load_table",
    "parse_sweep",
    "run_cell",
    "run_sweep",
    "write_report",
    "write_table",
]


def write_report(path, out=None, *, progress: bool = False):
    """Tables, plots and an HTML page of a store: :func:`causalid.verify.report.write_report`."""
    from causalid.verify.report import write_report as _write

    return _write(path, out, progress=progress)
