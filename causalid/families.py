"""The registry of sweep plug-ins, and the sweep front doors bound to it.

It sits above the wings: each wing implements :mod:`causalid.verify.plugin` for its own
families and never sees this registry, and :mod:`causalid.verify` (the family-free core)
receives it as an argument.  :func:`load_sweep`, :func:`parse_sweep` and :func:`run_sweep`
read sweeps against :data:`FAMILIES`.

Examples
--------
>>> import tempfile
>>> from causalid import load_results, parse_sweep, run_sweep
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

from __future__ import annotations

from causalid.exchangeable.sweep import BIVARIATE, MULTIVARIATE_BINARY
from causalid.hmm.sweep import HMM
from causalid.lti.sweep import LTI
from causalid.verify import execute, sweep
from causalid.verify.execute import SweepRun
from causalid.verify.plugin import Family
from causalid.verify.sweep import Sweep

__all__ = ["FAMILIES", "load_sweep", "parse_sweep", "run_sweep"]

FAMILIES: dict[str, Family] = {f.name: f for f in (BIVARIATE, MULTIVARIATE_BINARY, LTI, HMM)}
"""Every model family a sweep can name: ``bivariate``, ``multivariate-binary``, ``lti``, ``hmm``."""


def load_sweep(path) -> Sweep:
    """Read and validate a sweep TOML file (:func:`causalid.verify.sweep.load_sweep`)."""
    return sweep.load_sweep(path, FAMILIES)


def parse_sweep(text: str, source: str = "<string>") -> Sweep:
    """Validate a sweep given as TOML text (:func:`causalid.verify.sweep.parse_sweep`)."""
    return sweep.parse_sweep(text, FAMILIES, source=source)


def run_sweep(sweep_or_path, out, **options) -> SweepRun:
    """Run a sweep, or the sweep of a TOML file, into the store ``out``, resuming where an
    earlier run stopped; ``options`` as for :func:`causalid.verify.execute.run_sweep`
    (``workers``, ``scheduler``, ``progress``, ``chunk_size``)."""
    s = sweep_or_path if isinstance(sweep_or_path, Sweep) else load_sweep(sweep_or_path)
    return execute.run_sweep(s, out, **options)
