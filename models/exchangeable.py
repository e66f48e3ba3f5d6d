r"""Exchangeable independent-causal-mechanism (ICM) models as NumPyro programs.

Causal de Finetti (Guo et al. 2023) and IEM (Reizinger et al. 2025) describe multi-environment
data whose samples are exchangeable inside an environment and whose mechanism parameters are
redrawn independently, per mechanism, across environments:

.. math::

    \theta_{e,i} \sim \pi_i, \qquad
    X_{e,n,i} \mid X_{e,n,\mathrm{pa}(i)}, \theta_{e,i}
        \sim p_i(x_i \mid x_{\mathrm{pa}(i)}, \theta_{e,i}),
    \qquad e = 1..E,\; n = 1..N.

The program :func:`icm_model` writes this directly: parameters of a mechanism that varies across
environments are sample sites inside ``numpyro.plate("env", E)``, parameters of a shared
(invariant) mechanism are sites outside it, and the data are sites inside the nested
``numpyro.plate("sample", N)``.  One program serves simulation (:class:`numpyro.infer.Predictive`,
:func:`simulate`), fitting (``x=`` and ``mask=`` given) and interventions (effect handlers such as
:func:`numpyro.handlers.do`, see :func:`intervene`).

Site naming
-----------
For a node called ``Y`` (node labels are converted with ``str``):

* ``Y``                 the data site, shape ``(env, sample)`` (categorical values are integer
                        codes ``0..K-1``);
* ``Y_bias``            intercept, ``Y_weight`` coefficients on the features of the parents (absent
                        for roots), ``Y_log_noise`` log of the noise standard deviation
                        (continuous families only);
* ``Y_<p>_mu``, ``Y_<p>_tau``  population location and spread of a per-environment parameter
                        ``Y_<p>`` (present only when ``Y``'s mechanism varies).

Every per-environment parameter is ``Normal(mu, tau)`` given its population sites, so it can be
non-centred with :class:`numpyro.infer.reparam.LocScaleReparam` through
:class:`numpyro.handlers.reparam`, without touching the program.

The env plate has ``dim=-2`` and the sample plate ``dim=-1`` (the NumPyro idiom for nested plates),
so a per-environment parameter with event shape ``s`` has shape ``(env, 1, *s)`` inside the model;
:func:`simulate` and :func:`causalid.exchangeable.posterior.fit_parameters` drop the singleton axis.
:func:`site_dims` names every parameter's axes.

Reference generators
--------------------
:func:`scm_bivariate_continuous` and :func:`scm_multivariate_binary` reproduce the data-generating
processes of the causal de Finetti reference code (Guo et al. 2023, arXiv 2203.15756, as NumPyro programs
(:func:`bivariate_continuous_model`, :func:`multivariate_binary_model`) plus functions of a PRNG
key that can be ``jax.jit``-ed and ``jax.vmap``-ed over keys.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import lax
from numpyro import handlers

from causalid._typing import Array, Family, Regime
from causalid._x64 import float64
from causalid.errors import DataError

__all__ = [
    "ANM_CENTRES",
    "ICMPrior",
    "InterventionalSample",
    "bivariate_adjacency",
    "bivariate_continuous_model",
    "icm_model",
    "intervene",
    "multivariate_binary_model",
    "scm_bivariate_continuous",
    "scm_multivariate_binary",
    "simulate",
    "simulate_interventions",
    "site_dims",
]

ANM_CENTRES: tuple[float, ...] = (-1.0, 0.0, 1.0)
"""Centres ``c`` of the fixed ANM basis ``tanh(x_p - c)``, one feature per parent and centre."""

_FAMILIES = ("linear_gaussian", "anm", "binary", "categorical")
_REGIMES = ("both", "cause", "mechanism")


class ICMPrior(NamedTuple):
    r"""Prior scales of :func:`icm_model`.

    For a coefficient ``b`` (an entry of ``bias`` or ``weight``) and the log noise scale
    ``s = log_noise``:

    .. math::

        \text{varying:}\quad & \mu_b \sim \mathcal N(0, \mathtt{loc\_scale}^2),\;
            \tau_b \sim \mathcal N^+(\mathtt{spread\_scale}),\;
            b_e \sim \mathcal N(\mu_b, \tau_b^2); \\
        & \mu_s \sim \mathcal N(\mathtt{noise\_loc}, \mathtt{noise\_scale}^2),\;
            \tau_s \sim \mathcal N^+(\mathtt{noise\_scale}),\;
            s_e \sim \mathcal N(\mu_s, \tau_s^2); \\
        \text{shared:}\quad & b \sim \mathcal N(0, \mathtt{loc\_scale}^2),\;
            s \sim \mathcal N(\mathtt{noise\_loc}, \mathtt{noise\_scale}^2).

    :math:`\mathcal N^+(\sigma)` is the half-normal distribution of scale :math:`\sigma`.  The
    defaults suit standardised data.
    """

    loc_scale: float = 1.0
    spread_scale: float = 1.0
    noise_loc: float = 0.0
    noise_scale: float = 0.5


class _Node(NamedTuple):
    """One mechanism: its data column, the columns of its parents and whether it varies."""

    name: str
    column: int
    parents: tuple[int, ...]
    varies: bool
    features: tuple[str, ...]  # names of the parent features phi(x_pa)


# ------------------------------------------------------------------------------ structure
def _node_specs(
    graph: nx.DiGraph,
    names: Sequence[str] | None,
    family: str,
    regime,
    num_categories: int,
) -> list[_Node]:
    """Validate the arguments and return the mechanisms in topological order."""
    if not isinstance(graph, nx.DiGraph) or graph.is_multigraph():
        raise DataError(f"graph must be a networkx.DiGraph, got {type(graph).__name__}")
    if family not in _FAMILIES:
        raise DataError(f"unknown family {family!r}; use one of {list(_FAMILIES)}")
    if family == "categorical" and num_categories < 2:
        raise DataError(f"num_categories={num_categories}; a categorical variable needs at least 2")
    if graph.number_of_nodes() == 0:
        raise DataError("the graph has no nodes")
    label = {n: str(n) for n in graph.nodes}
    if len(set(label.values())) != len(label):
        raise DataError("two graph nodes have the same string form; node names must be distinct")
    if not nx.is_directed_acyclic_graph(graph):
        cycle = " -> ".join(label[u] for u, _ in nx.find_cycle(graph))
        raise DataError(f"the graph has a cycle ({cycle}); an ICM model needs a DAG")
    names = [label[n] for n in graph.nodes] if names is None else [str(n) for n in names]
    missing = [n for n in names if n not in set(label.values())]
    extra = [v for v in label.values() if v not in names]
    if missing or extra:
        what = (
            f"column '{missing[0]}' has no graph node"
            if missing
            else f"graph node '{extra[0]}' has no column"
        )
        raise DataError(
            f"{what}; graph nodes {sorted(label.values())} must match the columns {names}"
        )
    if len(set(names)) != len(names):
        raise DataError(f"column names {names} repeat a name")
    col = {n: names.index(label[n]) for n in graph.nodes}
    roots = {n for n in graph.nodes if graph.in_degree(n) == 0}
    if isinstance(regime, str):
        if regime not in _REGIMES:
            raise DataError(
                f"unknown regime {regime!r}; use one of {list(_REGIMES)} or a set of nodes"
            )
        varying = {
            "both": set(graph.nodes),
            "cause": roots,
            "mechanism": set(graph.nodes) - roots,
        }[regime]
    else:
        wanted = {str(v) for v in regime}
        unknown = sorted(wanted - set(label.values()))
        if unknown:
            raise DataError(f"varying node(s) {unknown} are not in the graph")
        varying = {n for n in graph.nodes if label[n] in wanted}
    specs = []
    for n in nx.lexicographical_topological_sort(graph, key=lambda v: col[v]):
        parents = tuple(sorted(graph.predecessors(n), key=lambda p: col[p]))
        pnames = [label[p] for p in parents]
        if family == "anm":
            feats = tuple(f"tanh({p}{-c:+g})" for p in pnames for c in ANM_CENTRES)
        elif family == "categorical":
            feats = tuple(f"{p}={k}" for p in pnames for k in range(1, num_categories))
        else:
            feats = tuple(pnames)
        specs.append(_Node(label[n], col[n], tuple(col[p] for p in parents), n in varying, feats))
    taken = set(names)
    for s in specs:
        for site in _param_sites(s, family, num_categories):
            if site in taken:
                raise DataError(
                    f"node name '{site}' clashes with a parameter site of node '{s.name}'; "
                    "rename it"
                )
    return specs


def _param_shapes(
    node: _Node, family: str, num_categories: int
) -> dict[str, tuple[tuple[int, ...], tuple[str, ...]]]:
    """Event shape and axis names of each parameter of one mechanism (without the env axis)."""
    out_shape, out_dims = ((), ())
    if family == "categorical":
        out_shape, out_dims = (num_categories - 1,), (f"{node.name}_level",)
    shapes = {"bias": (out_shape, out_dims)}
    if node.features:
        shapes["weight"] = ((len(node.features),) + out_shape, (f"{node.name}_feature",) + out_dims)
    if family in ("linear_gaussian", "anm"):
        shapes["log_noise"] = ((), ())
    return shapes


def _param_sites(node: _Node, family: str, num_categories: int) -> list[str]:
    sites = []
    for p in _param_shapes(node, family, num_categories):
        sites.append(f"{node.name}_{p}")
        if node.varies:
            sites += [f"{node.name}_{p}_mu", f"{node.name}_{p}_tau"]
    return sites


def site_dims(
    graph: nx.DiGraph,
    family: Family = "linear_gaussian",
    regime: Regime | Collection[str] = "both",
    names: Sequence[str] | None = None,
    num_categories: int = 3,
) -> tuple[dict[str, tuple[str, ...]], dict[str, list[str]]]:
    """Named axes of every site of :func:`icm_model` (draw axes and the env singleton excluded).

    Returns
    -------
    dims : dict
        Site name to axis names.  Per-environment parameters start with ``"env"``; data sites are
        ``("env", "sample")``; hyperparameters and shared parameters have only event axes, e.g.
        ``("Y_feature",)`` for the coefficients of ``Y`` on its parents' features.
    coords : dict
        Labels of the event axes: ``"<node>_feature"`` (parent names for ``linear_gaussian`` and
        ``binary``, ``tanh(p-c)`` for ``anm``, ``p=k`` indicator of level ``k`` for
        ``categorical``) and ``"<node>_level"`` (levels ``1..K-1``; level 0 is the reference).
    """
    specs = _node_specs(graph, names, family, regime, num_categories)
    dims: dict[str, tuple[str, ...]] = {}
    coords: dict[str, list[str]] = {}
    for s in specs:
        dims[s.name] = ("env", "sample")
        if s.features:
            coords[f"{s.name}_feature"] = list(s.features)
        if family == "categorical":
            coords[f"{s.name}_level"] = [str(k) for k in range(1, num_categories)]
        for p, (_, pdims) in _param_shapes(s, family, num_categories).items():
            site = f"{s.name}_{p}"
            if s.varies:
                dims[site] = ("env",) + pdims
                dims[f"{site}_mu"] = dims[f"{site}_tau"] = pdims
            else:
                dims[site] = pdims
    return dims, coords


# ------------------------------------------------------------------------------ the model
def _event(d: dist.Distribution, shape: tuple[int, ...]) -> dist.Distribution:
    return d.expand(shape).to_event(len(shape)) if shape else d


def _parameter(node: _Node, p: str, shape, env_plate, prior: ICMPrior):
    """Sample one mechanism parameter: hierarchical inside the env plate or shared outside it."""
    site = f"{node.name}_{p}"
    noise = p == "log_noise"
    loc, scale = (prior.noise_loc, prior.noise_scale) if noise else (0.0, prior.loc_scale)
    if not node.varies:
        return numpyro.sample(site, _event(dist.Normal(loc, scale), shape))
    mu = numpyro.sample(f"{site}_mu", _event(dist.Normal(loc, scale), shape))
    spread = prior.noise_scale if noise else prior.spread_scale
    tau = numpyro.sample(f"{site}_tau", _event(dist.HalfNormal(spread), shape))
    with env_plate:
        return numpyro.sample(site, dist.Normal(mu, tau).to_event(len(shape)))


def _features(family: str, xpa: Array, num_categories: int) -> Array:
    """phi(x_pa), shape (env, sample, feature), from the parents' values (env, sample, parent)."""
    if family == "anm":
        z = jnp.tanh(xpa[..., None] - jnp.asarray(ANM_CENTRES))
        return z.reshape(z.shape[:-2] + (-1,))
    if family == "categorical":
        z = jax.nn.one_hot(xpa.astype(jnp.int32), num_categories)[..., 1:]
        return z.reshape(z.shape[:-2] + (-1,))
    return xpa.astype(jnp.result_type(float))


def icm_model(
    graph: nx.DiGraph,
    num_envs: int,
    num_samples: int,
    family: Family = "linear_gaussian",
    regime: Regime | Collection[str] = "both",
    x: Array | None = None,
    mask: Array | None = None,
    *,
    names: Sequence[str] | None = None,
    prior: ICMPrior = ICMPrior(),
    num_categories: int = 3,
) -> Array:
    r"""The exchangeable ICM model of a DAG, with per-environment or shared mechanisms.

    For every node ``i`` in topological order, with parents' features
    :math:`\phi_i = \phi(x_{e,n,\mathrm{pa}(i)})` and parameters :math:`(b, w, s)` (sites
    ``bias``, ``weight``, ``log_noise``) that are per-environment (:math:`b_{e,i}` etc.,
    hierarchical, see :class:`ICMPrior`) when the mechanism varies and shared otherwise:

    * ``linear_gaussian``, :math:`\phi_i = x_{e,n,\mathrm{pa}(i)}`:
      :math:`X_{e,n,i} \sim \mathcal N(b_{e,i} + w_{e,i}^\top \phi_i, e^{2 s_{e,i}})`;
    * ``anm``: the same with the fixed nonlinear basis
      :math:`\phi_i = (\tanh(x_p - c))_{p \in \mathrm{pa}(i),\, c \in C}`,
      :math:`C` = :data:`ANM_CENTRES`;
    * ``binary``, :math:`\phi_i = x_{e,n,\mathrm{pa}(i)}`:
      :math:`X_{e,n,i} \sim \mathrm{Bernoulli}(\sigma(b_{e,i} + w_{e,i}^\top \phi_i))`;
    * ``categorical``, :math:`\phi_i` the indicators of the parents' levels ``1..K-1``:
      :math:`X_{e,n,i} \sim
      \mathrm{Categorical}(\mathrm{softmax}(0, b_{e,i} + W_{e,i}^\top \phi_i))`
      (level 0 is the reference; :math:`b \in \mathbb R^{K-1}`).

    Parameters
    ----------
    graph : networkx.DiGraph
        Any DAG; node labels become site names (see the module docstring).
    num_envs, num_samples : int
        ``E`` and ``N`` (the padded size when data are ragged).
    family : {"linear_gaussian", "anm", "binary", "categorical"}
    regime : {"both", "cause", "mechanism"} or collection of node names
        Which mechanisms vary across environments: all (causal de Finetti), the roots only (IEM
        cause variability), the non-roots only (IEM mechanism variability), or the named nodes.
        The other mechanisms' parameters are shared sites outside the env plate.
    x : array, shape (env, sample, var), optional
        Observed data, columns ordered as ``names``.  Without it the program simulates.
    mask : bool array, shape (env, sample), optional
        ``True`` for real samples; padding contributes nothing to the log density.
    names : sequence of str, optional
        Column order of ``x``; defaults to ``list(graph.nodes)``.
    prior : ICMPrior
    num_categories : int
        ``K`` for the ``categorical`` family (values ``0..K-1``).

    Returns
    -------
    array, shape (env, sample, var)
        The variables in column order (data or draws; interventions applied).

    Examples
    --------
    >>> import causalid, jax, networkx as nx
    >>> from numpyro.infer import Predictive
    >>> from causalid.models.exchangeable import icm_model
    >>> g = nx.DiGraph([("X", "Y")])
    >>> predictive = Predictive(icm_model, num_samples=3)
    >>> draws = predictive(jax.random.PRNGKey(0), g, 4, 5, regime="cause")
    >>> draws["Y"].shape, draws["X_bias"].shape, draws["Y_weight"].shape
    ((3, 4, 5), (3, 4, 1), (3, 1))
    """
    specs = _node_specs(graph, names, family, regime, num_categories)
    d = len(specs)
    if x is not None:
        x = jnp.asarray(x)
        if x.shape != (num_envs, num_samples, d):
            raise DataError(
                f"x has shape {x.shape}; expected (env, sample, var) = {(num_envs, num_samples, d)}"
            )
    if mask is not None:
        mask = jnp.asarray(mask, dtype=bool)
        if mask.shape != (num_envs, num_samples):
            raise DataError(
                f"mask has shape {mask.shape}; expected (env, sample) = {(num_envs, num_samples)}"
            )
    env_plate = numpyro.plate("env", num_envs, dim=-2)
    columns: list[Array | None] = [None] * d
    for s in specs:
        par = {
            p: _parameter(s, p, shape, env_plate, prior)
            for p, (shape, _) in _param_shapes(s, family, num_categories).items()
        }
        eta = par["bias"]
        if s.features:
            xpa = jnp.stack([columns[c] for c in s.parents], axis=-1)
            phi = _features(family, xpa, num_categories)
            if family == "categorical":
                eta = eta + (phi[..., None] * par["weight"]).sum(-2)
            else:
                eta = eta + (phi * par["weight"]).sum(-1)
        if family in ("linear_gaussian", "anm"):
            fn = dist.Normal(eta, jnp.exp(par["log_noise"]))
        elif family == "binary":
            fn = dist.Bernoulli(logits=eta)
        else:
            shape = jnp.broadcast_shapes(jnp.shape(eta), (num_envs, 1, num_categories - 1))
            eta = jnp.broadcast_to(eta, shape)
            fn = dist.Categorical(logits=jnp.concatenate([jnp.zeros(shape[:-1] + (1,)), eta], -1))
        obs = None
        if x is not None:
            obs = x[..., s.column]
            if family in ("binary", "categorical"):
                obs = obs.astype(jnp.int32)
        with env_plate, numpyro.plate("sample", num_samples, dim=-1):
            if mask is not None:
                fn = fn.mask(mask)
            value = numpyro.sample(s.name, fn, obs=obs)
        columns[s.column] = jnp.broadcast_to(value, (num_envs, num_samples))
    return jnp.stack(columns, axis=-1)


def intervene(model: Callable, interventions: Mapping[str, Array | float]) -> Callable:
    """Hard intervention ``do(X_i = v)`` on an unchanged model, by :class:`numpyro.handlers.do`.

    The value is substituted for the data site of each named node (a scalar, or an array that
    broadcasts to ``(env, sample)``); the node's descendants are then drawn from their own
    mechanisms given the new value, while non-descendants keep their draws (the original site is
    still sampled, so the random stream is unchanged).

    Examples
    --------
    >>> import causalid, jax, networkx as nx
    >>> from causalid.models.exchangeable import icm_model, intervene
    >>> from numpyro import handlers
    >>> g = nx.DiGraph([("W", "X"), ("X", "Y")])             # columns W, X, Y
    >>> key = jax.random.PRNGKey(1)
    >>> x = handlers.seed(icm_model, key)(g, 3, 4)
    >>> x_do = handlers.seed(intervene(icm_model, {"X": 2.0}), key)(g, 3, 4)
    >>> bool((x_do[..., 1] == 2.0).all()), bool((x_do[..., 0] == x[..., 0]).all())
    (True, True)
    >>> bool((x_do[..., 2] != x[..., 2]).all())
    True

    In a trace (and in :class:`~numpyro.infer.Predictive` output) the site ``X`` keeps the
    natural draw; the intervened value reaches the descendants and the model's return value.
    """
    return handlers.do(model, data={str(k): jnp.asarray(v) for k, v in interventions.items()})


@float64
def simulate(
    graph: nx.DiGraph,
    key: Array,
    num_envs: int,
    num_samples: int,
    family: Family = "linear_gaussian",
    regime: Regime | Collection[str] = "both",
    *,
    names: Sequence[str] | None = None,
    prior: ICMPrior = ICMPrior(),
    num_categories: int = 3,
) -> tuple[Array, dict[str, Array]]:
    """Draw one data set and its ground-truth parameters from :func:`icm_model`.

    It runs the program once under :class:`numpyro.handlers.seed` (eagerly, which is cheaper
    than compiling it for a single draw); :class:`numpyro.infer.Predictive` on
    :func:`icm_model` gives draws from the same distribution in batches.

    Returns
    -------
    x : array, shape (env, sample, var), float64
        Columns in the order of ``names`` (default ``list(graph.nodes)``).
    params : dict
        Every parameter site; per-environment ones have shape ``(env, *event)`` (the singleton
        sample axis of the model is dropped), see :func:`site_dims`.
    """
    kwargs = dict(
        graph=graph,
        num_envs=num_envs,
        num_samples=num_samples,
        family=family,
        regime=regime,
        names=names,
        prior=prior,
        num_categories=num_categories,
    )
    dims, _ = site_dims(graph, family, regime, names, num_categories)
    tracer = handlers.trace(handlers.seed(icm_model, key))
    x = tracer(**kwargs).astype(jnp.float64)
    params = {
        k: (site["value"][:, 0] if dims[k][:1] == ("env",) else site["value"])
        for k, site in tracer.trace.items()
        if site["type"] == "sample" and k in dims and dims[k] != ("env", "sample")
    }
    return x, params


# ------------------------------------------------------------------------------ reference DGPs
def _check_regime(regime: str) -> None:
    if regime not in _REGIMES:
        raise DataError(f"unknown regime {regime!r}; use one of {list(_REGIMES)}")


def bivariate_continuous_model(
    num_envs: int, num_samples: int = 2, regime: Regime = "both"
) -> Array:
    r"""Reference bivariate continuous SCM of causal de Finetti (Guo et al. 2023, arXiv 2203.15756) as a program.

    .. math::

        \ell &\sim \mathrm{Uniform}\{0, 1, 2\} \quad (0: X \to Y,\ 1: Y \to X,\ 2: \text{no edge}),
        \qquad a, b, c, d, k \sim \mathrm{Uniform}\{1..9\}, \\
        (\theta_e, \psi_e) &\sim \mathcal U(-1, 1)^2, \qquad
        \varepsilon_{e,n} \sim \mathrm{Laplace}((\theta_e, \psi_e), 1), \\
        A &= \begin{pmatrix} 1 & 0 \\ a & b \end{pmatrix},\;
             \begin{pmatrix} c & d \\ 0 & 1 \end{pmatrix},\; I \quad (\ell = 0, 1, 2), \\
        (X, Y)_{e,n} &= A \varepsilon_{e,n} + k\, z_e (A - I)\, \varepsilon_{e,n}^{2},

    where :math:`z_e = 1` in exactly :math:`\lfloor E/2 \rfloor` environments chosen uniformly
    without replacement (site ``order_u``: one uniform per environment, the smallest ranks win).
    Under ``regime="cause"`` the effect's noise location is one shared draw (site
    ``loc_shared``) instead of per environment; under ``"mechanism"`` the cause's is shared.  The
    cause is X for labels 0 and 2 and Y for label 1.

    Sites: ``label``, ``coef`` = :math:`(a, b, c, d, k)`, ``loc_env`` (env, 1, 2), ``loc_shared``
    (2,), ``order_u`` (env, 1), ``eps`` (env, sample, 2) and the deterministic ``theta``, ``psi``
    (env,), ``nonlinear`` (env,) and ``x`` (env, sample, 2).  Condition or intervene on ``label``
    with handlers to fix the structure.
    """
    _check_regime(regime)
    label = numpyro.sample("label", dist.Categorical(probs=jnp.ones(3) / 3))
    coef = numpyro.sample("coef", dist.DiscreteUniform(1, 9).expand([5]).to_event(1))
    a, b, c, d, k = coef.astype(jnp.result_type(float))
    loc_shared = numpyro.sample("loc_shared", dist.Uniform(-1.0, 1.0).expand([2]).to_event(1))
    with numpyro.plate("env", num_envs, dim=-2):
        loc_env = numpyro.sample("loc_env", dist.Uniform(-1.0, 1.0).expand([2]).to_event(1))
        order_u = numpyro.sample("order_u", dist.Uniform(0.0, 1.0))
    # The cause is variable 0 (X) for labels 0 and 2, variable 1 (Y) for label 1.
    cause = jnp.where(label == 1, 1, 0)
    is_cause = jnp.arange(2) == cause
    varies = {"both": jnp.ones(2, bool), "cause": is_cause, "mechanism": ~is_cause}[regime]
    loc = jnp.where(varies, loc_env[:, 0], loc_shared)  # (env, 2)
    numpyro.deterministic("theta", loc[:, 0])
    numpyro.deterministic("psi", loc[:, 1])
    with numpyro.plate("env", num_envs, dim=-2), numpyro.plate("sample", num_samples, dim=-1):
        eps = numpyro.sample("eps", dist.Laplace(loc[:, None, :], 1.0).to_event(1))
    A = jnp.stack([jnp.array([[1.0, 0.0], [a, b]]), jnp.array([[c, d], [0.0, 1.0]]), jnp.eye(2)])[
        label
    ]
    rank = jnp.argsort(jnp.argsort(order_u[:, 0]))
    nonlinear = numpyro.deterministic("nonlinear", rank < num_envs // 2)
    lin = jnp.einsum("ij,enj->eni", A, eps)
    extra = k * jnp.einsum("ij,enj->eni", A - jnp.eye(2), eps**2)
    return numpyro.deterministic("x", lin + jnp.where(nonlinear[:, None, None], extra, 0.0))


@float64
def scm_bivariate_continuous(
    key: Array, num_envs: int, num_samples: int = 2, regime: Regime = "both"
) -> tuple[Array, Array]:
    """One data set of :func:`bivariate_continuous_model` from a PRNG key.

    Compiled with :func:`jax.jit` and pure in ``key`` (``num_envs``, ``num_samples`` and
    ``regime`` are static), so
    ``jax.vmap(lambda k: scm_bivariate_continuous(k, E))(keys)`` makes replicate data sets at once.

    Returns
    -------
    x : array, shape (env, sample, 2), float64
        Columns ``(X, Y)``.
    label : int array, shape ()
        0 = X→Y, 1 = Y→X, 2 = no edge.

    Examples
    --------
    >>> import causalid, jax
    >>> from causalid.models.exchangeable import scm_bivariate_continuous
    >>> keys = jax.random.split(jax.random.PRNGKey(0), 5)
    >>> x, label = jax.vmap(lambda k: scm_bivariate_continuous(k, 10))(keys)
    >>> x.shape, label.shape
    ((5, 10, 2, 2), (5,))
    """
    _check_regime(regime)
    sites = _run_bivariate(key, num_envs, num_samples, regime)
    return sites["x"], sites["label"]


def bivariate_adjacency(label) -> np.ndarray:
    """Adjacency matrices ``(..., 2, 2)`` over ``(X, Y)`` of :func:`scm_bivariate_continuous`
    labels (0 = X→Y, 1 = Y→X, 2 = no edge)."""
    label = np.asarray(label)
    adj = np.zeros(label.shape + (2, 2), dtype=int)
    adj[label == 0, 0, 1] = 1
    adj[label == 1, 1, 0] = 1
    return adj


def _covering_dag(key: Array, num_vars: int) -> Array:
    """Random DAG on ``0..d-1``: edges u<v i.i.d. with probability 1/2, redrawn while a node is
    isolated (rejection in :func:`jax.lax.while_loop`)."""
    upper = jnp.triu(jnp.ones((num_vars, num_vars), bool), k=1)

    def draw(k):
        return jax.random.bernoulli(k, 0.5, (num_vars, num_vars)) & upper

    def isolated(adj):
        return jnp.any(~(adj.any(0) | adj.any(1)))

    def body(state):
        k, _ = state
        k, sub = jax.random.split(k)
        return k, draw(sub)

    key, sub = jax.random.split(key)
    _, adj = lax.while_loop(lambda s: isolated(s[1]), body, (key, draw(sub)))
    return adj.astype(jnp.int32)


def multivariate_binary_model(num_envs: int, num_samples: int = 2, num_vars: int = 3) -> Array:
    r"""Reference multivariate binary SCM of causal de Finetti (Guo et al. 2023, arXiv 2203.15756) as a program.

    .. math::

        G &\sim \text{edges } u \to v\ (u < v) \text{ i.i.d. Bernoulli}(1/2)
             \mid \text{every node on an edge}, \\
        \theta_{e,i} &\sim \mathrm{Beta}(1, 3), \qquad
            U_{e,n,i} \sim \mathrm{Bernoulli}(\theta_{e,i}), \\
        X_{e,n,i} &= U_{e,n,i} \ \text{(root)}, \qquad
        X_{e,n,i} = U_{e,n,i} \oplus \textstyle\bigwedge_{p \in \mathrm{pa}(i)} X_{e,n,p}
            \ \text{(child)}.

    Sites: ``adjacency`` (deterministic (var, var) int, ``adjacency[u, v] = 1`` for ``u → v``,
    drawn by rejection in :func:`jax.lax.while_loop` from the key of ``numpyro.prng_key()``;
    replace it with :class:`numpyro.handlers.substitute` to fix the graph), ``theta``
    (env, 1, var; drawn as Kumaraswamy(1, 3), which is Beta(1, 3) exactly), ``noise``
    (env, sample, var) and the deterministic ``x`` (env, sample, var).
    """
    if num_vars < 2:
        raise DataError(
            f"num_vars={num_vars}; a DAG where every node is on an edge needs at least 2"
        )
    adj = numpyro.deterministic("adjacency", _covering_dag(numpyro.prng_key(), num_vars))
    with numpyro.plate("env", num_envs, dim=-2):
        # Kumaraswamy(1, 3) is Beta(1, 3) exactly (density 3 (1 - t)^2) and samples by inverting
        # its CDF, which compiles far faster than the gamma-based Beta sampler.
        theta = numpyro.sample("theta", dist.Kumaraswamy(1.0, 3.0).expand([num_vars]).to_event(1))
        with numpyro.plate("sample", num_samples, dim=-1):
            u = numpyro.sample("noise", dist.Bernoulli(theta).to_event(1)).astype(bool)
    pa = adj.astype(bool)
    cols: list[Array] = []
    for i in range(num_vars):
        if i == 0:
            cols.append(u[..., 0])
            continue
        prev = jnp.stack(cols, -1)  # (env, sample, i)
        all_pa = jnp.all(prev | ~pa[:i, i], axis=-1)
        cols.append(u[..., i] ^ (pa[:i, i].any() & all_pa))
    return numpyro.deterministic("x", jnp.stack(cols, -1).astype(jnp.result_type(float)))


@float64
def scm_multivariate_binary(
    key: Array, num_envs: int, num_samples: int = 2, num_vars: int = 3
) -> tuple[Array, Array]:
    """One data set of :func:`multivariate_binary_model` from a PRNG key (``jax.vmap``-able).

    Returns
    -------
    x : array, shape (env, sample, var), float64 with values 0/1
    adjacency : int array, shape (var, var)
        ``adjacency[u, v] = 1`` for an edge ``u → v``; only ``u < v`` occurs.
    """
    if num_vars < 2:
        raise DataError(
            f"num_vars={num_vars}; a DAG where every node is on an edge needs at least 2"
        )
    sites = _run_binary(key, num_envs, num_samples, num_vars)
    return sites["x"], sites["adjacency"]


def _site_values(model, key, *args) -> dict[str, Array]:
    """Values of every sample and deterministic site of one seeded run of ``model``."""
    tr = handlers.trace(handlers.seed(model, key)).get_trace(*args)
    return {k: s["value"] for k, s in tr.items() if s["type"] in ("sample", "deterministic")}


# compiled once per static configuration; the public functions return a subset of the sites
_run_bivariate = jax.jit(
    partial(_site_values, bivariate_continuous_model), static_argnums=(1, 2, 3)
)
_run_binary = jax.jit(partial(_site_values, multivariate_binary_model), static_argnums=(1, 2, 3))


class InterventionalSample(NamedTuple):
    """Data simulated by :func:`simulate_interventions`.

    Attributes
    ----------
    x : ndarray, shape (env, sample, var)
    adjacency : ndarray, shape (var, var), int
        The true DAG, ``adjacency[i, j] = 1`` for ``names[i] -> names[j]``.
    changed : ndarray, shape (env, var), bool
        The true change indicators (the intervention targets of each environment).
    names : list of str
    """

    x: np.ndarray
    adjacency: np.ndarray
    changed: np.ndarray
    names: list


@float64
def simulate_interventions(
    key: Array,
    graph: nx.DiGraph,
    targets: Sequence[Collection[str]],
    num_samples: int,
    kind: str = "soft",
    weight_range: tuple[float, float] = (0.5, 1.5),
) -> InterventionalSample:
    r"""Linear-Gaussian data from one observational and several intervened environments.

    :func:`icm_model` with every mechanism shared (``regime=()``) is the observational model;
    its parameters are drawn once (weights :math:`\pm U(\text{weight\_range})`, biases
    :math:`N(0, 1)`, log noise scales :math:`U(\log 0.5, \log 1)`) and fixed with
    :class:`numpyro.handlers.substitute`.  The intervention on node ``i`` in environment ``e``
    is another substitution of ``i``'s parameter sites, per environment: ``soft`` draws new
    weights, bias and noise scale; ``perfect`` sets the weights to zero (parents cut) with a
    new bias and noise scale.  Every other mechanism keeps its parameters.

    Parameters
    ----------
    key : PRNG key
    graph : networkx.DiGraph
    targets : sequence of collections of node names
        One entry per environment (empty = observational).
    num_samples : int
    kind : {"soft", "perfect"}
    weight_range : (float, float)

    Returns
    -------
    InterventionalSample

    Examples
    --------
    >>> import jax, networkx as nx
    >>> sim = simulate_interventions(jax.random.PRNGKey(0), nx.DiGraph([("X", "Y")]),
    ...                              [[], ["X"], ["Y"]], 50, kind="perfect")
    >>> sim.x.shape, sim.changed.astype(int).tolist()
    ((3, 50, 2), [[0, 0], [1, 0], [0, 1]])
    """
    if kind not in ("soft", "perfect"):
        raise DataError(f"unknown intervention kind {kind!r}; use 'soft' or 'perfect'")
    names = [str(n) for n in graph.nodes]
    specs = _node_specs(graph, names, "linear_gaussian", (), 3)
    num_envs = len(targets)
    changed = np.zeros((num_envs, len(names)), dtype=bool)
    for e, tg in enumerate(targets):
        for t in tg:
            if str(t) not in names:
                raise DataError(f"target {t!r} of environment {e} is not a node of the graph")
            changed[e, names.index(str(t))] = True
    lo, hi = weight_range

    def draw(k, s):
        kw, ks, kb, kn = jax.random.split(k, 4)
        k_par = max(len(s.parents), 1)
        w = jax.random.uniform(kw, (k_par,), minval=lo, maxval=hi) * jnp.where(
            jax.random.bernoulli(ks, 0.5, (k_par,)), 1.0, -1.0)
        return (w[: len(s.parents)], jax.random.normal(kb),
                jax.random.uniform(kn, minval=jnp.log(0.5), maxval=0.0))

    k_base, k_iv, k_data = jax.random.split(key, 3)
    sites = {}
    for s in specs:
        w0, b0, n0 = draw(jax.random.fold_in(k_base, s.column), s)
        ws, bs, ns = [], [], []
        for e in range(num_envs):
            w, b, n = w0, b0, n0
            if changed[e, s.column]:
                w, b, n = draw(jax.random.fold_in(k_iv, e * len(names) + s.column), s)
                if kind == "perfect":
                    w = jnp.zeros_like(w)
            ws.append(w), bs.append(b), ns.append(n)
        sites[f"{s.name}_bias"] = jnp.stack(bs)[:, None]
        sites[f"{s.name}_log_noise"] = jnp.stack(ns)[:, None]
        if s.parents:
            sites[f"{s.name}_weight"] = jnp.stack(ws)[:, None, :]
    model = handlers.substitute(handlers.seed(icm_model, k_data), data=sites)
    x = model(graph, num_envs, num_samples, "linear_gaussian", (), names=names)
    adj = nx.to_numpy_array(graph, nodelist=list(graph.nodes), weight=None).astype(int)
    return InterventionalSample(np.asarray(x), adj, changed, names)
