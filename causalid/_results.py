"""The result contract: every causalid result saves, loads, summarises and plots the same way.

A result class derives from :class:`Result` and provides

* ``_to_payload()`` — its fields as a JSON-ready dict (NumPy values are converted by
  :func:`plain`), and ``_from_payload(d)`` — the inverse;
* ``summary()`` — a few lines of text for people (``str(result)`` is the same);
* ``_plot(ax, **options)`` — draws into ``ax``'s place (``ax=None``: a new figure) and returns
  the figure;
* optionally ``to_frame()`` — its main table as a pandas DataFrame.

and inherits

* ``to_dict()`` / ``from_dict(d)`` — the payload with the tag ``"format":
  "causalid.<Class>/<version>"``;
* ``save(path)`` — JSON, written to a temporary file and renamed, so a failed write leaves no
  partial file; ``load(path)`` — with one-line errors for a missing, unreadable or foreign
  file, a missing field and a damaged value;
* ``plot(*, ax=None, path=None, **options)`` — the figure, also saved to ``path`` (whose folder
  and format are checked before anything is drawn).

Files written by earlier versions of causalid carry older tags; a class lists those it still
reads in ``LEGACY_FORMATS``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from causalid._io import check_output_path, write_text
from causalid._plotting import check_figure_path, finish
from causalid.errors import DataError

__all__ = ["Result", "plain", "read_json", "write_json"]


def plain(obj):
    """NumPy scalars and arrays to plain Python, recursively, for exact JSON round trips."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def write_json(path, data: dict) -> Path:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename (no partial file)."""
    return write_text(json.dumps(plain(data)), path)


def read_json(path, what: str = "a causalid result") -> Any:
    """The JSON value of the file ``path``; a missing, unreadable or non-JSON file raises a
    :class:`DataError` that names the file."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"'{path}' is a folder, not {what}")
    if not path.exists():
        raise DataError(f"file '{path}' does not exist")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"'{path}' is not {what}: it is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"'{path}' is not {what}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except OSError as exc:
        raise DataError(f"cannot read '{path}': {exc.strerror}") from None


class Result:
    """Base of every causalid result: tagged JSON save/load, summary, plot (see the module)."""

    VERSION: ClassVar[int] = 1
    LEGACY_FORMATS: ClassVar[tuple[str, ...]] = ()
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    """Payload fields that :meth:`from_dict` requires."""

    # ------------------------------------------------------------------ to implement
    def _to_payload(self) -> dict:
        raise NotImplementedError

    @classmethod
    def _from_payload(cls, d: dict):
        raise NotImplementedError

    def summary(self) -> str:
        raise NotImplementedError

    def _plot(self, ax=None, **options):
        raise NotImplementedError

    # ------------------------------------------------------------------ the contract
    @classmethod
    def format_tag(cls) -> str:
        """``"causalid.<Class>/<version>"``, the tag of the class's files."""
        return f"causalid.{cls.__name__}/{cls.VERSION}"

    def to_dict(self) -> dict:
        """The result as a JSON-ready dict with its format tag."""
        return {"format": self.format_tag(), **plain(self._to_payload())}

    @classmethod
    def from_dict(cls, d, source: str = "the dictionary"):
        """Rebuild a result from :meth:`to_dict`'s output (tag and required fields checked)."""
        what = f"a {cls.format_tag()} file"
        if not isinstance(d, dict):
            raise DataError(f"{source} is not {what}: it holds a JSON {type(d).__name__}, not an object")
        tag = d.get("format")
        if tag != cls.format_tag() and tag not in cls.LEGACY_FORMATS:
            found = f"a {tag} file" if isinstance(tag, str) and tag.startswith("causalid.") else (
                f"format {tag!r}" if tag is not None else "no format tag")
            raise DataError(f"{source} is not {what} ({found})")
        missing = [k for k in cls.REQUIRED if k not in d]
        if missing:
            raise DataError(f"{source} is damaged: it lacks field(s) {missing}")
        try:
            return cls._from_payload(d)
        except DataError as exc:
            raise DataError(f"{source} is damaged: {exc}") from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            detail = f"field {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
            raise DataError(f"{source} is damaged ({type(exc).__name__}: {detail})") from None

    def save(self, path) -> Path:
        """Write the result as JSON (atomically); returns the path."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path):
        """Read a result written by :meth:`save`."""
        return cls.from_dict(read_json(path, f"a {cls.format_tag()} file"), source=f"'{path}'")

    def plot(self, *, ax=None, path=None, **options):
        """The result's figure, drawn into ``ax``'s place (default: a new figure) and saved to
        ``path`` when given; returns the matplotlib figure."""
        if path is not None:
            check_figure_path(path)
        return finish(self._plot(ax=ax, **options), path)

    def __str__(self) -> str:
        return self.summary()
