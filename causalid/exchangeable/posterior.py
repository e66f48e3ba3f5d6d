r"""Posterior of the mechanism parameters of a chosen DAG, by NUTS on the exchangeable ICM model.

The model is :func:`causalid.models.exchangeable.icm_model`: for each node ``i`` and environment
``e``,

.. math::

    X_{e,n,i} \mid x_{e,n,\mathrm{pa}(i)}
        \sim p_i(\cdot \mid \phi(x_{e,n,\mathrm{pa}(i)}), \theta_{e,i}),
    \qquad \theta_{e,i} \sim \mathcal N(\mu_i, \tau_i^2)

(hierarchical) for the mechanisms that vary across environments, and one shared
:math:`\theta_i` for the others.  Padding of ragged data is masked out of the likelihood.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pandas as pd
import xarray as xr
from numpyro import handlers
from numpyro.infer import MCMC, NUTS
from numpyro.infer.reparam import LocScaleReparam

from causalid._progress import show_progress
from causalid._typing import Family, Regime
from causalid._x64 import float64
from causalid.errors import ConvergenceWarning, DataError
from causalid.exchangeable.data import MultiEnvData
from causalid.models.exchangeable import ICMPrior, icm_model, site_dims

__all__ = ["Diagnostics", "ParameterPosterior", "fit_parameters"]

_PAD = "_env_singleton"  # the model's size-1 sample-plate axis of per-environment parameters


@dataclass(frozen=True)
class Diagnostics:
    """Convergence summary of a NUTS run.

    Attributes
    ----------
    max_r_hat : float
        Largest rank-normalised split :math:`\\hat R` over all parameter entries.
    min_ess_bulk : float
        Smallest bulk effective sample size over all parameter entries.
    num_divergences : int
        Divergent transitions after warm-up, all chains.
    num_chains : int
    """

    max_r_hat: float
    min_ess_bulk: float
    num_divergences: int
    num_chains: int

    R_HAT_MAX = 1.01
    ESS_PER_CHAIN_MIN = 100

    def problems(self) -> list[str]:
        """Human-readable list of failed checks (empty when the run looks fine)."""
        out = []
        if not self.max_r_hat <= self.R_HAT_MAX:
            out.append(f"max r_hat {self.max_r_hat:.3f} > {self.R_HAT_MAX}")
        if not self.min_ess_bulk >= self.ESS_PER_CHAIN_MIN * self.num_chains:
            out.append(
                f"min bulk ESS {self.min_ess_bulk:.0f} < {self.ESS_PER_CHAIN_MIN} per chain "
                f"({self.num_chains} chains)"
            )
        if self.num_divergences:
            out.append(f"{self.num_divergences} divergent transition(s)")
        return out

    @property
    def ok(self) -> bool:
        return not self.problems()


@dataclass(frozen=True)
class ParameterPosterior:
    """Result of :func:`fit_parameters`.

    Attributes
    ----------
    idata : arviz.InferenceData
        Posterior draws with named dims: ``env`` (labels ``data.envs``) for per-environment
        sites, ``<node>_feature`` (parent or basis-feature names) for coefficients, ``<node>_level``
        for categorical outputs; also sample stats, observed data and, when asked for, the
        pointwise log likelihood.
    diagnostics : Diagnostics
    graph : networkx.DiGraph
    family, regime
        As passed to :func:`fit_parameters`.
    """

    idata: az.InferenceData
    diagnostics: Diagnostics
    graph: nx.DiGraph
    family: str
    regime: object

    def summary(self, **kwargs) -> pd.DataFrame:
        """:func:`arviz.summary` of the posterior (keyword arguments are passed on)."""
        import arviz as az  # imported when used: arviz (and matplotlib) cost a second at start-up

        return az.summary(self.idata, **kwargs)


@float64
def fit_parameters(
    data: MultiEnvData,
    graph: nx.DiGraph,
    family: Family = "linear_gaussian",
    regime: Regime | Collection[str] = "both",
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 2,
    key: int | jax.Array = 0,
    progress: bool | None = None,
    *,
    prior: ICMPrior = ICMPrior(),
    num_categories: int = 3,
    noncentered: bool | Collection[str] = False,
    log_likelihood: bool = False,
) -> ParameterPosterior:
    r"""Sample the posterior of the mechanism parameters of ``graph`` given multi-environment data.

    Parameters
    ----------
    data : MultiEnvData
        Ragged environments are fine: the padding is masked out of the likelihood.
    graph : networkx.DiGraph
        A DAG whose nodes are exactly ``data.names``.
    family, regime, prior, num_categories
        See :func:`causalid.models.exchangeable.icm_model`.
    num_warmup, num_samples, num_chains : int
        NUTS settings; chains run vectorised on one device, in parallel on several.
    key : int or PRNG key
    progress : bool or None
        NUTS progress bar (None, the default: shown when someone watches, see
        :mod:`causalid._progress`).
    noncentered : bool or collection of str
        Per-environment parameters to sample non-centred, :math:`\theta_e = \mu + \tau z_e` with
        :math:`z_e \sim \mathcal N(0, 1)` (extra sites ``<site>_decentered``): ``True`` for all,
        or parameter kinds (``"bias"``, ``"weight"``, ``"log_noise"``) and/or site names
        (``"X_bias"``).  The others are sampled as written (centred), which suits data-rich
        environments; non-centring removes the funnel when a mechanism barely varies (small
        :math:`\tau`) relative to what one environment's data pin down.  Divergences are the
        symptom that calls for it.
    log_likelihood : bool
        Also store the pointwise log likelihood (group ``log_likelihood``, for
        :func:`arviz.loo` / :func:`arviz.compare`); padded samples have log likelihood 0.

    Returns
    -------
    ParameterPosterior

    Warns
    -----
    ConvergenceWarning
        When max r_hat > 1.01, min bulk ESS < 100 per chain, or any transition diverged.
    """
    if not isinstance(data, MultiEnvData):
        raise DataError(f"data must be a MultiEnvData, got {type(data).__name__}")
    if not isinstance(graph, nx.DiGraph):
        raise DataError(f"graph must be a networkx.DiGraph, got {type(graph).__name__}")
    nodes = [str(n) for n in graph.nodes]
    for n in nodes:
        if n not in data.names:
            raise DataError(
                f"graph node '{n}' is not a variable of the data; variables: {list(data.names)}"
            )
    for n in data.names:
        if n not in nodes:
            raise DataError(
                f"variable '{n}' of the data is not a node of the graph; add it (maybe isolated)"
            )
    _check_values(data, family, num_categories)

    model_kwargs = dict(
        graph=graph,
        num_envs=data.num_envs,
        num_samples=data.values.shape[1],
        family=family,
        regime=regime,
        x=jnp.asarray(data.values),
        mask=jnp.asarray(data.mask),
        names=data.names,
        prior=prior,
        num_categories=num_categories,
    )
    rng = jax.random.PRNGKey(key) if isinstance(key, (int, np.integer)) else key
    chain_method = "vectorized" if jax.local_device_count() < num_chains else "parallel"
    dims, coords = site_dims(graph, family, regime, data.names, num_categories)
    per_env = [k for k, v in dims.items() if v[:1] == ("env",) and k not in nodes]
    model = icm_model
    decentre = select_noncentered(noncentered, per_env, nodes)
    if decentre:
        model = handlers.reparam(icm_model, config={k: LocScaleReparam(0.0) for k in decentre})
        dims.update({f"{k}_decentered": dims[k] for k in decentre})
        per_env += [f"{k}_decentered" for k in decentre]
    mcmc = MCMC(
        NUTS(model),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=chain_method,
        progress_bar=show_progress(progress),
    )
    mcmc.run(rng, **model_kwargs)

    # per-environment parameters carry the sample plate's singleton axis inside the model
    dims = {k: (v[:1] + (_PAD,) + v[1:] if k in per_env else v) for k, v in dims.items()}
    coords = {**coords, "env": list(data.envs), "sample": list(range(data.values.shape[1]))}
    import arviz as az

    idata = az.from_numpyro(
        mcmc,
        coords=coords,
        dims={k: list(v) for k, v in dims.items()},
        log_likelihood=log_likelihood,
    )
    idata.map(lambda ds: ds.squeeze(_PAD, drop=True) if _PAD in ds.dims else ds, inplace=True)

    diag = _diagnostics(idata, num_chains)
    if not diag.ok:
        warnings.warn(
            ConvergenceWarning(
                "NUTS diagnostics look bad: " + "; ".join(diag.problems())
                + ". Increase num_warmup/num_samples, try noncentered=True (divergences), "
                "or simplify the model before using these draws."
            ),
            stacklevel=2,
        )
    return ParameterPosterior(
        idata=idata, diagnostics=diag, graph=graph, family=family, regime=regime
    )


def select_noncentered(noncentered, per_env: list[str], nodes: list[str]) -> list[str]:
    if noncentered is True:
        return list(per_env)
    if noncentered is False:
        return []
    if isinstance(noncentered, str):
        noncentered = [noncentered]
    chosen = []
    for name in noncentered:
        hits = [s for s in per_env if s == name or any(s == f"{n}_{name}" for n in nodes)]
        if not hits:
            raise DataError(
                f"noncentered names '{name}', which is no per-environment parameter or kind; "
                f"per-environment parameters here: {per_env}"
            )
        chosen += [h for h in hits if h not in chosen]
    return chosen


def _check_values(data: MultiEnvData, family: str, num_categories: int) -> None:
    if family not in ("binary", "categorical"):
        return
    levels = 2 if family == "binary" else num_categories
    x = data.values[data.mask]
    for j, name in enumerate(data.names):
        bad = ~np.isin(x[:, j], np.arange(levels))
        if bad.any():
            raise DataError(
                f"column '{name}' has value {x[bad, j][0]!r}; family '{family}' needs "
                f"integer codes 0..{levels - 1}"
            )


def _diagnostics(idata: az.InferenceData, num_chains: int) -> Diagnostics:
    import arviz as az

    post = idata.posterior
    halves = post
    if num_chains == 1:  # split-R-hat of one chain: compare its two halves
        n = post.sizes["draw"] // 2
        first = post.isel(draw=slice(0, n))
        second = post.isel(draw=slice(n, 2 * n)).assign_coords(draw=first.draw)
        halves = xr.concat([first, second.assign_coords(chain=[1])], dim="chain")
    with warnings.catch_warnings():
        # a constant entry (e.g. from a stuck chain) gives NaN diagnostics; it is reported below
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = az.rhat(halves)
        ess = az.ess(post, method="bulk")
    r = np.concatenate([np.ravel(rhat[v].values) for v in rhat.data_vars])
    e = np.concatenate([np.ravel(ess[v].values) for v in ess.data_vars])
    max_r = float(np.inf if np.isnan(r).any() else r.max())
    min_e = float(0.0 if np.isnan(e).any() else e.min())
    div = int(idata.sample_stats["diverging"].sum()) if "diverging" in idata.sample_stats else 0
    return Diagnostics(
        max_r_hat=max_r, min_ess_bulk=min_e, num_divergences=div, num_chains=num_chains
    )
