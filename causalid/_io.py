"""Files in and out: reading tables and checking output paths, one layer for every wing and command."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from causalid.errors import DataError


def read_table(path) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame, with clear errors."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"file '{path}' does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"file '{path}' is empty")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif suffix in (".csv", ".txt", ".tsv", ".gz"):
            sep = "\t" if suffix == ".tsv" else None
            df = pd.read_csv(path, sep=sep, engine="python")
        else:
            raise DataError(f"file '{path}': unknown format '{suffix}'; use .csv or .parquet")
    except pd.errors.EmptyDataError:
        raise DataError(f"file '{path}' has no data") from None
    except ImportError as exc:
        raise DataError(f"reading '{path}' needs an optional package: {exc}") from None
    if df.shape[0] == 0:
        raise DataError(f"file '{path}' has a header but no rows")
    return df


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
