"""Argument checks shared by every front door (one message per kind of mistake)."""

from __future__ import annotations

import numbers

from causalid.errors import DataError


def positive_int(value, what: str) -> int:
    """``value`` as an int >= 1; a bool, a fraction or anything else raises :class:`DataError`.

    Integral floats (``3.0``) are accepted; ``2.5`` and ``True`` are not.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DataError(f"{what} must be a positive integer; got {value!r}")
    if isinstance(value, numbers.Integral):
        v = int(value)
    else:
        v = int(value) if float(value).is_integer() else None
    if v is None or v < 1:
        raise DataError(f"{what} must be a positive integer; got {value!r}")
    return v
