"""Progress display: one default for every front door.

``progress=None`` (the default everywhere) shows a progress bar on standard error when a
person is watching (an interactive terminal or a notebook) and stays silent otherwise (logs,
pipes, CI, tests); ``True`` and ``False`` force it on or off.
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

__all__ = ["progress_bar", "show_progress"]


def show_progress(progress: bool | None) -> bool:
    """Whether to show progress: ``progress`` itself, or for ``None`` whether someone watches."""
    if progress is not None:
        return bool(progress)
    if "ipykernel" in sys.modules:
        return True
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def progress_bar(progress: bool | None, **options):
    """A :mod:`tqdm` bar on standard error when :func:`show_progress`, else None."""
    if not show_progress(progress):
        return None
    return tqdm(file=sys.stderr, leave=False, **options)
