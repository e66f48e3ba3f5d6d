"""One helper for JSON round trips of results (used by every result type)."""

from __future__ import annotations

import numpy as np


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
