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


MAX_MAGNITUDE = 1e150
"""Largest absolute value accepted in data: sums of squares and cross-products of up to 10⁸
such values stay far below float64's overflow (about 1.8e308)."""


def check_channels(values, names, what: str, *, constant: bool = True) -> None:
    """Refuse channels (the last axis of ``values``; NaN = missing) that no fit can use.

    Raised, each naming the channel: every value missing; every observed value equal (when
    ``constant``); a value whose square would overflow float64 (:data:`MAX_MAGNITUDE`) — with
    the power of ten to divide the channel by.
    """
    import numpy as np

    flat = np.asarray(values, dtype=np.float64).reshape(-1, np.shape(values)[-1])
    observed = ~np.isnan(flat)
    for j, name in enumerate(names):
        col = flat[observed[:, j], j]
        if col.size == 0:
            raise DataError(f"{what} '{name}' has no observed values; remove it")
        peak = float(np.max(np.abs(col)))
        if not np.isfinite(peak):
            raise DataError(f"{what} '{name}' has infinite values; remove or impute them")
        if peak > MAX_MAGNITUDE:
            scale = int(np.floor(np.log10(peak)))
            raise DataError(f"{what} '{name}' reaches {peak:.3g}: squares of such values overflow "
                            f"float64; divide the column by 1e{scale} (a change of unit) first")
        if constant and col.size > 1 and float(np.ptp(col)) == 0.0:
            raise DataError(f"{what} '{name}' is constant ({col[0]:.6g}) and carries no information; "
                            "remove it")
