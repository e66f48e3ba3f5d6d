"""Files in and out: reading tables and checking output paths, one layer for every wing and command."""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from causalid.errors import DataError


_TEXT_SUFFIXES = (".csv", ".txt", ".tsv", ".dat", ".gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_DELIMITERS = ",;\t|"
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+(?:[eE][+-]?\d+)?$")


def read_table(path) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame; every problem is one :class:`DataError`.

    Text files: UTF-8 with or without a byte-order mark (Excel's default); the delimiter is
    detected among ``, ; tab |`` and decimal commas are recognised in ``;``-separated files
    (the European spreadsheet convention); ``.gz`` is decompressed.  Refused, each with the
    file's name: a missing file or a folder, an empty file, bytes that are not text, a table
    whose header repeats or leaves out a column name, a header without rows, an unknown
    suffix, a damaged Parquet file.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"'{path}' is a folder, not a table; give a .csv or .parquet file")
    if not path.exists():
        raise DataError(f"file '{path}' does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"file '{path}' is empty")
    suffix = path.suffix.lower()
    if suffix in _PARQUET_SUFFIXES:
        df = _read_parquet(path)
    elif suffix in _TEXT_SUFFIXES:
        df = _read_text(path, "\t" if suffix == ".tsv" else None)
    else:
        raise DataError(f"file '{path}': unknown format '{suffix or '(no suffix)'}'; use .csv or .parquet")
    if df.shape[0] == 0:
        raise DataError(f"file '{path}' has a header but no rows")
    return df


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"reading '{path}' needs pyarrow (pip install pyarrow), or save the table as .csv") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for damaged files
        raise DataError(f"'{path}' is not a readable Parquet file ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'damaged'})") from None
    names = [str(c) for c in table.column_names]
    _check_header(path, names)
    return table.to_pandas()


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    if path.suffix.lower() == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"'{path}' is not a readable gzip file ({exc})") from None
    if b"\x00" in raw[:65536]:
        raise DataError(f"'{path}' is not a text table (it holds binary bytes); give a .csv text file "
                        "or a .parquet file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"'{path}' is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV "
                        "(in a spreadsheet: 'CSV UTF-8')") from None


def _read_text(path: Path, sep: str | None) -> pd.DataFrame:
    text = _decode(path)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise DataError(f"file '{path}' has no data")
    if sep is None:
        sep = _sniff_delimiter(lines[: 50])
    header = next(csv.reader([lines[0]], delimiter=sep))
    _check_header(path, header)
    decimal = "."
    if sep == ";":
        cells = [c.strip() for ln in lines[1:50] for c in next(csv.reader([ln], delimiter=sep))]
        if any(_DECIMAL_COMMA.match(c) for c in cells):
            decimal = ","
    try:
        return pd.read_csv(io.StringIO(text), sep=sep, decimal=decimal, skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"file '{path}' has no data") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"'{path}' is not a regular table ({str(exc).splitlines()[0]}); every row "
                        f"needs the {len(header)} columns of the header") from None


def _sniff_delimiter(lines: list[str]) -> str:
    """The delimiter among ``, ; tab |`` that splits every line into the same (largest) number
    of fields; a comma when none does."""
    best, best_fields = ",", 1
    for d in _DELIMITERS:
        counts = {len(next(csv.reader([ln], delimiter=d))) for ln in lines}
        if len(counts) == 1 and (n := counts.pop()) > best_fields:
            best, best_fields = d, n
    return best


def _check_header(path: Path, names) -> None:
    names = [str(n).strip() for n in names]
    empty = [i for i, n in enumerate(names) if n == ""]
    if empty:
        raise DataError(f"'{path}': column {empty[0] + 1} of the header has no name; name every column")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"'{path}': duplicated column name(s) {dup}; rename them so every column is unique")


def check_output_path(path, what: str = "output") -> Path:
    """``path`` as a Path whose folder exists and which is not a folder itself."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{what} '{path}' is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise DataError(f"cannot write {what} '{path}': the folder '{parent}' does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise DataError(f"cannot write {what} '{path}': the folder '{parent}' is not writable")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path, what: str = "output"):
    """Write ``path`` through a temporary file in the same folder, renamed into place only when
    the ``with`` body finishes: a failed or interrupted write leaves no partial file.

    Yields the temporary path (same suffix, so writers that pick a format by suffix work).
    """
    path = check_output_path(path, what)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix or ".tmp", dir=folder)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_table(df: pd.DataFrame, path, what: str = "table") -> Path:
    """Write ``df`` as CSV (no index) to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path, what) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


def write_text(text: str, path, what: str = "output") -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path, what) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
