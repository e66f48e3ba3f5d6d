"""The result of an LTI identification: matrices, sources, uncertainty, save/load, plots."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy.linalg

from causalid._results import Result
from causalid._x64 import float64
from causalid.dynamics.kalman import kalman_filter, make_params
from causalid.dynamics.system import LTISystem
from causalid.errors import DataError
from causalid.lti.identifiability import LTIIdentifiabilityReport
from causalid.lti.plots import plot_lti_result

_ARRAYS = ("A", "B", "C", "D", "Q", "R", "A_se", "B_se", "source_var", "input_mean", "x0")


@dataclass
class LTIResult(Result):
    """An identified multi-environment LTI system.

    Coordinates
    -----------
    ``coordinates == "observed"`` (full-state observation, C square): the matrices are
    Ã = C A C⁻¹, B̃ = C B and C = I — the only coordinates the data identify.  The columns
    of B̃ are fixed by the design: when the input variances are known, column j belongs to
    input j and is scaled so that input j has its designed variance; its sign is fixed by
    the designed means when they are non-zero, else by making the entry of largest
    magnitude positive.  When the variances are unknown, columns carry unit-norm scaling
    and an arbitrary order (recovered sources are then defined up to permutation/scale).

    ``coordinates == "similarity"`` (partial observation): (A, B, C, D) are one member of
    the similarity class {(T A T⁻¹, T B, C T⁻¹, D)}; only the Markov parameters
    C A^k B, the transfer function and the eigenvalues of A are identified.

    Attributes
    ----------
    A, B, C, D : ndarray
    Q, R : ndarray or None
        Process- and observation-noise covariances where the engine estimates them.
    A_se, B_se : ndarray or None
        Standard errors (inverse observed Fisher information for ``mle``, posterior
        standard deviations for ``bayes``).
    sources : ndarray (E, N, T-1, m) or None
        Recovered inputs û_t (NaN where a step was not observed).
    source_var : ndarray (E, m) or None
        Estimated per-environment input variances.
    input_mean : ndarray (E, m) or None
        Estimated (or given) per-environment input means.
    x0 : ndarray or None
        Estimated initial states (E, N, n), measured-input engines.
    log_likelihood : float or None
    method, settings, info, dt, output_names, input_names, env_names
    posterior : arviz.InferenceData or None (``bayes``; not saved to JSON — use
        ``posterior.to_netcdf``)
    report : identifiability report of the data, when checked
    """

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    D: np.ndarray
    method: str
    coordinates: str
    Q: np.ndarray | None = None
    R: np.ndarray | None = None
    A_se: np.ndarray | None = None
    B_se: np.ndarray | None = None
    sources: np.ndarray | None = field(default=None, repr=False)
    source_var: np.ndarray | None = None
    input_mean: np.ndarray | None = None
    x0: np.ndarray | None = field(default=None, repr=False)
    log_likelihood: float | None = None
    num_params: int | None = None
    num_obs: int | None = None
    dt: float | None = None
    output_names: tuple[str, ...] = ()
    input_names: tuple[str, ...] = ()
    env_names: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    posterior: Any = field(default=None, repr=False)
    report: Any = field(default=None, repr=False)

    # ------------------------------------------------------------------ views
    @property
    def system(self) -> LTISystem:
        return LTISystem(self.A, self.B, self.C, self.D, Q=self.Q, R=self.R, dt=self.dt)

    def to_statespace(self):
        """The identified system as a python-control ``StateSpace`` (discrete time)."""
        sys = self.system.to_statespace()
        if self.output_names and len(self.output_names) == sys.noutputs:
            sys.set_outputs(list(self.output_names))
        if self.input_names and len(self.input_names) == sys.ninputs:
            sys.set_inputs(list(self.input_names))
        return sys

    @property
    def eigenvalues(self) -> np.ndarray:
        return np.linalg.eigvals(self.A)

    @property
    def aic(self) -> float | None:
        if self.log_likelihood is None or self.num_params is None:
            return None
        return float(-2 * self.log_likelihood + 2 * self.num_params)

    @property
    def bic(self) -> float | None:
        if self.log_likelihood is None or self.num_params is None or not self.num_obs:
            return None
        return float(-2 * self.log_likelihood + self.num_params * np.log(self.num_obs))

    def summary(self) -> str:
        lines = [f"LTI system identified by '{self.method}' ({self.coordinates} coordinates): "
                 f"n={self.A.shape[0]} states, m={self.B.shape[1]} inputs, p={self.C.shape[0]} outputs"]
        ev = np.sort_complex(self.eigenvalues)
        lines.append("eigenvalues of A: " + ", ".join(f"{z.real:.4g}{z.imag:+.3g}j" if abs(z.imag) > 1e-12
                                                      else f"{z.real:.4g}" for z in ev))
        if self.log_likelihood is not None:
            lines.append(f"log-likelihood {self.log_likelihood:.6g}" + (f", BIC {self.bic:.6g}" if self.bic else ""))
        for k in ("converged", "iterations", "message"):
            if k in self.info:
                lines.append(f"{k}: {self.info[k]}")
        if self.report is not None:
            lines.append(str(self.report))
        return "\n".join(lines)

    @float64
    def predict(self, data, kind: str = "one-step") -> np.ndarray:
        """Predicted outputs for ``data`` (E, N, T, p), from this system.

        ``kind="one-step"``: the Kalman one-step-ahead prediction E[y_t | y_{0:t-1}, u]
        (needs Q and R; the initial state is taken as unknown with the stationary state
        covariance, or a unit covariance for unstable A).  ``kind="simulate"``: the
        noise-free response to the inputs from x_0 = 0 (measured inputs only).  Designed
        input laws enter as drift B μ_e and process covariance B diag(σ²_e) Bᵀ.
        """
        if kind not in ("one-step", "simulate"):
            raise DataError(f"kind must be 'one-step' or 'simulate'; got {kind!r}")
        if data.obs_dim != self.C.shape[0]:
            raise DataError(f"data have {data.obs_dim} outputs; the system has {self.C.shape[0]}")
        E, N, T, p = data.y.shape
        n, m = self.A.shape[0], self.B.shape[1]
        A, B, C, D = self.A, self.B, self.C, self.D
        measured = data.has_measured_inputs
        if measured and data.input_dim != m:
            raise DataError(f"data have {data.input_dim} inputs; the system has {m}")
        if kind == "simulate":
            if not measured:
                raise DataError("kind='simulate' needs measured inputs")
            u = jnp.asarray(data.inputs)

            def run(u_k):
                def step(x, ut):
                    return A @ x + B @ ut, C @ x + D @ ut
                return jax.lax.scan(step, jnp.zeros(n), u_k)[1]

            return np.asarray(jax.vmap(jax.vmap(run))(u))
        if self.R is None and self.Q is None:
            raise DataError("one-step prediction needs the noise covariances Q and R; identify with method='mle'")
        Q = self.Q if self.Q is not None else 1e-10 * np.eye(n)
        R = self.R if self.R is not None else 1e-10 * np.eye(p)
        if measured:
            Qe = np.broadcast_to(Q, (E, n, n))
            b = np.zeros((E, n))
        else:
            var = data.input_var if data.input_var is not None else self.source_var
            mean = data.input_mean if data.input_mean is not None else (
                self.input_mean if self.input_mean is not None else np.zeros((E, m)))
            Qe = np.einsum("ij,ej,kj->eik", B, var, B) + Q
            b = mean @ B.T
        stable = np.max(np.abs(np.linalg.eigvals(A))) < 1
        P0 = np.stack([scipy.linalg.solve_discrete_lyapunov(A, q) if stable else np.eye(n) for q in Qe])
        u = None if not measured else jnp.asarray(data.inputs)

        def one(P0_e, Q_e, b_e, y_k, u_k):
            params = make_params(A, C, Q_e, R, B=B if measured else None, D=D if measured else None, b=b_e,
                                 m0=np.zeros(n) if measured else None, P0=P0_e)
            f = kalman_filter(params, y_k, u_k)
            pred = f.predicted_means @ C.T
            return pred + (u_k @ D.T if measured else 0.0)

        in_u = 0 if measured else None
        per_traj = jax.vmap(one, in_axes=(None, None, None, 0, in_u))
        out = jax.vmap(per_traj, in_axes=(0, 0, 0, 0, in_u))(jnp.asarray(P0), jnp.asarray(Qe), jnp.asarray(b),
                                                            jnp.asarray(data.y), u)
        return np.asarray(out)

    # ------------------------------------------------------------------ persistence
    REQUIRED = ("A", "B", "C", "D", "method", "coordinates")

    def _to_payload(self) -> dict:
        """Every field but the posterior (save it with ``posterior.to_netcdf``)."""
        d = {"method": self.method, "coordinates": self.coordinates,
             "log_likelihood": self.log_likelihood, "num_params": self.num_params, "num_obs": self.num_obs,
             "dt": self.dt, "output_names": list(self.output_names), "input_names": list(self.input_names),
             "env_names": list(self.env_names), "settings": self.settings, "info": self.info}
        for k in _ARRAYS:
            v = getattr(self, k)
            d[k] = None if v is None else np.asarray(v).tolist()
        d["sources"] = None if self.sources is None else _nan_list(self.sources)
        d["report"] = None if self.report is None else self.report.to_dict()
        return d

    @classmethod
    def _from_payload(cls, d: dict) -> LTIResult:
        arrays = {k: None if d.get(k) is None else np.asarray(d[k], dtype=float) for k in _ARRAYS}
        sources = None if d.get("sources") is None else np.asarray(d["sources"], dtype=float)
        report = None if d.get("report") is None else LTIIdentifiabilityReport.from_dict(d["report"])
        return cls(method=d["method"], coordinates=d["coordinates"], sources=sources,
                   log_likelihood=d.get("log_likelihood"), num_params=d.get("num_params"),
                   num_obs=d.get("num_obs"), dt=d.get("dt"), output_names=tuple(d.get("output_names", ())),
                   input_names=tuple(d.get("input_names", ())), env_names=tuple(d.get("env_names", ())),
                   settings=d.get("settings", {}), info=d.get("info", {}), report=report, **arrays)

    def to_frame(self):
        """The matrices in long form: matrix, row, column, value (and ``se`` where known)."""
        rows = []
        for name in ("A", "B", "C", "D"):
            M = np.atleast_2d(getattr(self, name))
            se = getattr(self, f"{name}_se", None)
            for (i, j), v in np.ndenumerate(M):
                rows.append({"matrix": name, "row": i, "column": j, "value": float(v),
                             "se": float(se[i, j]) if se is not None else np.nan})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ plots
    def _plot(self, ax=None, truth: LTISystem | None = None):
        """Eigenvalues of A in the unit disc (with ``truth``'s), B̃ as a heat map, the standard
        errors of A and the recovered sources."""
        return plot_lti_result(self, ax=ax, truth=truth)


def _nan_list(a: np.ndarray):
    a = np.asarray(a, dtype=float)
    return np.where(np.isfinite(a), a, None).tolist()


