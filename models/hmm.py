r"""Multi-environment hidden Markov models as one NumPyro program, plus emission densities.

The family (the continuous-parameter causal de Finetti view of HMMs, Guo et al. 2023): for environment ``e``, sequence ``n`` and time ``t``

.. math::

    z_{e,n,0} \sim \pi_e,\qquad z_{e,n,t} \mid z_{e,n,t-1} = i \sim \Gamma_{e,t}(i, \cdot),\qquad
    y_{e,n,t} \mid z_{e,n,t} = k \sim F(\psi_{e,k}),

with the **cause mechanism** :math:`\theta_e = (\pi_e, \Gamma_e)` (initial distribution and
transitions) and the **effect mechanism** :math:`\psi_e` (emissions).  ``vary`` says which of the
two change across environments; a mechanism that does not vary is one shared site.  Varying
mechanisms get hierarchical priors around a shared centre, so environments borrow strength.

Emissions ``F`` (``D`` channels per step):

* ``"gaussian"`` — multivariate normal, ``covariance="full"`` or ``"diag"``;
* ``"poisson"`` — independent Poisson counts per channel;
* ``"categorical"`` — independent categorical symbols ``0..C-1`` per channel.

With inputs ``u_t`` (``input_dim = m > 0``) the transitions are input-driven,
:math:`\Gamma_t(i, \cdot) = \operatorname{softmax}(\log\Gamma(i, \cdot) + W_i^\top u_t)`.

One program, :func:`hmm_model`, simulates (``y=None``: parameters from the prior or substituted,
states drawn by inverse-CDF from ``state_uniform`` sites in a ``lax.scan``) and fits (``y`` given:
the states are marginalised exactly by the forward algorithm of :mod:`causalid.dynamics.hmm` and
the log-likelihood enters as ``numpyro.factor("y_loglik", ...)``, so NUTS and SVI see only
parameters).  Missing observations (NaN, per channel) are marginalised; ragged sequences are
padded and carry their ``lengths``.

Sites (``E`` environments, ``K`` states, ``D`` channels, ``C`` categories)
-----------------------------------------------------------------------------
========================  ================  =======================================================
site                      shape             notes
========================  ================  =======================================================
``init``                  (E, K)            per environment if transitions vary, else (K,)
``trans``                 (E, K, K)         per environment if transitions vary, else (K, K)
``trans_center``          (K, K)            hierarchical centre (transitions vary)
``trans_concentration``   ()                how tightly environments follow the centre
``means``                 (E, K, D)         gaussian; (K, D) when emissions are shared
``scales``                (E, K, D)         gaussian standard deviations
``corr_chol``             (K, D, D)         gaussian, ``covariance="full"`` (shared correlations)
``rates``                 (E, K, D)         poisson
``probs``                 (E, K, D, C)      categorical
``trans_weights``         (K, m, K)         input-driven transitions
``y_loglik``              factor            fitting
``state_uniform``, ``y``  (E, N, T[, D])    simulation; ``z`` (deterministic) holds the states
========================  ================  =======================================================

:func:`expand_params` turns a trace (or a substituted dict) into the uniform per-environment
parameters used by the fitting engines and :class:`causalid.HMMResult`: an :class:`HMMParams`
with ``init (E, K)``, ``trans (E, K, K)``, the family's emission tuple
(:class:`GaussianEmissions` ``means (E, K, D)`` + ``covs (E, K, D, D)``,
:class:`PoissonEmissions` ``rates (E, K, D)``, :class:`CategoricalEmissions` ``probs (E, K, D,
C)``) and, with inputs, ``trans_weights (K, m, K)``.  Build one by hand with
:func:`make_hmm_params`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import lax
from jax.scipy.special import gammaln

from causalid._linalg import spd_inv_logdet
from causalid._x64 import float64
from causalid.dynamics.hmm import hmm_log_likelihood

Array = jax.Array

EMISSIONS = ("gaussian", "poisson", "categorical")
MECHANISMS = ("transitions", "emissions")

__all__ = [
    "EMISSIONS",
    "EMISSION_TYPES",
    "MECHANISMS",
    "CategoricalEmissions",
    "GaussianEmissions",
    "HMMConfig",
    "HMMParams",
    "HMMPrior",
    "PoissonEmissions",
    "emission_log_lik",
    "expand_params",
    "hmm_model",
    "make_hmm_params",
    "random_hmm_params",
    "simulate_arrays",
    "simulate_hmm",
    "stationary_distribution",
    "transition_matrices",
]


@dataclass(frozen=True)
class HMMConfig:
    """Static description of a multi-environment HMM.

    Parameters
    ----------
    num_states : int
        ``K``.
    emission : {"gaussian", "poisson", "categorical"}
    obs_dim : int
        ``D`` channels per time step.
    num_envs : int
        ``E``.
    vary : tuple of {"transitions", "emissions"}
        Mechanisms with per-environment parameters; the others are shared.  ``()`` is a
        single HMM for all environments; ``("transitions", "emissions")`` separate HMMs tied by
        the hierarchical prior.
    covariance : {"full", "diag"}
        Gaussian emissions only.
    num_categories : int, optional
        ``C``; categorical emissions only.
    input_dim : int
        ``m`` inputs driving the transitions (0: none).
    initial : {"free", "stationary", "fixed"}
        The initial distribution: estimated freely, the stationary distribution of the
        transition matrix (no parameters of its own), or given by the user (fixed).
    """

    num_states: int
    emission: str = "gaussian"
    obs_dim: int = 1
    num_envs: int = 1
    vary: tuple = ()
    covariance: str = "full"
    num_categories: int | None = None
    input_dim: int = 0
    initial: str = "free"

    def __post_init__(self):
        if self.emission not in EMISSIONS:
            raise ValueError(f"emission must be one of {EMISSIONS}; got {self.emission!r}")
        vary = tuple(sorted(set(self.vary), key=MECHANISMS.index)) if self.vary else ()
        bad = [v for v in vary if v not in MECHANISMS]
        if bad:
            raise ValueError(f"vary may name only {MECHANISMS}; got {bad}")
        object.__setattr__(self, "vary", vary)
        if self.covariance not in ("full", "diag"):
            raise ValueError(f"covariance must be 'full' or 'diag'; got {self.covariance!r}")
        if self.num_states < 1:
            raise ValueError(f"num_states must be at least 1; got {self.num_states}")
        if self.initial not in ("free", "stationary", "fixed"):
            raise ValueError(f"initial must be 'free', 'stationary' or 'fixed'; got {self.initial!r}")
        if self.emission == "categorical" and (self.num_categories is None or self.num_categories < 2):
            raise ValueError("categorical emissions need num_categories >= 2")

    @property
    def trans_vary(self) -> bool:
        return "transitions" in self.vary

    @property
    def emis_vary(self) -> bool:
        return "emissions" in self.vary

    def num_params(self) -> int:
        """Free parameters (for AIC/BIC)."""
        K, D, E = self.num_states, self.obs_dim, self.num_envs
        cause = (K - 1 if self.initial == "free" else 0) + K * (K - 1) + K * self.input_dim * (K - 1)
        if self.emission == "gaussian":
            cov = D * (D + 1) // 2 if self.covariance == "full" else D
            effect = K * (D + cov)
        elif self.emission == "poisson":
            effect = K * D
        else:
            effect = K * D * (self.num_categories - 1)
        return cause * (E if self.trans_vary else 1) + effect * (E if self.emis_vary else 1)


@dataclass(frozen=True)
class HMMPrior:
    """Hyper-parameters of :func:`hmm_model`'s priors (weakly informative on standardised data).

    ``mean_loc``/``mean_scale`` centre the Gaussian means; ``scale_scale`` is the half-normal
    scale of the emission standard deviations; ``env_scale`` the spread of per-environment means,
    log-standard-deviations and log-rates around their centre; ``sticky`` the extra Dirichlet
    mass on self-transitions; ``lkj`` the LKJ concentration of full correlations.
    """

    mean_loc: float = 0.0
    mean_scale: float = 3.0
    scale_scale: float = 2.0
    rate_loc: float = 0.0
    rate_scale: float = 2.0
    env_scale: float = 0.5
    sticky: float = 1.0
    lkj: float = 2.0
    trans_weight_scale: float = 1.0


# --------------------------------------------------------------------------- parameters
#
# Dimensions: E environments, K states, D channels, C categories, m inputs.  Every array of an
# HMMParams keeps the environment axis first (a shared mechanism repeats over it), so one
# layout serves one HMM and a multi-environment family alike; inside the engines, which vmap
# over environments, the same tuples hold one environment's slices (the leading axis dropped).


class GaussianEmissions(NamedTuple):
    r"""Multivariate normal emissions, :math:`y_t \mid z_t = k \sim \mathcal N(\mu_{e,k}, \Sigma_{e,k})`.

    Attributes
    ----------
    means : (E, K, D) array
        :math:`\mu_{e,k}`, per environment, state and channel.
    covs : (E, K, D, D) array
        :math:`\Sigma_{e,k}`, symmetric positive definite (diagonal for ``covariance="diag"``).
    """

    means: Array
    covs: Array


class PoissonEmissions(NamedTuple):
    r"""Independent Poisson counts per channel, :math:`y_{t,d} \mid z_t = k \sim \operatorname{Poisson}(\lambda_{e,k,d})`.

    Attributes
    ----------
    rates : (E, K, D) array
        :math:`\lambda_{e,k,d} > 0`, per environment, state and channel.
    """

    rates: Array


class CategoricalEmissions(NamedTuple):
    r"""Independent categorical symbols per channel, :math:`P(y_{t,d} = c \mid z_t = k) = p_{e,k,d,c}`.

    Attributes
    ----------
    probs : (E, K, D, C) array
        Symbol probabilities per environment, state and channel (summing to 1 over ``C``).
    """

    probs: Array


Emissions = GaussianEmissions | PoissonEmissions | CategoricalEmissions

#: The emission tuple of each family.
EMISSION_TYPES = {"gaussian": GaussianEmissions, "poisson": PoissonEmissions,
                  "categorical": CategoricalEmissions}


class HMMParams(NamedTuple):
    r"""Parameters of a (multi-environment) HMM, a pytree.

    .. math::

        z_0 \sim \pi_e,\qquad z_t \mid z_{t-1} = i \sim \Gamma_{e,t}(i, \cdot),\qquad
        y_t \mid z_t = k \sim F(\psi_{e,k}),\qquad
        \Gamma_{e,t}(i, \cdot) = \operatorname{softmax}(\log\Gamma_e(i, \cdot) + W_i^\top u_t).

    Build with :func:`make_hmm_params` (which checks the shapes and adds the environment axis
    to single-HMM arrays) or :meth:`from_dict`; :meth:`to_dict` gives the flat form that
    results are saved in.

    Attributes
    ----------
    init : (E, K) array
        Initial distribution :math:`\pi_e` (cause mechanism).
    trans : (E, K, K) array
        Transition matrix :math:`\Gamma_e`, rows = from (cause mechanism).
    emissions : GaussianEmissions, PoissonEmissions or CategoricalEmissions
        :math:`\psi_e`, the effect mechanism.
    trans_weights : (K, m, K) array or None
        Input weights :math:`W` of input-driven transitions (shared by every environment).

    Examples
    --------
    >>> import numpy as np
    >>> p = make_hmm_params([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], rates=[[2.0], [9.0]])
    >>> p.emission, p.num_envs, p.num_states, p.emissions.rates.shape
    ('poisson', 1, 2, (1, 2, 1))
    >>> sorted(p.to_dict())
    ['init', 'rates', 'trans']
    """

    init: Array
    trans: Array
    emissions: Emissions
    trans_weights: Array | None = None

    @property
    def emission(self) -> str:
        """The emission family: ``"gaussian"``, ``"poisson"`` or ``"categorical"``."""
        return {GaussianEmissions: "gaussian", PoissonEmissions: "poisson",
                CategoricalEmissions: "categorical"}[type(self.emissions)]

    @property
    def num_envs(self) -> int:
        """``E`` (the leading axis of :attr:`init`)."""
        return int(np.shape(self.init)[0])

    @property
    def num_states(self) -> int:
        """``K``."""
        return int(np.shape(self.init)[-1])

    def to_dict(self) -> dict:
        """The flat form ``{"init", "trans", <emission fields>[, "trans_weights"]}`` (as saved)."""
        out = {"init": self.init, "trans": self.trans, **self.emissions._asdict()}
        if self.trans_weights is not None:
            out["trans_weights"] = self.trans_weights
        return out

    @classmethod
    def from_dict(cls, d) -> HMMParams:
        """Parameters from the flat form of :meth:`to_dict` (e.g. a result saved by an older
        causalid); an :class:`HMMParams` is returned unchanged.  The family is told by the
        emission fields present (``means`` + ``covs``, ``rates`` or ``probs``)."""
        if isinstance(d, HMMParams):
            return d
        for family in EMISSION_TYPES.values():
            if all(f in d for f in family._fields):
                emissions = family(*(d[f] for f in family._fields))
                return cls(d["init"], d["trans"], emissions, d.get("trans_weights"))
        raise ValueError(f"no emission parameters among {sorted(d)}: expected means and covs, rates or probs")

    def replace(self, **values) -> HMMParams:
        """A copy with some arrays replaced, emission fields (``means``, ``rates``, ...) by name."""
        own = {k: values.pop(k) for k in list(values) if k in self._fields}
        emissions = self.emissions._replace(**values) if values else self.emissions
        return self._replace(emissions=emissions, **own)


def make_hmm_params(init, trans, *, means=None, covs=None, rates=None, probs=None, trans_weights=None,
                    num_envs: int | None = None) -> HMMParams:
    """Build :class:`HMMParams`, checking the shapes.

    Give exactly one emission family: ``means`` and ``covs`` (Gaussian), ``rates`` (Poisson) or
    ``probs`` (categorical).  Arrays may carry the environment axis (``init (E, K)``, ...) or
    not (``init (K,)``, ``trans (K, K)``, ``means (K, D)``, ...: one HMM), in which case they are
    repeated over ``num_envs`` environments (default 1).  A ``(K,)`` mean, rate or ``(K, C)``
    probability array is one channel.

    Returns
    -------
    HMMParams
        With NumPy arrays (``jax.tree.map(jnp.asarray, p)`` moves them to the device).
    """
    given = {"gaussian": means is not None or covs is not None, "poisson": rates is not None,
             "categorical": probs is not None}
    families = [f for f, g in given.items() if g]
    if len(families) != 1:
        raise ValueError("give exactly one emission family: means and covs, rates, or probs; "
                         f"got {families or 'none'}")
    init = np.asarray(init, dtype=float)
    trans = np.asarray(trans, dtype=float)
    K = init.shape[-1]
    E = int(num_envs) if num_envs is not None else (1 if init.ndim == 1 else init.shape[0])

    def env(a, core: int, name: str):
        a = np.asarray(a, dtype=float)
        if a.ndim == core:
            return np.broadcast_to(a, (E,) + a.shape).copy()
        if a.ndim == core + 1 and a.shape[0] in (1, E):
            return np.broadcast_to(a, (E,) + a.shape[1:]).copy()
        raise ValueError(f"{name} has shape {a.shape}; expected {core} axes, or {core + 1} with {E} environments first")

    init, trans = env(init, 1, "init"), env(trans, 2, "trans")
    if trans.shape[1:] != (K, K):
        raise ValueError(f"trans has shape {trans.shape}; expected (E, {K}, {K})")
    if families[0] == "gaussian":
        if means is None or covs is None:
            raise ValueError("Gaussian emissions need both means and covs")
        m = np.asarray(means, dtype=float)
        m = env(m[:, None] if m.ndim == 1 else m, 2, "means")
        D = m.shape[-1]
        c = np.asarray(covs, dtype=float)
        c = env(c[:, None, None] if c.ndim == 1 else c, 3, "covs")  # (K,): variances of one channel
        if m.shape[1] != K or c.shape[1:] != (K, D, D):
            raise ValueError(f"means {m.shape} / covs {c.shape} do not fit {K} states and {D} channel(s)")
        emissions = GaussianEmissions(m, c)
    elif families[0] == "poisson":
        r = np.asarray(rates, dtype=float)
        r = env(r[..., None] if r.ndim == 1 else r, 2, "rates")
        if r.shape[1] != K:
            raise ValueError(f"rates has shape {r.shape}; expected (E, {K}, D)")
        emissions = PoissonEmissions(r)
    else:
        p = np.asarray(probs, dtype=float)
        p = env(p[:, None, :] if p.ndim == 2 else p, 3, "probs")
        if p.shape[1] != K:
            raise ValueError(f"probs has shape {p.shape}; expected (E, {K}, D, C)")
        emissions = CategoricalEmissions(p)
    w = None if trans_weights is None else np.asarray(trans_weights, dtype=float)
    return HMMParams(init, trans, emissions, w)


# ------------------------------------------------------------------------ emission densities


def emission_log_lik(emissions: Emissions, y: Array, config: HMMConfig, partial: bool | None = None) -> Array:
    r"""Per-state emission log-likelihoods ``(T, K)`` of one sequence ``y`` ``(T, D)``.

    ``emissions`` holds one environment's emission parameters (:class:`GaussianEmissions`
    ``means (K, D)`` + ``covs (K, D, D)``, :class:`PoissonEmissions` ``rates (K, D)`` or
    :class:`CategoricalEmissions` ``probs (K, D, C)``; an :class:`HMMParams` stands for its
    emissions).  NaN channels are marginalised: a Gaussian
    row contributes the density of its observed channels (the marginal of the observed block),
    Poisson and categorical channels are independent so missing ones drop out; a row with no
    observed channel is zero (uninformative).  ``partial`` (static) says whether some row has
    some but not all Gaussian channels missing; ``None`` decides it from ``y`` when ``y`` is
    concrete and assumes so when it is traced.  Only such rows need per-row inverses.
    """
    if isinstance(emissions, HMMParams):
        emissions = emissions.emissions
    obs = ~jnp.isnan(y)
    y0 = jnp.where(obs, y, 0.0)
    if config.emission == "poisson":
        rates = emissions.rates  # (K, D)
        terms = y0[:, None, :] * jnp.log(rates)[None] - rates[None] - gammaln(y0 + 1.0)[:, None, :]
        return jnp.sum(jnp.where(obs[:, None, :], terms, 0.0), axis=-1)
    if config.emission == "categorical":
        probs = emissions.probs  # (K, D, C)
        idx = y0.astype(jnp.int32)  # (T, D)
        logp = jnp.log(probs)
        picked = jnp.take_along_axis(logp[None], idx[:, None, :, None], axis=-1)[..., 0]  # (T, K, D)
        return jnp.sum(jnp.where(obs[:, None, :], picked, 0.0), axis=-1)
    if partial is None:
        partial = has_partial_rows(y)
    return _gaussian_log_lik(emissions.means, emissions.covs, y0, obs, partial)


def has_partial_rows(y) -> bool:
    """Whether some row of ``y`` (..., D) has some but not all channels missing (True if traced)."""
    if isinstance(y, jax.core.Tracer):
        return True
    a = np.isnan(np.asarray(y))
    return bool(np.any(np.any(a, -1) & ~np.all(a, -1)))


def _gaussian_log_lik(means, covs, y0, obs, partial: bool):
    """Masked multivariate normal log-densities ``(T, K)``.

    The observed block of row ``t`` has density :math:`\\mathcal N(y_o; \\mu_o, \\Sigma_{oo})`;
    with the mask matrix :math:`M = \\operatorname{diag}(o)` this is the full-size Gaussian with
    covariance :math:`M\\Sigma M + (I - M)` evaluated at :math:`M(y - \\mu)`, less the missing
    channels' :math:`\\log 2\\pi` terms.  Rows without any missing channel use one inverse per
    state; per-row inverses are computed only where some channel is missing.
    """
    T, D = y0.shape
    K = means.shape[0]
    inv, logdet = jax.vmap(spd_inv_logdet)(covs)  # (K, D, D), (K,)
    # (y - m)' P (y - m) = vec(y y') . vec(P) - 2 y' P m + m' P m: two matrix products instead of
    # a (T, K, D, D) temporary (7x faster on CPU for K = 8, D = 2).  Rows and means are centred on
    # the states' average mean first, so the expansion does not cancel digits on offset data.
    # The cross term uses P's symmetric part, so that derivatives with respect to ``covs`` are
    # symmetric like those of the unexpanded form.
    centre = jnp.mean(means, axis=0)
    yc, mc = y0 - centre, means - centre
    sym = 0.5 * (inv + jnp.swapaxes(inv, -1, -2))
    pm = jnp.einsum("kde,ke->kd", sym, mc)
    outer = (yc[:, :, None] * yc[:, None, :]).reshape(T, D * D)
    quad = outer @ sym.reshape(K, D * D).T - 2.0 * yc @ pm.T + jnp.sum(mc * pm, axis=-1)[None]
    full = -0.5 * (quad + logdet[None] + D * jnp.log(2 * jnp.pi))
    none_seen = ~jnp.any(obs, axis=1)
    if not partial:
        return jnp.where(none_seen[:, None], 0.0, full)
    some_missing = jnp.any(~obs, axis=1)
    m = obs.astype(y0.dtype)
    r = y0[:, None, :] - means[None]  # (T, K, D)

    def masked(row_m, row_r):
        sw = covs * row_m[None, :, None] * row_m[None, None, :] + jnp.diag(1.0 - row_m)[None]
        iw, ld = jax.vmap(spd_inv_logdet)(sw)
        rr = row_r * row_m[None]
        q = jnp.einsum("kd,kde,ke->k", rr, iw, rr)
        return -0.5 * (q + ld + jnp.sum(row_m) * jnp.log(2 * jnp.pi))

    return jnp.where(some_missing[:, None], jax.vmap(masked)(m, r), full)


def stationary_distribution(trans: Array) -> Array:
    r"""The stationary distribution :math:`\delta` of transition matrices ``(..., K, K)``.

    :math:`\delta` solves :math:`\delta(I - \Gamma + U) = \mathbf 1` with :math:`U` the matrix
    of ones (Zucchini & MacDonald 2009, exercise 1.8(b)); differentiable, and unique for an
    irreducible chain.
    """
    trans = jnp.asarray(trans)
    K = trans.shape[-1]
    a = jnp.eye(K) - trans + jnp.ones((K, K))
    # delta A = 1  <=>  A^T delta^T = 1
    return jnp.linalg.solve(jnp.swapaxes(a, -1, -2), jnp.ones(trans.shape[:-1])[..., None])[..., 0]


def transition_matrices(trans: Array, weights: Array | None, inputs: Array | None) -> Array:
    r"""Transitions into steps ``1..T-1``: ``(K, K)`` without inputs, else ``(T-1, K, K)``.

    :math:`\Gamma_t(i, \cdot) = \operatorname{softmax}(\log\Gamma(i, \cdot) + W_i^\top u_t)` with
    ``weights`` ``(K, m, K)`` and ``inputs`` ``(T, m)`` (``u_t`` drives the step into ``t``).
    """
    if weights is None or inputs is None:
        return trans
    u = jnp.where(jnp.isnan(inputs[1:]), 0.0, inputs[1:])
    logits = jnp.log(trans)[None] + jnp.einsum("tm,imj->tij", u, weights)
    return jax.nn.softmax(logits, axis=-1)


# ----------------------------------------------------------------------------- the program


def _env_axis(x, E, vary):
    return x if vary else jnp.broadcast_to(x, (E,) + x.shape)


def hmm_model(y=None, *, config: HMMConfig, lengths=None, inputs=None, num_sequences: int = 1,
              num_steps: int | None = None, prior: HMMPrior | None = None):
    """The multi-environment HMM (see the module docstring for the sites).

    Parameters
    ----------
    y : (E, N, T, D) array, optional
        Observations (NaN missing / padding).  ``None`` simulates.
    config : HMMConfig
    lengths : (E, N) int array, optional
        Real length of each sequence (default: all ``T``).
    inputs : (E, N, T, m) array, optional
        Inputs driving the transitions (``config.input_dim > 0``).
    num_sequences, num_steps : int
        Sizes when simulating.

    Returns
    -------
    HMMParams
        The per-environment parameters (:func:`expand_params` of the sampled sites).
    """
    prior = HMMPrior() if prior is None else prior
    K, D, E = config.num_states, config.obs_dim, config.num_envs
    env = numpyro.plate("env_params", E, dim=-1)

    # cause mechanism: initial distribution and transitions
    sticky = prior.sticky * jnp.eye(K)
    if config.trans_vary:
        center = numpyro.sample("trans_center", dist.Dirichlet(jnp.ones((K, K)) + sticky).to_event(1))
        conc = numpyro.sample("trans_concentration", dist.Gamma(5.0, 0.1))
        with env:
            init = numpyro.sample("init", dist.Dirichlet(jnp.ones(K)))
            trans = numpyro.sample("trans", dist.Dirichlet(conc * center + 1e-3).to_event(1))
    else:
        init = numpyro.sample("init", dist.Dirichlet(jnp.ones(K)))
        trans = numpyro.sample("trans", dist.Dirichlet(jnp.ones((K, K)) + sticky).to_event(1))
    weights = None
    if config.input_dim:
        weights = numpyro.sample(
            "trans_weights",
            dist.Normal(0.0, prior.trans_weight_scale).expand([K, config.input_dim, K]).to_event(3),
        )

    # effect mechanism: emissions
    sites = {"init": init, "trans": trans}
    if weights is not None:
        sites["trans_weights"] = weights
    if config.emission == "gaussian":
        mu = numpyro.sample("mean_center", dist.Normal(prior.mean_loc, prior.mean_scale).expand([K, D]).to_event(2))
        sd = numpyro.sample("scale_center", dist.HalfNormal(prior.scale_scale).expand([K, D]).to_event(2))
        sites.update(mean_center=mu, scale_center=sd)
        if config.emis_vary:
            with env:
                sites["means"] = numpyro.sample("means", dist.Normal(mu, prior.env_scale).to_event(2))
                sites["scales"] = numpyro.sample("scales", dist.LogNormal(jnp.log(sd), prior.env_scale).to_event(2))
        if config.covariance == "full" and D > 1:
            sites["corr_chol"] = numpyro.sample("corr_chol", dist.LKJCholesky(D, prior.lkj).expand([K]).to_event(1))
    elif config.emission == "poisson":
        lam = numpyro.sample("rate_center", dist.LogNormal(prior.rate_loc, prior.rate_scale).expand([K, D]).to_event(2))
        sites["rate_center"] = lam
        if config.emis_vary:
            with env:
                sites["rates"] = numpyro.sample("rates", dist.LogNormal(jnp.log(lam), prior.env_scale).to_event(2))
    else:
        C = config.num_categories
        p = numpyro.sample("probs_center", dist.Dirichlet(jnp.ones((K, D, C))).to_event(2))
        sites["probs_center"] = p
        if config.emis_vary:
            kappa = numpyro.sample("probs_concentration", dist.Gamma(5.0, 0.1))
            with env:
                sites["probs"] = numpyro.sample("probs", dist.Dirichlet(kappa * p + 1e-3).to_event(2))
    params = expand_params(sites, config)

    if y is None:
        _simulate_sites(params, config, lengths, inputs, num_sequences, num_steps)
    else:
        numpyro.factor("y_loglik", log_likelihood(params, y, config, lengths, inputs))
    return params


@float64
def log_likelihood(params: HMMParams, y: Array, config: HMMConfig, lengths=None, inputs=None,
                   *, method: str = "auto") -> Array:
    """Total marginal log-likelihood of ``y`` ``(E, N, T, D)``: forward pass per sequence, ``vmap``-ed."""
    return jnp.sum(sequence_log_likelihoods(params, y, config, lengths, inputs, method=method))


@float64
def sequence_log_likelihoods(params: HMMParams, y: Array, config: HMMConfig, lengths=None, inputs=None,
                             *, method: str = "auto", partial: bool | None = None) -> Array:
    """Log-likelihood of every sequence, ``(E, N)``.

    ``partial`` is as in :func:`emission_log_lik` (``None``: decided from ``y``); pass it when
    calling this under ``jit``, where ``y`` is traced and would otherwise take the slower path.
    """
    partial = has_partial_rows(y) if partial is None else partial
    y = jnp.asarray(y)
    E, N, T, _ = y.shape
    if lengths is None:
        lengths = jnp.full((E, N), T)
    per_env, weights = params._replace(trans_weights=None), params.trans_weights

    def one(p, y_n, n, u_n):
        ll = emission_log_lik(p.emissions, y_n, config, partial)
        tr = transition_matrices(p.trans, weights, u_n)
        return hmm_log_likelihood(p.init, tr, ll, n, method=method)

    if inputs is None:
        f = jax.vmap(jax.vmap(lambda p, y_n, n: one(p, y_n, n, None), in_axes=(None, 0, 0)))
        return f(per_env, y, lengths)
    f = jax.vmap(jax.vmap(one, in_axes=(None, 0, 0, 0)))
    return f(per_env, y, lengths, inputs)


def _simulate_sites(params, config: HMMConfig, lengths, inputs, N: int, T: int | None):
    if T is None:
        raise ValueError("simulation (y=None) needs num_steps")
    K, E = config.num_states, config.num_envs
    with numpyro.plate("env", E, dim=-3), numpyro.plate("sequence", N, dim=-2), numpyro.plate("time", T, dim=-1):
        u = numpyro.sample("state_uniform", dist.Uniform(0.0, 1.0))  # (E, N, T)
    weights = params.trans_weights

    def path(init, trans, u_n, x_n):
        tr = transition_matrices(trans, weights, x_n)
        tr = jnp.broadcast_to(tr, (T - 1, K, K)) if tr.ndim == 2 else tr
        z0 = jnp.minimum(jnp.sum(jnp.cumsum(init) < u_n[0]), K - 1)

        def step(z, xs):
            g, v = xs
            nz = jnp.minimum(jnp.sum(jnp.cumsum(g[z]) < v), K - 1)
            return nz, nz

        _, rest = lax.scan(step, z0, (tr, u_n[1:]))
        return jnp.concatenate([z0[None], rest])

    if inputs is None:
        z = jax.vmap(jax.vmap(lambda a, b, c: path(a, b, c, None), in_axes=(None, None, 0)))(
            params.init, params.trans, u)
    else:
        z = jax.vmap(jax.vmap(path, in_axes=(None, None, 0, 0)))(params.init, params.trans, u, inputs)
    z = numpyro.deterministic("z", z.astype(jnp.int32))
    e_idx = jnp.arange(E)[:, None, None]
    with numpyro.plate("env", E, dim=-3), numpyro.plate("sequence", N, dim=-2), numpyro.plate("time", T, dim=-1):
        em = params.emissions
        if config.emission == "gaussian":
            numpyro.sample("y", dist.MultivariateNormal(em.means[e_idx, z], em.covs[e_idx, z]))
        elif config.emission == "poisson":
            numpyro.sample("y", dist.Poisson(em.rates[e_idx, z]).to_event(1))
        else:
            numpyro.sample("y", dist.Categorical(em.probs[e_idx, z]).to_event(1))


@float64
def expand_params(sites: dict, config: HMMConfig) -> HMMParams:
    """Per-environment parameters from the program's site values (a trace, a draw, a MAP point).

    The one place where sites become an :class:`HMMParams`: :func:`hmm_model` calls it on its
    own sites, and the engines on fitted ones.  ``vmap`` it over draws.
    """
    E, D = config.num_envs, config.obs_dim
    tv, ev = config.trans_vary, config.emis_vary
    init = _env_axis(jnp.asarray(sites["init"]), E, tv)
    trans = _env_axis(jnp.asarray(sites["trans"]), E, tv)
    if config.emission == "gaussian":
        means = sites["means"] if ev else sites["mean_center"]
        scales = sites["scales"] if ev else sites["scale_center"]
        if config.covariance == "full" and D > 1:
            chol = scales[..., :, None] * sites["corr_chol"]
            covs = chol @ jnp.swapaxes(chol, -1, -2)
        else:
            covs = jnp.eye(D) * (scales**2)[..., None]
        emissions = GaussianEmissions(_env_axis(means, E, ev), _env_axis(covs, E, ev))
    elif config.emission == "poisson":
        emissions = PoissonEmissions(_env_axis(sites["rates"] if ev else sites["rate_center"], E, ev))
    else:
        emissions = CategoricalEmissions(_env_axis(sites["probs"] if ev else sites["probs_center"], E, ev))
    weights = jnp.asarray(sites["trans_weights"]) if "trans_weights" in sites else None
    return HMMParams(init, trans, emissions, weights)


# ------------------------------------------------------------------------------- simulators


@float64
def random_hmm_params(key, config: HMMConfig, *, self_prob: float = 0.8, separation: float = 3.0,
                      env_spread: float = 0.5) -> HMMParams:
    """A well-separated random multi-environment HMM (per-environment :class:`HMMParams`).

    Transitions keep each state with probability about ``self_prob``; the shared Gaussian means
    lie on a line in a random direction, neighbours ``separation`` (unit) standard deviations
    apart along it, in a random state order, with jitter across the line (so no two states ever
    share a mean); Poisson rates are spread on a log scale.  Varying mechanisms are perturbed
    per environment by ``env_spread`` (transition logits, means in standard deviations, log-rates,
    category logits); a shared mechanism is the unperturbed base, so the separation above holds
    exactly for shared means (a single shared draw of the perturbation could undo it).
    """
    K, D, E = config.num_states, config.obs_dim, config.num_envs
    keys = jax.random.split(jnp.asarray(key) if not isinstance(key, int) else jax.random.PRNGKey(key), 8)
    off = (1.0 - self_prob) / max(K - 1, 1)
    base = jnp.full((K, K), off) + (self_prob - off) * jnp.eye(K)
    if K == 1:
        base = jnp.ones((1, 1))
    spread_tr = env_spread if config.trans_vary else 0.0
    spread_em = env_spread if config.emis_vary else 0.0
    n_tr = E if config.trans_vary else 1
    logits = jnp.log(base)[None] + spread_tr * jax.random.normal(keys[0], (n_tr, K, K))
    trans = jnp.broadcast_to(jax.nn.softmax(logits, -1), (E, K, K))
    init = jnp.broadcast_to(jax.nn.softmax(spread_tr * jax.random.normal(keys[1], (n_tr, K)), -1), (E, K))
    n_em = E if config.emis_vary else 1
    if config.emission == "gaussian":
        k_dir, k_order, k_jit = jax.random.split(keys[2], 3)
        u = jax.random.normal(k_dir, (D,))
        u = u / jnp.linalg.norm(u)
        along = separation * (jnp.arange(K) - (K - 1) / 2.0)
        along = along[jax.random.permutation(k_order, K)]
        across = 0.5 * separation * jax.random.normal(k_jit, (K, D))
        across = across - (across @ u)[:, None] * u
        centre = (along[:, None] * u + across)[None]
        means = centre + spread_em * jax.random.normal(keys[3], (n_em, K, D))
        sd = jnp.exp(0.2 * jax.random.normal(keys[4], (n_em, K, D)))
        if config.covariance == "full" and D > 1:
            a = jax.random.normal(keys[5], (1, K, D, D)) * 0.3  # correlations shared, as in the model
            corr = jnp.eye(D) + a @ jnp.swapaxes(a, -1, -2)
            d = jnp.sqrt(jnp.diagonal(corr, axis1=-2, axis2=-1))
            corr = corr / d[..., :, None] / d[..., None, :]
            covs = sd[..., :, None] * corr * sd[..., None, :]
        else:
            covs = jnp.eye(D) * (sd**2)[..., None]
        emissions = GaussianEmissions(jnp.broadcast_to(means, (E, K, D)), jnp.broadcast_to(covs, (E, K, D, D)))
    elif config.emission == "poisson":
        log_rates = jnp.linspace(0.0, separation * 0.7, K)[None, :, None] + 0.5
        log_rates = log_rates + spread_em * jax.random.normal(keys[3], (n_em, K, D))
        emissions = PoissonEmissions(jnp.broadcast_to(jnp.exp(log_rates), (E, K, D)))
    else:
        C = config.num_categories
        logits = separation * jax.random.normal(keys[2], (1, K, D, C))
        logits = logits + spread_em * jax.random.normal(keys[3], (n_em, K, D, C))
        emissions = CategoricalEmissions(jnp.broadcast_to(jax.nn.softmax(logits, -1), (E, K, D, C)))
    weights = jax.random.normal(keys[6], (K, config.input_dim, K)) if config.input_dim else None
    return HMMParams(init, trans, emissions, weights)


@float64
def simulate_hmm(key, config: HMMConfig, params: HMMParams, *, num_sequences: int, num_steps: int,
                 inputs=None) -> dict:
    """Draw data from :func:`hmm_model` with ``params`` (:class:`HMMParams`) substituted.

    Returns ``{"y": (E, N, T, D), "z": (E, N, T)}`` as numpy arrays.
    """
    key = jax.random.PRNGKey(key) if isinstance(key, int) else key
    y, z = simulate_arrays(key, config, params, num_sequences=num_sequences, num_steps=num_steps, inputs=inputs)
    return {"y": np.asarray(y, dtype=float), "z": np.asarray(z)}


@float64
def simulate_arrays(key, config: HMMConfig, params: HMMParams, *, num_sequences: int, num_steps: int, inputs=None):
    """:func:`simulate_hmm` as a pure JAX function (jit-able, ``vmap``-able over keys / params).

    Returns ``(y (E, N, T, D) float, z (E, N, T) int)``.
    """
    sites = sites_from_params(params, config)
    model = numpyro.handlers.substitute(hmm_model, data=sites)
    tr = numpyro.handlers.trace(numpyro.handlers.seed(model, key)).get_trace(
        config=config, num_sequences=num_sequences, num_steps=num_steps, inputs=inputs)
    y = jnp.asarray(tr["y"]["value"], dtype=jnp.result_type(float))
    if y.ndim == 3:
        y = y[..., None]
    return y, tr["z"]["value"]


def sites_from_params(params: HMMParams, config: HMMConfig) -> dict:
    """Site values that make :func:`hmm_model` reproduce ``params`` exactly."""
    take_t = (lambda a: a) if config.trans_vary else (lambda a: a[0])
    take_e = (lambda a: a) if config.emis_vary else (lambda a: a[0])
    em = params.emissions
    sites = {"init": take_t(params.init), "trans": take_t(params.trans)}
    if config.trans_vary:
        sites["trans_center"] = jnp.mean(params.trans, axis=0)
        sites["trans_concentration"] = jnp.asarray(50.0)
    if params.trans_weights is not None:
        sites["trans_weights"] = params.trans_weights
    if config.emission == "gaussian":
        covs = em.covs
        sd = jnp.sqrt(jnp.diagonal(covs, axis1=-2, axis2=-1))
        sites["mean_center"] = jnp.mean(em.means, axis=0)
        sites["scale_center"] = jnp.exp(jnp.mean(jnp.log(sd), axis=0))
        if config.emis_vary:
            sites["means"], sites["scales"] = em.means, sd
        else:
            sites["mean_center"], sites["scale_center"] = em.means[0], sd[0]
        if config.covariance == "full" and config.obs_dim > 1:
            corr = covs[0] / sd[0][..., :, None] / sd[0][..., None, :]
            sites["corr_chol"] = jnp.linalg.cholesky(corr)
    elif config.emission == "poisson":
        sites["rate_center"] = take_e(em.rates) if not config.emis_vary else jnp.exp(
            jnp.mean(jnp.log(em.rates), axis=0))
        if config.emis_vary:
            sites["rates"] = em.rates
    else:
        sites["probs_center"] = take_e(em.probs) if not config.emis_vary else jnp.mean(em.probs, 0)
        if config.emis_vary:
            sites["probs"] = em.probs
            sites["probs_concentration"] = jnp.asarray(50.0)
    return sites
