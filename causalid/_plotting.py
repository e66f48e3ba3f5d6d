"""Shared figure helpers.  matplotlib is imported lazily, with the non-interactive Agg backend
when no display is available, so that importing causalid never needs a screen.

Every result's ``plot(*, ax=None, path=None)`` draws through :func:`figure_grid`: without
``ax`` it makes a new figure; with ``ax`` it draws into that axes' place in the caller's
figure (a result with several panels divides the place into a grid of its own).
"""

from __future__ import annotations

import os

import numpy as np

from causalid._io import atomic_output, check_output_path
from causalid.errors import DataError


def pyplot():
    import matplotlib

    if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_grid(ax, nrows: int, ncols: int, figsize, *, layout=None, **grid_kw):
    """``(figure, gridspec)`` for a figure of ``nrows`` x ``ncols`` panels.

    ``ax=None`` makes a new figure of size ``figsize`` (with matplotlib's ``layout`` engine);
    otherwise the panels take the place of ``ax`` in its figure (``ax`` is removed), so a
    result's figure can sit inside a larger one.
    """
    plt = pyplot()
    if ax is None:
        fig = plt.figure(figsize=figsize, layout=layout)
        return fig, fig.add_gridspec(nrows, ncols, **grid_kw)
    fig = ax.figure
    spec = ax.get_subplotspec()
    ax.remove()
    return fig, spec.subgridspec(nrows, ncols, **grid_kw)


def check_figure_path(path):
    """``path`` as a Path for a figure: its folder exists and matplotlib knows its format."""
    path = check_output_path(path, "figure")
    from matplotlib.backend_bases import FigureCanvasBase

    known = FigureCanvasBase.get_supported_filetypes()
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in known:
        raise DataError(f"figure '{path}': unknown format '{path.suffix or '(none)'}'; use one of "
                        f"{', '.join('.' + k for k in sorted(known))}")
    return path


def finish(fig, path):
    """Save ``fig`` to ``path`` when given; return it."""
    if path is not None:
        with atomic_output(path, "figure") as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight")
    return fig


def heatmap(ax, M, rows, cols, title, *, cmap="RdBu_r", vmin=None, vmax=None, labels=None, cbar_label=None):
    """Annotated heat map of a small matrix (text in each cell when it stays readable)."""
    M = np.asarray(M, dtype=float)
    if vmax is None:
        vmax = float(np.nanmax(np.abs(M))) if np.isfinite(M).any() else 1.0
        vmax = vmax if vmax > 0 else 1.0
        vmin = -vmax
    im = ax.imshow(M, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(M.shape[1]), labels=cols, rotation=30 if max(map(len, cols), default=0) > 4 else 0,
                  ha="right" if max(map(len, cols), default=0) > 4 else "center", fontsize=8)
    ax.set_yticks(range(M.shape[0]), labels=rows, fontsize=8)
    ax.set_title(title, fontsize=10)
    if M.size <= 64:
        lo, hi = im.norm.vmin, im.norm.vmax
        for (i, j), v in np.ndenumerate(M):
            text = labels[i][j] if labels is not None else f"{v:.3g}"
            frac = 0.5 if hi == lo else (v - lo) / (hi - lo)
            dark = (frac < 0.2 or frac > 0.8) if cmap == "RdBu_r" else frac < 0.45
            ax.text(j, i, text, ha="center", va="center", fontsize=7 if M.size > 16 else 8,
                    color="white" if dark and np.isfinite(v) else "black")
    cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.ax.tick_params(labelsize=7)
    if cbar_label:
        cb.set_label(cbar_label, fontsize=8)
    return im
