r"""The report of a sweep store: tables, plots and a self-contained HTML page.

:func:`write_report` reads a store (:mod:`causalid.verify.store`) and writes, into
``DIR/report`` by default:

``summary.csv``
    One row per cell, engine and metric (:func:`summarize`): the setting columns, ``n``
    (replicates with a value), ``missing`` and ``not_applicable`` (replicates without one, see
    the store's ``error`` column), ``mean``, ``sd`` and ``se`` (standard error of the mean,
    :math:`\mathrm{sd}/\sqrt{n}`) over replicates, and ``seconds`` (the engine's time on the
    cell).
``summary.md``
    One Markdown table per metric: a row per cell, a column per engine with "mean ± se", and
    the sweep's reference values (``[[reference]]``) where they match the cell.
``references.csv``
    The reference points, when the sweep has any.
``errors.csv``
    Every distinct reason for a missing value with its count, when a value is missing.
``plots/*.png``
    Per metric, the mean against each numeric grid axis with a 95 % band (mean ± 1.96 se over
    replicates), one panel per engine and one line per combination of the other axes, the
    reference values dashed; a metric with no numeric axis is drawn per cell with error bars.
    When the store holds an ``sbc`` table (``DIR/sbc/*.parquet``, written with
    :meth:`causalid.verify.sbc.SBCResult.save` or :func:`causalid.verify.write_table`), rank
    histograms with their binomial band (``sbc_*.png``) and the uniformity tests
    (``sbc.csv``).
``index.html``
    A short page with the tables and every plot (relative links to ``plots/``).
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from causalid._plotting import pyplot
from causalid._progress import show_progress
from causalid.errors import DataError
from causalid.verify.plugin import NOT_APPLICABLE
from causalid.verify.sbc import CORE_COLUMNS, SBCResult
from causalid.verify.store import ResultStore, read_parquet

__all__ = ["summarize", "write_report"]

_Z95 = 1.959963984540054


def summarize(frame: pd.DataFrame, columns) -> pd.DataFrame:
    """Mean, sd, standard error and counts of ``value`` per cell, engine and metric.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows in the store's schema (:func:`causalid.verify.load_results`).
    columns : sequence of str
        The setting columns.

    Returns
    -------
    pandas.DataFrame
        ``cell``, the setting columns, ``engine``, ``metric``, ``n`` (replicates with a value),
        ``missing`` (no value: a failed fit, an undefined metric), ``not_applicable``
        (missing because the metric does not apply to the engine), ``mean``, ``sd``, ``se``,
        ``seconds``; rows in the store's order.
    """
    keys = ["cell", *columns, "engine", "metric"]
    if frame.empty:
        return pd.DataFrame(
            columns=[*keys, "n", "missing", "not_applicable", "mean", "sd", "se", "seconds"]
        )
    frame = frame.assign(_na=frame["value"].isna() & frame["error"].str.startswith(NOT_APPLICABLE))
    g = frame.groupby(keys, sort=False, dropna=False)
    out = g["value"].agg(n="count", mean="mean", sd="std").reset_index()
    na = g["_na"].sum().to_numpy()
    out.insert(len(keys) + 1, "missing", g["value"].size().to_numpy() - out["n"].to_numpy() - na)
    out.insert(len(keys) + 2, "not_applicable", na)
    out["se"] = out["sd"] / np.sqrt(out["n"].where(out["n"] > 0))
    out["seconds"] = g["seconds"].first().to_numpy()
    return out


def _fmt(mean: float, se: float, missing: int, not_applicable: int) -> str:
    if not_applicable and not np.isfinite(mean) and not missing:
        return "n/a"
    if not np.isfinite(mean):
        text = "no value"
    elif np.isfinite(se):
        text = f"{mean:.4g} ± {se:.2g}"
    else:
        text = f"{mean:.4g}"
    return text + (f" ({missing} missing)" if missing else "")


def _reference_value(ref: dict, settings: dict) -> float:
    """The reference's value at a cell (its point whose keys all match), or NaN."""
    for point, value in zip(ref["points"], ref["values"]):
        if all(settings.get(k) == v for k, v in point.items()):
            return value
    return float("nan")


def _metric_tables(summary: pd.DataFrame, columns, engines, metrics, refs, cells) -> dict:
    """Per metric: a wide table (setting columns, one column per engine, references)."""
    out = {}
    for m in metrics:
        sub = summary[summary["metric"] == m]
        rows = []
        for cell, part in sub.groupby("cell", sort=False):
            row = {k: part[k].iloc[0] for k in columns} if columns else {"cell": cell}
            by_engine = {r.engine: r for r in part.itertuples()}
            for e in engines:
                r = by_engine.get(e)
                row[e] = "" if r is None else _fmt(r.mean, r.se, r.missing, r.not_applicable)
            for ref in refs:
                if ref["metric"] == m:
                    v = _reference_value(ref, cells[int(cell)])
                    row[ref["label"]] = "" if math.isnan(v) else f"{v:.3g}"
            rows.append(row)
        out[m] = pd.DataFrame(rows)
    return out


def _markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "(no finished cells)\n"
    cols = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + "\n"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


def _line_label(columns, values) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(columns, values))


def _varying(summary, columns) -> list[str]:
    return [c for c in columns if summary[c].nunique() > 1]


def _plot_metric_vs(summary, metric, x, axes_cols, engines, refs, path):
    """Mean of ``metric`` against the numeric axis ``x``: a panel per engine, a line (with its
    95 % band) per combination of the other grid axes, the matching references dashed."""
    plt = pyplot()
    others = [c for c in _varying(summary, axes_cols) if c != x]
    sub = summary[summary["metric"] == metric]
    styles, markers = ["--", ":", "-."], ["x", "+", "1"]
    handles: dict[str, object] = {}
    n_lines = max(1, len(sub.groupby(others)) if others else 1)
    ncol = 1 if n_lines + len(refs) <= 4 else 2
    height = 3.4 + 0.16 * math.ceil((n_lines + len(refs)) / ncol)
    fig, axes = plt.subplots(
        1, len(engines), figsize=(5.0 * len(engines), height), squeeze=False, sharey=True
    )
    for ax, engine in zip(axes[0], engines):
        part = sub[sub["engine"] == engine]
        groups = part.groupby(others, sort=False) if others else [((), part)]
        for j, (values, line) in enumerate(groups):
            values = values if isinstance(values, tuple) else (values,)
            line = line.sort_values(x)
            xs, mean = line[x].to_numpy(float), line["mean"].to_numpy(float)
            half = _Z95 * line["se"].to_numpy(float)
            colour = f"C{j % 10}"
            label = _line_label(others, values) or "mean over replicates"
            (h,) = ax.plot(xs, mean, "o-", color=colour)
            handles.setdefault(label, h)
            ax.fill_between(xs, mean - half, mean + half, color=colour, alpha=0.2, linewidth=0)
            setting = dict(zip(others, values))
            for k, ref in enumerate(r for r in refs if r["metric"] == metric):
                pts = sorted(
                    (p[x], v)
                    for p, v in zip(ref["points"], ref["values"])
                    if x in p and all(setting.get(q, p[q]) == p[q] for q in p if q != x)
                )
                if pts:
                    (h,) = ax.plot(
                        *zip(*pts),
                        linestyle=styles[k % 3],
                        marker=markers[k % 3],
                        color=colour if others else "k",
                    )
                    handles.setdefault(ref["label"], h)
        ax.set_title(engine, fontsize=10)
        ax.set_xlabel(x)
        ax.set_xticks(sorted(sub[x].unique()))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{metric}\n(mean, 95% band)")
    legend_rows = math.ceil(len(handles) / ncol)
    bottom = min(0.5, (0.12 + 0.15 * legend_rows) / height)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.legend(
        handles.values(), handles.keys(), loc="lower center", ncol=ncol, fontsize=7, frameon=False
    )
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_metric_cells(summary, metric, columns, engines, path):
    plt = pyplot()
    sub = summary[summary["metric"] == metric]
    columns = _varying(summary, columns)
    cells = list(dict.fromkeys(sub["cell"]))
    labels = []
    for c in cells:
        row = sub[sub["cell"] == c].iloc[0]
        labels.append(_line_label(columns, [row[k] for k in columns]) or f"cell {c}")
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(cells) + 2), 3.8))
    width = 0.8 / max(len(engines), 1)
    for j, engine in enumerate(engines):
        part = sub[sub["engine"] == engine].set_index("cell").reindex(cells)
        pos = np.arange(len(cells)) - 0.4 + width * (j + 0.5)
        ax.errorbar(pos, part["mean"], yerr=_Z95 * part["se"], fmt="o", capsize=3, label=engine)
    ax.set_xticks(np.arange(len(cells)), labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(f"{metric}\n(mean, 95% interval)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _sbc_parts(store: ResultStore):
    """(part name, SBCResult) for every file of the store's ``sbc`` table."""
    out = []
    for f in sorted((store.path / "sbc").glob("*.parquet")):
        try:
            res = SBCResult.load(f)
        except DataError:  # a plain table (write_table): text/boolean extra columns are
            # settings (one SBC run per combination), numeric ones per-replicate diagnostics
            frame = read_parquet(f)
            extra = [c for c in frame.columns if c not in CORE_COLUMNS]
            diagnostics = tuple(c for c in extra if pd.api.types.is_numeric_dtype(frame[c])
                                and not pd.api.types.is_bool_dtype(frame[c]))
            settings = tuple(c for c in extra if c not in diagnostics)
            res = SBCResult(frame, settings=settings, diagnostics=diagnostics)
        out.append((f.stem, res))
    return out


def write_report(path, out=None, *, progress: bool | None = None) -> Path:
    """Write the tables, plots and HTML page of a sweep store.

    Parameters
    ----------
    path : str or Path
        The store directory (``causalid verify ... --out DIR``).
    out : str or Path, optional
        Where to write (default ``DIR/report``).
    progress : bool or None
        (None, the default: shown when someone watches, see :mod:`causalid._progress`.)
        Print each file as it is written.

    Returns
    -------
    Path
        The HTML page (``index.html``).
    """
    progress = show_progress(progress)
    store = ResultStore.read(path)
    manifest = store.manifest
    sweep = manifest["sweep"]
    out = Path(out) if out is not None else store.path / "report"
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    for old in plots.glob("*.png"):  # a re-run must not show stale plots or tables
        old.unlink()
    for name in ("references.csv", "errors.csv", "sbc.csv"):  # written only when there is content
        (out / name).unlink(missing_ok=True)
    frame = store.load()
    columns = list(manifest["columns"])
    engines, metrics = list(manifest["engines"]), list(manifest["metrics"])
    refs = [_reference_from_table(r) for r in sweep.get("reference", [])]
    cells = {c["cell"]: c for c in manifest["cells"]}
    summary = summarize(frame, columns)
    written: list[Path] = []

    def wrote(p: Path) -> None:
        written.append(p)
        if progress:
            print(f"wrote {p}")

    summary.to_csv(out / "summary.csv", index=False)
    wrote(out / "summary.csv")
    tables = _metric_tables(summary, columns, engines, metrics, refs, cells)
    md = [f"# {sweep.get('name', 'sweep')}\n", _status_line(manifest, frame) + "\n"]
    for m in metrics:
        md += [f"\n## {m}\n\n", _markdown(tables[m])]
    (out / "summary.md").write_text("".join(md), encoding="utf-8")
    wrote(out / "summary.md")
    if refs:
        ref_rows = [
            {"metric": r["metric"], "label": r["label"], **p, "value": v}
            for r in refs
            for p, v in zip(r["points"], r["values"])
        ]
        pd.DataFrame(ref_rows).to_csv(out / "references.csv", index=False)
        wrote(out / "references.csv")
    errors = frame.loc[frame["error"] != "", ["engine", "error"]]
    error_table = (
        errors.value_counts().rename("rows").reset_index()
        if len(errors)
        else pd.DataFrame(columns=["engine", "error", "rows"])
    )
    if len(error_table):
        error_table.to_csv(out / "errors.csv", index=False)
        wrote(out / "errors.csv")

    figures: dict[str, list[Path]] = {m: [] for m in metrics}
    axes_cols = [c for c in columns if any(c in block for block in sweep.get("grid", []))]
    numeric = [
        c
        for c in axes_cols
        if manifest["dtypes"][c] in ("int64", "float64")
        and len(summary)
        and summary[c].nunique() > 1
    ]

    for m in metrics if len(summary) else []:
        for x in numeric:
            p = plots / f"{_safe(m)}_vs_{_safe(x)}.png"
            _plot_metric_vs(summary, m, x, axes_cols, engines, refs, p)
            figures[m].append(p)
            wrote(p)
        if not numeric:
            p = plots / f"{_safe(m)}_by_cell.png"
            _plot_metric_cells(summary, m, columns, engines, p)
            figures[m].append(p)
            wrote(p)

    sbc_figures, sbc_table = [], None
    if (store.path / "sbc").is_dir() and any((store.path / "sbc").glob("*.parquet")):
        tests = []
        for name, res in _sbc_parts(store):
            p = plots / f"sbc_{_safe(name)}.png"
            pyplot().close(res.plot(path=p))
            sbc_figures.append(p)
            wrote(p)
            t = res.test().table
            t.insert(0, "table", name)
            tests.append(t)
        sbc_table = pd.concat(tests, ignore_index=True)
        sbc_table.to_csv(out / "sbc.csv", index=False)
        wrote(out / "sbc.csv")

    page = _html(manifest, frame, tables, figures, error_table, sbc_table, sbc_figures, out)
    (out / "index.html").write_text(page, encoding="utf-8")
    wrote(out / "index.html")
    return out / "index.html"


def _reference_from_table(table: dict) -> dict:
    keys = [k for k in table if k not in ("metric", "label", "value")]
    values = list(table["value"])
    return {
        "metric": table["metric"],
        "label": table.get("label", "reference"),
        "points": [{k: table[k][i] for k in keys} for i in range(len(values))],
        "values": values,
    }


def _status_line(manifest: dict, frame: pd.DataFrame) -> str:
    done = frame["cell"].nunique() if len(frame) else 0
    total = manifest["num_cells"]
    text = (
        f"family {manifest['family']}, {total} cell(s) x {manifest['replicates']} replicate(s), "
        f"seed {manifest['sweep'].get('seed')}; {done} of {total} cells finished"
    )
    if done < total:
        text += " (incomplete: run the same 'causalid verify' command again to finish)"
    return text


_STYLE = (
    "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;font-size:0.9em;margin:0.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:0.2em 0.6em;text-align:right}"
    "img{max-width:100%;border:1px solid #eee;margin:0.3em 0}"
    "code{background:#f4f4f4;padding:0 0.2em}</style></head><body>"
)


def _html(manifest, frame, tables, figures, error_table, sbc_table, sbc_figures, out: Path) -> str:
    sweep = manifest["sweep"]
    esc = html.escape
    title = esc(str(sweep.get("name", "sweep")))
    parts = [
        "<!DOCTYPE html>",
        f"<html lang='en'><head><meta charset='utf-8'><title>{title} — causalid verify</title>",
        _STYLE,
        f"<h1>{title}</h1>",
    ]
    if sweep.get("description"):
        parts.append(f"<p>{esc(sweep['description'])}</p>")
    parts.append(f"<p>{esc(_status_line(manifest, frame))}.</p>")
    engines = sweep.get("engines", {})
    parts.append(
        "<p>Engines: "
        + "; ".join(
            f"<code>{esc(k)}</code> ({esc(', '.join(f'{o}={v}' for o, v in e.items()))})"
            for k, e in engines.items()
        )
        + f". Sweep hash <code>{esc(manifest['hash'][:16])}</code>, created "
        f"{esc(manifest['created'])} with causalid {esc(manifest['causalid'])}.</p>"
    )
    parts.append(
        "<p>Cells show the mean ± standard error over replicates; bands in the plots are "
        "mean ± 1.96 standard errors. Tables: <a href='summary.csv'>summary.csv</a>, "
        "<a href='summary.md'>summary.md</a>.</p>"
    )
    for metric, table in tables.items():
        parts.append(f"<h2>{esc(metric)}</h2>")
        parts.append(
            table.to_html(index=False, escape=True, border=0)
            if len(table)
            else "<p>(no finished cells)</p>"
        )
        for p in figures.get(metric, []):
            rel = p.relative_to(out).as_posix()
            parts.append(f"<p><img src='{esc(rel)}' alt='{esc(metric)} plot'></p>")
    if len(error_table):
        parts.append(
            "<h2>Missing values</h2><p>Rows without a value, by reason "
            "(<a href='errors.csv'>errors.csv</a>):</p>"
        )
        parts.append(error_table.to_html(index=False, escape=True, border=0))
    if sbc_table is not None:
        parts.append(
            "<h2>Simulation-based calibration</h2>"
            "<p>Ranks of the true values among the posterior draws; a calibrated engine gives "
            "uniform histograms (grey: 99% band). Uniformity tests "
            "(<a href='sbc.csv'>sbc.csv</a>):</p>"
        )
        parts.append(
            sbc_table.to_html(index=False, escape=True, border=0, float_format=lambda v: f"{v:.3g}")
        )
        for p in sbc_figures:
            rel = p.relative_to(out).as_posix()
            parts.append(f"<p><img src='{esc(rel)}' alt='SBC rank histograms'></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
