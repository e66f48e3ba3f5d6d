"""Multiple-testing adjustment of a family of p-values."""

from __future__ import annotations

import numpy as np

from causalid.errors import DataError

__all__ = ["CORRECTIONS", "adjust_pvalues"]

CORRECTIONS = (None, "bonferroni", "holm", "bh")


def adjust_pvalues(p: np.ndarray, correction: str | None) -> np.ndarray:
    """Adjust a family of p-values for multiple testing (Bonferroni, Holm or Benjamini–Hochberg)."""
    p = np.asarray(p, dtype=float)
    m = p.size
    if correction is None or m <= 1:
        return p
    if correction == "bonferroni":
        return np.minimum(1.0, p * m)
    order = np.argsort(p)
    ranked = p[order]
    if correction == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, ranked * (m - np.arange(m))))
    elif correction == "bh":
        adj = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
        adj = np.minimum(1.0, adj)
    else:
        raise DataError(f"unknown correction {correction!r}; choose one of {CORRECTIONS}")
    out = np.empty(m)
    out[order] = adj
    return out
