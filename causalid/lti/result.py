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

_ARRAYS = ("A", "B", "C", "D", "Q", "R", "A_se", "B_se", "source_var", "input_mean", "x0", "K", "y_offset",
           "u_offset")


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
    K, y_offset, u_offset : ndarray or None
        ``pem``: the innovations-form gain K (n, p) and the offsets of the model
        x_{t+1} = A x_t + B (u_t − u_offset) + K e_t,  y_t = C x_t + D (u_t − u_offset) + y_offset + e_t;
        R is then the innovation covariance.
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
    K: np.ndarray | None = None
    y_offset: np.ndarray | None = None
    u_offset: np.ndarray | None = None

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

    def frequency_response(self, omega):
        """The transfer function G(e^{iω}) (len(ω), p, m) at angular frequencies ``omega`` (rad/sample),
        and for a ``pem`` fit the standard errors of its real and imaginary parts (as
        ``se.real``, ``se.imag``; None otherwise), from the Gauss–Newton covariance of the parameters."""
        info = self.info
        if self.method == "pem" and "theta" in info and "theta_cov" in info:
            from causalid.lti.pem import frequency_response

            return frequency_response(info["theta"], info["structure"], info["scales"]["y"], info["scales"]["u"],
                                      omega, cov=np.asarray(info["theta_cov"]))
        z = np.exp(1j * np.atleast_1d(np.asarray(omega, float)))
        n = self.A.shape[0]
        G = np.stack([self.C @ np.linalg.solve(zz * np.eye(n) - self.A, self.B) + self.D for zz in z])
        return G, None

    @property
    def order_selection(self):
        """The order table of a ``pem`` fit (:class:`~causalid.lti.validation.LTIOrderSelection`), or None."""
        d = self.info.get("order_selection")
        if d is None:
            return None
        from causalid.lti.validation import LTIOrderSelection

        return LTIOrderSelection(table=d["table"], chosen=d["chosen"], auto=d.get("auto", True))

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
        if self.method == "pem":
            return self._measured_summary()
        lines = [f"LTI system identified by '{self.method}' ({self.coordinates} coordinates): "
                 f"n={self.A.shape[0]} states, m={self.B.shape[1]} inputs, p={self.C.shape[0]} outputs"]
        ev = np.sort_complex(self.eigenvalues)
        lines.append("eigenvalues of A: " + _poles(ev))
        if self.log_likelihood is not None:
            lines.append(f"log-likelihood {self.log_likelihood:.6g}" + (f", BIC {self.bic:.6g}" if self.bic else ""))
        for k in ("converged", "iterations", "message"):
            if k in self.info:
                lines.append(f"{k}: {self.info[k]}")
        if self.report is not None:
            lines.append(str(self.report))
        return "\n".join(lines)

    def _measured_summary(self) -> str:
        """Measured-input identification: order, poles, stability, fit, noise model, residual tests."""
        info, n = self.info, self.A.shape[0]
        crit = info.get("criterion", "prediction")
        order = self.settings.get("order_selection")
        how = f"chosen from orders 1-{order['max_order']} by held-out one-step error" if order else "given"
        lines = [f"state-space model by prediction-error identification ({'one-step prediction' if crit == 'prediction' else 'output error (simulation)'} criterion): "
                 f"order n={n} ({how}), m={self.B.shape[1]} inputs, p={self.C.shape[0]} outputs"]
        ev = np.sort_complex(self.eigenvalues)
        rho = float(np.abs(ev).max()) if ev.size else 0.0
        lines.append(f"poles: {_poles(ev)}")
        lines.append(f"stability: {'stable' if rho < 1 else 'UNSTABLE'} (largest pole modulus {rho:.4g})")
        if "fit_percent" in info:
            lines.append("fit on the estimation data (free run, x0 by least squares): " + ", ".join(
                f"{name} {f:.1f} %" for name, f in zip(self.output_names, info["fit_percent"])))
        if self.K is not None and self.R is not None:
            F = self.A - self.K @ self.C
            rf = float(np.abs(np.linalg.eigvals(F)).max()) if n else 0.0
            lines.append("noise model: innovations form, innovation variance " + ", ".join(
                f"{name} {v:.4g}" for name, v in zip(self.output_names, np.diag(self.R))) +
                f"; predictor A - K C {'stable' if rf < 1 else 'UNSTABLE'} (largest pole modulus {rf:.4g})")
        elif crit == "simulation":
            lines.append("noise model: none (output error); residual variance " + ", ".join(
                f"{v:.4g}" for v in np.diag(self.R)) if self.R is not None else "noise model: none")
        tests = info.get("residual_tests")
        if tests:
            for w in tests["whiteness"]:
                lines.append(f"residual whiteness, {self.output_names[w['output']]}: Ljung-Box over "
                             f"{tests['max_lag']} lags p = {w['p_value']:.3g} "
                             f"[{'PASS' if w['white'] else 'FAIL'}]")
            for c in tests["cross_correlation"]:
                lines.append(f"input-residual correlation, {self.input_names[c['input']]} -> "
                             f"{self.output_names[c['output']]}: largest |z| {c['max_z']:.2f} over lags 0-"
                             f"{tests['max_lag']} (band {tests['band']:.2f}) [{'PASS' if c['independent'] else 'FAIL'}]")
        pe = info.get("excitation")
        if pe:
            lines.append(f"[{'PASS' if pe['passed'] else 'FAIL'}] {pe['message']}")
        for k in ("converged", "iterations", "message"):
            if k in info:
                lines.append(f"{k}: {info[k]}")
        return "\n".join(lines)

    def compare(self, data, kind="simulate"):
        """Measured against predicted outputs of ``data``: fit % per output and a figure.

        fit = 100 (1 − ‖y − ŷ‖ / ‖y − ȳ‖), with ŷ the free-run simulation (``kind="simulate"``,
        the default), the one-step or the k-step prediction, each record's initial state
        fitted by least squares (as MATLAB's ``compare`` does).  Returns an
        :class:`~causalid.lti.validation.LTIComparison`.
        """
        from causalid.lti.pem import fit_percent
        from causalid.lti.validation import LTIComparison

        yhat = self.predict(data, kind=kind)
        return LTIComparison(fit=fit_percent(data.y, yhat), y=data.y, yhat=yhat, kind=str(kind),
                             output_names=tuple(data.output_names), dt=data.dt)

    @float64
    def predict(self, data, kind="one-step") -> np.ndarray:
        """Predicted outputs for ``data`` (E, N, T, p), from this system.

        ``kind="simulate"``: the free-run response to the measured inputs; ``"one-step"``: the
        one-step-ahead prediction ŷ(t | t−1); an int ``k``: the k-step-ahead ŷ(t | t−k).  For
        measured inputs each record's initial state is fitted by least squares and the model's
        offsets are applied; the innovations gain K of a ``pem`` fit gives the predictor
        (other engines: the Kalman filter of Q and R).  Designed input laws (one-step only)
        enter as drift B μ_e and process covariance B diag(σ²_e) Bᵀ.
        """
        steps = kind if isinstance(kind, (int, np.integer)) and not isinstance(kind, bool) else None
        if kind not in ("one-step", "simulate") and not (steps is not None and steps >= 1):
            raise DataError(f"kind must be 'one-step', 'simulate' or a number of steps k >= 1; got {kind!r}")
        if steps == 1:
            kind = "one-step"
        if data.obs_dim != self.C.shape[0]:
            raise DataError(f"data have {data.obs_dim} outputs; the system has {self.C.shape[0]}")
        E, N, T, p = data.y.shape
        n, m = self.A.shape[0], self.B.shape[1]
        A, B, C, D = self.A, self.B, self.C, self.D
        measured = data.has_measured_inputs
        if measured and data.input_dim != m:
            raise DataError(f"data have {data.input_dim} inputs; the system has {m}")
        if kind == "simulate" and not measured:
            raise DataError("kind='simulate' needs measured inputs")
        if steps is not None and steps > 1 and (self.K is None or not measured):
            raise DataError("k-step prediction needs measured inputs and an innovations-form model "
                            "(identify_lti(method='pem'))")
        if measured and (kind == "simulate" or self.K is not None or steps is not None):
            from causalid.lti.pem import predict_records

            Kg = self.K if self.K is not None else np.zeros((n, p))
            y_off = self.y_offset if self.y_offset is not None else np.zeros(p)
            u_off = self.u_offset if self.u_offset is not None else np.zeros(m)
            return predict_records(A, B, C, D, Kg, y_off, u_off, data, kind=kind)
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


def _poles(ev) -> str:
    return ", ".join(f"{z.real:.4g}{z.imag:+.3g}j" if abs(z.imag) > 1e-12 else f"{z.real:.4g}" for z in ev)


def _nan_list(a: np.ndarray):
    a = np.asarray(a, dtype=float)
    return np.where(np.isfinite(a), a, None).tolist()


