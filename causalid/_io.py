"""Reading tables from files: the one file-reading layer of every wing and command."""

from __future__ import annotations

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
