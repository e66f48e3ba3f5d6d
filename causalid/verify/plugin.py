r"""The plug-in protocol of a sweep: what a model family can set, simulate, fit and score.

Each wing implements it for its families (:mod:`causalid.exchangeable.sweep`,
:mod:`causalid.lti.sweep`, :mod:`causalid.hmm.sweep`); :mod:`causalid.families` lists them.

A *family* names a generative model, the settings its generator takes (any of which may be a
grid axis of a sweep), the engines that can fit it and the metrics that score a fit.  One cell
of a sweep is one resolved setting of every generator key; :func:`evaluate_cell` simulates
``replicates`` data sets for it, runs every engine on them and scores each fit:

    simulate (key_sim, settings, R)  →  R data sets and their truth
    engine(data, key_fit)            →  R estimates
    metric(truth, estimate)          →  R values per metric

The simulation of all replicates is one compiled program where the generator is a pure JAX
program (bivariate, multivariate binary and HMM generators: a :func:`jax.lax.map` over the
replicates' keys, see :func:`replicate_program`); the LTI generator draws a random system by
rejection (NumPy), so its replicates are drawn one by one.  Engines with a
batched form run once on all replicates (:func:`causalid.discover_batch` for the exchangeable
families); the LTI and HMM engines have none and run once per replicate.  Every engine of a
cell receives the same fit key (common random numbers: engines are compared on the same data
and the same random choices); the structure engines of :func:`causalid.discover_batch` take the
sweep seed itself as their integer seed, which they compile in as a constant.

Nothing is dropped: a value that is missing is recorded as NaN with the reason in the ``error``
column of the store — for a metric that does not apply to an engine's estimate
(``A_tilde_error`` of a partial-observation fit, ``mechanism_correct`` of a single fit) a reason
beginning with ``"not applicable"``; for a fit that failed with a
:class:`~causalid.errors.CausalIDError` (or, for the LTI engines, a
:class:`~causalid.errors.ConvergenceWarning`) the exception's first line; for a metric that is
undefined on one replicate (``direction_accuracy`` when no true edge was found) why.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from causalid._compile import compile_lowered, compiled
from causalid._x64 import float64

__all__ = [
    "NOT_APPLICABLE",
    "REQUIRED",
    "Family",
    "Scores",
    "Setting",
    "cell_keys",
    "compile_ahead",
    "draw_replicates",
    "evaluate_cell",
    "one_line",
    "replicate_program",
    "seed_int",
]

REQUIRED = object()
NOT_APPLICABLE = "not applicable"
"""How the ``error`` of a metric that does not apply to an engine begins (not a failure)."""


@dataclass(frozen=True)
class Setting:
    """One setting of a generator or an engine.

    Attributes
    ----------
    kind : {int, float, bool, str}
    default : value, None or ``REQUIRED``
        ``None``: not set (a family's ``resolve`` may derive it, e.g. ``envs = states + 1``);
        ``REQUIRED``: the sweep must give it.
    choices : tuple
        Allowed values of a ``str`` setting.
    minimum, maximum : float, optional
        Smallest and largest allowed values of a number.
    doc : str
    """

    kind: type
    default: Any = REQUIRED
    choices: tuple = ()
    minimum: float | None = None
    doc: str = ""
    maximum: float | None = None

    def check(self, value, where: str):
        """The value converted to ``kind``; raises ``ValueError`` with a one-line message."""
        kind = self.kind
        if value is None:
            raise ValueError(f"{where}: a value is required")
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{where} = {value!r}: give true or false")
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{where} = {value!r}: give an integer")
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{where} = {value!r}: give a number")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{where} = {value!r}: give a finite number")
        elif kind is str:
            if not isinstance(value, str):
                raise ValueError(f"{where} = {value!r}: give a string")
            if self.choices and value not in self.choices:
                raise ValueError(f"{where} = {value!r}: choose one of {list(self.choices)}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{where} = {value!r}: must be at least {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{where} = {value!r}: must be at most {self.maximum:g}")
        return value


@dataclass(frozen=True)
class Family:
    """A model family: its settings, engines and metrics, and how a cell is computed.

    Attributes
    ----------
    name : str
    settings : dict of Setting
        Generator settings; any of them may be a grid axis.
    engines : dict of {method: dict of Setting}
        Engine methods and their options.
    default_engines : dict
        Engines of a sweep that names none (``{name: {"method": ..., options}}``).
    metrics, default_metrics : tuple of str
    resolve : callable(settings) -> settings
        Cross-checks of one cell's settings (raises ``ValueError``).
    check_engine : callable(method, options, settings) -> None
        Cross-checks of an engine against a cell (raises ``ValueError``).
    simulate : callable(key, settings, R) -> dict
        ``R`` data sets with their truth (:func:`evaluate_cell` adds the sweep seed as
        ``"seed"``).
    fit_score : callable(method, options, sim, key, metrics) -> Scores
        Per-metric ``(R,)`` values and the reasons for the missing ones.
    precompile : callable(settings, R) -> callable or None
        Traces a cell's generator now and returns a function that compiles it (safe to run in
        another thread), or None when there is nothing to compile ahead.
    """

    name: str
    settings: dict[str, Setting]
    engines: dict[str, dict[str, Setting]]
    default_engines: dict[str, dict]
    metrics: tuple[str, ...]
    default_metrics: tuple[str, ...]
    simulate: Callable
    fit_score: Callable
    resolve: Callable = field(default=lambda settings: settings)
    check_engine: Callable = field(default=lambda method, options, settings: None)
    precompile: Callable = field(default=lambda settings, R: None)


def cell_keys(seed: int, index: int):
    """``(key_sim, key_fit)`` of cell ``index``: derived from the sweep seed and the index only.

    ``fold_in(PRNGKey(seed), index)`` split in two, so a cell draws the same numbers whatever
    order, process or machine it runs in.
    """
    key = jax.random.fold_in(jax.random.PRNGKey(int(seed)), int(index))
    k_sim, k_fit = jax.random.split(key)
    return k_sim, k_fit


class Scores:
    """Per-metric values of R replicates (NaN until set) and why a value is missing.

    Attributes
    ----------
    values : dict of {metric: float array (R,)}
    errors : dict of {metric: list of R str}
        "" where the value is set.
    """

    def __init__(self, metrics, R: int):
        self.values = {m: np.full(R, np.nan) for m in metrics}
        self.errors = {m: [""] * R for m in metrics}

    def fail(self, r: int | slice, message: str) -> None:
        """Every metric of replicate(s) ``r`` is missing, for ``message``."""
        for errs in self.errors.values():
            for i in range(len(errs))[r] if isinstance(r, slice) else [r]:
                errs[i] = message

    def set(
        self,
        r: int,
        scores: dict,
        missing: str,
        undefined: str = "undefined (NaN) for this replicate",
    ) -> None:
        """Values of replicate ``r`` from ``scores``; metrics absent from it get the reason
        ``missing``, NaN values the reason ``undefined``."""
        for m, v in self.values.items():
            if m not in scores:
                self.errors[m][r] = missing
                continue
            v[r] = scores[m]
            if np.isnan(v[r]):
                self.errors[m][r] = undefined


def seed_int(key) -> int:
    """A non-negative int32 seed from a key, for engines that take integer seeds."""
    return int(jax.random.randint(key, (), 0, 2**31 - 1))


@float64
def evaluate_cell(
    family: Family, settings: dict, engines: dict, metrics, replicates: int, seed: int, index: int
) -> list[dict]:
    """Simulate, fit and score one cell.

    Returns
    -------
    list of dict
        One record per engine: ``engine``, ``values`` (dict metric → float array ``(R,)``),
        ``errors`` (dict metric → list of R strings, "" where the value is set) and ``seconds``
        (wall time of the engine on all replicates of the cell).
    """
    k_sim, k_fit = cell_keys(seed, index)
    sim = {**family.simulate(k_sim, settings, replicates), "seed": int(seed)}
    out = []
    for name, spec in engines.items():
        options = {k: v for k, v in spec.items() if k != "method"}
        t0 = time.perf_counter()
        scores = family.fit_score(spec["method"], options, sim, k_fit, tuple(metrics))
        seconds = time.perf_counter() - t0
        out.append(
            {"engine": name, "values": scores.values, "errors": scores.errors, "seconds": seconds}
        )
    return out


@functools.lru_cache(maxsize=64)
def replicate_program(draw: Callable, *static) -> Callable:
    """``keys (R,) -> draw(key, *static)`` for every key, as one jitted program (cached).

    The replicates run in a compiled loop (:func:`jax.lax.map`), not a Python one.  For these
    small generators the loop compiles in about half the time of :func:`jax.vmap` (and
    compilation, once per cell shape, dominates a cell's simulation); it draws the same numbers
    (bit for bit for the exchangeable generators, up to rounding, ~1e-15, for the HMM's).
    """
    return jax.jit(lambda keys: jax.lax.map(lambda k: draw(k, *static), keys))


# executables compiled ahead of time by `precompile`, keyed by (draw, static, R); a handful
_AHEAD: dict = {}
_AHEAD_SIZE = 4


@float64
def draw_replicates(draw: Callable, static: tuple, keys):
    """``draw(key, *static)`` for every key: the executable compiled ahead, else compiled now
    (the same program with the same options either way, so the draws are the same)."""
    executable = _AHEAD.get((draw, static, keys.shape[0]))
    if executable is None:
        executable = compiled(replicate_program(draw, *static), keys)
    return executable(keys)


@float64
def compile_ahead(draw: Callable, static: tuple, R: int) -> Callable[[], None] | None:
    """Trace the replicates' program now; return the function that compiles it.

    Tracing runs here, in the calling thread (NumPyro's effect handlers keep a global stack, so
    NumPyro programs must not be traced from two threads at once); the returned function only
    compiles (XLA releases the GIL) and may run in another thread while this one fits the
    previous cell.  The executable is the one :func:`draw_replicates` would build, so the draws are
    the same.
    """
    key = (draw, static, R)
    if key in _AHEAD:
        return None
    shape = jax.eval_shape(lambda: jax.random.split(jax.random.PRNGKey(0), R))
    lowered = replicate_program(draw, *static).lower(shape)

    def compile_() -> None:
        executable = compile_lowered(lowered)
        while len(_AHEAD) >= _AHEAD_SIZE:
            _AHEAD.pop(next(iter(_AHEAD)))
        _AHEAD[key] = executable

    return compile_


def one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
