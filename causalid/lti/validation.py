"""Validation results of measured-input identification: the comparison with data, the order table."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from causalid._results import Result

__all__ = ["LTIComparison", "LTIOrderSelection"]


def _nan_list(a):
    a = np.asarray(a, dtype=float)
    return np.where(np.isfinite(a), a, None).tolist()


@dataclass
class LTIComparison(Result):
    """Measured against predicted outputs (:meth:`LTIResult.compare`).

    Attributes
    ----------
    fit : ndarray (p,)
        100 (1 − ‖y − ŷ‖ / ‖y − ȳ‖) per output, in %.
    y, yhat : ndarray (E, N, T, p)
        Measured and predicted outputs (NaN where unobserved).
    kind : str
        ``"simulate"``, ``"one-step"`` or the prediction horizon k.
    """

    fit: np.ndarray
    y: np.ndarray = field(repr=False)
    yhat: np.ndarray = field(repr=False)
    kind: str = "simulate"
    output_names: tuple[str, ...] = ()
    dt: float | None = None

    REQUIRED = ("fit", "y", "yhat", "kind")

    def _to_payload(self) -> dict:
        return {"fit": np.asarray(self.fit).tolist(), "y": _nan_list(self.y), "yhat": _nan_list(self.yhat),
                "kind": self.kind, "output_names": list(self.output_names), "dt": self.dt}

    @classmethod
    def _from_payload(cls, d):
        arr = (lambda v: np.asarray(np.where(np.equal(np.asarray(v, dtype=object), None), np.nan,
                                             np.asarray(v, dtype=object)), dtype=float))
        return cls(fit=np.asarray(d["fit"], dtype=float), y=arr(d["y"]), yhat=arr(d["yhat"]), kind=d["kind"],
                   output_names=tuple(d.get("output_names", ())), dt=d.get("dt"))

    def summary(self) -> str:
        what = {"simulate": "free-run simulation", "one-step": "one-step prediction"}.get(
            self.kind, f"{self.kind}-step prediction")
        names = self.output_names or tuple(f"y{j}" for j in range(len(self.fit)))
        return f"fit of the {what} (x0 by least squares): " + ", ".join(
            f"{n} {f:.1f} %" for n, f in zip(names, self.fit))

    def to_frame(self):
        names = self.output_names or tuple(f"y{j}" for j in range(len(self.fit)))
        return pd.DataFrame({"output": list(names), "fit_percent": np.asarray(self.fit)})

    def _plot(self, ax=None, record: int = 0):
        """Measured and predicted outputs of one record (environment-major index), one panel per output."""
        import matplotlib.pyplot as plt

        E, N, T, p = self.y.shape
        y, yh = self.y.reshape(E * N, T, p)[record], self.yhat.reshape(E * N, T, p)[record]
        t = np.arange(T) * (self.dt or 1.0)
        names = self.output_names or tuple(f"y{j}" for j in range(p))
        if ax is None:
            fig, axes = plt.subplots(p, 1, figsize=(7, 2.2 * p + 0.6), sharex=True, squeeze=False)
            axes = axes[:, 0]
        else:
            fig = ax.figure
            spec = ax.get_subplotspec()
            ax.remove()
            grid = spec.subgridspec(p, 1)
            axes = [fig.add_subplot(grid[j]) for j in range(p)]
        for j, a in enumerate(axes):
            a.plot(t, y[:, j], color="0.2", lw=1, label="measured")
            a.plot(t, yh[:, j], color="tab:red", lw=1, label=f"model (fit {self.fit[j]:.1f} %)")
            a.set_ylabel(names[j])
            a.legend(loc="upper right", fontsize=8)
        axes[-1].set_xlabel("time (s)" if self.dt else "step")
        return fig


@dataclass
class LTIOrderSelection(Result):
    """Candidate orders of a measured-input fit, with their held-out errors and AIC/BIC.

    Attributes
    ----------
    table : dict of lists
        ``order``, ``subspace_error`` (held-out one-step mean squared error of the subspace
        estimate, in units of the scaled outputs), ``weighting`` (the subspace weighting with
        that error), ``pem_error`` (the same after the prediction-error fit, for the
        candidates fitted), ``aic``, ``bic`` (of those fits on the estimation part).
    chosen : int
    """

    table: dict
    chosen: int
    auto: bool = True

    REQUIRED = ("table", "chosen")

    def _to_payload(self) -> dict:
        return {"table": self.table, "chosen": self.chosen, "auto": self.auto}

    @classmethod
    def _from_payload(cls, d):
        return cls(table={k: list(v) for k, v in d["table"].items()}, chosen=int(d["chosen"]),
                   auto=bool(d.get("auto", True)))

    def to_frame(self):
        return pd.DataFrame(self.table)

    def summary(self) -> str:
        lines = [f"order chosen: {self.chosen}" + (" (held-out one-step error)" if self.auto else " (given)"),
                 " n  subspace   pem        AIC        BIC"]
        for i, n in enumerate(self.table["order"]):
            def f(k, fmt):
                v = self.table[k][i]
                return format(v, fmt) if v is not None else "-".rjust(len(format(0.0, fmt)))
            lines.append(f"{n:2d}  {f('subspace_error', '.4g'):>9}  {f('pem_error', '.4g'):>9}  "
                         f"{f('aic', '.5g'):>9}  {f('bic', '.5g'):>9}" + ("  <" if n == self.chosen else ""))
        return "\n".join(lines)

    def _plot(self, ax=None):
        import matplotlib.pyplot as plt

        fig, ax = (plt.subplots(figsize=(5, 3.2)) if ax is None else (ax.figure, ax))
        n = np.asarray(self.table["order"])
        sub = np.asarray(self.table["subspace_error"], dtype=float)
        pem = np.asarray([np.nan if v is None else v for v in self.table["pem_error"]], dtype=float)
        ax.semilogy(n, sub, "o-", color="0.5", label="subspace estimate")
        ax.semilogy(n, pem, "s", color="tab:blue", label="prediction-error fit")
        ax.axvline(self.chosen, color="tab:red", ls="--", label=f"chosen n = {self.chosen}")
        ax.set_xlabel("order n")
        ax.set_ylabel("held-out one-step MSE (scaled)")
        ax.legend(fontsize=8)
        return fig
