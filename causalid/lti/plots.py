"""Figures of the LTI wing: identified systems and input-law designs."""

from __future__ import annotations

import numpy as np

from causalid._plotting import figure_grid, heatmap
from causalid.lti.identifiability import separability_index


def _lti_names(names, k, prefix):
    names = tuple(str(n) for n in (names or ()))
    return names if len(names) == k else tuple(f"{prefix}{i}" for i in range(k))


def plot_lti_result(result, ax=None, truth=None):
    """Overview figure of an :class:`~causalid.LTIResult`.

    Panels: the eigenvalues of A in the complex plane with the unit circle (``truth``'s, an
    :class:`~causalid.LTISystem`, as hollow markers); B̃ as an annotated heat map; when standard
    errors are available, A with its z-scores |A| / A_se (cells annotated ``value ± se``);
    when the result carries recovered sources, the first 200 steps of those of the first
    environment (first trajectory).  Drawn into ``ax``'s place (default: a new figure);
    returns the matplotlib figure.
    """
    A, B = np.asarray(result.A, float), np.asarray(result.B, float)
    n, m = A.shape[0], B.shape[1]
    observed = result.coordinates == "observed" and len(result.output_names) == n
    states = _lti_names(result.output_names if observed else (), n, "x")
    inputs = _lti_names(result.input_names, m, "u")
    has_se = result.A_se is not None and np.shape(result.A_se) == A.shape
    sources = result.sources
    has_src = sources is not None and np.ndim(sources) == 4 and np.size(sources) > 0

    ncols = 3 if has_se else 2
    fig, grid = figure_grid(ax, 2 if has_src else 1, ncols, (4.4 * ncols, 4.2 + (2.8 if has_src else 0.0)),
                            height_ratios=[4.2, 2.8] if has_src else None, hspace=0.45, wspace=0.45)

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
    heatmap(ax, B, states, inputs, "B̃ = C B" if observed else "B (one similarity representative)",
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
        heatmap(ax, np.log10(np.maximum(z, 1e-3)), states, states,
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
    return fig


def plot_design(design, ax=None):
    """Figure of a :class:`~causalid.Design`.

    Panels: log₁₀ of the input variances per environment and channel (the colour scale spans
    the variance bounds); the means, when any is non-zero; and log₁₀ of the Pham–Cardoso
    separability index of every channel pair (brighter = easier to separate; the weakest
    pair is what the ``pairwise`` criterion raises).  The title gives the criterion and its
    value.  Drawn into ``ax``'s place (default: a new figure); returns the figure.
    """
    var = np.asarray(design.var, float)
    mean = np.asarray(design.mean, float)
    E, m = var.shape
    inputs = _lti_names(design.input_names, m, "u")
    envs = tuple(design.env_names) if len(design.env_names) == E else tuple(f"env{e}" for e in range(E))
    has_means = bool(np.any(mean != 0))
    ncols = 1 + int(has_means) + int(m > 1)
    fig, grid = figure_grid(ax, 1, ncols, (4.6 * ncols, 0.35 * E + 3.2), wspace=0.5)
    axes = [fig.add_subplot(grid[0, k]) for k in range(ncols)]
    lo, hi = design.var_bounds
    heatmap(axes[0], np.log10(var), envs, inputs, "log₁₀ input variance", cmap="viridis",
             vmin=np.log10(lo), vmax=np.log10(hi), cbar_label="log₁₀ σ²")
    axes[0].set_xlabel("input", fontsize=9)
    k = 1
    if has_means:
        heatmap(axes[k], mean, envs, inputs, "input mean")
        axes[k].set_xlabel("input", fontsize=9)
        k += 1
    if m > 1:
        S = separability_index(var, np.asarray(design.steps, float) / np.sum(design.steps))
        # floored so that a proportional (inseparable) pair, s = 0, still has a colour
        logS = np.where(np.eye(m, dtype=bool), np.nan, np.log10(np.maximum(S, 1e-300)))
        labels = [["" if i == j else f"{logS[i, j]:.3g}" for j in range(m)] for i in range(m)]
        heatmap(axes[k], logS, inputs, inputs, "log₁₀ pairwise separability s_ij", cmap="magma",
                 vmin=float(np.nanmin(logS)), vmax=float(np.nanmax(logS)) + 1e-9, labels=labels,
                 cbar_label="log₁₀ s")
    value = "n/a" if design.value is None else f"{design.value:.4g}"
    fig.suptitle(f"input-law design: {E} environments x {m} inputs, criterion '{design.criterion}' = {value}",
                 fontsize=11)
    return fig
