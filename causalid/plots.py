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


# ---------------------------------------------------------------------- hidden Markov models
def _hmm_state_colours(K: int):
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if K <= 10 else "tab20"]
    return [cmap(k % cmap.N) for k in range(K)]


def _hmm_shown_sequences(lengths: np.ndarray, max_sequences: int) -> list[tuple[int, int]]:
    """Up to ``max_sequences`` non-empty (env, sequence) pairs, taken round-robin over
    environments (first sequence of every environment, then the second, ...), so that
    environments with different mechanisms appear side by side."""
    E, N = lengths.shape
    shown = []
    for n in range(N):
        for e in range(E):
            if lengths[e, n] > 0 and len(shown) < max_sequences:
                shown.append((e, n))
    return shown


def _hmm_decode(result, data, pairs=None) -> dict:
    """``{(env, sequence): (viterbi path (L,), smoothed posteriors (L, K))}`` for the non-empty
    sequences ``pairs`` of ``data`` (a :class:`~causalid.SequenceData`; default: all of them).

    Only those sequences are decoded (the others are blanked to length 0); every environment is
    kept so that each sequence is decoded with its own environment's parameters.
    """
    from causalid.data.sequences import SequenceData

    full = np.asarray(data.lengths)
    if pairs is None:
        pairs = [tuple(map(int, p)) for p in np.argwhere(full > 0)]
    lengths = np.zeros_like(full)
    for e, n in pairs:
        lengths[e, n] = full[e, n]
    sub = SequenceData(data.y, lengths, data.names, data.env_names, data.inputs, data.input_names)

    def nested(x):  # HMMResult gives one sequence's array as is, else lists env -> sequences
        return [[x]] if isinstance(x, np.ndarray) else x

    paths, posts = nested(result.viterbi(sub)), nested(result.smooth(sub))
    out = {}
    for e in range(data.num_envs):
        kept = [n for n in range(lengths.shape[1]) if lengths[e, n] > 0]
        for i, n in enumerate(kept):
            out[(e, n)] = (np.asarray(paths[e][i]), np.asarray(posts[e][i]))
    return out


def plot_hmm_result(result, data, path=None, max_sequences: int = 4, max_steps: int | None = 2000,
                    channels_per_panel: int | None = None, state_names=None, sequences=None):
    """Data coloured by the Viterbi state, with the smoothed state posteriors below.

    For each shown sequence (``sequences``, a list of ``(environment name or index, sequence
    index)`` pairs; default: at most ``max_sequences``, taken round-robin over the
    environments) the figure has one panel per group of ``channels_per_panel`` channels
    (default: one channel per panel up to 3 channels, else 4 per panel) — every observation is
    a dot coloured by its most probable (Viterbi) state, channels joined by a thin grey line
    and told apart by marker shape — and below them a stacked area of
    :math:`p(z_t = k \\mid y)`.  State colours are the same in every panel (states are
    aligned across environments by the fit); ``state_names`` labels them in the legend.
    Missing values leave gaps; the posterior is defined there too.  At most ``max_steps``
    steps of each sequence are drawn (``None``: all).

    Parameters
    ----------
    result : HMMResult
    data : SequenceData or anything :func:`causalid.fit_hmm` accepts
        The data the model was fitted to (or new data with the same channels; one environment
        is decoded with environment 0's parameters).

    Returns
    -------
    matplotlib.figure.Figure
        Saved to ``path`` when given.
    """
    from causalid.data.sequences import SequenceData
    from causalid.errors import DataError

    plt = _pyplot()
    data = SequenceData.coerce(data)
    if int(max_sequences) < 1:
        raise DataError(f"max_sequences must be at least 1; got {max_sequences}")
    if sequences is None:
        shown = _hmm_shown_sequences(np.asarray(data.lengths), int(max_sequences))
    else:
        shown = []
        for env, n in sequences:
            e = int(env) if isinstance(env, (int, np.integer)) else (
                data.env_names.index(str(env)) if str(env) in data.env_names else -1)
            if not 0 <= e < data.num_envs:
                raise DataError(f"sequences: no environment {env!r}; the data have {list(data.env_names)}")
            if not (0 <= int(n) < data.lengths.shape[1] and data.lengths[e, int(n)] > 0):
                raise DataError(f"sequences: environment {env!r} has no sequence {n} "
                                f"({int(np.sum(data.lengths[e] > 0))} sequence(s))")
            shown.append((e, int(n)))
    decoded = _hmm_decode(result, data, shown)

    K, D = result.config.num_states, data.obs_dim
    colours = _hmm_state_colours(K)
    step = (1 if D <= 3 else 4) if channels_per_panel is None else max(1, int(channels_per_panel))
    names = [str(n) for n in state_names] if state_names is not None else [f"state {k}" for k in range(K)]
    if len(names) != K:
        raise DataError(f"state_names has {len(names)} names for {K} states")
    groups = [list(range(j, min(j + step, D))) for j in range(0, D, step)]
    markers = "osD^v<>ph*"
    rows_per_seq = len(groups) + 1
    heights = []
    for _ in shown:
        heights += [1.6 if step == 1 else 2.2] * len(groups) + [1.1]
    fig, axes = plt.subplots(len(heights), 1, figsize=(10.0, sum(heights) + 0.9), squeeze=False,
                             gridspec_kw={"height_ratios": heights}, layout="constrained")
    axes = axes[:, 0]
    for s, (e, n) in enumerate(shown):
        z, post = decoded[(e, n)]
        L = len(z) if max_steps is None else min(len(z), int(max_steps))
        t = np.arange(L)
        y = data.y[e, n, :L]
        for g, chans in enumerate(groups):
            ax = axes[s * rows_per_seq + g]
            for i, j in enumerate(chans):
                ax.plot(t, y[:, j], color="#b0b0b0", lw=0.6, zorder=1)
                ax.scatter(t, y[:, j], c=[colours[k] for k in z[:L]], s=9 if L > 300 else 16,
                           marker=markers[i % len(markers)], linewidths=0, zorder=2)
            if len(chans) > 1:
                from matplotlib.lines import Line2D

                handles = [Line2D([], [], color="#555555", marker=markers[i % len(markers)], ls="none",
                                  label=data.names[j]) for i, j in enumerate(chans)]
                ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0),
                          frameon=False)
            else:
                ax.set_ylabel(data.names[chans[0]], fontsize=8)
            if g == 0:
                more = f"first {L} of {len(z)} steps" if L < len(z) else f"{len(z)} steps"
                ax.set_title(f"environment '{data.env_names[e]}', sequence {n} ({more})", fontsize=9)
            ax.tick_params(labelsize=7)
            ax.set_xlim(-0.5, L - 0.5)
        ax = axes[s * rows_per_seq + len(groups)]
        ax.stackplot(t, np.asarray(post[:L]).T, colors=colours, linewidth=0)
        ax.set_ylim(0, 1)
        ax.set_xlim(-0.5, L - 0.5)
        ax.set_ylabel("p(state)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("step", fontsize=9)
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=colours[k], label=names[k]) for k in range(K)],
               loc="outside lower center", ncol=min(K, 10), fontsize=8, frameon=False)
    c = result.config
    fig.suptitle(f"{K}-state {c.emission} HMM ({result.method}); varying across environments: "
                 f"{', '.join(c.vary) or 'nothing'}", fontsize=11)
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def plot_hmm_selection(table, path=None):
    """Model-selection criteria against the number of states.

    ``table`` (a DataFrame, or anything ``pandas.DataFrame`` accepts) has a ``num_states``
    column and one or more criteria: ``bic``, ``aic`` (lower is better; also ``loo`` /
    ``waic`` on the deviance scale) and ``elpd_loo`` / ``elpd_waic`` (arviz's expected log
    predictive density, higher is better; error bars from ``elpd_loo_se`` / ``elpd_waic_se``
    when present), as returned by :func:`causalid.infer.hmm_compare.select_num_states`.
    Information criteria share the left panel, elpd values the right one; the best number of
    states of each criterion is ringed.  Returns the figure; saves it when ``path`` is given.
    """
    import pandas as pd

    from causalid.errors import DataError

    plt = _pyplot()
    table = pd.DataFrame(table)
    if "num_states" not in table.columns:
        raise DataError(f"the selection table needs a 'num_states' column; it has {list(map(str, table.columns))}")
    lower = [c for c in ("bic", "aic", "loo", "waic") if c in table.columns]
    higher = [c for c in ("elpd_loo", "elpd_waic") if c in table.columns]
    if not lower and not higher:
        raise DataError("the selection table has no criterion column (bic, aic, loo, waic, elpd_loo, elpd_waic)")
    table = table.sort_values("num_states")
    k = table["num_states"].to_numpy()
    panels = [(lower, "criterion (lower is better)", np.argmin), (higher, "elpd (higher is better)", np.argmax)]
    panels = [p for p in panels if p[0]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.4), squeeze=False)
    for ax, (cols, ylabel, best) in zip(axes[0], panels):
        for i, col in enumerate(cols):
            v = table[col].to_numpy(dtype=float)
            se = table[f"{col}_se"].to_numpy(dtype=float) if f"{col}_se" in table.columns else None
            colour = f"C{i}"
            ax.errorbar(k, v, yerr=se, marker="o", color=colour, capsize=3, lw=1.4, label=col.upper())
            if np.isfinite(v).any():
                b = int(best(np.where(np.isfinite(v), v, np.inf if best is np.argmin else -np.inf)))
                ax.scatter([k[b]], [v[b]], s=160, facecolors="none", edgecolors=colour, linewidths=1.8, zorder=3)
        ax.set_xticks(k)
        ax.set_xlabel("number of states", fontsize=9)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle("HMM model selection (ringed: best)", fontsize=10)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


# ---------------------------------------------------------------------- designs
def plot_design(design, path=None):
    """Figure of a :class:`~causalid.Design`.

    Panels: log₁₀ of the input variances per environment and channel (the colour scale spans
    the variance bounds); the means, when any is non-zero; and log₁₀ of the Pham–Cardoso
    separability index of every channel pair (brighter = easier to separate; the weakest
    pair is what the ``pairwise`` criterion raises).  The title gives the criterion and its
    value.  Returns the figure; saves it when ``path`` is given.
    """
    from causalid.identify.lti import separability_index

    plt = _pyplot()
    var = np.asarray(design.var, float)
    mean = np.asarray(design.mean, float)
    E, m = var.shape
    inputs = _lti_names(design.input_names, m, "u")
    envs = tuple(design.env_names) if len(design.env_names) == E else tuple(f"env{e}" for e in range(E))
    has_means = bool(np.any(mean != 0))
    ncols = 1 + int(has_means) + int(m > 1)
    fig, axes = plt.subplots(1, ncols, figsize=(4.6 * ncols, 0.35 * E + 3.2), squeeze=False)
    axes = axes[0]
    lo, hi = design.var_bounds
    _heatmap(axes[0], np.log10(var), envs, inputs, "log₁₀ input variance", cmap="viridis",
             vmin=np.log10(lo), vmax=np.log10(hi), cbar_label="log₁₀ σ²")
    axes[0].set_xlabel("input", fontsize=9)
    k = 1
    if has_means:
        _heatmap(axes[k], mean, envs, inputs, "input mean")
        axes[k].set_xlabel("input", fontsize=9)
        k += 1
    if m > 1:
        S = separability_index(var, np.asarray(design.steps, float) / np.sum(design.steps))
        # floored so that a proportional (inseparable) pair, s = 0, still has a colour
        logS = np.where(np.eye(m, dtype=bool), np.nan, np.log10(np.maximum(S, 1e-300)))
        labels = [["" if i == j else f"{logS[i, j]:.3g}" for j in range(m)] for i in range(m)]
        _heatmap(axes[k], logS, inputs, inputs, "log₁₀ pairwise separability s_ij", cmap="magma",
                 vmin=float(np.nanmin(logS)), vmax=float(np.nanmax(logS)) + 1e-9, labels=labels,
                 cbar_label="log₁₀ s")
    value = "n/a" if design.value is None else f"{design.value:.4g}"
    fig.suptitle(f"input-law design: {E} environments x {m} inputs, criterion '{design.criterion}' = {value}",
                 fontsize=11)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig
