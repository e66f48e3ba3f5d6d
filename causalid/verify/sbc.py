r"""Simulation-based calibration (SBC) of Bayesian engines (Talts et al. 2018, arXiv 1804.06788).

If :math:`\theta^\ast \sim \pi(\theta)`, :math:`y \sim p(y \mid \theta^\ast)` and
:math:`\theta_1, \dots, \theta_L` are independent draws from the posterior
:math:`p(\theta \mid y)`, then for any scalar function :math:`f` the rank statistic

.. math::

    r = \#\{\,l : f(\theta_l) < f(\theta^\ast)\,\} \in \{0, \dots, L\}

is uniformly distributed on :math:`\{0, \dots, L\}` (ties, which only discrete quantities
produce, are broken uniformly at random).  An engine whose draws are not from the posterior of
the model that generated the data — a bug, a sampler that does not mix, or a model that does
not match the simulator (misspecification) — shows up as a non-uniform rank histogram: a
U shape (posterior too narrow), a hump (too wide), a slope (biased).

:func:`run_sbc` is the general loop, vectorised over replicates with :func:`jax.vmap`:

1. ``prior_sample(key) -> theta``              the true parameters of one replicate;
2. ``simulate(key, theta) -> data``            one data set from the model;
3. ``posterior_draws(key, data, num) -> draws``  ``num`` posterior draws (leading axis), or
   ``(draws, info)`` with ``info`` a dict of per-replicate scalar diagnostics;
4. ``quantities(theta) -> {name: array}``      the quantities to rank (default: every leaf).

Every callable must be a pure JAX function (jit- and vmap-able).  Each stage (prior,
simulator, sampler with ranking) is compiled once per callable (by identity), so a second run
with another simulator but the same engine — a misspecified one, say — compiles only the
simulator.  MCMC draws are thinned (``thin``) to make them roughly independent: autocorrelated
draws make the ranks non-uniform even for a correct sampler (Talts et al. §4.1).

Misspecification is a simulator that differs from the engine's model: pass any ``prior_sample``
/ ``simulate`` to :func:`run_sbc`, or the ``simulation_*`` arguments of the ready-made
problems.  SBC should then fail, and a test should show that it does.

Ready-made problems (:class:`SBCProblem`, run with :meth:`SBCProblem.run`) for the project's
Bayesian engines live in their wings and use the engines' own NumPyro programs:
:func:`causalid.exchangeable.sbc.icm_problem` and :func:`causalid.exchangeable.sbc.nig_problem`
(the exchangeable mechanism posteriors), :func:`causalid.lti.sbc.lti_problem` (NUTS with the
Kalman likelihood of ``identify_lti(method="bayes")``).

:func:`nuts_posterior` turns any NumPyro program of one data argument into a vmap-able
``posterior_draws``.

The result, :class:`SBCResult`, holds the ranks in a long table (``parameter``, ``rank``,
``num_draws``, ``replicate`` + setting and diagnostic columns) with :meth:`SBCResult.test` (a
uniformity test per parameter, Holm's correction across parameters), :meth:`SBCResult.plot`
(rank histograms with the binomial band) and Parquet / JSON :meth:`~SBCResult.save` /
:meth:`~SBCResult.load`.

Examples
--------
A conjugate normal model with a known posterior:

>>> import causalid, jax, jax.numpy as jnp
>>> from causalid.verify.sbc import run_sbc
>>> def prior_sample(key):
...     return {"mu": jax.random.normal(key)}
>>> def simulate(key, theta):
...     return theta["mu"] + jax.random.normal(key, (4,))
>>> def posterior_draws(key, y, num):            # mu | y ~ N(sum(y) / 5, 1 / 5)
...     return {"mu": y.sum() / 5 + jax.random.normal(key, (num,)) / jnp.sqrt(5.0)}
>>> res = run_sbc(prior_sample, simulate, posterior_draws, num_replicates=200, num_draws=49,
...               key=0)
>>> res.frame.columns.tolist()
['parameter', 'rank', 'num_draws', 'replicate']
>>> res.test(alpha=0.01).passed
True
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from numpyro.infer.hmc import hmc
from numpyro.infer.initialization import init_to_uniform
from numpyro.infer.util import initialize_model, potential_energy
from scipy import stats

from causalid._checks import positive_int
from causalid._plotting import figure_grid
from causalid._random import as_key
from causalid._results import Result, plain
from causalid._typing import Array
from causalid._x64 import float64
from causalid.errors import ConvergenceWarning, DataError
from causalid.stats.multitest import adjust_pvalues
from causalid.verify.store import require_pyarrow

__all__ = [
    "SBCProblem",
    "SBCResult",
    "SBCTest",
    "nuts_posterior",
    "run_sbc",
    "trace_sites",
]

CORE_COLUMNS = ("parameter", "rank", "num_draws", "replicate")
"""The columns every SBC table has; setting and diagnostic columns follow them."""


TestMethod = Literal["chi2", "ks"]
Correction = Literal["holm", "bonferroni"]


# ============================================================================ core
def _over_replicates(f: Callable, batch_size: int | None) -> Callable:
    """``f`` mapped over a leading replicate axis of all its arguments: one ``vmap``, or
    :func:`jax.lax.map` over vmapped batches of ``batch_size``."""
    if batch_size is None:
        return jax.vmap(f)
    return lambda *xs: jax.lax.map(lambda a: f(*a), xs, batch_size=batch_size)


@functools.lru_cache(maxsize=64)
def _stage(fn: Callable) -> Callable:
    """``fn`` vmapped over a leading replicate axis and compiled, cached on the callable's
    identity (prior and simulator are separate stages, so a run that changes only one of them
    compiles only that one)."""
    return jax.jit(jax.vmap(fn))


@functools.lru_cache(maxsize=64)
def _posterior_stage(
    posterior_draws: Callable,
    quantities: Callable,
    num_draws: int,
    thin: int,
    batch_size: int | None,
):
    """Compiled ``(keys, keys, theta, data) -> (ranks, finite draws, finite truth, info)``.

    Posterior draws and ranks in one program, so the draws of a batch never leave it; cached
    on the callables' identity so that runs sharing an engine share the compiled sampler.
    """

    def one(k_post, k_rank, theta, data):
        out = posterior_draws(k_post, data, num_draws * thin)
        pair = isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping)
        draws, info = out if pair else (out, {})
        leading = {jnp.shape(a)[0] for a in jax.tree.leaves(draws)}
        if leading != {num_draws * thin}:
            raise DataError(
                f"posterior_draws returned leading draw axes {sorted(leading)}; "
                f"expected {num_draws * thin}, the num it was given"
            )
        draws = jax.tree.map(lambda a: a[thin - 1 :: thin], draws)
        truth = quantities(theta)
        try:
            q = jax.vmap(quantities)(draws)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"quantities could not be applied to the posterior draws ({exc!r}); "
                "the draws must have the structure of theta"
            ) from exc
        finite_draws = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in q.values()]))
        finite_truth = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in truth.values()]))
        return _rank_one(k_rank, truth, q), finite_draws, finite_truth, dict(info)

    return jax.jit(_over_replicates(one, batch_size))


def _flat_names(name: str, shape: tuple[int, ...]) -> list[str]:
    if not shape:
        return [name]
    return [f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(*shape)]


def _default_quantities(theta) -> dict[str, Array]:
    """Every leaf of the parameter pytree, named by its path (``"A"``, ``"['beta']"`` ...)."""
    if isinstance(theta, Mapping):
        return {str(k): jnp.asarray(v) for k, v in theta.items()}
    leaves = jax.tree_util.tree_flatten_with_path(theta)[0]
    if len(leaves) == 1 and not leaves[0][0]:
        return {"theta": jnp.asarray(leaves[0][1])}
    return {jax.tree_util.keystr(path): jnp.asarray(v) for path, v in leaves}


def _quantity_names(quantities: Callable, theta) -> list[str]:
    """Names of the scalars that ``quantities(theta)`` returns, in its own (insertion) order,
    which is the order of the ranks (pytree outputs would be sorted by key instead)."""
    found: list[str] = []

    def probe(th):
        q = quantities(th)
        if not isinstance(q, Mapping) or not q:
            raise DataError("quantities(theta) must return a non-empty dict of arrays")
        for name, value in q.items():
            found.extend(_flat_names(str(name), tuple(jnp.shape(value))))
        return 0

    try:
        jax.eval_shape(probe, theta)
    except (KeyError, TypeError, IndexError) as exc:
        raise DataError(f"quantities could not be applied to theta ({exc!r})") from exc
    return found


def _rank_one(key, truth: dict, draws: dict) -> Array:
    """Ranks of every scalar of ``truth`` among ``draws`` (leading draw axis), ties broken
    uniformly at random; concatenated in the order of ``truth``."""
    below, tied = [], []
    for name, t in truth.items():
        d = draws[name].reshape(draws[name].shape[0], -1)
        t = t.reshape(-1)
        below.append(jnp.sum(d < t, axis=0))
        tied.append(jnp.sum(d == t, axis=0))
    below, tied = jnp.concatenate(below), jnp.concatenate(tied)
    # one flat uniform per scalar: floor(U (ties + 1)) is uniform on 0..ties
    u = jax.random.uniform(key, below.shape)
    return below + jnp.minimum(jnp.floor(u * (tied + 1)).astype(below.dtype), tied)


@float64
def run_sbc(
    prior_sample: Callable[[Array], Any],
    simulate: Callable[[Array, Any], Any],
    posterior_draws: Callable[..., Any],
    num_replicates: int,
    num_draws: int,
    key: int | Array,
    *,
    thin: int = 1,
    quantities: Callable[[Any], Mapping[str, Array]] | None = None,
    settings: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
) -> SBCResult:
    r"""Simulation-based calibration of a posterior sampler.

    For each replicate :math:`r = 0..R-1` (all at once, with :func:`jax.vmap`):
    :math:`\theta^\ast_r` = ``prior_sample(k1)``, :math:`y_r` = ``simulate(k2, theta)``,
    ``num_draws * thin`` posterior draws from ``posterior_draws(k3, y_r, num)`` thinned to
    every ``thin``-th, and the rank of each scalar quantity of :math:`\theta^\ast_r` among them.

    Parameters
    ----------
    prior_sample : callable ``(key) -> theta``
        Draws the true parameters (a pytree; usually a dict of arrays).
    simulate : callable ``(key, theta) -> data``
        Draws one data set (a pytree of arrays) given the parameters.
    posterior_draws : callable ``(key, data, num) -> draws`` or ``-> (draws, info)``
        ``num`` posterior draws with a leading draw axis, structured like ``theta`` (at least
        for the entries that ``quantities`` reads); optionally paired with ``info``, a dict of
        scalar diagnostics (e.g. divergences), which become columns of the result.  ``num`` is
        a static Python int.
    num_replicates : int
        ``R``, the number of simulated data sets.
    num_draws : int
        ``L``, posterior draws per replicate after thinning; ranks take values ``0..L``.
    key : int or PRNG key
    thin : int
        Keep every ``thin``-th of ``num_draws * thin`` draws (1 for independent draws).
    quantities : callable ``(theta) -> {name: array}``, optional
        The quantities to rank, applied to the truth and to every draw; each entry of each array
        is one "parameter" of the result, named ``name`` or ``name[i,j]``.  Use it to select
        parameters or to rank functions of them (e.g. a sign-invariant form).  Default: every
        leaf of ``theta``.
    settings : mapping, optional
        Constant columns added to the table (e.g. ``{"engine": "lti", "case": "correct"}``).
    batch_size : int, optional
        Run the sampler on the replicates in vmapped batches of this size
        (:func:`jax.lax.map`): less memory, and an MCMC batch waits only for its own slowest
        chain.  The results are the same as without batches.

    Returns
    -------
    SBCResult

    Warns
    -----
    ConvergenceWarning
        When some posterior draws are not finite (their ranks are unreliable).
    """
    R = positive_int(num_replicates, "num_replicates")
    L = positive_int(num_draws, "num_draws")
    thin = positive_int(thin, "thin")
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size")
    for name, fn in (
        ("prior_sample", prior_sample),
        ("simulate", simulate),
        ("posterior_draws", posterior_draws),
    ):
        if not callable(fn):
            raise DataError(f"{name} must be a callable; got {type(fn).__name__}")
    settings = dict(settings or {})
    for name, value in settings.items():
        if name in CORE_COLUMNS or not isinstance(name, str):
            raise DataError(f"setting name {name!r} is reserved or not a string; rename it")
        if not isinstance(value, (str, bool, int, float, np.generic)):
            raise DataError(
                f"setting {name!r} must be a scalar (str, int, float, bool); "
                f"got {type(value).__name__}"
            )
    quantities = _default_quantities if quantities is None else quantities

    k_prior, k_sim, k_post, k_rank = jax.random.split(as_key(key), 4)
    split = functools.partial(jax.random.split, num=R)
    theta = _stage(prior_sample)(split(k_prior))
    if not all(np.all(np.isfinite(np.asarray(a))) for a in jax.tree.leaves(theta)):
        raise DataError("prior_sample drew non-finite parameter values")
    data = _stage(simulate)(split(k_sim), theta)
    names = _quantity_names(quantities, jax.tree.map(lambda a: a[0], theta))
    stage = _posterior_stage(posterior_draws, quantities, L, thin, batch_size)
    ranks, finite, finite_truth, info = stage(split(k_post), split(k_rank), theta, data)
    if not np.all(np.asarray(finite_truth)):
        raise DataError("some true parameter values are not finite; check prior_sample")
    bad = int(np.sum(~np.asarray(finite)))
    if bad:
        warnings.warn(
            f"{bad} of {R} replicates have non-finite posterior draws; their ranks are unreliable",
            ConvergenceWarning,
            stacklevel=2,
        )
    ranks = np.asarray(ranks)
    K = len(names)
    frame = pd.DataFrame(
        {
            "parameter": pd.Series(np.tile(names, R), dtype="str"),
            "rank": ranks.reshape(-1).astype(np.int64),
            "num_draws": np.full(R * K, L, np.int64),
            "replicate": np.repeat(np.arange(R, dtype=np.int64), K),
        }
    )
    for name, value in settings.items():
        value = plain(value)
        frame[name] = pd.Series([value] * (R * K), dtype="str" if isinstance(value, str) else None)
    diagnostics = []
    for name, value in dict(info).items():
        value = np.asarray(value)
        if value.shape != (R,):
            raise DataError(
                f"diagnostic {name!r} must be one scalar per replicate; got shape "
                f"{value.shape[1:]} per replicate"
            )
        if name in frame.columns:
            raise DataError(f"diagnostic {name!r} clashes with a column; rename it")
        frame[name] = np.repeat(value, K)
        diagnostics.append(name)
    return SBCResult(frame, thin=thin, settings=tuple(settings), diagnostics=tuple(diagnostics))


# ============================================================================ the result
def _bin_widths(num_values: int, bins: int) -> np.ndarray:
    """Bin ``b`` holds the ranks ``r`` with ``floor(r * bins / num_values) == b``; returns the
    number of rank values in each bin (all equal when ``bins`` divides ``num_values``)."""
    r = np.arange(num_values)
    return np.bincount(r * bins // num_values, minlength=bins)


def _default_bins(num_values: int, num_replicates: int) -> int:
    """About 10 expected ranks per bin, between 2 and 20 bins, at most one bin per rank value."""
    return int(max(2, min(20, num_values, num_replicates // 10)))


def _uniformity(ranks: np.ndarray, L: int, bins: int, method: str, rng) -> tuple[float, float]:
    if method == "chi2":
        width = _bin_widths(L + 1, bins)
        observed = np.bincount(ranks * bins // (L + 1), minlength=bins)
        expected = len(ranks) * width / (L + 1)
        stat = float(np.sum((observed - expected) ** 2 / expected))
        return stat, float(stats.chi2.sf(stat, bins - 1))
    # randomised probability integral transform: exactly Uniform(0, 1) under the null
    u = (ranks + rng.uniform(size=len(ranks))) / (L + 1)
    res = stats.kstest(u, "uniform")
    return float(res.statistic), float(res.pvalue)


@dataclass(frozen=True)
class SBCTest:
    """Outcome of :meth:`SBCResult.test`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (setting group, parameter): ``statistic``, ``p_value``, ``p_adjusted``
        (Holm or Bonferroni within the group), ``passed`` (``p_adjusted >= alpha``).
    groups : pandas.DataFrame
        One row per setting group: ``num_parameters``, ``num_replicates``, ``p_value`` (the
        smallest adjusted p-value, a valid p-value for "every parameter is calibrated"),
        ``passed``.
    alpha, method, correction
        As used.
    bins : int or None
        As given to :meth:`SBCResult.test` (None: the default per parameter, or ``"ks"``).
    """

    table: pd.DataFrame
    groups: pd.DataFrame
    alpha: float
    method: str
    correction: str
    bins: int | None

    @property
    def passed(self) -> bool:
        """True when every setting group passes."""
        return bool(self.groups["passed"].all())

    @property
    def p_value(self) -> float:
        """The smallest group p-value (of the only group, when there is one)."""
        return float(self.groups["p_value"].min())

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"SBC uniformity ({self.method}, {self.correction}, alpha={self.alpha}): {verdict}\n"
            + self.table.to_string(index=False)
        )


@dataclass(frozen=True)
class SBCResult(Result):
    """Ranks of true parameters among posterior draws, from :func:`run_sbc`.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per (replicate, parameter): ``parameter`` (str), ``rank`` (int, ``0..L``),
        ``num_draws`` (``L``), ``replicate`` (int), then the setting columns and the per-replicate
        diagnostic columns of the engine (e.g. ``divergences``).
    thin : int
        Thinning of the posterior draws.
    settings : tuple of str
        Names of the setting columns: the test and the plot treat each combination of their
        values as one SBC run.
    diagnostics : tuple of str
        Names of the diagnostic columns.
    """

    frame: pd.DataFrame
    thin: int = 1
    settings: tuple[str, ...] = ()
    diagnostics: tuple[str, ...] = ()

    def __post_init__(self):
        missing = [
            c
            for c in CORE_COLUMNS + self.settings + self.diagnostics
            if c not in self.frame.columns
        ]
        if missing:
            raise DataError(f"an SBC table needs the columns {missing}")

    # ------------------------------------------------------------------ access
    @property
    def parameters(self) -> list[str]:
        """Parameter names in order of first appearance."""
        return list(pd.unique(self.frame["parameter"]))

    def _groups(self):
        if not self.settings:
            yield (), self.frame
            return
        for values, sub in self.frame.groupby(list(self.settings), sort=False, dropna=False):
            yield (values if isinstance(values, tuple) else (values,)), sub

    @classmethod
    def concat(cls, results: Sequence[SBCResult]) -> SBCResult:
        """One result from several (e.g. a correct and a misspecified run), which must have the
        same setting columns, distinguishing values and the same thinning."""
        results = list(results)
        if not results:
            raise DataError("concat needs at least one SBCResult")
        first = results[0]
        for r in results[1:]:
            if r.settings != first.settings or r.thin != first.thin:
                raise DataError(
                    "SBC results with different settings or thinning cannot be "
                    f"concatenated: {first.settings}/{first.thin} vs "
                    f"{r.settings}/{r.thin}"
                )
        seen: dict = {}
        for i, r in enumerate(results):
            runs = [values for values, _ in r._groups()]
            for values in runs:
                if values in seen:
                    raise DataError(
                        f"SBC results {seen[values]} and {i} both hold the run with settings "
                        f"{dict(zip(first.settings, values)) or '(none)'}: give each run a "
                        "distinguishing setting value (e.g. settings={'model': 'correct'}) before "
                        "concatenating"
                    )
            seen.update(dict.fromkeys(runs, i))
        diagnostics = tuple(dict.fromkeys(d for r in results for d in r.diagnostics))
        frame = pd.concat([r.frame for r in results], ignore_index=True)
        return cls(frame, first.thin, first.settings, diagnostics)

    # ------------------------------------------------------------------ test
    def test(
        self,
        alpha: float = 0.01,
        *,
        method: TestMethod = "chi2",
        bins: int | None = None,
        correction: Correction = "holm",
        seed: int = 0,
    ) -> SBCTest:
        r"""Test the uniformity of the ranks of every parameter, per setting group.

        ``method="chi2"``: Pearson's chi-square test of the counts of ranks in ``bins`` bins
        (bin ``b`` holds ranks with :math:`\lfloor r B / (L+1) \rfloor = b`; the expected
        counts account for unequal bins), ``bins - 1`` degrees of freedom.  By default about 10
        expected ranks per bin, 2 to 20 bins.  ``method="ks"``: Kolmogorov–Smirnov test of the
        randomised PIT :math:`(r + V)/(L + 1)`, :math:`V \sim U(0, 1)` (exactly uniform under
        the null; ``seed`` fixes :math:`V`).

        Multiple testing: the parameters of one group share replicates, so their p-values are
        dependent; Holm's step-down correction (default) or Bonferroni's controls the
        family-wise error at ``alpha`` under any dependence.  A group passes when no adjusted
        p-value is below ``alpha`` (the same verdict under either correction).

        Parameters
        ----------
        alpha : float
            Family-wise level per group, in (0, 1).
        method : {"chi2", "ks"}
        bins : int, optional
            Number of bins for ``"chi2"`` (at most ``L + 1``).
        correction : {"holm", "bonferroni"}
        seed : int
            For the randomisation of ``"ks"``.

        Returns
        -------
        SBCTest
        """
        if not 0 < alpha < 1:
            raise DataError(f"alpha={alpha}; it must lie in (0, 1)")
        if method not in ("chi2", "ks"):
            raise DataError(f"unknown method {method!r}; use 'chi2' or 'ks'")
        if correction not in ("holm", "bonferroni"):
            raise DataError(f"unknown correction {correction!r}; use 'holm' or 'bonferroni'")
        rng = np.random.default_rng(seed)
        rows, group_rows = [], []
        for values, sub in self._groups():
            label = dict(zip(self.settings, values))
            part = []
            for name, g in sub.groupby("parameter", sort=False):
                L = int(g["num_draws"].iloc[0])
                if (g["num_draws"] != L).any():
                    raise DataError(f"parameter {name!r} mixes different num_draws in one group")
                ranks = g["rank"].to_numpy(np.int64)
                if ranks.min() < 0 or ranks.max() > L:
                    raise DataError(f"parameter {name!r} has ranks outside 0..{L}")
                b = _default_bins(L + 1, len(ranks)) if bins is None else int(bins)
                if method == "chi2" and not 2 <= b <= L + 1:
                    raise DataError(f"bins={b}; it must lie in 2..num_draws+1 = 2..{L + 1}")
                stat, p = _uniformity(ranks, L, b, method, rng)
                part.append(
                    {
                        **label,
                        "parameter": name,
                        "num_replicates": len(ranks),
                        "statistic": stat,
                        "p_value": p,
                    }
                )
            p = np.array([r["p_value"] for r in part])
            adj = adjust_pvalues(p, correction)
            for r, a in zip(part, adj):
                r["p_adjusted"] = float(a)
                r["passed"] = bool(a >= alpha)
            rows += part
            group_rows.append(
                {
                    **label,
                    "num_parameters": len(part),
                    "num_replicates": int(sub["replicate"].nunique()),
                    "p_value": float(adj.min()),
                    "passed": bool(adj.min() >= alpha),
                }
            )
        return SBCTest(
            pd.DataFrame(rows),
            pd.DataFrame(group_rows),
            float(alpha),
            method,
            correction,
            None if method == "ks" else bins,
        )

    def to_frame(self) -> pd.DataFrame:
        """The rank table (:attr:`frame`)."""
        return self.frame

    def summary(self) -> str:
        """Replicates, parameters and the verdict of :meth:`test` at its defaults."""
        groups = sum(1 for _ in self._groups())
        R = int(self.frame["replicate"].nunique())
        head = (f"SBC: {R} replicate(s), {len(self.parameters)} parameter(s), "
                f"{int(self.frame['num_draws'].iloc[0]) if len(self.frame) else 0} posterior draws each, thin {self.thin}"
                + (f", {groups} setting group(s) ({', '.join(self.settings)})" if self.settings else ""))
        return head + "\n" + str(self.test())

    # ------------------------------------------------------------------ plot
    def _plot(self, ax=None, *, bins: int | None = None, band: float = 0.99, ncols: int = 4):
        r"""Rank histograms, one panel per (setting group, parameter).

        Each panel shows the counts of ranks per bin (binning as in :meth:`test`), the expected
        count under uniformity and, shaded, the central ``band`` interval of the
        :math:`\mathrm{Binomial}(R, p_b)` count of each bin under uniformity (Talts et al.'s
        99 % band by default).  About ``1 - band`` of the bins of a calibrated engine fall
        outside it.
        """
        if not 0 < band < 1:
            raise DataError(f"band={band}; it must lie in (0, 1)")
        panels = []
        for values, sub in self._groups():
            label = ", ".join(f"{k}={v}" for k, v in zip(self.settings, values))
            for name, g in sub.groupby("parameter", sort=False):
                panels.append((f"{name}" + (f"\n{label}" if label else ""), g))
        ncols = max(1, min(ncols, len(panels)))
        nrows = math.ceil(len(panels) / ncols)
        fig, grid = figure_grid(ax, nrows, ncols, (3.2 * ncols, 2.6 * nrows), layout="constrained")
        axes = [fig.add_subplot(grid[i // ncols, i % ncols]) for i in range(len(panels))]
        for ax, (title, g) in zip(axes, panels):
            L = int(g["num_draws"].iloc[0])
            ranks = g["rank"].to_numpy(np.int64)
            R = len(ranks)
            b = min(_default_bins(L + 1, R) if bins is None else int(bins), L + 1)
            width = _bin_widths(L + 1, b)
            left = np.concatenate([[0], np.cumsum(width)[:-1]])
            counts = np.bincount(ranks * b // (L + 1), minlength=b)
            prob = width / (L + 1)
            lo = stats.binom.ppf((1 - band) / 2, R, prob)
            hi = stats.binom.ppf(1 - (1 - band) / 2, R, prob)
            edges = np.concatenate([left, [L + 1]])
            ax.bar(left, counts, width=width, align="edge", color="C0", alpha=0.75, edgecolor="white",
                   label="ranks")
            ax.fill_between(edges, np.append(lo, lo[-1]), np.append(hi, hi[-1]), step="post", color="0.5",
                            alpha=0.3, linewidth=0, label=f"{band:.0%} band")
            ax.stairs(R * prob, edges, color="0.2", linestyle="--", label="uniform")
            ax.set_title(title, fontsize=8)
            ax.set_xlim(0, L + 1)
            ax.tick_params(labelsize=7)
        if axes:
            axes[0].legend(fontsize=6, loc="lower left")
        fig.supxlabel("rank of the true value among the posterior draws", fontsize=8)
        fig.supylabel("replicates", fontsize=8)
        return fig

    # ------------------------------------------------------------------ storage
    LEGACY_FORMATS = ("causalid.verify.sbc/1",)
    REQUIRED = ("thin", "settings", "diagnostics", "dtypes", "columns")

    def _meta(self) -> dict:
        return {"thin": self.thin, "settings": list(self.settings), "diagnostics": list(self.diagnostics),
                "dtypes": {c: str(t) for c, t in self.frame.dtypes.items()}}

    def _to_payload(self) -> dict:
        return {**self._meta(), "columns": {c: plain(self.frame[c].tolist()) for c in self.frame.columns}}

    @classmethod
    def _from_payload(cls, d: dict) -> SBCResult:
        return cls._from_table(d, pd.DataFrame(d["columns"]))

    @classmethod
    def _from_table(cls, meta: dict, frame: pd.DataFrame) -> SBCResult:
        frame = frame[list(meta["dtypes"])].astype(meta["dtypes"])
        return cls(frame, int(meta["thin"]), tuple(meta["settings"]), tuple(meta["diagnostics"]))

    def save(self, path) -> Path:
        """Write the table to ``path``: ``.parquet`` (needs pyarrow) or ``.json``.

        Both keep the thinning and the names of the setting and diagnostic columns, so that
        :meth:`load` returns an equal result.
        """
        path = Path(path)
        if path.suffix not in (".parquet", ".json"):
            raise DataError(f"unknown file type {path.suffix!r}; use .parquet or .json")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".json":
            return super().save(path)
        pa, pq = _pyarrow()
        table = pa.Table.from_pandas(self.frame, preserve_index=False)
        meta = {"format": self.format_tag(), **self._meta()}
        extra = {b"causalid.sbc": json.dumps(meta).encode()}
        pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **extra}), path)
        return path

    @classmethod
    def load(cls, path) -> SBCResult:
        """Read a result written by :meth:`save`."""
        path = Path(path)
        if path.is_dir():
            raise DataError(f"'{path}' is a folder, not an SBC table")
        if path.suffix not in (".parquet", ".json"):
            raise DataError(f"unknown file type {path.suffix!r}; use .parquet or .json")
        if path.suffix == ".json":
            return super().load(path)
        if not path.exists():
            raise DataError(f"file '{path}' does not exist")
        _, pq = _pyarrow()
        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(b"causalid.sbc")
        if raw is None:
            raise DataError(f"{path} is not an SBC table written by SBCResult.save")
        return cls._from_table(json.loads(raw), table.to_pandas())


def _pyarrow():
    return require_pyarrow("SBC tables in Parquet (or save as .json)")


# ============================================================================ problems
class SBCProblem(NamedTuple):
    """A ready-made SBC set-up: the four callables of :func:`run_sbc` and setting columns.

    Build one with a wing's problem builder (:func:`causalid.exchangeable.sbc.icm_problem`,
    :func:`causalid.exchangeable.sbc.nig_problem`, :func:`causalid.lti.sbc.lti_problem`) or by
    hand, and call :meth:`run`.  Problems that share the engine configuration share the
    ``posterior_draws`` callable, so a misspecified run after a correct one does not compile
    the sampler again.
    """

    prior_sample: Callable
    simulate: Callable
    posterior_draws: Callable
    quantities: Callable | None = None
    settings: Mapping[str, Any] = {}

    @float64
    def run(
        self,
        num_replicates: int,
        key: int | Array = 0,
        *,
        num_draws: int = 100,
        thin: int = 1,
        settings: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
    ) -> SBCResult:
        """:func:`run_sbc` on this problem; ``settings`` are added to the problem's own."""
        return run_sbc(
            self.prior_sample,
            self.simulate,
            self.posterior_draws,
            num_replicates,
            num_draws,
            key,
            thin=thin,
            quantities=self.quantities,
            settings={**self.settings, **(settings or {})},
            batch_size=batch_size,
        )


# ---------------------------------------------------------------------------- NUTS
@float64
def nuts_posterior(
    model: Callable,
    *,
    num_warmup: int = 500,
    target_accept_prob: float = 0.8,
    dense_mass: bool = False,
    max_tree_depth: int | tuple[int, int] = 10,
    init_strategy: Callable = init_to_uniform,
) -> Callable:
    r"""A vmap-able ``posterior_draws(key, data, num)`` running NUTS on ``model(data)``.

    One chain per call: initial values by ``init_strategy`` (redrawn until the log density is
    finite, :func:`numpyro.infer.util.initialize_model`), ``num_warmup`` adaptation steps
    (step size and mass matrix in Stan's windows), then ``num`` kept steps, in one
    :func:`jax.lax.scan` of NumPyro's functional NUTS kernel (:func:`numpyro.infer.hmc.hmc`)
    whose potential is generated from the data (``dynamic_args``).  Everything is traced, so
    ``jax.vmap`` over data sets runs one chain per replicate in one compiled program.

    Parameters
    ----------
    model : callable
        A NumPyro program called as ``model(data)`` (bind other arguments with
        :func:`functools.partial`).
    num_warmup, target_accept_prob, dense_mass, max_tree_depth, init_strategy
        NUTS settings as in :class:`numpyro.infer.NUTS` (the defaults are NumPyro's, as used
        by :func:`causalid.fit_parameters`).  Under ``vmap`` every chain waits for the longest
        trajectory of the batch, so a lower ``max_tree_depth`` bounds the cost of a few hard
        replicates (NUTS stays a valid MCMC kernel; it only mixes more slowly where the
        limit binds, which ``max_depth_hits`` reports).

    Returns
    -------
    callable ``(key, data, num) -> (draws, info)``
        ``draws``: the constrained sample sites (and deterministic sites) of ``model``, each
        with a leading axis of ``num``; ``info``: ``divergences`` (count after warm-up),
        ``accept_prob`` (mean after warm-up) and ``max_depth_hits`` (kept steps whose tree
        reached the maximum depth).
    """
    num_warmup = int(num_warmup)
    if num_warmup < 0:
        raise DataError(f"num_warmup={num_warmup}; it must be >= 0")
    depth = max_tree_depth[1] if isinstance(max_tree_depth, tuple) else max_tree_depth
    settings = {
        "target_accept_prob": target_accept_prob,
        "dense_mass": dense_mass,
        "max_tree_depth": max_tree_depth,
    }

    # One jitted potential: NUTS evaluates it in several places of its trajectory code, and
    # a jitted function is traced once per shape instead of once per call site.
    potential = jax.jit(lambda z, data: potential_energy(model, (data,), {}, z))

    def potential_fn_gen(data):
        return functools.partial(potential, data=data)

    def posterior_draws(key, data, num):
        k_init, k_run = jax.random.split(key)
        # Traced, not run eagerly: the set-up compiles into the same program as the chain.
        info = initialize_model(
            k_init, model, model_args=(data,), dynamic_args=True, init_strategy=init_strategy
        )
        init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn_gen, algo="NUTS")
        state = init_kernel(
            info.param_info, num_warmup, model_args=(data,), rng_key=k_run, **settings
        )

        def step(state, _):
            state = sample_kernel(state, model_args=(data,))
            return state, (state.z, state.diverging, state.accept_prob, state.num_steps)

        _, (zs, div, acc, steps) = jax.lax.scan(step, state, None, length=num_warmup + num)
        zs = jax.tree.map(lambda a: a[num_warmup:], zs)
        draws = jax.vmap(info.postprocess_fn(data))(zs)
        kept = slice(num_warmup, None)
        diag = {
            "divergences": div[kept].sum(),
            "accept_prob": acc[kept].mean(),
            "max_depth_hits": (steps[kept] >= 2**depth - 1).sum(),
        }
        return draws, diag

    return posterior_draws


def trace_sites(trace, names: Collection[str]) -> dict[str, Array]:
    """The values of the sites ``names`` of a NumPyro trace."""
    return {k: trace[k]["value"] for k in names}
