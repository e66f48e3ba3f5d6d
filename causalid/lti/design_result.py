"""Results of the designers: :class:`Design` (input laws for E environments) and
:class:`NextDesign` (the law of the next environment, with its expected information)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from causalid._plotting import figure_grid
from causalid._results import Result
from causalid.dynamics.system import InputDesign
from causalid.lti.identifiability import LTIIdentifiabilityReport
from causalid.lti.plots import plot_design

_CRITERION_WORDS = {
    "pairwise": "smallest Pham–Cardoso separability index min_ij s_ij (larger is better)",
    "cond": "σ_min(L) / (1/lo − 1/hi) of the precision changes (larger is better)",
    "moment": "predicted Amari error of the closed-form engine (smaller is better)",
    "d-optimal": "log det of the Fisher information of (Ã, B̃) (larger is better)",
    "eig": "expected information gain about (Ã, B̃), nats (larger is better)",
}


@dataclass
class Design(Result):
    """Designed input laws ``u_t ~ N(mean[e], diag var[e])`` for E environments.

    Attributes
    ----------
    mean, var : ndarray (E, m)
        Per-environment input means and variances.
    criterion : str
        The criterion optimised (see :func:`causalid.design_lti`).
    value : float
        Its value for this design (``values`` has all criteria).
    values : dict
        Every criterion of :func:`causalid.lti.design.design_criteria`: ``pairwise``,
        ``sigma_min``, ``sigma_min_rel``, ``cond``, ``moment`` (for ``steps`` transitions per
        environment), and ``d-optimal`` / ``eig`` where computed.
    var_bounds : (lo, hi);  mean_bound : float or None;  steps : ndarray (E,)
    report : LTIIdentifiabilityReport
        :func:`causalid.check_lti` of the design.
    settings, info : dict
        Optimiser settings; timings and diagnostics.
    input_names, env_names : tuple of str
    system : dict or None
        The prior system used (``LTISystem.to_dict()``), if any.
    """

    mean: np.ndarray
    var: np.ndarray
    criterion: str
    value: float | None
    values: dict[str, Any]
    var_bounds: tuple[float, float]
    mean_bound: float | None
    steps: np.ndarray
    report: Any
    settings: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    input_names: tuple[str, ...] = ()
    env_names: tuple[str, ...] = ()
    system: dict | None = None

    @property
    def num_envs(self) -> int:
        return self.var.shape[0]

    @property
    def input_dim(self) -> int:
        return self.var.shape[1]

    def to_input_design(self) -> InputDesign:
        """The laws as an :class:`~causalid.InputDesign` (e.g. for ``simulate_lti``)."""
        return InputDesign(self.mean, self.var, name=f"designed ({self.criterion})")

    def to_frame(self) -> pd.DataFrame:
        """One row per environment: ``env``, ``mean_<input>``…, ``var_<input>``… — the table
        ``causalid identify --input-law`` reads."""
        table = pd.DataFrame({"env": list(self.env_names)})
        for j, u in enumerate(self.input_names):
            table[f"mean_{u}"] = self.mean[:, j]
        for j, u in enumerate(self.input_names):
            table[f"var_{u}"] = self.var[:, j]
        return table

    def summary(self) -> str:
        lo, hi = self.var_bounds
        lines = [f"Input-law design: {self.num_envs} environments x {self.input_dim} inputs, variances in "
                 f"[{lo:g}, {hi:g}]" + (f", |mean| <= {self.mean_bound:g}" if self.mean_bound else ", zero means")
                 + "."]
        words = _CRITERION_WORDS.get(self.criterion, self.criterion)
        lines.append(f"criterion '{self.criterion}': {words} = {_fmt(self.value)}")
        v = self.values
        steps = self.steps
        per = "per transition" if np.all(steps == 1) else f"for {_fmt_steps(steps)} transitions per environment"
        lines.append(f"  pairwise min s_ij {_fmt(v.get('pairwise'))}; σ_min(L)/Δ {_fmt(v.get('sigma_min_rel'))}, "
                     f"cond(L) {_fmt(v.get('cond'))}; predicted closed-form Amari error {_fmt(v.get('moment'))} "
                     f"({per})")
        if v.get("d-optimal") is not None:
            lines.append(f"  log det Fisher(Ã, B̃) {_fmt(v['d-optimal'])}")
        if v.get("eig") is not None:
            lines.append(f"  expected information gain {_fmt(v['eig'])} nats")
        width = max(len(s) for s in self.input_names) if self.input_names else 2
        head = "  env      " + "  ".join(f"{u:>{max(width, 17)}}" for u in self.input_names)
        lines.append("laws N(mean, var) per environment:")
        lines.append(head)
        for e, name in enumerate(self.env_names):
            cells = "  ".join(f"{f'N({self.mean[e, j]:.3g}, {self.var[e, j]:.3g})':>{max(width, 17)}}"
                              for j in range(self.input_dim))
            lines.append(f"  {name:<8} {cells}")
        if self.report is not None:
            ok = self.report.identifiable
            lines.append("identifiable: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in ok.items()))
        if "seconds" in self.info:
            lines.append(f"designed in {self.info['seconds']:.2f} s")
        return "\n".join(lines)

    # ------------------------------------------------------------------ persistence
    REQUIRED = ("mean", "var", "criterion", "var_bounds", "steps")

    def _to_payload(self) -> dict:
        return {"mean": self.mean, "var": self.var, "criterion": self.criterion, "value": self.value,
                "values": self.values, "var_bounds": list(self.var_bounds), "mean_bound": self.mean_bound,
                "steps": np.asarray(self.steps), "settings": self.settings, "info": self.info,
                "input_names": list(self.input_names), "env_names": list(self.env_names),
                "system": self.system, "report": None if self.report is None else self.report.to_dict()}

    @classmethod
    def _from_payload(cls, d: dict) -> Design:
        report = None if d.get("report") is None else LTIIdentifiabilityReport.from_dict(d["report"])
        return cls(mean=np.asarray(d["mean"], float), var=np.asarray(d["var"], float), criterion=d["criterion"],
                   value=d.get("value"), values=dict(d.get("values") or {}),
                   var_bounds=tuple(d["var_bounds"]), mean_bound=d.get("mean_bound"),
                   steps=np.asarray(d["steps"], float), report=report, settings=dict(d.get("settings") or {}),
                   info=dict(d.get("info") or {}), input_names=tuple(d.get("input_names") or ()),
                   env_names=tuple(d.get("env_names") or ()), system=d.get("system"))

    def _plot(self, ax=None):
        """Heat maps of the variances (log scale), the means and the pairwise separability."""
        return plot_design(self, ax=ax)


@dataclass
class NextDesign(Result):
    """The proposed law of the next environment and what it is expected to teach.

    Attributes
    ----------
    mean, var : ndarray (m,)
        The proposed input law ``u_t ~ N(mean, diag var)``.
    eig : float
        Expected information gain about (Ã, B̃) of ``steps`` transitions under that law
        (Laplace estimate, nats).
    steps : int
        Transitions the next environment is planned to record.
    table : pandas.DataFrame
        One row per parameter: ``parameter`` (``A[i,j]`` / ``B[i,j]`` of Ã, B̃), ``estimate``,
        ``sd_now``, ``sd_next`` (expected posterior sd after the new environment) and
        ``shrinkage`` (= 1 − sd_next / sd_now).
    candidates : pandas.DataFrame or None
        When candidate laws were given: their means, variances and EIG, best first.
    current : InputDesign
        The input laws of the data so far.
    report : LTIIdentifiabilityReport
        :func:`causalid.check_lti` of the current laws plus the proposed one.
    info : dict
    input_names : tuple of str
    """

    mean: np.ndarray
    var: np.ndarray
    eig: float
    steps: int
    table: pd.DataFrame
    candidates: pd.DataFrame | None
    current: InputDesign
    report: Any
    info: dict[str, Any] = field(default_factory=dict)
    input_names: tuple[str, ...] = ()

    def to_input_design(self) -> InputDesign:
        """The current laws with the proposed environment appended."""
        return InputDesign(np.vstack([self.current.mean, self.mean[None]]),
                           np.vstack([self.current.var, self.var[None]]), name="current + next")

    def summary(self) -> str:
        law = ", ".join(f"{u} ~ N({mu:.3g}, {v:.3g})" for u, mu, v in zip(self.input_names, self.mean, self.var))
        lines = [f"Next environment ({self.steps} transitions): {law}",
                 (f"expected information gain about (Ã, B̃): {self.eig:.4g} nats "
                  f"(Laplace estimate over {self.info.get('num_parameter_draws', '?')} "
                  f"{self.info.get('parameter_law', '')} draws)")]
        t = self.table
        lines.append(f"expected posterior sd shrinkage: median {t['shrinkage'].median():.1%}, "
                     f"max {t['shrinkage'].max():.1%} ({t.loc[t['shrinkage'].idxmax(), 'parameter']})")
        top = t.sort_values("shrinkage", ascending=False).head(8)
        lines.append(top.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        if self.candidates is not None:
            lines.append(f"{len(self.candidates)} candidate laws scored; best EIG {self.candidates['eig'].iloc[0]:.4g}, "
                         f"worst {self.candidates['eig'].iloc[-1]:.4g}")
        return "\n".join(lines)

    REQUIRED = ("mean", "var", "eig", "steps", "table", "current")

    def to_frame(self) -> pd.DataFrame:
        """The per-parameter table (:attr:`table`)."""
        return self.table

    def _to_payload(self) -> dict:
        return {"mean": self.mean, "var": self.var, "eig": self.eig, "steps": int(self.steps),
                "table": self.table.to_dict(orient="list"),
                "candidates": None if self.candidates is None else self.candidates.to_dict(orient="list"),
                "current": self.current.to_dict(), "report": None if self.report is None else self.report.to_dict(),
                "info": self.info, "input_names": list(self.input_names)}

    @classmethod
    def _from_payload(cls, d: dict) -> NextDesign:
        return cls(mean=np.asarray(d["mean"], float), var=np.asarray(d["var"], float), eig=float(d["eig"]),
                   steps=int(d["steps"]), table=pd.DataFrame(d["table"]),
                   candidates=None if d.get("candidates") is None else pd.DataFrame(d["candidates"]),
                   current=InputDesign.from_dict(d["current"]),
                   report=None if d.get("report") is None else LTIIdentifiabilityReport.from_dict(d["report"]),
                   info=dict(d.get("info") or {}), input_names=tuple(d.get("input_names") or ()))

    def _plot(self, ax=None, max_parameters: int = 30):
        """Posterior sd of each parameter now and expected after the next environment (the
        ``max_parameters`` with the largest shrinkage)."""
        t = self.table.sort_values("shrinkage", ascending=False).head(int(max_parameters))
        fig, grid = figure_grid(ax, 1, 1, (max(5.0, 0.32 * len(t) + 2.0), 3.6))
        ax = fig.add_subplot(grid[0, 0])
        x = np.arange(len(t))
        ax.bar(x - 0.2, t["sd_now"], width=0.4, color="#9e9e9e", label="posterior sd now")
        ax.bar(x + 0.2, t["sd_next"], width=0.4, color="#1f5fa8", label="expected after the next environment")
        ax.set_xticks(x, labels=list(t["parameter"]), rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("posterior sd", fontsize=9)
        law = ", ".join(f"{u} ~ N({mu:.2g}, {v:.2g})" for u, mu, v in zip(self.input_names, self.mean, self.var))
        ax.set_title(f"next environment ({self.steps} steps): {law}\nEIG {self.eig:.3g} nats", fontsize=9)
        ax.legend(fontsize=8, frameon=False)
        return fig


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    v = float(v)
    return f"{v:.4g}" if np.isfinite(v) else str(v)


def _fmt_steps(steps) -> str:
    s = np.asarray(steps)
    return f"{s[0]:g}" if np.all(s == s[0]) else f"{s.min():g}–{s.max():g}"
