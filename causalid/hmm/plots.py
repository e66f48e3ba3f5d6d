"""Figures of the HMM wing: decoded sequences and state-count selection."""

from __future__ import annotations

import numpy as np
import pandas as pd

from causalid._plotting import check_figure_path, figure_grid, finish, heatmap
from causalid.errors import DataError
from causalid.hmm.data import SequenceData


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


def plot_hmm_result(result, data, ax=None, max_sequences: int = 4, max_steps: int | None = 2000,
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

    ax : matplotlib Axes, optional
        Draw into this axes' place (default: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
    """
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
    decoded = result.decode(data, shown)

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
    fig, grid = figure_grid(ax, len(heights), 1, (10.0, sum(heights) + 0.9), layout="constrained",
                            height_ratios=heights)
    axes = [fig.add_subplot(grid[i, 0]) for i in range(len(heights))]
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
    return fig


def plot_hmm_selection(table, *, ax=None, path=None):
    """Model-selection criteria against the number of states.

    ``table`` (a DataFrame, or anything ``pandas.DataFrame`` accepts) has a ``num_states``
    column and one or more criteria: ``bic``, ``aic``, ``icl`` (lower is better; also ``loo`` /
    ``waic`` on the deviance scale) and ``heldout`` (held-out log-likelihood), ``elpd_loo`` /
    ``elpd_waic`` (arviz's expected log predictive density; higher is better; error bars from ``elpd_loo_se`` / ``elpd_waic_se``
    when present), as returned by :func:`causalid.hmm.compare.select_num_states`.
    Information criteria share the left panel, elpd values the right one; the best number of
    states of each criterion is ringed.  Drawn into ``ax``'s place (default: a new figure);
    returns the figure, saved to ``path`` when given.
    """
    if path is not None:
        check_figure_path(path)
    table = pd.DataFrame(table)
    if "num_states" not in table.columns:
        raise DataError(f"the selection table needs a 'num_states' column; it has {list(map(str, table.columns))}")
    lower = [c for c in ("bic", "aic", "icl", "loo", "waic") if c in table.columns]
    higher = [c for c in ("heldout", "elpd_loo", "elpd_waic") if c in table.columns]
    if not lower and not higher:
        raise DataError("the selection table has no criterion column (bic, aic, icl, loo, waic, heldout, elpd_loo, "
                        "elpd_waic)")
    table = table.sort_values("num_states")
    k = table["num_states"].to_numpy()
    panels = [(lower, "criterion (lower is better)", np.argmin),
              (higher, "log predictive (higher is better)", np.argmax)]
    panels = [p for p in panels if p[0]]
    fig, grid = figure_grid(ax, 1, len(panels), (4.6 * len(panels), 3.4), layout="constrained")
    for column, (cols, ylabel, best) in enumerate(panels):
        ax = fig.add_subplot(grid[0, column])
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
    return finish(fig, path)


def plot_hmm_params(result, ax=None, max_envs: int = 4):
    """The fitted parameters: per environment (at most ``max_envs``), the transition matrix as
    an annotated heat map and the emission parameters of every state (Gaussian means with
    ±1 sd bars, Poisson rates, or categorical symbol probabilities)."""
    c = result.config
    K = c.num_states
    shown = list(range(min(int(max_envs), c.num_envs))) if (c.trans_vary or c.emis_vary) else [0]
    envs = result.env_names or tuple(str(e) for e in range(c.num_envs))
    fig, grid = figure_grid(ax, 2, len(shown), (3.6 * len(shown) + 0.6, 6.2), layout="constrained")
    colours = _hmm_state_colours(K)
    states = [f"state {k}" for k in range(K)]
    p = result.params
    for col, e in enumerate(shown):
        label = envs[e] if len(shown) > 1 or c.num_envs > 1 else "all"
        ax_t = fig.add_subplot(grid[0, col])
        heatmap(ax_t, np.asarray(p.trans)[e], states, states, f"transitions, environment '{label}'",
                cmap="viridis", vmin=0.0, vmax=1.0)
        ax_t.set_xlabel("to", fontsize=8)
        ax_t.set_ylabel("from", fontsize=8)
        ax_e = fig.add_subplot(grid[1, col])
        if c.emission == "categorical":
            probs = np.asarray(p.emissions.probs)[e, :, 0]          # (K, C) of the first channel
            heatmap(ax_e, probs, states, [str(j) for j in range(probs.shape[1])],
                    f"symbol probabilities ('{result.names[0] if result.names else 'y0'}')",
                    cmap="viridis", vmin=0.0, vmax=1.0)
            continue
        key = "means" if c.emission == "gaussian" else "rates"
        values = np.asarray(p.emissions[0])[e]                      # (K, D)
        sd = (np.sqrt(np.diagonal(np.asarray(p.emissions.covs)[e], axis1=-2, axis2=-1))
              if c.emission == "gaussian" else np.sqrt(values))
        D = values.shape[1]
        width = 0.8 / K
        for k in range(K):
            x = np.arange(D) + (k - (K - 1) / 2) * width
            ax_e.bar(x, values[k], width=width, yerr=sd[k], color=colours[k], capsize=2, label=states[k])
        names = list(result.names) if len(result.names) == D else [f"y{j}" for j in range(D)]
        ax_e.set_xticks(np.arange(D), labels=names, fontsize=8)
        ax_e.set_title(f"{'means ± sd' if key == 'means' else 'rates ± sd'}, environment '{label}'", fontsize=9)
        ax_e.tick_params(labelsize=7)
        if col == 0:
            ax_e.legend(fontsize=7, frameon=False)
    fig.suptitle(f"{K}-state {c.emission} HMM ({result.method}); varying across environments: "
                 f"{', '.join(c.vary) or 'nothing'}", fontsize=10)
    return fig
