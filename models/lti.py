r"""Multi-environment linear time-invariant (LTI) systems as one NumPyro program, plus simulators.

The family (Rajendran et al. 2024, arXiv 2311.18048) is

.. math::

    x_{e,n,t+1} &= A x_{e,n,t} + B u_{e,n,t} + w_{e,n,t}, \qquad w \sim \mathcal N(0, q I_n), \\
    y_{e,n,t}   &= C x_{e,n,t} + v_{e,n,t}, \qquad\qquad\;\; v \sim \mathcal N(0, r I_p), \\
    u_{e,n,t}   &\sim \mathcal N(\mu_e, \operatorname{diag} \sigma^2_e) \quad
                  \text{i.i.d. inside environment } e,

for environments ``e = 1..E``, trajectories ``n = 1..N`` per environment and times
``t = 0..T-1``.  ``A`` (state), ``B`` (input) and ``C`` (observation) are shared by all
environments; the input law :math:`(\mu_e, \sigma^2_e)` is what an experiment changes (the
intervention signal).  ``q`` is the **process-noise variance** and ``r`` the **observation-noise
variance**: the noise covariances are ``q I`` and ``r I`` (the reference code of Rajendran et al. 2024
drew noise with covariance :math:`\sqrt{\mathrm{var}}\, I`; causalid does not).

Timing convention: ``x_0`` is the state at time 0 (zero unless ``init_var > 0``), ``y_0 = C x_0
+ v_0`` and ``u_t`` drives ``x_{t+1}``.  A trajectory holds ``T`` observations ``y_0..y_{T-1}``
and ``T`` inputs ``u_0..u_{T-1}``; the last input reaches no observation.

One program, :func:`lti_model`, serves simulation (``y=None``: parameters are drawn from the
prior or fixed with :func:`numpyro.handlers.substitute` / :func:`~numpyro.handlers.condition`)
and fitting (``y`` given: the state is marginalised exactly and the log-likelihood enters with
``numpyro.factor("y_loglik", ...)``, so NUTS sees only parameters).  Interventions on the input
laws are effect handlers (:func:`numpyro.handlers.do` on ``input_mean`` / ``input_var``), not
flags.  :func:`simulate_lti` runs the same program with a system's matrices substituted, so
ground truth comes from the program that is later fitted.

Site naming and shapes
----------------------
Plates: ``env`` (size E, ``dim=-3``), ``trajectory`` (N, ``dim=-2``), ``time`` (T, ``dim=-1``).

============================  ===================  ==========================================
site                          shape                present
============================  ===================  ==========================================
``A``                         (n, n)               always
``B``                         (n, m)               always
``C``                         (p, n)               ``obs_matrix="latent"``
``process_noise_var``         ()                   ``process_noise_var="latent"``
``obs_noise_var``             ()                   ``obs_noise_var="latent"``
``input_mean_mu``, ``_tau``   (m,)                 ``input_law`` in ("latent_mean", "latent")
``input_mean``                (E, 1, 1, m)         ``input_law`` in ("latent_mean", "latent")
``input_var_mu``, ``_tau``    (m,)                 ``input_law="latent"`` (of log σ²)
``input_var``                 (E, 1, 1, m)         ``input_law="latent"``
``x0``                        (E, N, 1, n)         simulation with ``init_var > 0``
``u``                         (E, N, T, m)         simulation, unless inputs are measured
``w``                         (E, N, T, n)         simulation with q not fixed to 0
``v``                         (E, N, T, p)         simulation with r not fixed to 0
``x``, ``y`` (deterministic)  (E, N, T, n / p)     simulation
``y_loglik`` (factor)         ()                   fitting
============================  ===================  ==========================================

Per-environment values may be substituted or intervened on with shape (E, m) as well; the
program reshapes them.  The noises ``u``, ``w``, ``v`` are exogenous and i.i.d. over time, so
they are drawn at once inside the ``time`` plate and the state recursion, which has no random
site, runs in :func:`jax.lax.scan` over time only (vectorised over environments and
trajectories).  That is the same joint law as drawing them step by step inside
``numpyro.contrib.control_flow.scan``, with sites in data order and no per-step key splitting.

Fitting routes (same log density)
---------------------------------
* **Kalman** (general): per environment the designed input law is marginalised into the Kalman
  parameters, drift :math:`b_e = B \mu_e` and process covariance
  :math:`Q_e = B \operatorname{diag}(\sigma^2_e) B^\top + q I`; measured inputs enter as
  ``inputs`` with ``Q = q I``.  The filter is :func:`causalid.dynamics.kalman.log_likelihood`,
  vmapped over environments and trajectories; NaN entries of ``y`` are missing.
* **Transition density** (fast path, exact): when q and r are fixed to 0, C is square (p = n),
  the inputs follow a designed law and ``y`` has no NaN, then with :math:`\tilde A = C A C^{-1}`,
  :math:`\tilde B = C B`,

  .. math:: y_{t+1} \mid y_t, e \sim
            \mathcal N(\tilde A y_t + \tilde B \mu_e, \tilde B \operatorname{diag}(\sigma^2_e)
            \tilde B^\top).

Treatment of ``x_0``: with ``init_var > 0`` the term
:math:`y_0 \sim \mathcal N(0, \mathrm{init\_var}\, C C^\top + r I)` is included by both
routes.  With ``x_0 = 0`` and r fixed to 0, ``y_0 = 0`` is a point mass that carries no
information and is left out: the Kalman route starts from the law of ``x_1`` given ``x_0 = 0``,
and the transition route conditions on the observed ``y_0`` (the two agree when ``y_0 = 0``, as
the model implies).  Noise-free fitting needs a non-degenerate likelihood: the program refuses
q = r = 0 with measured inputs or with ``p > m``.

Reference systems and designs (Rajendran et al. 2024, arXiv 2311.18048): :func:`random_system`,
:func:`dc_motor`, :func:`spring_mass_damper`, :func:`random_design`,
:func:`max_variability_design`; :func:`simulate_lti` draws data from any of them.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import lax
from numpyro import handlers

from causalid._linalg import cholesky, solve_lower, spd_solve
from causalid._typing import Array
from causalid._x64 import float64
from causalid.dynamics import kalman
from causalid.dynamics.system import InputDesign, LTISystem, controllability_matrix, observability_matrix
from causalid.errors import DataError, IdentifiabilityError

__all__ = [
    "InputLaw",
    "LTIModelConfig",
    "LTIPrior",
    "dc_motor",
    "lti_model",
    "max_variability_design",
    "random_design",
    "random_system",
    "simulate_lti",
    "spring_mass_damper",
]

InputLaw = Literal["known", "latent_mean", "latent", "measured"]
"""How the inputs enter: a known designed law (data), a designed law whose means (or means and
variances) are latent, or measured input sequences passed as data."""

_INPUT_LAWS = ("known", "latent_mean", "latent", "measured")
_OBS_MATRICES = ("identity", "latent")



def _float_dtype():
    """The caller's default float dtype: the program runs in the precision of whoever runs it
    (float64 inside causalid's engines, which enable it)."""
    return jnp.result_type(float)


class LTIPrior(NamedTuple):
    r"""Prior scales of :func:`lti_model`.

    .. math::

        A_{ij} &\sim \mathcal N(0, \mathtt{a\_scale}^2), \quad
        B_{ij} \sim \mathcal N(0, \mathtt{b\_scale}^2), \quad
        C_{ij} \sim \mathcal N(0, \mathtt{c\_scale}^2), \\
        q, r &\sim \mathcal N^+(\mathtt{noise\_var\_scale}) \quad \text{(when latent)}, \\
        \mu^{\mu}_j &\sim \mathcal N(0, \mathtt{input\_mean\_scale}^2), \;
        \tau^{\mu}_j \sim \mathcal N^+(\mathtt{input\_mean\_scale}), \;
        \mu_{e,j} \sim \mathcal N(\mu^{\mu}_j, (\tau^{\mu}_j)^2), \\
        \mu^{\sigma}_j &\sim \mathcal N(\mathtt{input\_log\_var\_loc},
            \mathtt{input\_log\_var\_scale}^2), \;
        \tau^{\sigma}_j \sim \mathcal N^+(\mathtt{input\_log\_var\_scale}), \;
        \sigma^2_{e,j} \sim \mathrm{LogNormal}(\mu^{\sigma}_j, (\tau^{\sigma}_j)^2).

    :math:`\mathcal N^+(s)` is the half-normal distribution of scale ``s``; ``q`` and ``r`` are
    variances.  The default ``a_scale = 0.5`` keeps a prior draw of ``A`` for small ``n`` near
    the unit circle rather than far outside it; the other defaults suit standardised data.
    """

    a_scale: float = 0.5
    b_scale: float = 1.0
    c_scale: float = 1.0
    noise_var_scale: float = 1.0
    input_mean_scale: float = 1.0
    input_log_var_loc: float = 0.0
    input_log_var_scale: float = 1.0


class LTIModelConfig(NamedTuple):
    """Static structure of :func:`lti_model` (hashable, so it can be a ``jax.jit`` static arg).

    Parameters
    ----------
    state_dim, input_dim : int
        ``n`` and ``m``.
    obs_dim : int, optional
        ``p``; default ``n``.
    num_envs, num_trajectories, num_steps : int, optional
        ``E``, ``N`` and ``T``.  When left out they are read from ``y``, ``inputs``,
        ``input_mean`` or ``input_var``; given in both places they must agree.  ``N`` defaults
        to 1; ``E`` and ``T`` must come from somewhere.
    input_law : {"known", "latent_mean", "latent", "measured"}
        ``"known"``: :math:`(\\mu_e, \\sigma^2_e)` are data (``input_mean``, ``input_var``);
        ``"latent_mean"``: :math:`\\mu_e` latent with a hierarchical prior, ``input_var`` data;
        ``"latent"``: both latent; ``"measured"``: input sequences ``inputs`` are data.
    obs_matrix : {"latent", "identity"}
        ``"identity"`` fixes ``C = I`` (full-state observation in observed coordinates, where
        :math:`\\tilde A = C A C^{-1}` is what is identified); ``"latent"`` makes ``C`` a site,
        which :func:`numpyro.handlers.condition` can fix to any known matrix.
    process_noise_var, obs_noise_var : float or "latent"
        Process-noise variance ``q`` and observation-noise variance ``r`` (variances, not
        standard deviations), fixed to a value (0 allowed) or latent with a half-normal prior.
    init_var : float
        ``x_0 ~ N(0, init_var I)``; 0 (default) means ``x_0 = 0``.
    """

    state_dim: int
    input_dim: int
    obs_dim: int | None = None
    num_envs: int | None = None
    num_trajectories: int | None = None
    num_steps: int | None = None
    input_law: InputLaw = "known"
    obs_matrix: Literal["latent", "identity"] = "latent"
    process_noise_var: float | Literal["latent"] = 0.0
    obs_noise_var: float | Literal["latent"] = 0.0
    init_var: float = 0.0


class _Sizes(NamedTuple):
    E: int
    N: int
    T: int
    n: int
    m: int
    p: int


# ------------------------------------------------------------------------------ validation
def _is_zero(value) -> bool:
    """True when a noise setting is the fixed value 0 (decided statically)."""
    return not isinstance(value, str) and float(value) == 0.0


def _check_config(config: LTIModelConfig) -> None:
    if not isinstance(config, LTIModelConfig):
        raise DataError(f"config must be an LTIModelConfig; got {type(config).__name__}")
    if config.input_law not in _INPUT_LAWS:
        raise DataError(f"unknown input_law {config.input_law!r}; use one of {list(_INPUT_LAWS)}")
    if config.obs_matrix not in _OBS_MATRICES:
        raise DataError(
            f"unknown obs_matrix {config.obs_matrix!r}; use one of {list(_OBS_MATRICES)}"
        )
    for name in ("process_noise_var", "obs_noise_var"):
        v = getattr(config, name)
        if isinstance(v, str):
            if v != "latent":
                raise DataError(f"{name}={v!r}; give a variance >= 0 or 'latent'")
        elif not (float(v) >= 0 and math.isfinite(float(v))):
            raise DataError(f"{name}={v}; a noise variance must be finite and >= 0")
    if not (float(config.init_var) >= 0 and math.isfinite(float(config.init_var))):
        raise DataError(f"init_var={config.init_var}; it must be finite and >= 0")
    p = config.obs_dim or config.state_dim
    if config.obs_matrix == "identity" and p != config.state_dim:
        raise DataError(
            f"obs_matrix='identity' needs obs_dim == state_dim; got {p} and {config.state_dim}"
        )


def _sizes(config: LTIModelConfig, y, inputs, input_mean, input_var) -> _Sizes:
    """Resolve E, N, T, n, m, p from the config and the shapes of the data; check they agree."""
    n, m = int(config.state_dim), int(config.input_dim)
    p = int(config.obs_dim or n)
    found: dict[str, list[tuple[str, int]]] = {"E": [], "N": [], "T": []}
    for key, value in (("E", config.num_envs), ("N", config.num_trajectories),
                       ("T", config.num_steps)):
        if value is not None:
            found[key].append(("config", int(value)))
    if y is not None:
        if jnp.ndim(y) != 4 or jnp.shape(y)[3] != p:
            raise DataError(f"y must be shaped (env, trajectory, time, {p}); got {jnp.shape(y)}")
        for key, size in zip("ENT", jnp.shape(y)[:3]):
            found[key].append(("y", size))
    if inputs is not None:
        if jnp.ndim(inputs) != 4 or jnp.shape(inputs)[3] != m:
            raise DataError(
                f"inputs must be shaped (env, trajectory, time, {m}); got {jnp.shape(inputs)}"
            )
        for key, size in zip("ENT", jnp.shape(inputs)[:3]):
            found[key].append(("inputs", size))
    for name, value in (("input_mean", input_mean), ("input_var", input_var)):
        if value is not None:
            if jnp.ndim(value) != 2 or jnp.shape(value)[1] != m:
                raise DataError(f"{name} must be shaped (env, {m}); got {jnp.shape(value)}")
            found["E"].append((name, jnp.shape(value)[0]))
    out = {}
    for key, label in (("E", "environments"), ("N", "trajectories"), ("T", "time steps")):
        sizes = {s for _, s in found[key]}
        if len(sizes) > 1:
            where = ", ".join(f"{src}: {s}" for src, s in found[key])
            raise DataError(f"the number of {label} disagrees ({where})")
        if not sizes and key == "N":
            sizes = {1}
        if not sizes:
            raise DataError(f"the number of {label} is unknown; set it in LTIModelConfig")
        out[key] = sizes.pop()
    return _Sizes(out["E"], out["N"], out["T"], n, m, p)


# ------------------------------------------------------------------------------ the program
class _Normal(dist.Normal):
    """:class:`numpyro.distributions.Normal` whose standard-normal draws are made as one flat
    vector and reshaped.

    The values are identical (threefry bits depend on an element's flat position, not on the
    array's rank), but XLA on CPU compiles random-bit generation and ``erf_inv`` several times
    more slowly for a rank-4 array than for a vector (measured with jax 0.10: about 4 s against
    0.5 s), and the noise sites here are rank 4.
    """

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape + self.event_shape
        eps = jax.random.normal(key, (math.prod(shape),)).reshape(shape)
        return self.loc + eps * self.scale


def _noise_var(name: str, setting, prior: LTIPrior):
    if isinstance(setting, str):
        return numpyro.sample(name, dist.HalfNormal(prior.noise_var_scale))
    return float(setting)


def _input_law(config, prior, env_plate, sz: _Sizes, input_mean, input_var):
    """Per-environment input means and variances, each (E, m); ``(None, None)`` if measured."""
    law, E, m = config.input_law, sz.E, sz.m
    if law == "measured":
        if input_mean is not None or input_var is not None:
            raise DataError("input_law='measured' takes inputs=, not input_mean/input_var")
        return None, None
    if law == "known":
        if input_var is None:
            raise DataError("input_law='known' needs input_var (and optionally input_mean)")
        var = jnp.asarray(input_var, _float_dtype())
        mean = jnp.zeros((E, m)) if input_mean is None else jnp.asarray(input_mean, _float_dtype())
        return mean, var
    if input_mean is not None:
        raise DataError(f"input_law={law!r} makes input_mean latent; do not pass it")
    s = prior.input_mean_scale
    mu = numpyro.sample("input_mean_mu", dist.Normal(0.0, s).expand([m]).to_event(1))
    tau = numpyro.sample("input_mean_tau", dist.HalfNormal(s).expand([m]).to_event(1))
    with env_plate:
        mean = numpyro.sample("input_mean", dist.Normal(mu, tau).to_event(1))
    if law == "latent_mean":
        if input_var is None:
            raise DataError("input_law='latent_mean' needs input_var")
        var = jnp.asarray(input_var, _float_dtype())
    else:
        if input_var is not None:
            raise DataError("input_law='latent' makes input_var latent; do not pass it")
        loc, s = prior.input_log_var_loc, prior.input_log_var_scale
        mu = numpyro.sample("input_var_mu", dist.Normal(loc, s).expand([m]).to_event(1))
        tau = numpyro.sample("input_var_tau", dist.HalfNormal(s).expand([m]).to_event(1))
        with env_plate:
            var = numpyro.sample("input_var", dist.LogNormal(mu, tau).to_event(1))
    return jnp.reshape(mean, (E, m)), jnp.reshape(var, (E, m))


def lti_model(
    y: Array | None = None,
    *,
    config: LTIModelConfig,
    prior: LTIPrior = LTIPrior(),
    inputs: Array | None = None,
    input_mean: Array | None = None,
    input_var: Array | None = None,
) -> Array:
    r"""The multi-environment LTI family as one NumPyro program (simulation and fitting).

    See the module docstring for the equations, site names and shapes and the treatment of
    ``x_0``.  Noise settings are variances: ``obs_noise_var`` is the observation-noise variance
    ``r`` (covariance ``r I``), ``process_noise_var`` the process-noise variance ``q``.

    Parameters
    ----------
    y : array (env, trajectory, time, obs), optional
        Observations, NaN = missing.  ``None`` simulates: ``u``, ``w``, ``v`` (and ``x0``) are
        drawn and ``x``, ``y`` recorded as deterministic sites.  Given, the state (and a
        designed input law's inputs) are marginalised exactly and
        ``numpyro.factor("y_loglik", log p(y | parameters))`` is added.
    config : LTIModelConfig
        The static structure (dimensions, input law, noise settings, ``C``, ``x_0``).
    prior : LTIPrior
        Prior scales.
    inputs : array (env, trajectory, time, input), optional
        Measured inputs (``input_law="measured"``).
    input_mean, input_var : array (env, input), optional
        Known designed input law (``input_law="known"``; ``input_var`` also for
        ``"latent_mean"``); ``input_mean`` defaults to zero.

    Returns
    -------
    y : array (env, trajectory, time, obs)
        The simulated (or given) observations.

    Examples
    --------
    Simulate from fixed matrices, then score the draw with the fitting path:

    >>> import causalid, jax, numpy as np
    >>> from numpyro import handlers
    >>> from numpyro.infer.util import log_density
    >>> from causalid.models.lti import LTIModelConfig, lti_model
    >>> cfg = LTIModelConfig(state_dim=2, input_dim=2, obs_matrix="identity", num_steps=50)
    >>> law = dict(input_mean=np.zeros((3, 2)), input_var=np.ones((3, 2)))
    >>> truth = {"A": 0.5 * np.eye(2), "B": np.eye(2)}
    >>> sim = handlers.seed(handlers.substitute(lti_model, truth), jax.random.PRNGKey(0))
    >>> y = sim(config=cfg, **law)
    >>> y.shape
    (3, 1, 50, 2)
    >>> lp, _ = log_density(lti_model, (y,), dict(config=cfg, **law), truth)
    >>> bool(np.isfinite(lp))
    True

    Intervene on the input law of one environment with :func:`numpyro.handlers.do` on the
    latent-law site ``input_var`` (``input_law="latent"``), leaving the program unchanged:

    >>> cfg = LTIModelConfig(2, 2, num_envs=2, num_steps=2000, input_law="latent")
    >>> new_var = np.array([[1.0, 1.0], [25.0, 1.0]])          # (env, input)
    >>> model = handlers.do(handlers.substitute(lti_model, truth), {"input_var": new_var})
    >>> u = handlers.trace(handlers.seed(model, 0)).get_trace(config=cfg)["u"]["value"]
    >>> bool(u[1, ..., 0].var() > 20 and u[0, ..., 0].var() < 2)
    True
    """
    _check_config(config)
    sz = _sizes(config, y, inputs, input_mean, input_var)
    if (inputs is None) != (config.input_law != "measured"):
        raise DataError("inputs= is used exactly when input_law='measured'")
    E, N, T, n, m, p = sz
    A = numpyro.sample("A", dist.Normal(0.0, prior.a_scale).expand([n, n]).to_event(2))
    B = numpyro.sample("B", dist.Normal(0.0, prior.b_scale).expand([n, m]).to_event(2))
    if config.obs_matrix == "identity":
        C = jnp.eye(n)
    else:
        C = numpyro.sample("C", dist.Normal(0.0, prior.c_scale).expand([p, n]).to_event(2))
    q = _noise_var("process_noise_var", config.process_noise_var, prior)
    r = _noise_var("obs_noise_var", config.obs_noise_var, prior)
    env_plate = numpyro.plate("env", E, dim=-3)
    mean, var = _input_law(config, prior, env_plate, sz, input_mean, input_var)
    if y is None:
        return _simulate_sites(config, sz, env_plate, A, B, C, q, r, mean, var, inputs)
    # Decide before converting: under a trace (NUTS) jnp.asarray turns even a NumPy array into
    # a tracer, which would hide that the data are concrete and complete.
    complete = _is_concrete_without_nan(y)
    y = jnp.asarray(y, _float_dtype())
    numpyro.factor("y_loglik", _log_likelihood(config, sz, A, B, C, q, r, mean, var, inputs, y, complete))
    return y


def _simulate_sites(config, sz: _Sizes, env_plate, A, B, C, q, r, mean, var, inputs):
    E, N, T, n, m, p = sz
    with env_plate, numpyro.plate("trajectory", N, dim=-2):
        if config.init_var > 0:
            sd0 = math.sqrt(config.init_var)
            x0 = numpyro.sample("x0", _Normal(0.0, sd0).expand([n]).to_event(1))
            x0 = jnp.reshape(jnp.broadcast_to(x0, (E, N, 1, n)), (E, N, n))
        else:
            x0 = jnp.zeros((E, N, n))
        with numpyro.plate("time", T, dim=-1):
            if inputs is None:
                law = _Normal(mean[:, None, None, :], jnp.sqrt(var)[:, None, None, :])
                u = numpyro.sample("u", law.to_event(1))
            else:
                u = jnp.asarray(inputs, _float_dtype())
            drive = u @ B.T
            if not _is_zero(config.process_noise_var):
                drive = drive + numpyro.sample(
                    "w", _Normal(0.0, jnp.sqrt(q)).expand([n]).to_event(1)
                )
            noise = 0.0
            if not _is_zero(config.obs_noise_var):
                noise = numpyro.sample("v", _Normal(0.0, jnp.sqrt(r)).expand([p]).to_event(1))

    def step(x_t, d_t):  # x_{t+1} = A x_t + (B u_t + w_t); emit x_t
        return x_t @ A.T + d_t, x_t

    _, xs = lax.scan(step, x0, jnp.moveaxis(drive, 2, 0))
    x = numpyro.deterministic("x", jnp.moveaxis(xs, 0, 2))
    return numpyro.deterministic("y", x @ C.T + noise)


# ------------------------------------------------------------------------------ likelihood
def _is_concrete_without_nan(y) -> bool:
    if isinstance(y, jax.core.Tracer):
        return False
    return not bool(np.isnan(np.asarray(y)).any())


def _log_likelihood(config, sz: _Sizes, A, B, C, q, r, mean, var, inputs, y, complete: bool):
    """log p(y | parameters), summed over environments and trajectories."""
    noise_free = _is_zero(config.process_noise_var) and _is_zero(config.obs_noise_var)
    if noise_free and (inputs is not None or sz.p > sz.m):
        why = "measured inputs" if inputs is not None else f"obs_dim {sz.p} > input_dim {sz.m}"
        raise DataError(
            f"with process and observation noise fixed to 0 and {why} the likelihood is "
            "degenerate (the data lie on a subspace); make process_noise_var or obs_noise_var "
            "positive or 'latent'"
        )
    if noise_free and sz.p == sz.n and complete:
        return _transition_loglik(A, B, C, mean, var, y, config.init_var)
    return _kalman_loglik(config, sz, A, B, C, q, r, mean, var, inputs, y)


def _transition_loglik(A, B, C, mean, var, y, init_var: float):
    r"""Exact noise-free full-state transition density (Ã = C A C⁻¹, B̃ = C B):
    y_{t+1} | y_t ~ N(Ã y_t + B̃ μ_e, B̃ diag σ²_e B̃ᵀ).

    Conditions on ``y_0``; with ``init_var > 0`` adds log N(y_0; 0, init_var C Cᵀ).
    """
    E, N, T, p = y.shape
    CCt = C @ C.T
    At = spd_solve(CCt, C @ A.T @ C.T).T  # C A C^{-1} = C A Cᵀ (C Cᵀ)^{-1}
    Bt = C @ B
    cov = jnp.einsum("im,em,jm->eij", Bt, var, Bt)  # (E, p, p)
    resid = y[:, :, 1:] - y[:, :, :-1] @ At.T - (mean @ Bt.T)[:, None, None, :]
    ll = jax.vmap(_gaussian_loglik)(cov, resid.reshape(E, N * (T - 1), p)).sum()
    if init_var > 0:
        ll = ll + _gaussian_loglik(init_var * CCt, y[:, :, 0].reshape(E * N, p))
    return ll


def _gaussian_loglik(cov, z):
    """Sum over rows k of log N(z[k]; 0, cov) for cov (p, p), z (K, p).

    Plain-XLA Cholesky (:mod:`causalid._linalg`): batched LAPACK calls inside a
    vmapped CPU program can deadlock."""
    L = cholesky(cov)
    white = solve_lower(L, z.T)  # (p, K)
    K, p = z.shape
    logdet = 2.0 * jnp.log(jnp.diagonal(L)).sum()
    return -0.5 * (jnp.sum(white**2) + K * logdet + K * p * math.log(2 * math.pi))


def _kalman_loglik(config, sz: _Sizes, A, B, C, q, r, mean, var, inputs, y):
    E, N, T, n, m, p = sz
    eye = jnp.eye(n)
    R = r * jnp.eye(p)
    measured = inputs is not None
    if measured:
        u = jnp.asarray(inputs, _float_dtype())
        b = jnp.zeros((E, n))
        Q = jnp.broadcast_to(q * eye, (E, n, n))
        B_in = B
    else:
        u = None
        b = mean @ B.T  # drift B μ_e
        Q = jnp.einsum("im,em,jm->eij", B, var, B) + q * eye  # B diag σ²_e Bᵀ + q I
        B_in = None
    if _is_zero(config.obs_noise_var) and config.init_var == 0:
        # y_0 = 0 is a point mass: start from the law of x_1 given x_0 = 0 and drop y_0.
        m0 = jnp.broadcast_to(b[:, None, :], (E, N, n))
        if measured:
            m0 = m0 + u[:, :, 0] @ B.T
            u = u[:, :, 1:]
        P0 = Q
        y = y[:, :, 1:]
    else:
        m0 = jnp.zeros((E, N, n))
        P0 = jnp.broadcast_to(config.init_var * eye, (E, n, n))

    def one(m0_i, P0_e, b_e, Q_e, y_i, u_i):
        params = kalman.make_params(A, C, Q_e, R, B=B_in, b=b_e, m0=m0_i, P0=P0_e)
        return kalman.log_likelihood(params, y_i, inputs=u_i)

    per_traj = jax.vmap(one, in_axes=(0, None, None, None, 0, 0 if measured else None))
    per_env = jax.vmap(per_traj, in_axes=(0, 0, 0, 0, 0, 0 if measured else None))
    return per_env(m0, P0, b, Q, y, u).sum()


# ------------------------------------------------------------------------------ simulators
def _full_rank(M: np.ndarray, rows: int) -> bool:
    return int(np.linalg.matrix_rank(M)) == rows


@float64
def random_system(
    key: Array,
    n: int,
    m: int | None = None,
    p: int | None = None,
    *,
    use_B: bool = True,
    use_C: bool = True,
    spectral_radius: float = 0.9,
    max_tries: int = 100,
) -> LTISystem:
    r"""A random stable system of the reference experiments (Rajendran et al. 2024, arXiv 2311.18048).

    :math:`A = \rho\, A_0 / \rho(A_0)` with :math:`A_0 \sim \mathcal N(0, 1)` entrywise, so its
    spectral radius is exactly ``spectral_radius``; ``B``, ``C`` have i.i.d. standard normal
    entries, or are the identity when ``use_B`` / ``use_C`` is False.  ``m = p = n`` by
    default.  The draw is repeated until (A, B) is controllable and (A, C) observable (rank of
    the controllability and observability matrices), at most ``max_tries`` times.

    Examples
    --------
    >>> import causalid, jax, numpy as np
    >>> from causalid.models.lti import random_system
    >>> sys = random_system(jax.random.PRNGKey(0), 3)
    >>> round(float(np.abs(np.linalg.eigvals(sys.A)).max()), 6)
    0.9
    """
    m = n if m is None else int(m)
    p = n if p is None else int(p)
    if not use_B and m != n:
        raise DataError(f"use_B=False sets B = I, which needs m == n; got m={m}, n={n}")
    if not use_C and p != n:
        raise DataError(f"use_C=False sets C = I, which needs p == n; got p={p}, n={n}")
    if not spectral_radius > 0:
        raise DataError(f"spectral_radius={spectral_radius}; it must be > 0")
    if max_tries < 1:
        raise DataError(f"max_tries={max_tries}; it must be at least 1")
    # all tries in one flat draw (see _Normal): one compiled sampler per size
    size = n * n + n * m + p * n
    z = np.asarray(jax.random.normal(key, (max_tries * size,), jnp.float64))
    z = z.reshape(max_tries, size)
    for zi in z:
        A0 = zi[: n * n].reshape(n, n)
        A = spectral_radius * A0 / np.abs(np.linalg.eigvals(A0)).max()
        B = zi[n * n: n * (n + m)].reshape(n, m) if use_B else np.eye(n)
        C = zi[n * (n + m):].reshape(p, n) if use_C else np.eye(n)
        if _full_rank(controllability_matrix(A, B), n) and _full_rank(observability_matrix(A, C).T, n):
            return LTISystem(A, B, C, meta={"name": "random", "spectral_radius": spectral_radius})
    raise IdentifiabilityError(
        f"no controllable and observable system in {max_tries} draws (n={n}, m={m}, p={p}); "
        "raise max_tries or change the dimensions"
    )


@float64
def dc_motor(dt: float = 0.01) -> LTISystem:
    r"""DC motor of Rajendran et al. 2024 (arXiv 2311.18048), discretised by zero-order hold at step ``dt`` seconds.

    State (current, angular velocity), input voltage, full-state output (C = I), with R = 1,
    L = 0.5, K = 0.01, J = 0.01, b = 0.1:

    .. math:: A_c = \begin{pmatrix} -R/L & K/L \\ -K/J & -b/J \end{pmatrix},\quad
              B_c = \begin{pmatrix} 1/L \\ 0 \end{pmatrix}.

    At ``dt = 0.01``, :math:`A_d \approx [[0.98020, 0.00019], [-0.00942, 0.90484]]`.
    """
    R, L, K, J, b = 1.0, 0.5, 0.01, 0.01, 0.1
    Ac = [[-R / L, K / L], [-K / J, -b / J]]
    Bc = [[1.0 / L], [0.0]]
    return LTISystem.from_continuous(Ac, Bc, np.eye(2), dt=dt, meta={"name": "dc_motor"})


@float64
def spring_mass_damper(dt: float = 0.5) -> LTISystem:
    r"""Spring–mass–damper of Rajendran et al. 2024 (arXiv 2311.18048), zero-order hold at step ``dt`` seconds.

    State (position, velocity), input force, position measured (C = [1, 0]), with c = 4,
    k = 2, M = 20: :math:`A_c = [[0, 1], [-k/M, -c/M]]`, :math:`B_c = [[0], [1/M]]`.
    The poles are :math:`-0.1 \pm 0.3i` (period about 21 s, decay time 10 s), so the default
    ``dt = 0.5`` takes about 40 samples per oscillation and 20 per decay time: fine enough to
    resolve the dynamics, coarse enough that :math:`A_d` is not numerically close to ``I``.
    """
    c, k, M = 4.0, 2.0, 20.0
    Ac = [[0.0, 1.0], [-k / M, -c / M]]
    Bc = [[0.0], [1.0 / M]]
    return LTISystem.from_continuous(Ac, Bc, [[1.0, 0.0]], dt=dt,
                                     meta={"name": "spring_mass_damper"})


@float64
def random_design(key: Array, num_envs: int, input_dim: int, *,
                  zero_means: bool = False) -> InputDesign:
    r"""Random input laws of the reference experiments: :math:`\sigma^2_e = |z_e| / 2` with
    :math:`z_e \sim \mathcal N(0, I_m)`, and :math:`\mu_e \sim \mathcal N(0, I_m)` (or zero)."""
    z = np.asarray(jax.random.normal(key, (2 * num_envs * input_dim,), jnp.float64))
    z = z.reshape(2, num_envs, input_dim)
    var = np.abs(z[0]) / 2
    mean = np.zeros((num_envs, input_dim)) if zero_means else z[1]
    return InputDesign(mean, var, name="random")


@float64
def max_variability_design(input_dim: int, *, zero_means: bool = False,
                           key: Array | None = None) -> InputDesign:
    r"""The reference "max variability" design: E = m + 1 environments, a quiet baseline
    :math:`\sigma^2_0 = 10^{-4}` and :math:`\sigma^2_e = 10^{-4} + 0.9999\, \mathrm{onehot}(e)` for
    ``e = 1..m``.  Means are zero (``zero_means=True``) or drawn :math:`\mathcal N(0, I)` from
    ``key``."""
    m = int(input_dim)
    var = 1e-4 + 0.9999 * np.vstack([np.zeros((1, m)), np.eye(m)])
    if zero_means:
        mean = np.zeros((m + 1, m))
    elif key is None:
        raise DataError("max_variability_design draws the means from key=; pass a key, "
                        "or zero_means=True")
    else:
        mean = np.asarray(jax.random.normal(key, ((m + 1) * m,), jnp.float64)).reshape(m + 1, m)
    return InputDesign(mean, var, name="max_variability")


@float64
def simulate_lti(
    key: Array,
    system: LTISystem,
    *,
    design: InputDesign | None = None,
    inputs: Array | None = None,
    num_steps: int,
    num_trajectories: int = 1,
    obs_noise_var: float = 0.0,
    process_noise_var: float = 0.0,
    x0: Array | None = None,
) -> dict[str, Any]:
    """Draw multi-environment trajectories of ``system`` by running :func:`lti_model`.

    The system's ``A``, ``B``, ``C`` (and the noise variances and ``x0``) are substituted into
    the program with :func:`numpyro.handlers.substitute`, so the data come from the same program
    that is later fitted.  Either a designed input law (``design``, one environment per row) or
    measured ``inputs`` (env, trajectory, time, input) drive it.  ``obs_noise_var`` and
    ``process_noise_var`` are variances (noise covariances ``r I`` and ``q I``); ``system.Q``
    and ``system.R`` are not used.  ``x0`` is the state at time 0, shaped (n,), (env, n) or
    (env, trajectory, n); zero by default.

    The whole draw is one compiled function (a time scan vectorised over environments and
    trajectories), compiled once per shape and structure; noise levels and ``x0`` values do not
    trigger recompilation.

    Returns
    -------
    dict
        ``"y"`` (E, N, T, p), ``"x"`` (E, N, T, n), ``"u"`` (E, N, T, m) as float64 NumPy
        arrays (``y_t = C x_t + v_t``, ``u_t`` drives ``x_{t+1}``; ``u_{T-1}`` reaches no
        observation), and the ``"system"`` and ``"design"`` used (``design`` None for measured
        inputs).

    Examples
    --------
    >>> import causalid, jax
    >>> from causalid.models.lti import dc_motor, random_design, simulate_lti
    >>> key = jax.random.PRNGKey(0)
    >>> data = simulate_lti(key, dc_motor(), design=random_design(key, 3, 1), num_steps=100)
    >>> data["y"].shape, data["u"].shape
    ((3, 1, 100, 2), (3, 1, 100, 1))
    """
    if (design is None) == (inputs is None):
        raise DataError("simulate_lti needs exactly one of design= and inputs=")
    if not np.allclose(system.D, 0.0):
        raise DataError("lti_model has no feedthrough term; the system's D must be zero")
    for name, v in (("obs_noise_var", obs_noise_var), ("process_noise_var", process_noise_var)):
        if not (float(v) >= 0 and math.isfinite(float(v))):
            raise DataError(f"{name}={v}; a noise variance must be finite and >= 0")
    n, m, p = system.n, system.m, system.p
    if design is not None:
        if design.input_dim != m:
            raise DataError(f"the design has {design.input_dim} inputs; the system has {m}")
        E, law, data = design.num_envs, "known", dict(input_mean=design.mean, input_var=design.var)
    else:
        inputs = np.asarray(inputs, np.float64)
        if inputs.ndim != 4 or inputs.shape[3] != m or inputs.shape[2] != num_steps:
            raise DataError(f"inputs must be shaped (env, trajectory, {num_steps}, {m}); "
                            f"got {inputs.shape}")
        E, num_trajectories, law, data = inputs.shape[0], inputs.shape[1], "measured", {}
        data["inputs"] = inputs
    config = LTIModelConfig(
        state_dim=n, input_dim=m, obs_dim=p, num_envs=E, num_trajectories=num_trajectories,
        num_steps=num_steps, input_law=law, obs_matrix="latent",
        process_noise_var="latent" if process_noise_var > 0 else 0.0,
        obs_noise_var="latent" if obs_noise_var > 0 else 0.0,
        init_var=0.0 if x0 is None else 1.0,  # any positive value: the x0 site is substituted
    )
    params: dict[str, Any] = {"A": system.A, "B": system.B, "C": system.C}
    if process_noise_var > 0:
        params["process_noise_var"] = float(process_noise_var)
    if obs_noise_var > 0:
        params["obs_noise_var"] = float(obs_noise_var)
    if x0 is not None:
        x0 = np.asarray(x0, np.float64)
        if x0.shape[-1:] != (n,) or x0.ndim > 3:
            raise DataError(f"x0 must be shaped (n,), (env, n) or (env, trajectory, n) with "
                            f"n={n}; got {x0.shape}")
        lead = {1: (1, 1), 2: (E, 1), 3: x0.shape[:2]}[x0.ndim]
        x0 = np.broadcast_to(x0.reshape(*lead, 1, n), (E, num_trajectories, 1, n))
        params["x0"] = x0
    sites = _draw(key, config, params, data)
    out = {k: np.asarray(sites[k]) for k in ("y", "x")}
    out["u"] = np.asarray(sites["u"]) if design is not None else inputs
    out.update(system=system, design=design)
    return out


@partial(jax.jit, static_argnames=("config",))
def _draw(key, config, params, data):
    model = handlers.substitute(handlers.seed(lti_model, key), data=params)
    trace = handlers.trace(model).get_trace(config=config, **data)
    return {k: s["value"] for k, s in trace.items() if s["type"] in ("sample", "deterministic")}
