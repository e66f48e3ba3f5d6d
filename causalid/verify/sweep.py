r"""Sweep definitions: a TOML file → a validated :class:`Sweep` with its grid of cells.

A sweep names a model family, its generator settings, a grid over some of them, the engines
to compare, the metrics, the seed and the number of replicates.  Everything is checked when
the file is read, before anything runs; a mistake raises :class:`SweepError` with one line
that names the key and says what to do.

Schema
------
::

    name = "bivariate-curve"          # optional; default: the file name
    description = "..."               # optional
    family = "bivariate"              # bivariate | multivariate-binary | lti | hmm
    seed = 42                         # sweep seed (default 0)
    replicates = 100                  # simulated data sets per cell (required)
    metrics = ["accuracy", "shd"]     # optional; default: the family's

    [generator]                       # fixed generator settings (family defaults otherwise)
    samples = 2

    [grid]                            # axes: every key a list; the cells are their product
    envs = [100, 200, 300, 400, 500]

    [engines.cdf]                     # one table per engine to compare; default: the family's
    method = "cdf"                    # default: the table's name
    ci_test = "gcm"                   # engine options (see causalid.verify.plugin)

    [execution]                       # does not change results
    chunk_size = 1                    # cells per Dask task

    [[reference]]                     # optional published numbers, drawn by the report
    metric = "accuracy"
    label = "published (KCI)"
    envs = [100, 200, 300, 400, 500]  # settings identifying the points (equal-length lists)
    value = [0.70, 0.82, 0.87, 0.90, 0.91]

A grid that is not a full product is written as an array of tables, ``[[grid]]``, each a
product; their cells are concatenated in order.  A setting is either fixed (``[generator]``)
or a grid axis, never both.

Cells
-----
Cell ``i`` has every generator setting resolved (family default ← ``[generator]`` ← grid
point).  The store's setting columns (:attr:`Sweep.columns`) are the grid axes plus every
setting whose resolved value differs between cells.  The sweep's :attr:`Sweep.hash` covers
what determines the results — family, seed, replicates, engines, metrics and the resolved
cells — and not the name, description, references or execution options.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from causalid.errors import DataError
from causalid.verify.plugin import REQUIRED, Family, Setting

__all__ = ["Cell", "Sweep", "SweepError", "load_sweep", "parse_sweep"]

_TOP = (
    "name",
    "description",
    "family",
    "seed",
    "replicates",
    "metrics",
    "generator",
    "grid",
    "engines",
    "execution",
    "reference",
)
_ENGINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class SweepError(DataError):
    """A sweep definition is invalid (the message names the key and what to do)."""


@dataclass(frozen=True)
class Cell:
    """One point of a sweep's grid.

    Attributes
    ----------
    index : int
        Position in the sweep (its randomness derives from the sweep seed and this index).
    settings : dict
        Every generator setting of the family, resolved.
    """

    index: int
    settings: dict


@dataclass(frozen=True)
class Sweep:
    """A validated sweep (build with :func:`load_sweep` or :func:`parse_sweep`).

    Attributes
    ----------
    name, description, family : str
    seed, replicates : int
    engines : dict
        ``{engine name: {"method": ..., option: value, ...}}`` with every option resolved.
    metrics : tuple of str
    cells : tuple of Cell
    columns : tuple of str
        Setting columns of the store (grid axes and settings that vary between cells).
    generator : dict
        Fixed settings as given.
    grid : tuple of dict
        The grid's product blocks as given.
    references : tuple of dict
        ``{"metric", "label", "points": [{setting: value}], "values": [float]}``.
    chunk_size : int
        Cells per Dask task.
    source : str
        Where the definition came from (a path or ``"<string>"``).
    text : str or None
        The TOML text, when read from one.
    """

    name: str
    family: str
    seed: int
    replicates: int
    engines: dict
    metrics: tuple
    cells: tuple
    columns: tuple
    generator: dict = field(default_factory=dict)
    grid: tuple = ()
    references: tuple = ()
    description: str = ""
    chunk_size: int = 1
    source: str = "<string>"
    text: str | None = None
    family_spec: Family | None = field(default=None, compare=False, repr=False)
    """The family's plug-in, from the registry the sweep was read against."""

    # ------------------------------------------------------------------ identity
    def content(self) -> dict:
        """What determines the results (the input of :attr:`hash`)."""
        return {
            "family": self.family,
            "seed": self.seed,
            "replicates": self.replicates,
            "engines": self.engines,
            "metrics": list(self.metrics),
            "cells": [c.settings for c in self.cells],
        }

    @property
    def hash(self) -> str:
        """SHA-256 of :meth:`content` as canonical JSON."""
        text = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def to_config(self) -> dict:
        """The definition as a TOML-shaped dict (:meth:`from_config` rebuilds the same sweep)."""
        out: dict[str, Any] = {
            "name": self.name,
            "family": self.family,
            "seed": self.seed,
            "replicates": self.replicates,
            "metrics": list(self.metrics),
            "generator": dict(self.generator),
            "grid": [dict(g) for g in self.grid],
            "engines": {
                k: {o: v for o, v in e.items() if v is not None} for k, e in self.engines.items()
            },
            "execution": {"chunk_size": self.chunk_size},
        }
        if self.description:
            out["description"] = self.description
        if self.references:
            out["reference"] = [_reference_table(r) for r in self.references]
        return out

    @classmethod
    def from_config(cls, config: dict, families: Mapping[str, Family], source: str = "<string>",
                    text: str | None = None) -> Sweep:
        """Validate a TOML-shaped dict against the registry ``families``; raises :class:`SweepError`."""
        return _build(config, families, source, text)

    # ------------------------------------------------------------------ views

    def cell_table(self) -> pd.DataFrame:
        """One row per cell: ``cell`` and the setting columns."""
        return pd.DataFrame(
            [{"cell": c.index, **{k: c.settings[k] for k in self.columns}} for c in self.cells]
        )

    def summary(self) -> str:
        engines = ", ".join(f"{k} ({v['method']})" for k, v in self.engines.items())
        lines = [
            (
                f"sweep '{self.name}' ({self.family}): {len(self.cells)} cell(s) x "
                f"{self.replicates} replicate(s), seed {self.seed}"
            ),
            f"engines: {engines}",
            f"metrics: {', '.join(self.metrics)}",
            f"columns: {', '.join(self.columns) if self.columns else '(a single cell)'}",
            f"hash: {self.hash[:16]}",
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"Sweep(name={self.name!r}, family={self.family!r}, cells={len(self.cells)}, "
            f"replicates={self.replicates}, engines={list(self.engines)})"
        )


def load_sweep(path, families: Mapping[str, Family]) -> Sweep:
    """Read a sweep TOML file and validate it against the registry ``families``
    (:data:`causalid.families.FAMILIES` is the project's; :func:`causalid.load_sweep` reads
    against it).

    Examples
    --------
    >>> from causalid.families import FAMILIES
    >>> s = parse_sweep('family = "bivariate"\\nreplicates = 4\\n[grid]\\nenvs = [50, 100]', FAMILIES)
    >>> [c.settings["envs"] for c in s.cells], s.columns
    ([50, 100], ('envs',))
    """
    path = Path(path)
    if path.is_dir():
        raise SweepError(
            f"'{path}' is a directory; give the sweep's TOML file "
            "(e.g. examples/sweeps/bivariate.toml)"
        )
    if not path.is_file():
        raise SweepError(f"sweep file '{path}' does not exist")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SweepError(
            f"sweep file '{path}' is not UTF-8 text (byte {exc.start}); TOML files are UTF-8"
        ) from None
    return parse_sweep(text, families, source=str(path))


def parse_sweep(text: str, families: Mapping[str, Family], source: str = "<string>") -> Sweep:
    """Validate a sweep given as TOML text against the registry ``families``; raises
    :class:`SweepError`."""
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{source}: not valid TOML: {exc}") from None
    return _build(config, families, source, text)


# ---------------------------------------------------------------------------------- building


def _unknown(where: str, key: str, allowed) -> str:
    near = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f"did you mean '{near[0]}'?" if near else f"allowed: {', '.join(sorted(allowed))}"
    return f"{where}{key}: unknown key; {hint}"


def _table(config: dict, key: str, where: str) -> dict:
    value = config.get(key, {})
    if not isinstance(value, dict):
        raise TypeError(f"{where}: must be a table ([{key}]), got {type(value).__name__}")
    return value


def _scalar(config, key, kind, default, minimum=None):
    if key not in config:
        if default is REQUIRED:
            raise ValueError(f"{key}: required")
        return default
    return Setting(kind, minimum=minimum).check(config[key], key)


def _build(config: dict, families: Mapping[str, Family], source: str, text: str | None) -> Sweep:
    try:
        return _validate(config, families, source, text)
    except (ValueError, TypeError) as exc:
        raise SweepError(f"{source}: {exc}") from None


def _validate(config: dict, families: Mapping[str, Family], source: str, text: str | None) -> Sweep:
    for key in config:
        if key not in _TOP:
            raise ValueError(_unknown("", key, _TOP))
    if "family" not in config:
        raise ValueError(f"family: required; choose one of {list(families)}")
    family = _scalar(config, "family", str, REQUIRED)
    if family not in families:
        raise ValueError(f"family = {family!r}: choose one of {list(families)}")
    fam = families[family]
    if "replicates" not in config:
        raise ValueError(
            "replicates: required; the number of simulated data sets per cell, e.g. "
            "replicates = 100"
        )
    replicates = _scalar(config, "replicates", int, REQUIRED, minimum=1)
    seed = _scalar(config, "seed", int, 0, minimum=0)
    default_name = Path(source).stem if source != "<string>" else family
    name = _scalar(config, "name", str, default_name)
    description = _scalar(config, "description", str, "")

    generator = dict(_table(config, "generator", "generator"))
    for key, value in generator.items():
        if key not in fam.settings:
            raise ValueError(
                _unknown("generator.", key, fam.settings) + f" (settings of family '{family}')"
            )
        if isinstance(value, list):
            raise TypeError(
                f"generator.{key}: one fixed value; to sweep over several, move it under [grid]"
            )
        generator[key] = fam.settings[key].check(value, f"generator.{key}")

    execution = _table(config, "execution", "execution")
    for key in execution:
        if key != "chunk_size":
            raise ValueError(_unknown("execution.", key, ("chunk_size",)))
    chunk_size = Setting(int, minimum=1).check(
        execution.get("chunk_size", 1), "execution.chunk_size"
    )

    blocks = _grid_blocks(config.get("grid"), fam, generator)
    cells = _cells(blocks, fam, generator)
    engines = _engines(config, fam, cells)
    metrics = _metrics(config, fam)
    axes = {k for b in blocks for k in b}
    columns = tuple(
        k for k in fam.settings if k in axes or len({json.dumps(c.settings[k]) for c in cells}) > 1
    )
    references = _references(config.get("reference", []), fam, metrics)
    return Sweep(
        name=name,
        family=family,
        seed=seed,
        replicates=replicates,
        engines=engines,
        metrics=metrics,
        cells=tuple(cells),
        columns=columns,
        generator=dict(generator),
        grid=tuple(blocks),
        references=references,
        description=description,
        chunk_size=chunk_size,
        source=source,
        text=text,
        family_spec=fam,
    )


def _grid_blocks(grid, fam: Family, generator: dict) -> list[dict]:
    if grid is None:
        return [{}]
    if isinstance(grid, dict):
        raw, label = [grid], lambda j: "grid"
    elif isinstance(grid, list) and grid and all(isinstance(g, dict) for g in grid):
        raw, label = grid, lambda j: f"grid[{j}]"
    else:
        raise ValueError("grid: give a table [grid] of axes, or an array of tables [[grid]]")
    blocks = []
    for j, block in enumerate(raw):
        out = {}
        for key, values in block.items():
            where = f"{label(j)}.{key}"
            if key not in fam.settings:
                raise ValueError(
                    _unknown(f"{label(j)}.", key, fam.settings)
                    + f" (settings of family '{fam.name}')"
                )
            if key in generator:
                raise ValueError(f"{where}: also fixed under [generator]; keep it in one place")
            if not isinstance(values, list) or not values:
                raise ValueError(
                    f"{where}: give a non-empty list of values, e.g. {key} = [...]; a single "
                    "fixed value belongs under [generator]"
                )
            checked = [fam.settings[key].check(v, f"{where}[{i}]") for i, v in enumerate(values)]
            if len(set(map(json.dumps, checked))) != len(checked):
                raise ValueError(f"{where}: repeated values {values}; list each value once")
            out[key] = checked
        blocks.append(out)
    return blocks


def _cells(blocks: list[dict], fam: Family, generator: dict) -> list[Cell]:
    cells: list[Cell] = []
    seen: dict[str, int] = {}
    for block in blocks:
        keys = list(block)
        for point in itertools.product(*(block[k] for k in keys)):
            given = dict(zip(keys, point))
            settings = {}
            for key, spec in fam.settings.items():
                if key in given:
                    settings[key] = given[key]
                elif key in generator:
                    settings[key] = generator[key]
                elif spec.default is REQUIRED:
                    raise ValueError(
                        f"generator.{key}: required by family '{fam.name}' ({spec.doc}); set "
                        f"it under [generator] or as a grid axis under [grid]"
                    )
                else:
                    settings[key] = spec.default
            index = len(cells)
            try:
                settings = fam.resolve(settings)
            except ValueError as exc:
                where = ", ".join(f"{k} = {v!r}" for k, v in given.items()) or "the generator"
                raise ValueError(f"cell {index} ({where}): {exc}") from None
            key = json.dumps(settings, sort_keys=True)
            if key in seen:
                raise ValueError(
                    f"grid: cells {seen[key]} and {index} have the same settings; remove the "
                    "overlap between the [[grid]] blocks"
                )
            seen[key] = index
            cells.append(Cell(index, settings))
    return cells


def _engines(config: dict, fam: Family, cells: list[Cell]) -> dict:
    raw = config.get("engines")
    if raw is None:
        raw = {k: dict(v) for k, v in fam.default_engines.items()}
    if not isinstance(raw, dict) or not raw:
        raise ValueError(
            'engines: give one table per engine, e.g. [engines.cdf] with method = "cdf"'
        )
    engines = {}
    for name, table in raw.items():
        where = f"engines.{name}"
        if not _ENGINE_NAME.match(name):
            raise ValueError(f"{where}: engine names use letters, digits and _ . + - only")
        if not isinstance(table, dict):
            raise TypeError(
                f"{where}: must be a table ([{where}]) with the engine's method and options"
            )
        method = Setting(str).check(table.get("method", name), f"{where}.method")
        if method not in fam.engines:
            raise ValueError(
                f"{where}.method = {method!r}: family '{fam.name}' has engines {list(fam.engines)}"
            )
        spec = fam.engines[method]
        options = {}
        for key, value in table.items():
            if key == "method":
                continue
            if key not in spec:
                raise ValueError(
                    _unknown(f"{where}.", key, spec) + f" (options of method '{method}')"
                )
            options[key] = spec[key].check(value, f"{where}.{key}")
        for key, s in spec.items():
            options.setdefault(key, None if s.default is REQUIRED else s.default)
        for cell in cells:
            try:
                fam.check_engine(method, options, cell.settings)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc} (cell {cell.index})") from None
        engines[name] = {"method": method, **options}
    return engines


def _metrics(config: dict, fam: Family) -> tuple:
    metrics = config.get("metrics", list(fam.default_metrics))
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise ValueError(f"metrics: give a non-empty list of names from {list(fam.metrics)}")
    for m in metrics:
        if m not in fam.metrics:
            near = difflib.get_close_matches(m, fam.metrics, n=1)
            hint = (
                f"did you mean '{near[0]}'?"
                if near
                else f"family '{fam.name}' has {list(fam.metrics)}"
            )
            raise ValueError(f"metrics: unknown metric {m!r}; {hint}")
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics: repeated names in {metrics}")
    return tuple(metrics)


def _references(raw, fam: Family, metrics: tuple) -> tuple:
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        raise ValueError("reference: give an array of tables [[reference]]")
    out = []
    for j, ref in enumerate(raw):
        where = f"reference[{j}]"
        metric = ref.get("metric")
        if metric not in metrics:
            raise ValueError(
                f"{where}.metric = {metric!r}: name one of the sweep's metrics {list(metrics)}"
            )
        label = Setting(str).check(ref.get("label", "reference"), f"{where}.label")
        values = ref.get("value")
        if not isinstance(values, list) or not values:
            raise ValueError(f"{where}.value: give the list of reference values")
        values = [Setting(float).check(v, f"{where}.value[{i}]") for i, v in enumerate(values)]
        keys = [k for k in ref if k not in ("metric", "label", "value")]
        columns = {}
        for key in keys:
            if key not in fam.settings:
                raise ValueError(_unknown(f"{where}.", key, fam.settings))
            col = ref[key]
            if not isinstance(col, list) or len(col) != len(values):
                raise ValueError(
                    f"{where}.{key}: give a list as long as value ({len(values)} entries)"
                )
            columns[key] = [
                fam.settings[key].check(v, f"{where}.{key}[{i}]") for i, v in enumerate(col)
            ]
        points = [{k: columns[k][i] for k in keys} for i in range(len(values))]
        out.append({"metric": metric, "label": label, "points": points, "values": values})
    return tuple(out)


def _reference_table(ref: dict) -> dict:
    keys = list(ref["points"][0]) if ref["points"] else []
    return {
        "metric": ref["metric"],
        "label": ref["label"],
        **{k: [p[k] for p in ref["points"]] for k in keys},
        "value": list(ref["values"]),
    }
