r"""Typed parameter containers of the LTI engines (NamedTuples, hence JAX pytrees).

Each container holds one engine's *free* (unconstrained) parametrisation: variances as logs,
covariances as Cholesky factors with log diagonals, and ``None`` for a block the engine does
not estimate (``None`` is an empty pytree, so it simply drops out of the parameter vector).
The engines optimise the flat vector of :func:`jax.flatten_util.ravel_pytree`, which
concatenates the fields in the order they are declared, each in row-major order.  Build a
container with its constructor, which takes natural values (variances, covariances) and
checks the shapes.

Dimensions: ``n`` states, ``m`` inputs, ``p`` outputs, ``E`` environments, ``R`` records
(trajectories of every environment, environment-major).

* :class:`DesignedInputParams` — full-state data with designed input laws, in observed
  coordinates (Ã = C A C⁻¹, B̃ = C B);
* :class:`StateSpaceParams` — measured inputs, the Kalman likelihood of
  (A, B, C, D, Q, R, x₀);
* :class:`InnovationsParams` — measured inputs, the prediction-error model in innovations
  form (A, B, C, D, K, output offset, x₀).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from causalid._typing import Array
from causalid.errors import DataError

__all__ = [
    "DesignedInputParams",
    "InnovationsParams",
    "StateSpaceParams",
    "designed_input_params",
    "innovations_params",
    "state_space_params",
]


def _shape(name, value, shape):
    a = np.asarray(value, dtype=np.float64)
    if a.shape != tuple(shape):
        raise DataError(f"{name} must have shape {tuple(shape)}; got {a.shape}")
    return a


# ====================================================================== designed input laws
class DesignedInputParams(NamedTuple):
    r"""Free parameters of the full-state, designed-input model in observed coordinates.

    .. math::

        y_{t+1} \mid y_t, e \sim \mathcal N\big(\tilde A y_t + c_e,\;
            \tilde B \operatorname{diag}(\sigma^2_e) \tilde B^\top + q I\big),
        \qquad c_e = \tilde B \mu_e,

    observed with noise of variance ``r`` when ``log_obs_var`` is present (then through the
    Kalman likelihood).

    Attributes
    ----------
    A : (p, p)
        Ã.
    B : (p, m)
        B̃.
    log_input_var : (E, m) or None
        log σ²_e, when the input variances are unknown.
    drift : (E, p) or None
        c_e, when the input means are unknown.
    log_process_var : () or None
        log q, when a process-noise variance is estimated.
    log_obs_var : () or None
        log r, when an observation-noise variance is estimated.
    """

    A: Array
    B: Array
    log_input_var: Array | None = None
    drift: Array | None = None
    log_process_var: Array | None = None
    log_obs_var: Array | None = None

    @property
    def process_var(self):
        """q (None when not estimated)."""
        return None if self.log_process_var is None else jnp.exp(self.log_process_var)

    @property
    def obs_var(self):
        """r (None when not estimated)."""
        return None if self.log_obs_var is None else jnp.exp(self.log_obs_var)


def designed_input_params(A, B, *, input_var=None, drift=None, process_var=None,
                          obs_var=None) -> DesignedInputParams:
    """Build :class:`DesignedInputParams` from natural values (variances, not logs).

    Parameters
    ----------
    A : (p, p) array
    B : (p, m) array
    input_var : (E, m) array, optional
        Unknown input variances' starting values (positive).
    drift : (E, p) array, optional
        Unknown drifts c_e = B̃ μ_e.
    process_var, obs_var : float, optional
        Noise variances q and r to estimate (positive).

    Examples
    --------
    >>> import numpy as np
    >>> from causalid.lti.params import designed_input_params
    >>> from jax.flatten_util import ravel_pytree
    >>> theta = designed_input_params(np.eye(2), np.ones((2, 1)), process_var=1e-3)
    >>> ravel_pytree(theta)[0].shape            # 4 + 2 + 1 free parameters
    (7,)
    """
    A = np.asarray(A, dtype=np.float64)
    p = A.shape[0]
    A = _shape("A", A, (p, p))
    B = np.asarray(B, dtype=np.float64)
    B = _shape("B", B, (p, B.shape[1] if B.ndim == 2 else -1))
    log_var = None if input_var is None else np.log(np.asarray(input_var, dtype=np.float64))
    if log_var is not None:
        log_var = _shape("input_var", log_var, (log_var.shape[0], B.shape[1]))
    if drift is not None:
        drift = np.asarray(drift, dtype=np.float64)
        drift = _shape("drift", drift, (drift.shape[0], p))
    lq = None if process_var is None else np.log(np.float64(process_var))
    lr = None if obs_var is None else np.log(np.float64(obs_var))
    return DesignedInputParams(A, B, log_var, drift, lq, lr)


# ====================================================================== measured inputs: Kalman likelihood
class StateSpaceParams(NamedTuple):
    r"""Free parameters of the measured-input state-space model (Kalman likelihood).

    .. math::

        x_{t+1} = A x_t + B u_t + w_t,\ w_t \sim \mathcal N(0, Q), \qquad
        y_t = C x_t + D u_t + v_t,\ v_t \sim \mathcal N(0, \operatorname{diag} r),

    one initial state :math:`x_0` per record (known up to a tiny covariance).

    Attributes
    ----------
    A : (n, n)
    B : (n, m)
    C : (p, n)
    D : (p, m) or None
        Feedthrough, when estimated (else zero).
    q_factor : (n (n + 1) / 2,)
        The lower-triangular Cholesky factor L of Q = L Lᵀ, entries in
        :func:`numpy.tril_indices` order, diagonal entries as logs.
    log_r : (p,)
        log of the diagonal of R.
    x0 : (R, n)
        Initial state of every record.
    """

    A: Array
    B: Array
    C: Array
    D: Array | None
    q_factor: Array
    log_r: Array
    x0: Array

    def system(self):
        """(A, B, C, D, Q, R, x0) in natural form; D is zero when not estimated."""
        n, p, m = self.A.shape[0], self.C.shape[0], self.B.shape[1]
        tril = np.tril_indices(n)
        L = jnp.zeros((n, n)).at[tril].set(self.q_factor)
        L = L.at[jnp.diag_indices(n)].set(jnp.exp(jnp.diagonal(L)))
        D = jnp.zeros((p, m)) if self.D is None else self.D
        Q = L @ L.T + 1e-10 * jnp.eye(n)
        return self.A, self.B, self.C, D, Q, jnp.diag(jnp.exp(self.log_r)), self.x0


def state_space_params(A, B, C, *, D=None, Q, R, x0) -> StateSpaceParams:
    """Build :class:`StateSpaceParams` from natural values.

    Parameters
    ----------
    A, B, C : (n, n), (n, m), (p, n) arrays
    D : (p, m) array, optional
        Feedthrough to estimate; None fixes D = 0.
    Q : (n, n) array
        Process-noise covariance (positive definite).
    R : (p,) or (p, p) array
        Observation-noise variances (the diagonal is used).
    x0 : (R, n) array
        Initial states of the records.

    Examples
    --------
    >>> import numpy as np
    >>> from causalid.lti.params import state_space_params
    >>> theta = state_space_params(0.5 * np.eye(2), np.ones((2, 1)), np.ones((1, 2)), Q=0.1 * np.eye(2),
    ...                            R=[0.01], x0=np.zeros((3, 2)))
    >>> theta.q_factor.shape, theta.x0.shape
    ((3,), (3, 2))
    >>> bool(np.allclose(theta.system()[4], 0.1 * np.eye(2)))
    True
    """
    A = np.asarray(A, dtype=np.float64)
    n = A.shape[0]
    A = _shape("A", A, (n, n))
    B = np.asarray(B, dtype=np.float64)
    B = _shape("B", B, (n, B.shape[1] if B.ndim == 2 else -1))
    C = np.asarray(C, dtype=np.float64)
    C = _shape("C", C, (C.shape[0] if C.ndim == 2 else -1, n))
    p, m = C.shape[0], B.shape[1]
    if D is not None:
        D = _shape("D", D, (p, m))
    L = np.linalg.cholesky(_shape("Q", Q, (n, n)))
    tril = np.tril_indices(n)
    factor = L[tril].copy()
    diag = tril[0] == tril[1]
    factor[diag] = np.log(factor[diag])
    R = np.asarray(R, dtype=np.float64)
    r = np.diag(R) if R.ndim == 2 else R
    r = _shape("R", r, (p,))
    x0 = np.asarray(x0, dtype=np.float64)
    x0 = _shape("x0", x0, (x0.shape[0] if x0.ndim == 2 else -1, n))
    return StateSpaceParams(A, B, C, D, factor, np.log(r), x0)


# ====================================================================== measured inputs: prediction error
class InnovationsParams(NamedTuple):
    r"""Parameters of the measured-input model in innovations form (prediction-error method).

    .. math::

        x_{t+1} = A x_t + B u_t + K e_t, \qquad y_t = C x_t + D u_t + d + e_t,

    with :math:`e_t` the innovations (one-step prediction errors) and one initial state
    :math:`x_0` per record.  The one-step predictor is
    :math:`\hat x_{t+1} = (A - K C)\hat x_t + (B - K D) u_t + K (y_t - d)`,
    :math:`\hat y_t = C \hat x_t + D u_t + d`; it is stable when A − K C is.  Inputs enter
    centred by the engine (an input offset is then absorbed by ``d`` and ``x0``).

    Attributes
    ----------
    A : (n, n)
    B : (n, m)
    C : (p, n)
    D : (p, m) or None
        Feedthrough, when estimated (else zero).
    K : (n, p) or None
        Innovations (Kalman) gain; None for an output-error model (K = 0: the predictor
        is the free-run simulation).
    d : (p,) or None
        Output offset, when estimated.
    x0 : (R, n)
        Initial state of every record.
    """

    A: Array
    B: Array
    C: Array
    D: Array | None
    K: Array | None
    d: Array | None
    x0: Array

    def matrices(self):
        """(A, B, C, D, K, d) with the blocks that are not estimated filled with zeros."""
        n, p, m = self.A.shape[0], self.C.shape[0], self.B.shape[1]
        D = jnp.zeros((p, m)) if self.D is None else self.D
        K = jnp.zeros((n, p)) if self.K is None else self.K
        d = jnp.zeros((p,)) if self.d is None else self.d
        return self.A, self.B, self.C, D, K, d


def innovations_params(A, B, C, *, D=None, K=None, d=None, x0) -> InnovationsParams:
    """Build :class:`InnovationsParams`, checking the shapes.

    Parameters
    ----------
    A, B, C : (n, n), (n, m), (p, n) arrays
    D : (p, m) array, optional
        Feedthrough to estimate; None fixes D = 0.
    K : (n, p) array, optional
        Innovations gain to estimate; None fixes K = 0 (output-error model).
    d : (p,) array, optional
        Output offset to estimate; None fixes d = 0.
    x0 : (R, n) array
        Initial states of the records.

    Examples
    --------
    >>> import numpy as np
    >>> from causalid.lti.params import innovations_params
    >>> from jax.flatten_util import ravel_pytree
    >>> theta = innovations_params(0.5 * np.eye(2), np.ones((2, 1)), np.ones((1, 2)), K=np.zeros((2, 1)),
    ...                            d=np.zeros(1), x0=np.zeros((1, 2)))
    >>> ravel_pytree(theta)[0].shape            # 4 + 2 + 2 + 2 + 1 + 2
    (13,)
    """
    A = np.asarray(A, dtype=np.float64)
    n = A.shape[0]
    A = _shape("A", A, (n, n))
    B = np.asarray(B, dtype=np.float64)
    B = _shape("B", B, (n, B.shape[1] if B.ndim == 2 else -1))
    C = np.asarray(C, dtype=np.float64)
    C = _shape("C", C, (C.shape[0] if C.ndim == 2 else -1, n))
    p, m = C.shape[0], B.shape[1]
    D = None if D is None else _shape("D", D, (p, m))
    K = None if K is None else _shape("K", K, (n, p))
    d = None if d is None else _shape("d", d, (p,))
    x0 = np.asarray(x0, dtype=np.float64)
    x0 = _shape("x0", x0, (x0.shape[0] if x0.ndim == 2 else -1, n))
    return InnovationsParams(A, B, C, D, K, d, x0)
