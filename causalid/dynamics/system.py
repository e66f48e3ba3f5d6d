"""Linear time-invariant systems and input-law designs as plain containers.

The discrete-time model used throughout causalid is

    x_{t+1} = A x_t + B u_t + w_t,    w_t ~ N(0, Q)
    y_t     = C x_t + D u_t + v_t,    v_t ~ N(0, R)

with state dimension ``n``, input dimension ``m`` and output dimension ``p``.  An
:class:`InputDesign` is the per-environment input law u_t ~ N(mean_e, diag(var_e)).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from causalid.errors import DataError


def _matrix(name: str, value, shape=None) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 1 and shape is not None and len(shape) == 2:
        a = a.reshape(shape)
    if a.ndim != 2:
        raise DataError(f"{name} must be a matrix (2-D array); got shape {a.shape}")
    if shape is not None and a.shape != tuple(shape):
        raise DataError(f"{name} must have shape {tuple(shape)}; got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise DataError(f"{name} contains NaN or inf")
    return a


@dataclass(frozen=True)
class LTISystem:
    """A discrete-time LTI system (A, B, C, D) with optional noise covariances Q, R.

    ``dt`` is the sampling interval in seconds, or ``None`` for an unspecified step.
    Arrays are float64 NumPy arrays; shapes are checked at construction.
    """

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    D: np.ndarray | None = None
    Q: np.ndarray | None = None
    R: np.ndarray | None = None
    dt: float | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        A = _matrix("A", self.A)
        n = A.shape[0]
        if A.shape != (n, n):
            raise DataError(f"A must be square; got shape {A.shape}")
        B = _matrix("B", self.B)
        if B.shape[0] != n:
            raise DataError(f"B must have {n} rows (the state dimension); got shape {B.shape}")
        C = _matrix("C", self.C)
        if C.shape[1] != n:
            raise DataError(f"C must have {n} columns (the state dimension); got shape {C.shape}")
        m, p = B.shape[1], C.shape[0]
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "B", B)
        object.__setattr__(self, "C", C)
        object.__setattr__(self, "D", np.zeros((p, m)) if self.D is None else _matrix("D", self.D, (p, m)))
        if self.Q is not None:
            object.__setattr__(self, "Q", _matrix("Q", self.Q, (n, n)))
        if self.R is not None:
            object.__setattr__(self, "R", _matrix("R", self.R, (p, p)))
        if self.dt is not None and not (float(self.dt) > 0):
            raise DataError(f"dt must be a positive number of seconds; got {self.dt}")

    @property
    def n(self) -> int:
        """State dimension."""
        return self.A.shape[0]

    @property
    def m(self) -> int:
        """Input dimension."""
        return self.B.shape[1]

    @property
    def p(self) -> int:
        """Output dimension."""
        return self.C.shape[0]

    @classmethod
    def from_continuous(cls, Ac, Bc, C, D=None, *, dt: float, method: str = "zoh", **kwargs) -> "LTISystem":
        """Discretise a continuous-time system with python-control (zero-order hold by default)."""
        import control

        Ac = _matrix("A", Ac)
        Bc = _matrix("B", Bc)
        C = _matrix("C", C)
        D = np.zeros((C.shape[0], Bc.shape[1])) if D is None else _matrix("D", D)
        sysd = control.c2d(control.ss(Ac, Bc, C, D), dt, method=method)
        return cls(np.asarray(sysd.A), np.asarray(sysd.B), np.asarray(sysd.C), np.asarray(sysd.D), dt=dt, **kwargs)

    @classmethod
    def from_statespace(cls, sys, **kwargs) -> "LTISystem":
        """Build from a python-control ``StateSpace`` in discrete time."""
        dt = sys.dt
        if dt in (None, 0):
            raise DataError("from_statespace needs a discrete-time system; discretise it with control.c2d or use from_continuous")
        return cls(np.asarray(sys.A), np.asarray(sys.B), np.asarray(sys.C), np.asarray(sys.D),
                   dt=None if dt is True else float(dt), **kwargs)

    def to_statespace(self):
        """The python-control ``StateSpace`` (discrete time; ``dt=True`` when the step is unspecified)."""
        import control

        return control.ss(self.A, self.B, self.C, self.D, True if self.dt is None else self.dt)

    def markov_parameters(self, horizon: int) -> np.ndarray:
        """Impulse-response blocks ``[D, CB, CAB, ..., CA^{horizon-2}B]``, shape (horizon, p, m)."""
        out = [self.D]
        Ak_B = self.B
        for _ in range(horizon - 1):
            out.append(self.C @ Ak_B)
            Ak_B = self.A @ Ak_B
        return np.stack(out[:horizon])

    def to_dict(self) -> dict:
        d = {k: (None if getattr(self, k) is None else getattr(self, k).tolist()) for k in "ABCDQR"}
        d["dt"] = self.dt
        d["meta"] = self.meta
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LTISystem":
        return cls(**{k: d.get(k) for k in "ABCDQR"}, dt=d.get("dt"), meta=dict(d.get("meta") or {}))


@dataclass(frozen=True)
class InputDesign:
    """Per-environment Gaussian input laws u_t ~ N(mean[e], diag(var[e])), arrays shaped (E, m)."""

    mean: np.ndarray
    var: np.ndarray
    name: str = "custom"

    def __post_init__(self):
        var = np.asarray(self.var, dtype=np.float64)
        if var.ndim != 2:
            raise DataError(f"input variances must be shaped (environments, inputs); got shape {var.shape}")
        mean = np.zeros_like(var) if self.mean is None else np.asarray(self.mean, dtype=np.float64)
        if mean.shape != var.shape:
            raise DataError(f"input means {mean.shape} and variances {var.shape} must have the same shape (E, m)")
        if not (np.all(np.isfinite(var)) and np.all(np.isfinite(mean))):
            raise DataError("input means and variances must be finite")
        bad = np.argwhere(var <= 0)
        if len(bad):
            e, j = bad[0]
            raise DataError(f"input variance of environment {e}, input {j} is {var[e, j]}; variances must be > 0")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "var", var)

    @property
    def num_envs(self) -> int:
        return self.var.shape[0]

    @property
    def input_dim(self) -> int:
        return self.var.shape[1]

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "name": self.name}

    @classmethod
    def from_dict(cls, d: dict) -> "InputDesign":
        return cls(np.asarray(d["mean"]), np.asarray(d["var"]), d.get("name", "custom"))


def controllability_matrix(A, B) -> np.ndarray:
    """[B, AB, …, A^{n−1}B] (as ``control.ctrb``; importing python-control costs about 1 s)."""
    A = np.asarray(A, float)
    blocks = [np.asarray(B, float)]
    for _ in range(A.shape[0] - 1):
        blocks.append(A @ blocks[-1])
    return np.hstack(blocks)


def observability_matrix(A, C) -> np.ndarray:
    """[C; CA; …; CA^{n−1}] (as ``control.obsv``)."""
    return controllability_matrix(np.asarray(A, float).T, np.asarray(C, float).T).T
