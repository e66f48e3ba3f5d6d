"""Figures.  matplotlib is imported lazily, with the non-interactive Agg backend when no
display is available, so that importing causalid never needs a screen."""

from __future__ import annotations

import os

import networkx as nx
import numpy as np


def _pyplot():
    import matplotlib

    if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_graph(graph: nx.DiGraph, path=None, truth: nx.DiGraph | None = None, ax=None, title=None):
    """Draw a DAG on a circle.  With ``truth``: green = correct, orange = reversed,
    red = extra, dashed grey = missing; a legend gives the counts."""
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 6.5))
    else:
        fig = ax.figure
    nodes = list(truth.nodes) if truth is not None else list(graph.nodes)
    nodes += [n for n in graph.nodes if n not in nodes]
    pos = nx.circular_layout(nodes)
    nx.draw_networkx_nodes(graph, pos, nodelist=nodes, ax=ax, node_color="#dde7f5",
                           edgecolors="#33476b", node_size=1400)
    nx.draw_networkx_labels(graph, pos, labels={n: str(n) for n in nodes}, ax=ax, font_size=9)
    groups: dict[str, list] = {"correct": [], "reversed": [], "extra": [], "missing": [], "edge": []}
    for u, v in graph.edges:
        if truth is None:
            groups["edge"].append((u, v))
        elif truth.has_edge(u, v):
            groups["correct"].append((u, v))
        elif truth.has_edge(v, u):
            groups["reversed"].append((u, v))
        else:
            groups["extra"].append((u, v))
    if truth is not None:
        groups["missing"] = [(u, v) for u, v in truth.edges
                             if not graph.has_edge(u, v) and not graph.has_edge(v, u)]
    style = {"edge": ("#33476b", "solid"), "correct": ("#2a9d3a", "solid"),
             "reversed": ("#e08a00", "solid"), "extra": ("#c62828", "solid"),
             "missing": ("#9e9e9e", "dashed")}
    from matplotlib.lines import Line2D

    handles = []
    for name, edgelist in groups.items():
        if not edgelist:
            continue
        color, ls = style[name]
        nx.draw_networkx_edges(graph if name != "missing" else truth, pos, edgelist=edgelist, ax=ax,
                               edge_color=color, style=ls, arrows=True, arrowsize=18,
                               node_size=1400, width=2)
        handles.append(Line2D([], [], color=color, linestyle=ls, label=f"{name} ({len(edgelist)})"))
    if truth is not None and handles:
        ax.legend(handles=handles, loc="lower left", fontsize=8, frameon=False)
    ax.set_title(title or "")
    ax.set_axis_off()
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


# ---------------------------------------------------------------------- LTI identification
def _lti_names(names, k, prefix):
    names = tuple(str(n) for n in (names or ()))
    return names if len(names) == k else tuple(f"{prefix}{i}" for i in range(k))


def _heatmap(ax, M, rows, cols, title, *, cmap="RdBu_r", vmin=None, vmax=None, labels=None, cbar_label=None):
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


def plot_lti_result(result, path=None, truth=None):
    """Overview figure of an :class:`~causalid.LTIResult`.

    Panels: the eigenvalues of A in the complex plane with the unit circle (``truth``'s, an
    :class:`~causalid.LTISystem`, as hollow markers); B̃ as an annotated heat map; when standard
    errors are available, A with its z-scores |A| / A_se (cells annotated ``value ± se``);
    when the result carries recovered sources, the first 200 steps of those of the first
    environment (first trajectory).  Returns the matplotlib figure; saves it when ``path``
    is given.
    """
    plt = _pyplot()
    A, B = np.asarray(result.A, float), np.asarray(result.B, float)
    n, m = A.shape[0], B.shape[1]
    observed = result.coordinates == "observed" and len(result.output_names) == n
    states = _lti_names(result.output_names if observed else (), n, "x")
    inputs = _lti_names(result.input_names, m, "u")
    has_se = result.A_se is not None and np.shape(result.A_se) == A.shape
    sources = result.sources
    has_src = sources is not None and np.ndim(sources) == 4 and np.size(sources) > 0

    ncols = 3 if has_se else 2
    fig = plt.figure(figsize=(4.4 * ncols, 4.2 + (2.8 if has_src else 0.0)))
    grid = fig.add_gridspec(2 if has_src else 1, ncols, height_ratios=[4.2, 2.8] if has_src else None,
                            hspace=0.45, wspace=0.45)

    # (1) eigenvalues in the unit disc
    ax = fig.add_subplot(grid[0, 0])
    th = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(th), np.sin(th), color="#9e9e9e", lw=1)
    ax.axhline(0, color="#dddddd", lw=0.8, zorder=0)
    ax.axvline(0, color="#dddddd", lw=0.8, zorder=0)
    ev = np.linalg.eigvals(A)
    ax.scatter(ev.real, ev.imag, s=46, color="#1f5fa8", zorder=3, label="estimated")
    pts = [ev]
    if truth is not None:
        tev = np.linalg.eigvals(np.asarray(truth.A, float))
        pts.append(tev)
        ax.scatter(tev.real, tev.imag, s=110, facecolors="none", edgecolors="#c62828", linewidths=1.6,
                   zorder=4, label="true")
    r = max(1.05, float(np.abs(np.concatenate(pts)).max()) * 1.05)
    ax.set_xlim(-r, r)
    ax.set_ylim(-r, r)
    ax.set_aspect("equal")
    ax.set_xlabel("Re λ", fontsize=9)
    ax.set_ylabel("Im λ", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_title(f"eigenvalues of {'Ã' if observed else 'A'} (max |λ| = {np.abs(ev).max():.3g})", fontsize=10)
    ax.legend(fontsize=8, loc="lower left", frameon=False)
    allev = np.concatenate(pts)
    span = max(np.ptp(allev.real), np.ptp(allev.imag))
    if len(allev) > 1 and 0 < span < 0.25 * r:
        # the eigenvalues crowd together (slow, similar modes): zoom on them
        half = 0.65 * span + 1e-3
        cx, cy = (allev.real.max() + allev.real.min()) / 2, (allev.imag.max() + allev.imag.min()) / 2
        side = "left" if cx > 0 else "right"
        inset = ax.inset_axes([0.15 if side == "left" else 0.6, 0.6, 0.34, 0.34])
        inset.plot(np.cos(th), np.sin(th), color="#9e9e9e", lw=1)
        inset.scatter(ev.real, ev.imag, s=30, color="#1f5fa8", zorder=3)
        if truth is not None:
            inset.scatter(tev.real, tev.imag, s=70, facecolors="none", edgecolors="#c62828", linewidths=1.3,
                          zorder=4)
        inset.set_xlim(cx - half, cx + half)
        inset.set_ylim(cy - half, cy + half)
        inset.set_aspect("equal")
        inset.tick_params(labelsize=6)
        from matplotlib.ticker import MaxNLocator

        inset.xaxis.set_major_locator(MaxNLocator(3))
        inset.yaxis.set_major_locator(MaxNLocator(3))
        ax.indicate_inset_zoom(inset, edgecolor="#666666")

    # (2) B̃
    ax = fig.add_subplot(grid[0, 1])
    labels = None
    if result.B_se is not None and np.shape(result.B_se) == B.shape and B.size <= 16:
        labels = [[f"{B[i, j]:.3g}\n±{result.B_se[i, j]:.2g}" for j in range(m)] for i in range(n)]
    _heatmap(ax, B, states, inputs, "B̃ = C B" if observed else "B (one similarity representative)",
             labels=labels)
    ax.set_xlabel("input", fontsize=9)

    # (3) A with standard errors: colour = z-score
    if has_se:
        ax = fig.add_subplot(grid[0, 2])
        se = np.asarray(result.A_se, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.abs(A) / se
        z = np.where(np.isfinite(z), z, np.nan)
        cap = max(2.0, float(np.nanmax(z)) if np.isfinite(z).any() else 2.0)
        labels = [[f"{A[i, j]:.3g}\n±{se[i, j]:.2g}" for j in range(n)] for i in range(n)] if n <= 4 else None
        _heatmap(ax, np.log10(np.maximum(z, 1e-3)), states, states,
                 f"{'Ã' if observed else 'A'} ± se, colour: log₁₀ |A| / se", cmap="viridis", vmin=-1,
                 vmax=max(1.0, np.log10(cap)), labels=labels, cbar_label="log₁₀ z")

    # (4) recovered sources, first environment, first trajectory
    if has_src:
        ax = fig.add_subplot(grid[1, :])
        s = np.asarray(sources, float)[0, 0, :200]
        t = np.arange(s.shape[0])
        unit = "step"
        if result.dt:
            t, unit = t * result.dt, "time (s)"
        src_names = _lti_names(result.input_names, s.shape[1], "u")
        for j in range(s.shape[1]):
            ax.plot(t, s[:, j], lw=0.9, label=f"û {src_names[j]}")
        env = result.env_names[0] if result.env_names else "0"
        ax.set_title(f"recovered sources, environment '{env}' (first {s.shape[0]} steps)", fontsize=10)
        ax.set_xlabel(unit, fontsize=9)
        ax.tick_params(labelsize=8)
        if s.shape[1] <= 8:
            ax.legend(fontsize=8, loc="upper right", ncol=min(4, s.shape[1]), frameon=False)

    fig.suptitle(f"LTI system identified by '{result.method}': n={n}, m={m}, p={np.shape(result.C)[0]}",
                 fontsize=11, y=0.98 if has_src else 1.03)
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def plot_lti_data(data, path=None, max_envs: int = 4, max_steps: int | None = 500):
    """Outputs (left) and inputs (right, when measured) over time, one row per environment.

    Shows the first trajectory of the first ``max_envs`` environments, at most ``max_steps``
    steps; a designed input law is written in the row's title instead.  Returns the figure;
    saves it when ``path`` is given.
    """
    plt = _pyplot()
    E = min(int(max_envs), data.num_envs)
    ncols = 2 if data.has_measured_inputs else 1
    fig, axes = plt.subplots(E, ncols, figsize=(6.0 * ncols, 2.2 * E + 0.6), squeeze=False, sharex=True)
    for e in range(E):
        L = int(data.lengths[e, 0]) if max_steps is None else min(int(data.lengths[e, 0]), int(max_steps))
        t = np.arange(L) * (data.dt or 1.0)
        ax = axes[e, 0]
        for j, name in enumerate(data.output_names):
            ax.plot(t, data.y[e, 0, :L, j], lw=0.9, label=name)
        title = f"environment '{data.env_names[e]}': outputs"
        if data.input_var is not None:
            mean = data.input_mean[e] if data.input_mean is not None else None
            law = ", ".join(
                f"{u} ~ N({'?' if mean is None else f'{mean[j]:.3g}'}, {data.input_var[e, j]:.3g})"
                for j, u in enumerate(data.input_names[:4]))
            title += f"   [{law}{', …' if data.input_dim > 4 else ''}]"
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
        if e == 0 and data.obs_dim <= 8:
            ax.legend(fontsize=7, loc="upper right", ncol=min(4, data.obs_dim), frameon=False)
        if data.has_measured_inputs:
            ax = axes[e, 1]
            for j, name in enumerate(data.input_names):
                ax.plot(t, data.inputs[e, 0, :L, j], lw=0.9, label=name)
            ax.set_title(f"environment '{data.env_names[e]}': inputs", fontsize=9)
            ax.tick_params(labelsize=8)
            if e == 0 and data.input_dim <= 8:
                ax.legend(fontsize=7, loc="upper right", ncol=min(4, data.input_dim), frameon=False)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)" if data.dt else "step", fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig
