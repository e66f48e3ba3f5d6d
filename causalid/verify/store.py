r"""The columnar result store of a sweep: one Parquet file per finished cell, and a manifest.

Layout of a store directory ``DIR``::

    DIR/manifest.json                format, the sweep's hash and definition, its cells and columns
    DIR/sweep.toml                   the TOML text the sweep was read from (when read from a file)
    DIR/cells/cell-000000.parquet    the rows of cell 0, ...
    DIR/sbc/*.parquet                optional second table: simulation-based calibration ranks

A cell's file appears only when the cell is finished: it is written to a temporary file in the
same folder, flushed to disk and renamed (:func:`os.replace`, atomic on POSIX), so a sweep
killed at any moment leaves whole cells or none.  Restarting the same sweep into ``DIR`` runs
only the cells without a file; a *different* sweep (another hash) is refused.

Each cell file has a SHA-256 checksum beside it (``cell-000000.parquet.sha256``).  On resume a
cell whose file no longer matches its checksum, or cannot be read back with the expected rows
(a truncated or emptied file), is set aside as ``cell-000000.parquet.damaged`` with a warning
and computed again.  Several drivers may run the same sweep into one store at once: before
computing a cell a driver claims it (``cells/.claim-000000``, created exclusively, naming the
host and process); the others skip claimed cells, wait for them at the end, and take over the
cells of a claimant that died — so the store ends as one uninterrupted run would leave it.

Row schema (long format, one row per cell × engine × replicate × metric)
------------------------------------------------------------------------
``cell`` (int64)
    Index of the cell in the sweep.
setting columns
    The sweep's :attr:`~causalid.verify.sweep.Sweep.columns` (grid axes and settings that vary
    between cells), typed as the family declares them (int64, float64, bool, string).
``engine`` (string)
    Name of the engine (the ``[engines.NAME]`` table).
``replicate`` (int64)
    Index of the simulated data set in the cell, ``0 .. replicates-1``.
``metric`` (string), ``value`` (float64)
    The score; NaN when the fit failed or the metric does not apply (see ``error``).
``seconds`` (float64)
    Wall time of the engine on all replicates of the cell (the same on each of its rows).  The
    only column that differs between two runs of the same sweep.
``error`` (string)
    Empty for a successful fit; otherwise one line saying why ``value`` is missing.

Rows are ordered by cell, then engine (in the sweep's order), replicate and metric (in the
sweep's order).  The ``sbc`` table has its own columns (at least ``parameter``, ``rank``,
``num_draws``, ``replicate``); :func:`write_table` / :func:`load_table` store and read it.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import re
import socket
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from causalid._version import __version__
from causalid.errors import DataError

__all__ = ["FORMAT", "ResultStore", "StoreError", "load_results", "load_table", "write_table"]

FORMAT = "causalid.verify.store/1"
RESULT_COLUMNS = ("engine", "replicate", "metric", "value", "seconds", "error")
_CELL_FILE = re.compile(r"^cell-(\d{6,})\.parquet$")
_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_DTYPES = {int: "int64", float: "float64", bool: "bool", str: "str"}


class StoreError(DataError):
    """A store directory cannot be used as asked (another sweep, not a store, unreadable)."""


def require_pyarrow(purpose: str = "the sweep store"):
    """``(pyarrow, pyarrow.parquet)``, or a clear error saying what needs them."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # a broken installation: pyarrow is a dependency
        raise StoreError(f"{purpose} needs pyarrow, a dependency of causalid: reinstall causalid (pip install causalid) or pip install pyarrow") from None
    return pa, pq


def _pyarrow():
    return require_pyarrow("the sweep store (Parquet)")


def _atomic_bytes(path: Path, write) -> None:
    """Write through ``write(fh)`` into a temporary file beside ``path``, fsync, rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on folders
        pass


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    pa, pq = _pyarrow()
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buf)
    return buf.getvalue()


def _write_parquet(path: Path, frame: pd.DataFrame) -> None:
    data = _parquet_bytes(frame)
    _atomic_bytes(path, lambda fh: fh.write(data))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_parquet(path: Path) -> pd.DataFrame:
    _, pq = _pyarrow()
    try:
        return pq.read_table(path).to_pandas()
    except Exception as exc:  # noqa: BLE001 - any reader failure is a damaged file
        raise StoreError(
            f"cannot read '{path}' ({type(exc).__name__}: {exc}); delete it to recompute that part"
        ) from None


def _me() -> str:
    """This driver, as its claims name it: ``"host pid"``."""
    return f"{socket.gethostname()} {os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True
    return True


def _only_creation_leftovers(path: Path) -> bool:
    """True when ``path`` holds nothing but what a store's creation writes before its manifest
    (an empty ``cells/``, ``sweep.toml``, temporary files): a sweep killed while creating its
    store starts again from scratch instead of refusing the folder."""
    for entry in path.iterdir():
        if entry.name == "cells" and entry.is_dir() and not any(entry.iterdir()):
            continue
        if entry.name == "sweep.toml" and entry.is_file():
            continue
        if entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file():
            continue
        return False
    return True


class ResultStore:
    """A sweep's result directory (see the module docstring for the layout and row schema).

    Use :meth:`open` to create or resume the store of a sweep, :meth:`read` for an existing
    one.
    """

    def __init__(self, path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path, sweep) -> ResultStore:
        """Create the store of ``sweep`` in ``path``, or reopen it to resume.

        Raises
        ------
        StoreError
            ``path`` holds another sweep's results, or is a non-empty folder that is not a store.
        """
        path = Path(path)
        manifest_path = path / "manifest.json"
        if path.exists() and not path.is_dir():
            raise StoreError(f"--out '{path}' is a file; give a directory for the sweep's results")
        _pyarrow()  # a run that cannot write cells leaves nothing behind
        config = sweep.to_config()
        if manifest_path.exists():
            store = cls.read(path)
            old = store.manifest
            if old["hash"] != sweep.hash:
                raise StoreError(
                    f"'{path}' holds results of a different sweep "
                    f"('{old['sweep'].get('name')}', hash {old['hash'][:12]}; this one is "
                    f"'{sweep.name}', hash {sweep.hash[:12]}): give a new --out directory, or "
                    "delete that one to start over"
                )
            if old.get("causalid") != __version__:
                warnings.warn(
                    f"'{path}' was started with causalid {old.get('causalid')} and is resumed with "
                    f"{__version__}: the finished cells are kept as they are, so the store mixes "
                    "results of both versions (use a new --out directory to rerun everything)",
                    stacklevel=2,
                )
            if old["sweep"] != config:  # name, description, references or execution changed
                old["sweep"] = config
                store._write_manifest()
            toml = path / "sweep.toml"
            text = None if sweep.text is None else sweep.text.encode()
            if text is not None and (not toml.exists() or toml.read_bytes() != text):
                _atomic_bytes(toml, lambda fh: fh.write(text))
            store._clean_temporary()
            return store
        if path.exists() and not _only_creation_leftovers(path):
            if manifest_path.exists():  # another driver created the store meanwhile
                return cls.open(path, sweep)
            raise StoreError(
                f"'{path}' is not empty and is not a sweep store (no manifest.json); give a new "
                "or empty --out directory"
            )
        (path / "cells").mkdir(parents=True, exist_ok=True)
        fam = sweep.family_spec
        manifest = {
            "format": FORMAT,
            "hash": sweep.hash,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "causalid": __version__,
            "family": sweep.family,
            "num_cells": len(sweep.cells),
            "columns": list(sweep.columns),
            "dtypes": {k: _DTYPES[fam.settings[k].kind] for k in sweep.columns},
            "engines": list(sweep.engines),
            "metrics": list(sweep.metrics),
            "replicates": sweep.replicates,
            "cells": [{"cell": c.index, **c.settings} for c in sweep.cells],
            "sweep": config,
        }
        store = cls(path, manifest)
        store._clean_temporary()
        if sweep.text is not None:
            _atomic_bytes(path / "sweep.toml", lambda fh: fh.write(sweep.text.encode()))
        store._write_manifest()
        return store

    @classmethod
    def read(cls, path) -> ResultStore:
        """An existing store (for loading results and reports)."""
        path = Path(path)
        manifest_path = path / "manifest.json"
        if not manifest_path.exists():
            raise StoreError(
                f"'{path}' is not a sweep store (no manifest.json); run 'causalid verify "
                f"SWEEP.toml --out {path}' first"
            )
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"cannot read '{manifest_path}': {exc}") from None
        if manifest.get("format") != FORMAT:
            raise StoreError(
                f"'{manifest_path}' has format {manifest.get('format')!r}; this causalid reads "
                f"{FORMAT!r}"
            )
        return cls(path, manifest)

    def _write_manifest(self) -> None:
        text = json.dumps(self.manifest, indent=1, sort_keys=False)
        _atomic_bytes(self.path / "manifest.json", lambda fh: fh.write(text.encode()))

    def _clean_temporary(self) -> None:
        """Remove temporary files left by killed writers (never those of a live process)."""
        for tmp in self.path.glob("**/.*.tmp"):
            pid = tmp.name.rsplit(".", 2)[-2]
            if not (pid.isdigit() and _pid_alive(int(pid))):
                tmp.unlink(missing_ok=True)

    # ------------------------------------------------------------------ cells
    def cell_path(self, index: int) -> Path:
        return self.path / "cells" / f"cell-{int(index):06d}.parquet"

    def checksum_path(self, index: int) -> Path:
        return self.cell_path(index).with_name(self.cell_path(index).name + ".sha256")

    def finished(self) -> set[int]:
        """Indices of the cells whose results are stored (files present; see :meth:`verify`)."""
        out = set()
        for f in (self.path / "cells").glob("cell-*.parquet"):
            m = _CELL_FILE.match(f.name)
            if m:
                out.add(int(m.group(1)))
        bad = sorted(i for i in out if i >= self.manifest["num_cells"])
        if bad:
            raise StoreError(
                f"'{self.path}' has result files for cells {bad} beyond the sweep's "
                f"{self.manifest['num_cells']} cells; the store is damaged: use a new --out "
                "directory"
            )
        return out

    def expected_rows(self) -> int:
        """Rows of one finished cell: engines × replicates × metrics."""
        m = self.manifest
        return len(m["engines"]) * int(m["replicates"]) * len(m["metrics"])

    def cell_problem(self, index: int) -> str | None:
        """Why the stored file of cell ``index`` cannot be trusted, or None when it can.

        The file must match its checksum; a file without one (written by an older causalid, or
        by a driver killed between the two renames) must read back with the store's columns and
        the expected number of rows, and then gets its checksum.
        """
        path = self.cell_path(index)
        try:
            data = path.read_bytes()
        except OSError as exc:
            return f"unreadable ({exc.strerror})"
        sums = self.checksum_path(index)
        if sums.exists():
            try:
                expected = sums.read_text(encoding="ascii").split()[0]
            except (OSError, UnicodeDecodeError, IndexError):
                expected = None
            if expected == _sha256(data):
                return None
            if expected is not None:
                return "its contents no longer match the checksum written with it"
        _, pq = _pyarrow()
        try:
            frame = pq.read_table(io.BytesIO(data)).to_pandas()
        except Exception as exc:  # noqa: BLE001 - any reader failure is a damaged file
            return f"not readable Parquet ({type(exc).__name__})"
        expected_cols = ["cell", *self.manifest["columns"], *RESULT_COLUMNS]
        if list(frame.columns) != expected_cols:
            return f"columns {list(frame.columns)} instead of {expected_cols}"
        if len(frame) != self.expected_rows():
            return f"{len(frame)} rows instead of {self.expected_rows()}"
        if not (frame["cell"] == index).all():
            return "rows of another cell"
        _atomic_bytes(sums, lambda fh: fh.write(f"{_sha256(data)}  {path.name}\n".encode()))
        return None

    def verify(self) -> set[int]:
        """The finished cells whose files can be trusted; damaged ones are renamed to
        ``*.parquet.damaged`` with a warning, so that they are computed again."""
        good = set()
        for i in sorted(self.finished()):
            problem = self.cell_problem(i)
            if problem is None:
                good.add(i)
                continue
            path = self.cell_path(i)
            os.replace(path, path.with_name(path.name + ".damaged"))
            self.checksum_path(i).unlink(missing_ok=True)
            warnings.warn(f"'{path}' is damaged ({problem}); it was renamed to '{path.name}.damaged' "
                          f"and cell {i} is computed again", stacklevel=2)
        return good

    def write_cell(self, index: int, frame: pd.DataFrame) -> Path:
        """Store the rows of one finished cell (atomically) with its checksum."""
        expected = ["cell", *self.manifest["columns"], *RESULT_COLUMNS]
        if list(frame.columns) != expected:
            raise StoreError(
                f"cell {index}: columns {list(frame.columns)} differ from the store's {expected}"
            )
        if not (frame["cell"] == index).all():
            raise StoreError(f"cell {index}: the rows carry other cell indices")
        path = self.cell_path(index)
        data = _parquet_bytes(frame)
        _atomic_bytes(path, lambda fh: fh.write(data))
        _atomic_bytes(self.checksum_path(index), lambda fh: fh.write(f"{_sha256(data)}  {path.name}\n".encode()))
        return path

    # ------------------------------------------------------------------ claims (several drivers)
    def claim_path(self, index: int) -> Path:
        return self.path / "cells" / f".claim-{int(index):06d}"

    def claim(self, index: int) -> bool:
        """Claim cell ``index`` for this process; False when another live driver holds it.

        A claim of a process that no longer runs on this host is taken over.  Claims of other
        hosts (a store on a shared file system) are respected until their file is removed.
        """
        path = self.claim_path(index)
        me = _me()
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.claimant(index)
                if owner == me:
                    return True
                if owner is not None and not self._claim_is_stale(owner):
                    return False
                path.unlink(missing_ok=True)  # a dead driver's claim (or an unreadable one)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(me)
            return True
        return False

    def claimant(self, index: int) -> str | None:
        """``"host pid"`` of the driver holding cell ``index``, or None."""
        try:
            return self.claim_path(index).read_text().strip() or None
        except (OSError, UnicodeDecodeError):
            return None

    @staticmethod
    def _claim_is_stale(owner: str) -> bool:
        host, _, pid = owner.rpartition(" ")
        return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))

    def claimed_by_others(self, index: int) -> bool:
        owner = self.claimant(index)
        return owner is not None and owner != _me() and not self._claim_is_stale(owner)

    def release(self, index: int) -> None:
        """Drop this process's claim of cell ``index``."""
        if self.claimant(index) == _me():
            self.claim_path(index).unlink(missing_ok=True)

    def empty_frame(self) -> pd.DataFrame:
        """A frame with the store's columns and types and no rows."""
        dtypes = {
            "cell": "int64",
            **self.manifest["dtypes"],
            "engine": "str",
            "replicate": "int64",
            "metric": "str",
            "value": "float64",
            "seconds": "float64",
            "error": "str",
        }
        return pd.DataFrame({k: pd.Series([], dtype=v) for k, v in dtypes.items()})

    def load(self) -> pd.DataFrame:
        """Every stored row, ordered by cell (the row schema of the module docstring)."""
        frames = [read_parquet(self.cell_path(i)) for i in sorted(self.finished())]
        if not frames:
            return self.empty_frame()
        out = pd.concat(frames, ignore_index=True)
        out.attrs["manifest"] = self.manifest
        return out

    # ------------------------------------------------------------------ other tables
    def write_table(self, name: str, frame: pd.DataFrame, part: str) -> Path:
        """Store ``frame`` as part ``part`` of the extra table ``name`` (DIR/name/part.parquet)."""
        if not _TABLE_NAME.match(name) or name == "cells":
            raise StoreError(
                f"table name {name!r}: use lower-case letters, digits and _ (not 'cells')"
            )
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$", part):
            raise StoreError(f"part name {part!r}: use letters, digits and _ . + - only")
        folder = self.path / name
        folder.mkdir(exist_ok=True)
        path = folder / f"{part}.parquet"
        _write_parquet(path, frame)
        return path

    def tables(self) -> list[str]:
        """Names of the extra tables present (e.g. ``["sbc"]``)."""
        return sorted(
            p.name
            for p in self.path.iterdir()
            if p.is_dir() and p.name != "cells" and any(p.glob("*.parquet"))
        )

    def load_table(self, name: str) -> pd.DataFrame:
        """All parts of the extra table ``name``, concatenated in part-name order."""
        files = sorted((self.path / name).glob("*.parquet"))
        if not files:
            raise StoreError(f"'{self.path}' has no table '{name}' (no {name}/*.parquet)")
        return pd.concat([read_parquet(f) for f in files], ignore_index=True)


def cell_frame(sweep, cell, records: list[dict]) -> pd.DataFrame:
    """The rows of one cell from :func:`causalid.verify.plugin.evaluate_cell`'s records."""
    fam = sweep.family_spec
    R, metrics = sweep.replicates, list(sweep.metrics)
    parts = []
    for rec in records:
        n = R * len(metrics)
        parts.append(
            pd.DataFrame(
                {
                    "engine": np.repeat(rec["engine"], n),
                    "replicate": np.repeat(np.arange(R, dtype=np.int64), len(metrics)),
                    "metric": np.tile(np.asarray(metrics, dtype=object), R),
                    "value": np.stack([rec["values"][m] for m in metrics], axis=1).ravel(),
                    "seconds": np.full(n, float(rec["seconds"])),
                    "error": np.stack(
                        [np.asarray(rec["errors"][m], dtype=object) for m in metrics], axis=1
                    ).ravel(),
                }
            )
        )
    body = pd.concat(parts, ignore_index=True)
    head = {"cell": np.full(len(body), cell.index, dtype=np.int64)}
    for k in sweep.columns:
        head[k] = pd.Series([cell.settings[k]] * len(body), dtype=_DTYPES[fam.settings[k].kind])
    frame = pd.concat([pd.DataFrame(head), body], axis=1)
    return frame.astype({"engine": "str", "metric": "str", "error": "str"})


def load_results(path) -> pd.DataFrame:
    """The results of a sweep store as one long DataFrame (schema: :mod:`causalid.verify.store`).

    Cells not yet finished have no rows; ``frame.attrs["manifest"]`` holds the store's manifest
    (the sweep's definition, cells and hash).
    """
    store = ResultStore.read(path)
    out = store.load()
    out.attrs["manifest"] = store.manifest
    return out


def load_table(path, name: str) -> pd.DataFrame:
    """An extra table of a store, e.g. ``load_table(DIR, "sbc")``."""
    return ResultStore.read(path).load_table(name)


def write_table(path, name: str, frame: pd.DataFrame, part: str) -> Path:
    """Add part ``part`` of the extra table ``name`` (e.g. SBC ranks) to an existing store."""
    return ResultStore.read(path).write_table(name, frame, part)
