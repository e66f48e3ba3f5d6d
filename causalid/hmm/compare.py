r"""Which HMM mechanism changes across environments, and how many states.

:func:`compare_mechanisms` answers the causal de Finetti question for HMMs (Guo et al. 2023) for a multi-environment data set:
do the transitions (the cause mechanism: initial distribution and transition matrix), the
emissions (the effect mechanism), both or neither vary across environments?  It fits the four
nested models by EM and runs two likelihood-ratio tests against the model in which both vary:

* transitions: :math:`\Lambda_T = 2(\ell_{TE} - \ell_{E})` (null: transitions shared);
* emissions:   :math:`\Lambda_E = 2(\ell_{TE} - \ell_{T})` (null: emissions shared).

In each statistic :math:`\ell_{TE}` is the full model fitted by EM started from the null model's
fit alone (no random restarts), so the statistic is one fixed procedure applied to the data;
the best full fit from every start is reported in ``models`` but does not enter the tests.  With
random restarts the per-environment fits of the full model find spiky optima that the
bootstrap refits do not, and the observed statistic would be compared with a null made by a
different optimiser.

The null distribution of each statistic is calibrated by a parametric bootstrap: data sets are
simulated from the fitted null model with the observed sequence lengths and missing-value
pattern, and the same procedure is applied to each (all replicates at once, ``vmap``-ed EM):
the null model refitted from the generating parameters, the full model from that refit; the
p-value is :math:`(1 + \#\{\Lambda_b \ge \Lambda\}) / (B + 1)`.  ``null="chi2"`` uses Wilks'
asymptotic :math:`\chi^2` instead (fast, approximate: the
parameters sit in the interior, but HMM likelihoods converge slowly to it).

:func:`select_num_states` compares numbers of states by BIC (EM fits) and, on request, by
arviz PSIS-LOO / WAIC on NUTS fits with the one-step-ahead predictive densities
:math:`\log p(y_t \mid y_{0:t-1}, \theta)` as the pointwise terms.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

from causalid._plotting import figure_grid
from causalid._progress import show_progress
from causalid._results import Result
from causalid._x64 import float64
from causalid.dynamics.hmm import hmm_filter
from causalid.errors import DataError
from causalid.hmm.data import SequenceData
from causalid.hmm.em import min_covar_diag, run_em, simulate_like
from causalid.hmm.fit import fit_hmm, vary_from_shared
from causalid.models.hmm import (
    HMMConfig,
    HMMParams,
    emission_log_lik,
    has_partial_rows,
    sequence_log_likelihoods,
    transition_matrices,
)
from causalid.stats.multitest import adjust_pvalues

__all__ = ["MechanismReport", "compare_mechanisms", "select_num_states"]

_MODELS = {"neither": (), "transitions": ("transitions",), "emissions": ("emissions",),
           "both": ("transitions", "emissions")}


@dataclass
class MechanismReport(Result):
    """Outcome of :func:`compare_mechanisms`.

    Attributes
    ----------
    verdict : {"neither", "transitions", "emissions", "both"}
        The mechanisms whose tests reject "shared"; the two tests are Holm-corrected, so under
        "neither" the chance of declaring any change is at most ``alpha``.
    tests : pandas.DataFrame
        One row per mechanism: statistic, degrees of freedom, p-value, null, the full model's
        log-likelihood refitted from the null fit (``full_log_likelihood``), Holm-adjusted p-value
        (``p_adjusted``), varies (``p_adjusted < alpha``).
    models : pandas.DataFrame
        The four fits: varying mechanisms, log-likelihood, parameters, AIC, BIC.
    alpha : float
    null_statistics : dict
        Bootstrap statistics per mechanism (empty for ``null="chi2"``).
    fits : dict of HMMResult
        The four fitted models (not saved by :meth:`save`).
    """

    verdict: str
    tests: pd.DataFrame
    models: pd.DataFrame
    alpha: float
    null: str
    num_envs: int
    null_statistics: dict = field(default_factory=dict)
    fits: dict = field(default_factory=dict, repr=False)

    def summary(self) -> str:
        t = self.tests.set_index("mechanism")
        words = {"neither": "neither mechanism changes: one HMM describes every environment",
                 "transitions": "the transitions (cause mechanism) change across environments; the emissions "
                                "do not",
                 "emissions": "the emissions (effect mechanism) change across environments; the transitions "
                              "do not",
                 "both": "both the transitions and the emissions change across environments"}
        lines = [f"Across {self.num_envs} environments, {words[self.verdict]}."]
        for mech in ("transitions", "emissions"):
            r = t.loc[mech]
            how = (f"parametric bootstrap, {len(self.null_statistics.get(mech, []))} replicates"
                   if self.null == "bootstrap" else f"chi-square, {int(r['df'])} df")
            adj = r.get("p_adjusted", r["p_value"])
            lines.append(f"  {mech}: likelihood ratio {r['statistic']:.2f}, p = {r['p_value']:.3g} ({how}; "
                         f"Holm-adjusted {adj:.3g}) -> "
                         f"{'varies' if r['varies'] else 'no evidence of change'} at alpha = {self.alpha:g}")
        best = self.models.loc[self.models["bic"].idxmin(), "model"]
        lines.append(f"  lowest BIC: {best}")
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """The two tests, one row per mechanism (:attr:`tests`)."""
        return self.tests

    REQUIRED = ("verdict", "tests", "models", "alpha", "null", "num_envs")

    def _to_payload(self) -> dict:
        return {"verdict": self.verdict, "alpha": self.alpha, "null": self.null, "num_envs": self.num_envs,
                "tests": self.tests.to_dict(orient="list"), "models": self.models.to_dict(orient="list"),
                "null_statistics": {k: np.asarray(v) for k, v in self.null_statistics.items()}}

    @classmethod
    def _from_payload(cls, d: dict) -> MechanismReport:
        return cls(d["verdict"], pd.DataFrame(d["tests"]), pd.DataFrame(d["models"]), d["alpha"], d["null"],
                   d["num_envs"], {k: np.asarray(v) for k, v in (d.get("null_statistics") or {}).items()})

    def _plot(self, ax=None):
        """Observed statistics against their null distributions."""
        fig, grid = figure_grid(ax, 1, 2, (9, 3.2), layout="constrained")
        t = self.tests.set_index("mechanism")
        for k, mech in enumerate(("transitions", "emissions")):
            ax = fig.add_subplot(grid[0, k])
            obs = float(t.loc[mech, "statistic"])
            if self.null == "bootstrap":
                ax.hist(self.null_statistics[mech], bins=20, color="0.7", label="bootstrap null")
            else:
                df = float(t.loc[mech, "df"])
                xs = np.linspace(0, max(obs, stats.chi2.ppf(0.999, df)) * 1.1, 200)
                ax.plot(xs, stats.chi2.pdf(xs, df), color="0.4", label=f"chi2({df:g})")
            ax.axvline(obs, color="C3", label=f"observed (p = {t.loc[mech, 'p_value']:.3g})")
            ax.set_title(f"{mech}: {'varies' if t.loc[mech, 'varies'] else 'shared'}")
            ax.set_xlabel("likelihood ratio")
            ax.legend(fontsize=8)
        return fig


@float64
def compare_mechanisms(data, num_states: int, emission: str = "gaussian", *, alpha: float = 0.05,
                       null: str = "bootstrap", num_bootstrap: int = 99, covariance: str = "full",
                       num_restarts: int = 5, max_iters: int = 300, tol: float = 1e-6, key=0,
                       num_categories: int | None = None, progress: bool | None = None) -> MechanismReport:
    """Test which mechanisms (transitions, emissions) vary across environments.

    Parameters
    ----------
    data : multi-environment sequences (anything :func:`causalid.fit_hmm` accepts), ≥ 2 environments
    num_states : int
    emission : {"gaussian", "poisson", "categorical"}
    alpha : float
        Family-wise level: the two p-values are Holm-adjusted (the smaller one is compared with
        ``alpha / 2``, then the other with ``alpha``), so a verdict other than "neither" is a
        false positive with probability at most ``alpha`` when nothing changes.
    null : {"bootstrap", "chi2"}
        Calibration of the likelihood-ratio statistics (see the module docstring).
    num_bootstrap : int
        Replicates per test.
    covariance, num_restarts, max_iters, tol, num_categories
        As :func:`causalid.fit_hmm`.
    key : int or PRNGKey
    progress : bool or None
        (None, the default: shown when someone watches, see :mod:`causalid._progress`.)

    Returns
    -------
    MechanismReport
    """
    progress = show_progress(progress)
    data = SequenceData.coerce(data)
    if data.num_envs < 2:
        raise DataError("compare_mechanisms needs at least 2 environments; got 1")
    if data.inputs is not None:
        raise DataError("compare_mechanisms does not support input-driven transitions yet; drop the inputs")
    if null not in ("bootstrap", "chi2"):
        raise DataError(f"null must be 'bootstrap' or 'chi2'; got {null!r}")
    if not 0 < alpha < 1:
        raise DataError(f"alpha must be in (0, 1); got {alpha}")
    if null == "bootstrap":
        if isinstance(num_bootstrap, bool) or not isinstance(num_bootstrap, int) or num_bootstrap < 1:
            raise DataError(f"num_bootstrap must be a positive integer; got {num_bootstrap!r}")
        # a change is declared when the Holm-adjusted smaller p-value, 2 p, is below alpha; the
        # smallest bootstrap p-value is 1 / (B + 1)
        need = int(np.ceil(2.0 / alpha - 1.0))
        if 2.0 / (need + 1) >= alpha:  # 2 / alpha - 1 was a whole number (or rounded to one)
            need += 1
        if num_bootstrap < need:
            warnings.warn(f"with num_bootstrap = {num_bootstrap} the smallest bootstrap p-value is "
                          f"1/{num_bootstrap + 1}, not below alpha/2 = {alpha / 2:g} (Holm): no change can "
                          f"be declared; use at least {need} replicates", stacklevel=2)
    key = jax.random.PRNGKey(key) if isinstance(key, int) else key
    k_fit, k_boot = jax.random.split(key)
    opts = {"emission": emission, "covariance": covariance, "num_restarts": num_restarts,
            "max_iters": max_iters, "tol": tol, "num_categories": num_categories, "progress": False}
    fits = {}
    fits["neither"] = fit_hmm(data, num_states, shared="all", key=k_fit, **opts)
    # each larger model also starts from the fits it nests, so the log-likelihoods are ordered
    # as the models are (a restart stuck below the smaller model's optimum would fake a change)
    for name in ("transitions", "emissions"):
        fits[name] = fit_hmm(data, num_states, shared=_shared(name), key=k_fit,
                             init_params=[fits["neither"].params], **opts)
    fits["both"] = fit_hmm(data, num_states, shared="none", key=k_fit,
                           init_params=[fits["transitions"].params, fits["emissions"].params], **opts)
    ll = {k: f.log_likelihood for k, f in fits.items()}
    models = pd.DataFrame([
        {"model": k, "varies": ", ".join(_MODELS[k]) or "nothing", "log_likelihood": ll[k],
         "num_params": fits[k].num_params, "aic": fits[k].aic, "bic": fits[k].bic} for k in _MODELS])

    rows, nulls = [], {}
    keys = dict(zip(("transitions", "emissions"), jax.random.split(k_boot)))
    lengths = jnp.asarray(data.lengths)
    partial = has_partial_rows(data.y)
    mc = min_covar_diag(data, float(fits["neither"].settings.get("min_covar", 1e-6)))
    for mech, null_model in (("transitions", "emissions"), ("emissions", "transitions")):
        null_fit, full_config = fits[null_model], fits["both"].config
        start = jax.tree.map(lambda v: jnp.asarray(v)[None], null_fit.params)
        stat, full_ll = _lr_statistics(start, jnp.asarray(data.y)[None], lengths, null_fit.config, full_config,
                                       max_iters, tol, mc, partial)
        stat = float(stat[0])
        df = fits["both"].num_params - null_fit.num_params
        if null == "chi2":
            p = float(stats.chi2.sf(stat, df))
        else:
            params = jax.tree.map(jnp.asarray, null_fit.params)
            ys = simulate_like(keys[mech], data, null_fit.config, params, num_bootstrap)
            start = jax.tree.map(lambda v: jnp.broadcast_to(v, (num_bootstrap,) + v.shape), params)
            boot, _ = _lr_statistics(start, ys, lengths, null_fit.config, full_config, max_iters, tol, mc,
                                     partial, progress=progress, desc=f"bootstrap {mech}")
            nulls[mech] = boot
            p = float((1 + np.sum(boot >= stat)) / (len(boot) + 1))
        rows.append({"mechanism": mech, "statistic": stat, "df": df, "p_value": p, "null": null,
                     "full_log_likelihood": float(full_ll[0])})
    tests = pd.DataFrame(rows)
    tests["p_adjusted"] = adjust_pvalues(tests["p_value"].to_numpy(), "holm")
    tests["varies"] = tests["p_adjusted"] < alpha
    varies = tuple(tests.loc[tests["varies"], "mechanism"])
    verdict = {(): "neither", ("transitions",): "transitions", ("emissions",): "emissions"}.get(varies, "both")
    return MechanismReport(verdict, tests, models, alpha, null, data.num_envs, nulls, fits)


def _shared(name: str) -> str:
    return {"neither": "all", "transitions": "emissions", "emissions": "transitions", "both": "none"}[name]


def _lr_statistics(start, ys, lengths, null_config: HMMConfig, full_config: HMMConfig, max_iters: int,
                   tol: float, min_covar, partial: bool, progress: bool = False, desc: str = "EM"):
    r"""The test statistic on every data set of ``ys`` (leading axis; all fitted at once): the null
    model refitted by EM from ``start``, the full model from that refit, and
    :math:`2(\ell_{full} - \ell_{null})` at the final parameters.  The observed statistic
    (one data set, started at the null fit) and the bootstrap's (started at the generating
    parameters) are this one procedure.  Returns the statistics and the full log-likelihoods."""
    lls, p = [], start
    for cfg in (null_config, full_config):
        p, _, _, _ = run_em(p, ys, lengths, cfg, max_iters=max_iters, tol=tol, min_covar=min_covar,
                            partial=partial, batch_y=True, progress=progress, desc=desc)
        # the log-likelihood at the final parameters (EM reports the one before its last update)
        lls.append(np.asarray(_total_log_likelihoods(p, ys, lengths, config=cfg, partial=partial)))
    return np.maximum(2.0 * (lls[1] - lls[0]), 0.0), lls[1]


@functools.partial(jax.jit, static_argnames=("config", "partial"))
def _total_log_likelihoods(params, ys, lengths, *, config, partial):
    return jax.vmap(lambda p, y: jnp.sum(sequence_log_likelihoods(p, y, config, lengths, partial=partial)))(
        params, ys)


@float64
def select_num_states(data, states=(1, 2, 3, 4), emission: str = "gaussian", *, criteria=("bic",),
                      shared="all", key=0, num_restarts: int = 10, max_iters: int = 500,
                      num_warmup: int = 300, num_samples: int = 300, num_chains: int = 2, progress: bool | None = None,
                      **fit_kwargs) -> tuple[pd.DataFrame, dict]:
    """Compare numbers of states.

    ``criteria`` may include ``"bic"``, ``"aic"`` (EM fits) and ``"loo"``, ``"waic"`` (NUTS fits
    scored by arviz; pointwise terms are the one-step-ahead predictive log-densities).

    Returns
    -------
    table : pandas.DataFrame
        One row per number of states with the requested criteria (lower is better for BIC/AIC;
        for LOO/WAIC the table holds arviz's ``elpd`` — higher is better — and its standard error).
    fits : dict
        ``{num_states: HMMResult}`` (EM fits, or NUTS fits when LOO/WAIC are requested).
    """
    progress = show_progress(progress)
    import arviz as az


    data = SequenceData.coerce(data)
    bad = [c for c in criteria if c not in ("bic", "aic", "loo", "waic")]
    if bad:
        raise DataError(f"criteria may be 'bic', 'aic', 'loo', 'waic'; got {bad}")
    vary_from_shared(shared)
    bayes = any(c in ("loo", "waic") for c in criteria)
    rows, fits = [], {}
    for K in states:
        f = fit_hmm(data, K, emission, shared=shared, key=key, num_restarts=num_restarts, max_iters=max_iters,
                    progress=progress, **fit_kwargs)
        row = {"num_states": K, "log_likelihood": f.log_likelihood, "num_params": f.num_params,
               "bic": f.bic, "aic": f.aic}
        if bayes:
            f = fit_hmm(data, K, emission, shared=shared, key=key, method="nuts", num_restarts=num_restarts,
                        max_iters=max_iters, num_warmup=num_warmup, num_samples=num_samples,
                        num_chains=num_chains, progress=progress, **fit_kwargs)
            post = f.posterior.posterior
            draws = HMMParams.from_dict({k: jnp.asarray(post[k].values).reshape((-1,) + post[k].shape[2:])
                                         for k in f.params.to_dict()})
            y = jnp.asarray(data.y)
            lengths = jnp.asarray(data.lengths)
            cfg = f.config

            def pointwise(p, cfg=cfg, y=y, lengths=lengths):
                def one(pe, y_n, n):
                    ll = emission_log_lik(pe.emissions, y_n, cfg)
                    tr = transition_matrices(pe.trans, None, None)
                    return hmm_filter(pe.init, tr, ll, n).log_norms
                return jax.vmap(jax.vmap(one, in_axes=(None, 0, 0)))(p, y, lengths)

            terms = np.asarray(jax.lax.map(pointwise, draws))  # (S, E, N, T)
            valid = (np.arange(data.num_steps)[None, None, :] < data.lengths[..., None]).ravel()
            terms = terms.reshape(terms.shape[0], -1)[:, valid]
            terms = terms.reshape(num_chains, num_samples, -1)
            idata = az.from_dict(posterior={"_": np.zeros((num_chains, num_samples))},
                                 log_likelihood={"y": terms})
            for c in criteria:
                if c in ("loo", "waic"):
                    r = az.loo(idata) if c == "loo" else az.waic(idata)
                    row[f"elpd_{c}"] = float(r[f"elpd_{c}"])
                    row[f"elpd_{c}_se"] = float(r["se"])
        rows.append(row)
        fits[K] = f
    table = pd.DataFrame(rows)
    keep = ["num_states", "log_likelihood", "num_params"] + [c for c in ("bic", "aic") if c in criteria] + [
        c for c in table.columns if c.startswith("elpd_")]
    return table[keep], fits

