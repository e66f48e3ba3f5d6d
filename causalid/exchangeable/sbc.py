r"""Simulation-based calibration problems of the exchangeable wing (:mod:`causalid.verify.sbc`).

* :func:`icm_problem` — NUTS over the mechanism parameters of the exchangeable ICM model
  :func:`causalid.models.exchangeable.icm_model` (the engine of :func:`causalid.fit_parameters`);
* :func:`nig_problem` — the exact Normal–Inverse-Gamma posterior of the linear-Gaussian
  mechanism whose marginal likelihood scores DAGs in ``discover(method="bayes")``
  (:mod:`causalid.exchangeable.bayes`); sampled in closed form, so it is fast and exact.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Collection
from typing import NamedTuple

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
from numpyro import handlers
from numpyro.infer.reparam import LocScaleReparam

from causalid._checks import positive_int
from causalid._linalg import chol_factor, chol_solve
from causalid._typing import Array, Family, Regime
from causalid._x64 import float64
from causalid.errors import DataError
from causalid.exchangeable.bayes import NIGHyper
from causalid.exchangeable.posterior import select_noncentered
from causalid.models.exchangeable import ICMPrior, icm_model, site_dims
from causalid.verify.sbc import SBCProblem, nuts_posterior, trace_sites

__all__ = ["NIGPosterior", "icm_problem", "nig_posterior", "nig_problem"]


def _graph_key(graph: nx.DiGraph) -> tuple:
    """A hashable description of a DAG (node order and edges) for the compile caches."""
    if not isinstance(graph, nx.DiGraph):
        raise DataError(f"graph must be a networkx.DiGraph, got {type(graph).__name__}")
    return tuple(graph.nodes), tuple(graph.edges)


@functools.lru_cache(maxsize=16)
def _icm_engine(
    graph_key, num_envs, num_samples, family, regime, names, prior, num_categories, decentre, nuts
):
    graph = nx.DiGraph()
    graph.add_nodes_from(graph_key[0])
    graph.add_edges_from(graph_key[1])
    model = functools.partial(
        icm_model,
        graph,
        num_envs,
        num_samples,
        family,
        regime,
        names=names,
        prior=prior,
        num_categories=num_categories,
    )
    if decentre:
        model = handlers.reparam(model, config={k: LocScaleReparam(0.0) for k in decentre})
    return nuts_posterior(model, **dict(nuts))


@float64
def icm_problem(
    graph: nx.DiGraph,
    num_envs: int,
    num_samples: int,
    family: Family = "linear_gaussian",
    regime: Regime | Collection[str] = "both",
    *,
    prior=None,
    simulation_prior=None,
    num_categories: int = 3,
    sites: Collection[str] | None = None,
    noncentered: bool | Collection[str] = False,
    num_warmup: int = 500,
    target_accept_prob: float = 0.8,
    max_tree_depth: int | tuple[int, int] = 10,
) -> SBCProblem:
    r"""SBC of NUTS on the exchangeable ICM model (the engine of :func:`causalid.fit_parameters`).

    Truth and data come from :func:`causalid.models.exchangeable.icm_model` under
    ``simulation_prior`` (default: ``prior``); the engine runs NUTS on the same program with
    ``prior``, with :func:`causalid.fit_parameters`' sampler settings (default NUTS, initial
    values uniform in :math:`(-2, 2)` on the unconstrained scale, optional non-centring of
    per-environment parameters).  A ``simulation_prior`` other than ``prior`` is a
    misspecified simulator.

    Parameters
    ----------
    graph, num_envs, num_samples, family, regime, num_categories
        As for :func:`~causalid.models.exchangeable.icm_model`; data have shape
        ``(num_envs, num_samples, var)``.
    prior, simulation_prior : ICMPrior, optional
        The engine's prior and the simulator's prior.
    sites : collection of str, optional
        Parameter sites to rank (default: all, see
        :func:`~causalid.models.exchangeable.site_dims`); per-environment sites give one
        parameter per environment, ``"X_bias[e]"``.
    noncentered : bool or collection of str
        As for :func:`causalid.fit_parameters`.
    num_warmup, target_accept_prob, max_tree_depth
        NUTS settings (see :func:`nuts_posterior`).

    Returns
    -------
    SBCProblem
        Settings column ``engine="icm_nuts"``.
    """
    prior = ICMPrior() if prior is None else prior
    simulation_prior = prior if simulation_prior is None else simulation_prior
    for label, p in (("prior", prior), ("simulation_prior", simulation_prior)):
        if not isinstance(p, ICMPrior):
            raise DataError(f"{label} must be an ICMPrior; got {type(p).__name__}")
    E = positive_int(num_envs, "num_envs")
    N = positive_int(num_samples, "num_samples")
    gkey = _graph_key(graph)
    names = tuple(str(n) for n in graph.nodes)
    regime_key = regime if isinstance(regime, str) else tuple(sorted(map(str, regime)))
    dims, _ = site_dims(
        graph,
        family,
        regime_key if isinstance(regime_key, str) else set(regime_key),
        names,
        num_categories,
    )
    params = [k for k, v in dims.items() if v != ("env", "sample")]
    chosen = params if sites is None else [str(s) for s in sites]
    unknown = [s for s in chosen if s not in params]
    if unknown:
        raise DataError(
            f"sites {unknown} are no parameter sites of this model; choose from {params}"
        )
    per_env = [k for k in params if dims[k][:1] == ("env",)]
    decentre = tuple(select_noncentered(noncentered, per_env, list(names)))
    nuts = (
        ("num_warmup", int(num_warmup)),
        ("target_accept_prob", float(target_accept_prob)),
        ("max_tree_depth", max_tree_depth),
    )
    regime_arg = regime_key if isinstance(regime_key, str) else frozenset(regime_key)
    posterior_draws = _icm_engine(
        gkey, E, N, family, regime_arg, names, prior, int(num_categories), decentre, nuts
    )
    sim_model = functools.partial(
        icm_model,
        graph,
        E,
        N,
        family,
        regime_arg,
        names=names,
        prior=simulation_prior,
        num_categories=num_categories,
    )

    def prior_sample(key):
        return trace_sites(handlers.trace(handlers.seed(sim_model, key)).get_trace(), params)

    def simulate(key, theta):
        return handlers.seed(handlers.substitute(sim_model, data=theta), key)()

    return SBCProblem(
        prior_sample,
        simulate,
        posterior_draws,
        _icm_quantities(tuple(chosen), tuple(per_env)),
        settings={"engine": "icm_nuts"},
    )


@functools.lru_cache(maxsize=64)
def _icm_quantities(chosen: tuple[str, ...], per_env: tuple[str, ...]) -> Callable:
    """The chosen sites, per-environment ones as (env, *event); cached so that problems with the
    same sites share the compiled ranking."""

    def quantities(theta):
        # per-environment sites carry the model's singleton sample axis: (env, 1, *event)
        return {
            k: (
                theta[k].reshape(theta[k].shape[:1] + theta[k].shape[2:])
                if k in per_env
                else theta[k]
            )
            for k in chosen
        }

    return quantities


# ---------------------------------------------------------------------------- NIG
class NIGPosterior(NamedTuple):
    r"""Normal–Inverse-Gamma posterior of one linear-Gaussian mechanism.

    :math:`\beta \mid \sigma^2, y \sim N(m_n, \sigma^2 \Lambda_n^{-1})`,
    :math:`\sigma^2 \mid y \sim \mathrm{IG}(a_n, b_n)`.

    Attributes
    ----------
    mean : array, shape (..., coef)
        :math:`m_n`.
    precision : array, shape (..., coef, coef)
        :math:`\Lambda_n` (the posterior precision of :math:`\beta` in units of
        :math:`\sigma^{-2}`).
    a, b : array, shape (...)
    """

    mean: Array
    precision: Array
    a: Array
    b: Array


@float64
def nig_posterior(z, y, hyper: NIGHyper) -> NIGPosterior:
    r"""Conjugate posterior of the linear-Gaussian mechanism of :mod:`causalid.exchangeable.bayes`.

    The model of :func:`causalid.exchangeable.bayes.linear_gaussian_log_marginal`:
    :math:`y_n = \beta^\top z_n + \varepsilon_n`, :math:`\varepsilon_n \sim N(0, \sigma^2)`,
    :math:`\beta \mid \sigma^2 \sim N(m, \sigma^2 \mathrm{diag}(v))`,
    :math:`\sigma^2 \sim \mathrm{IG}(a, b)`.  With :math:`\Lambda_0 = \mathrm{diag}(1/v)`,

    .. math::

        \Lambda_n = \Lambda_0 + Z^\top Z, \quad
        m_n = \Lambda_n^{-1}(\Lambda_0 m + Z^\top y), \quad
        a_n = a + \tfrac n2, \quad
        b_n = b + \tfrac12\bigl(y^\top y + m^\top \Lambda_0 m - m_n^\top \Lambda_n m_n\bigr).

    Parameters
    ----------
    z : array, shape (..., sample, coef)
        Regressors (intercept column included).
    y : array, shape (..., sample)
    hyper : NIGHyper
        Prior with ``v > 0``.

    Returns
    -------
    NIGPosterior
    """
    z = jnp.asarray(z, jnp.float64)
    y = jnp.asarray(y, jnp.float64)
    m, v, a, b = (jnp.asarray(h, jnp.float64) for h in hyper)
    lam0 = 1.0 / v
    prec = jnp.swapaxes(z, -1, -2) @ z + lam0[..., :, None] * jnp.eye(z.shape[-1])
    rhs = lam0 * m + jnp.einsum("...nk,...n->...k", z, y)
    # small unrolled Cholesky of the engine (no batched LAPACK inside vmapped CPU programs)
    mean = chol_solve(prec, rhs)
    bn = b + 0.5 * (jnp.sum(y * y, -1) + jnp.sum(lam0 * m * m, -1) - jnp.sum(mean * rhs, -1))
    return NIGPosterior(mean, prec, jnp.broadcast_to(a + 0.5 * y.shape[-1], bn.shape), bn)


def _nig_draw(key, mean, precision, a: float, b, shape=()):
    """Draws of (beta, sigma2) from NIG(mean, precision^-1, a, b); batch shape that of ``b``,
    leading draw axes ``shape``, ``a`` a static float.

    ``sigma2 = b / G`` with ``G ~ Gamma(a, 1)`` and ``beta = mean + sigma L^{-T} xi`` with
    ``precision = L L^T`` (the engine's unrolled Cholesky: no batched LAPACK kernels inside a
    vmapped CPU program).  Random-number generation dominates the compile time on CPU, and
    normals compile several times faster than JAX's gamma sampler, so for ``2a`` an integer up
    to 64 ``G`` is made exactly as half a chi-square with ``2a`` degrees of freedom from the
    same flat normal draw as ``xi``; otherwise from :func:`jax.random.loggamma`.
    """
    full = shape + jnp.shape(b)
    p = mean.shape[-1]
    two_a = 2.0 * float(a)
    k = int(two_a) if two_a.is_integer() and 1 <= two_a <= 64 else 0
    key, sub = jax.random.split(key)
    z = jax.random.normal(key, (math.prod(full) * (k + p),)).reshape(full + (k + p,))
    if k:
        gamma = 0.5 * jnp.sum(z[..., :k] ** 2, axis=-1)
    else:
        gamma = jnp.exp(jax.random.loggamma(sub, float(a), full))
    sigma2 = b / gamma
    xi = z[..., k:]
    low = chol_factor(precision)
    white = [None] * p
    for j in reversed(range(p)):  # back substitution with L^T
        white[j] = (xi[..., j] - sum(low[i][j] * white[i] for i in range(j + 1, p))) / low[j][j]
    return mean + jnp.sqrt(sigma2)[..., None] * jnp.stack(white, -1), sigma2


@functools.lru_cache(maxsize=16)
def _nig_engine(hyper_key):
    hyper = NIGHyper(*(jnp.asarray(h) for h in hyper_key))

    def posterior_draws(key, data, num):
        post = nig_posterior(data["z"], data["y"], hyper)
        a_n = hyper_key[2] + 0.5 * data["y"].shape[-1]  # static: a + n / 2
        beta, sigma2 = _nig_draw(key, post.mean, post.precision, a_n, post.b, shape=(num,))
        return {"beta": beta, "sigma2": sigma2}

    return posterior_draws


def _hyper_key(hyper, k: int) -> tuple:
    if not isinstance(hyper, NIGHyper):
        raise DataError(
            f"hyper must be a causalid.exchangeable.bayes.NIGHyper; got {type(hyper).__name__}"
        )
    m = np.broadcast_to(np.asarray(hyper.m, np.float64), (k,))
    v = np.broadcast_to(np.asarray(hyper.v, np.float64), (k,))
    a, b = float(hyper.a), float(hyper.b)
    if not (np.all(v > 0) and a > 0 and b > 0 and np.all(np.isfinite(m))):
        raise DataError(f"NIG prior needs v > 0, a > 0, b > 0 and finite m; got {hyper}")
    return tuple(m), tuple(v), a, b


@float64
def nig_problem(
    num_parents: int = 1,
    num_envs: int = 2,
    num_samples: int = 10,
    hyper: NIGHyper | None = None,
    *,
    simulation_hyper: NIGHyper | None = None,
    simulation_noise_scale: float = 1.0,
) -> SBCProblem:
    r"""SBC of the conjugate linear-Gaussian posterior of ``discover(method="bayes")``.

    Per environment :math:`e`, with ``k = num_parents`` parents and regressors
    :math:`z = (1, x_{\mathrm{pa}})`, :math:`x_{\mathrm{pa}} \sim N(0, I_k)`:
    :math:`(\beta_e, \sigma^2_e) \sim \mathrm{NIG}` (``simulation_hyper``) and
    :math:`y_{e,n} \sim N(\beta_e^\top z_{e,n}, c^2 \sigma^2_e)` with
    :math:`c` = ``simulation_noise_scale``; the engine's exact posterior (:func:`nig_posterior`
    under ``hyper``, the prior whose marginal
    :func:`causalid.exchangeable.bayes.linear_gaussian_log_marginal` scores a parent set) is sampled
    in closed form.  A ``simulation_hyper`` other than ``hyper`` (a wrong prior) or
    :math:`c \ne 1` (noise of another scale than the model's :math:`\sigma_e`) is a
    misspecified simulator.

    Parameters ranked: ``beta[e,j]`` (``j = 0`` the intercept) and ``sigma2[e]``.

    Parameters
    ----------
    num_parents, num_envs, num_samples : int
    hyper : NIGHyper, optional
        The engine's prior; default ``m = 0``, ``v = 1``, ``a = 3``, ``b = 2`` (prior mean of
        :math:`\sigma^2` = 1).  ``m`` and ``v`` may be scalars.
    simulation_hyper : NIGHyper, optional
        The simulator's prior (default ``hyper``).
    simulation_noise_scale : float
        :math:`c`, the simulator's noise standard deviation in units of :math:`\sigma_e`.

    Returns
    -------
    SBCProblem
        Settings column ``engine="nig"``.

    Examples
    --------
    >>> import causalid
    >>> from causalid.exchangeable.sbc import nig_problem
    >>> res = nig_problem(num_envs=1, num_samples=8).run(100, key=0, num_draws=49)
    >>> res.parameters, res.test().passed
    (['beta[0,0]', 'beta[0,1]', 'sigma2[0]'], True)
    """
    k = int(num_parents)
    if k < 0:
        raise DataError(f"num_parents={num_parents}; it must be >= 0")
    E = positive_int(num_envs, "num_envs")
    N = positive_int(num_samples, "num_samples")
    if not (math.isfinite(float(simulation_noise_scale)) and simulation_noise_scale > 0):
        raise DataError(f"simulation_noise_scale={simulation_noise_scale}; it must be > 0")
    hyper = NIGHyper(0.0, 1.0, 3.0, 2.0) if hyper is None else hyper
    fit = _hyper_key(hyper, k + 1)
    sim = fit if simulation_hyper is None else _hyper_key(simulation_hyper, k + 1)
    return SBCProblem(
        _nig_prior(sim, E),
        _nig_simulate(E, N, k, float(simulation_noise_scale)),
        _nig_engine(fit),
        settings={"engine": "nig"},
    )


@functools.lru_cache(maxsize=16)
def _nig_prior(hyper_key: tuple, num_envs: int) -> Callable:
    m, v = (jnp.asarray(h) for h in hyper_key[:2])
    a, b = hyper_key[2:]
    p = m.shape[0]

    def prior_sample(key):
        beta, sigma2 = _nig_draw(
            key,
            jnp.broadcast_to(m, (num_envs, p)),
            jnp.broadcast_to(jnp.diag(1.0 / v), (num_envs, p, p)),
            a,
            jnp.full(num_envs, b),
        )
        return {"beta": beta, "sigma2": sigma2}

    return prior_sample


@functools.lru_cache(maxsize=16)
def _nig_simulate(num_envs: int, num_samples: int, num_parents: int, scale: float) -> Callable:
    E, N, k = num_envs, num_samples, num_parents

    def simulate(key, theta):
        eps = jax.random.normal(key, (E * N * (k + 1),)).reshape(E, N, k + 1)
        z = jnp.concatenate([jnp.ones((E, N, 1)), eps[..., 1:]], axis=-1)  # x_pa ~ N(0, I)
        noise = scale * jnp.sqrt(theta["sigma2"])[:, None] * eps[..., 0]
        return {"z": z, "y": jnp.einsum("enk,ek->en", z, theta["beta"]) + noise}

    return simulate
