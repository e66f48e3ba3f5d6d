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

:func:`select_num_states` compares numbers of states by BIC, AIC, ICL or held-out
log-likelihood (EM fits) and, on request, by arviz PSIS-LOO / WAIC on NUTS fits with the
one-step-ahead predictive densities :math:`\log p(y_t \mid y_{0:t-1}, \theta)` as the
pointwise terms; degenerate fits are refused.
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

from causalid._checks import positive_int
from causalid._plotting import figure_grid
from causalid._progress import show_progress
from causalid._results import Result
from causalid._x64 import float64
from causalid.dynamics.hmm import hmm_filter
from causalid.errors import ConvergenceWarning, DataError
from causalid.hmm.data import SequenceData
from causalid.hmm.em import min_covar_diag, path_entropy, run_em, simulate_like
from causalid.hmm.fit import fit_hmm, vary_from_shared
from causalid.hmm.plots import plot_hmm_selection
from causalid.hmm.starts import DegenerateFitWarning
from causalid.models.hmm import (
    HMMConfig,
    HMMParams,
    emission_log_lik,
    has_partial_rows,
    sequence_log_likelihoods,
    transition_matrices,
)
from causalid.stats.multitest import adjust_pvalues

__all__ = ["MechanismReport", "StateSelection", "compare_mechanisms", "select_num_states"]

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
                       num_categories: int | None = None, initial="free",
                       progress: bool | None = None) -> MechanismReport:
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
    initial : "free" or array
        The initial distribution of every fit: estimated, or given (kept fixed by every EM refit,
        the bootstrap's included).  ``"stationary"`` is not available here: the likelihood-ratio
        refits are EM steps, which have no closed form for it.
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
    if isinstance(initial, str) and initial == "stationary":
        raise DataError("compare_mechanisms supports initial='free' or a given initial distribution; its "
                        "likelihood-ratio refits are EM steps, which have no closed form for the stationary start")
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
            "max_iters": max_iters, "tol": tol, "num_categories": num_categories, "initial": initial,
            "progress": False}
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


_CRITERIA = ("bic", "aic", "icl", "heldout", "loo", "waic")


@dataclass
class StateSelection(Result):
    """Outcome of :func:`select_num_states`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per number of states: ``num_states``, ``log_likelihood``, ``num_params``,
        ``bic``, ``aic``, ``icl`` (lower is better), ``heldout`` (held-out log-likelihood, higher
        is better, when asked for), ``elpd_loo`` / ``elpd_waic`` (NUTS), ``degenerate`` (what
        makes the fit degenerate, "" when nothing), ``eligible`` and ``warnings`` (the fit's
        convergence warnings, kept here instead of raised).
    criterion : str
    recommended : int
        The best eligible number of states by ``criterion``.
    reason : str
        The recommendation in words, with the fits refused and why.
    fits : dict of HMMResult
        ``{num_states: fit}`` (not saved).
    """

    table: pd.DataFrame
    criterion: str
    recommended: int
    reason: str
    fits: dict = field(default_factory=dict, repr=False)

    REQUIRED = ("table", "criterion", "recommended", "reason")

    def summary(self) -> str:
        shown = self.table.drop(columns=["degenerate", "warnings"], errors="ignore").to_string(index=False)
        return f"{self.reason}\n{shown}"

    def to_frame(self) -> pd.DataFrame:
        return self.table

    def _to_payload(self) -> dict:
        return {"table": self.table.to_dict(orient="list"), "criterion": self.criterion,
                "recommended": int(self.recommended), "reason": self.reason}

    @classmethod
    def _from_payload(cls, d: dict) -> StateSelection:
        return cls(pd.DataFrame(d["table"]), str(d["criterion"]), int(d["recommended"]), str(d["reason"]))

    def _plot(self, ax=None):
        """The criteria against the number of states (ringed: each one's best); refused
        (degenerate) fits marked by a dotted line."""
        table = self.table.drop(columns=["degenerate", "log_likelihood", "num_params", "warnings", "eligible"],
                                errors="ignore")
        fig = plot_hmm_selection(table, ax=ax)
        bad = self.table.loc[~self.table["eligible"].astype(bool), "num_states"].to_numpy()
        for axis in fig.axes:
            for k in bad:
                axis.axvline(k, color="0.6", ls=":", lw=1)
        fig.axes[0].set_title(f"recommended: {self.recommended} states ({self.criterion})"
                              + ("; dotted: refused (degenerate)" if len(bad) else ""), fontsize=9)
        return fig


def _heldout(data: SequenceData, K: int, emission: str, fit_kwargs: dict, folds: int = 5) -> float:
    """Held-out log-likelihood of ``K`` states: whole sequences held out when there are at least
    two, else blocked time (each of ``folds`` contiguous blocks of the one sequence marked
    missing for the fit, and scored as :math:`\\log p(y) - \\log p(y_{\\text{rest}})`)."""
    present = np.argwhere(data.lengths > 0)
    total = 0.0
    if len(present) >= 2:
        groups = np.array_split(np.arange(len(present)), min(folds, len(present)))
        for g in groups:
            held = np.zeros_like(data.lengths)
            for i in g:
                e, n = present[i]
                held[e, n] = data.lengths[e, n]
            train = SequenceData(data.y, data.lengths - held, data.names, data.env_names)
            test = SequenceData(data.y, held, data.names, data.env_names)
            fit = fit_hmm(train, K, emission, **fit_kwargs)
            total += fit.score(test)
        return total
    (e, n), = present
    L = int(data.lengths[e, n])
    for block in np.array_split(np.arange(L), folds):
        y = data.y.copy()
        y[e, n, block] = np.nan
        train = SequenceData(y, data.lengths, data.names, data.env_names)
        fit = fit_hmm(train, K, emission, **fit_kwargs)
        total += fit.score(data) - fit.score(train)
    return total


@float64
def select_num_states(data, states=(1, 2, 3, 4), emission: str = "gaussian", *, criterion: str = "bic",
                      shared="all", initial="free", key=0, num_restarts: int = 30, max_iters: int = 500,
                      folds: int = 5, num_warmup: int = 300, num_samples: int = 300, num_chains: int = 2,
                      progress: bool | None = None, **fit_kwargs) -> StateSelection:
    r"""Choose the number of states, refusing degenerate fits.

    Every number of states is fitted by EM (:func:`causalid.fit_hmm` with its restarts).  A fit
    that is degenerate (an empty or duplicated state, or a state whose variance sits at the
    variance floor — typically a spike on repeated or coded values, whose likelihood grows
    without bound as the floor shrinks) is not eligible: its criterion is kept in the table but
    it cannot be recommended.

    Parameters
    ----------
    data : anything :func:`causalid.fit_hmm` accepts
    states : sequence of int
    emission : {"gaussian", "poisson", "categorical"}
    criterion : {"bic", "aic", "icl", "heldout", "loo", "waic"}
        ``"bic"``, ``"aic"``; ``"icl"`` — BIC plus twice the exact entropy of the state paths
        given the data (:func:`causalid.hmm.em.path_entropy`), which penalises overlapping
        states; ``"heldout"`` — the log-likelihood of held-out data, summed over ``folds``
        folds: whole sequences held out when there are several, blocked time for one long
        sequence (a block is marked missing for the fit and scored given the rest);
        ``"loo"`` / ``"waic"`` — arviz on NUTS fits with the one-step-ahead predictive densities
        as the pointwise terms.
    shared, initial, num_restarts, max_iters, **fit_kwargs
        As :func:`causalid.fit_hmm`.
    key : int or PRNGKey
    folds : int
        Folds of ``"heldout"``.
    num_warmup, num_samples, num_chains : int
        NUTS settings of ``"loo"`` / ``"waic"``.
    progress : bool or None

    Returns
    -------
    StateSelection
        The table, the recommendation and its reason in words; ``.plot()`` draws the criteria.

    Examples
    --------
    >>> from causalid.datasets import load_earthquakes
    >>> y = load_earthquakes()["count"].to_numpy()
    >>> sel = select_num_states(y, (1, 2, 3), "poisson", progress=False)
    >>> sel.recommended, sel.table["aic"].idxmin() + 1   # BIC: 2 states (AIC would take 3)
    (2, 3)
    """
    progress = show_progress(progress)
    data = SequenceData.coerce(data)
    if criterion not in _CRITERIA:
        raise DataError(f"criterion must be one of {list(_CRITERIA)}; got {criterion!r}")
    states = [positive_int(k, "each number of states") for k in states]
    if not states:
        raise DataError("states is empty; give the numbers of states to compare, e.g. (1, 2, 3)")
    folds = positive_int(folds, "folds")
    vary_from_shared(shared)
    opts = {"shared": shared, "initial": initial, "key": key, "num_restarts": num_restarts,
            "max_iters": max_iters, "progress": False, **fit_kwargs}
    rows, fits = [], {}
    for K in states:
        with warnings.catch_warnings(record=True) as caught:  # reported in the table instead
            warnings.simplefilter("always")
            f = fit_hmm(data, K, emission, **opts)
        for w in caught:  # anything but the fit-quality warnings goes on to the caller
            if not issubclass(w.category, (DegenerateFitWarning, ConvergenceWarning)):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        fits[K] = f
        y, lengths = jnp.asarray(data.y), jnp.asarray(data.lengths)
        p = jax.tree.map(jnp.asarray, f.params._replace(trans_weights=None))
        entropy = float(path_entropy(p, y, lengths, config=f.config, partial=has_partial_rows(data.y)))
        row = {"num_states": K, "log_likelihood": f.log_likelihood, "num_params": f.num_params,
               "bic": f.bic, "aic": f.aic, "icl": f.bic + 2.0 * entropy,
               "degenerate": "; ".join(f.degenerate), "eligible": not f.degenerate,
               "warnings": "; ".join(str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning))}
        if criterion == "heldout":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DegenerateFitWarning)
                row["heldout"] = _heldout(data, K, emission, opts, folds)
        if criterion in ("loo", "waic"):
            row.update(_bayes_criterion(data, K, emission, criterion, opts, num_warmup, num_samples, num_chains,
                                        progress))
        rows.append(row)
    table = pd.DataFrame(rows)
    column, higher = {"heldout": ("heldout", True), "loo": ("elpd_loo", True),
                      "waic": ("elpd_waic", True)}.get(criterion, (criterion, False))
    value = table[column].to_numpy(dtype=float)
    score = np.where(table["eligible"].to_numpy(bool) & np.isfinite(value), -value if higher else value, np.inf)
    if not np.isfinite(score).any():
        raise DataError(f"every fit is degenerate ({'; '.join(f'{k}: {d}' for k, d in zip(states, table['degenerate']))}"
                        "); try fewer states, a larger min_covar, or check the data for coded values")
    best = int(np.argmin(score))
    rec = states[best]
    raw = int(np.nanargmin(-value if higher else value))
    word = "highest" if higher else "lowest"
    reason = f"{rec} state(s): the {word} {criterion.upper()} ({value[best]:.2f}) among the sound fits"
    refused = [f"{k} (degenerate: {d})" for k, d, ok in zip(states, table["degenerate"], table["eligible"]) if not ok]
    if raw != best:
        reason += (f"; {states[raw]} state(s) scored better ({value[raw]:.2f}) but the fit is degenerate and "
                   "was refused")
    if refused:
        reason += "; refused: " + ", ".join(refused)
    return StateSelection(table, criterion, rec, reason + ".", fits)


def _bayes_criterion(data, K, emission, criterion, opts, num_warmup, num_samples, num_chains, progress) -> dict:
    """arviz LOO / WAIC of a NUTS fit, with the one-step-ahead predictive densities as pointwise terms."""
    import arviz as az

    kw = {k: v for k, v in opts.items() if k not in ("initial", "progress")}
    f = fit_hmm(data, K, emission, method="nuts", num_warmup=num_warmup, num_samples=num_samples,
                num_chains=num_chains, progress=progress, **kw)
    post = f.posterior.posterior
    draws = HMMParams.from_dict({k: jnp.asarray(post[k].values).reshape((-1,) + post[k].shape[2:])
                                 for k in f.params.to_dict()})
    y = jnp.asarray(data.y)
    lengths = jnp.asarray(data.lengths)
    cfg = f.config

    def pointwise(p):
        def one(pe, y_n, n):
            ll = emission_log_lik(pe.emissions, y_n, cfg)
            tr = transition_matrices(pe.trans, None, None)
            return hmm_filter(pe.init, tr, ll, n).log_norms
        return jax.vmap(jax.vmap(one, in_axes=(None, 0, 0)))(p, y, lengths)

    terms = np.asarray(jax.lax.map(pointwise, draws))  # (S, E, N, T)
    valid = (np.arange(data.num_steps)[None, None, :] < data.lengths[..., None]).ravel()
    terms = terms.reshape(terms.shape[0], -1)[:, valid].reshape(num_chains, num_samples, -1)
    idata = az.from_dict(posterior={"_": np.zeros((num_chains, num_samples))}, log_likelihood={"y": terms})
    r = az.loo(idata) if criterion == "loo" else az.waic(idata)
    return {f"elpd_{criterion}": float(r[f"elpd_{criterion}"]), f"elpd_{criterion}_se": float(r["se"])}
