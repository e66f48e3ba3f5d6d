"""One front door for structure discovery: :func:`discover` and :func:`discover_batch`.

``method="cdf"`` runs the causal de Finetti tests (:mod:`causalid.exchangeable.cdf`),
``method="bayes"`` the DAG posterior of the exchangeable hierarchical model
(:mod:`causalid.exchangeable.bayes`); both return a :class:`StructureResult`.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Literal, Sequence

import networkx as nx
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from causalid._progress import show_progress
from causalid._random import int_seed, key_or_seed
from causalid._x64 import float64
from causalid.errors import DataError
from causalid.exchangeable import cdf
from causalid.exchangeable.bayes import (
    BayesStructureResult,
    bayes_structure,
    bayes_structure_batch,
    interventional_structure,
    mechanism_change_probs,
)
from causalid.exchangeable.data import MultiEnvData, data_kind
from causalid.exchangeable.pairs import make_pairs
from causalid.exchangeable.result import StructureResult
from causalid.stats.multitest import CORRECTIONS

Method = Literal["cdf", "bayes"]
_CI_TESTS = tuple(cdf.CI_TESTS)


def _as_data(data) -> MultiEnvData:
    if isinstance(data, MultiEnvData):
        return data
    if isinstance(data, pd.DataFrame):
        raise DataError("pass a MultiEnvData (causalid.MultiEnvData.from_frame(df, env=...)), not a bare DataFrame")
    return MultiEnvData.from_arrays(data)


@float64
def discover(
    data,
    method: Method = "cdf",
    alpha: float = 0.05,
    *,
    ci_test: str | None = None,
    rule: Literal["ordered", "reference"] = "ordered",
    correction: str | None = None,
    max_pairs: int = 64,
    diagnose: bool = True,
    max_parents: int | None = None,
    num_steps: int | None = None,
    edge_prior: float = 0.5,
    targets=None,
    intervention: str = "soft",
    off_target: float = 0.0,
    change_prior: float = 0.1,
    key=None,
    seed=None,
    progress: bool | None = None,
) -> StructureResult:
    """Recover a causal DAG from multi-environment exchangeable data.

    Parameters
    ----------
    data : MultiEnvData or array of shape (E, N, d)
    method : {"cdf", "bayes"}
        ``"cdf"``: the causal de Finetti conditional-independence tests (bivariate rule for
        two variables, sink-layer peeling plus edge tests beyond).  ``"bayes"``: posterior
        over DAGs from the marginal likelihood of the exchangeable hierarchical model
        (per-environment mechanism parameters integrated out).
    alpha : float
        Significance level of the CI tests (``cdf``) and of the mechanism-variability
        diagnostic; ``bayes`` reports the MAP DAG and posterior edge probabilities.
    ci_test : {"gcm", "kci", "rff", "fisherz", "gtest"}, optional
        CI test for ``cdf``.  Default ``gtest`` for discrete data and ``gcm`` (generalised
        covariance measure, cluster-robust over environments, so it can use every sample)
        for continuous data.  The other tests assume i.i.d. rows and use one pair of samples
        per environment.  Except for ``gtest``, variables are first replaced by their pooled
        normal scores (conditional independence is invariant under such per-variable
        bijections); the GCM tests the first two moments of the scores.
    rule : {"ordered", "reference"}
        Bivariate decision rule (see :func:`causalid.exchangeable.cdf.bivariate_program`).
    correction : {None, "bonferroni", "holm", "bh"}
        Multiple-testing control applied to each family of tests.
    max_pairs : int
        Sample pairs per environment used by cluster-robust tests.
    diagnose : bool
        Also test, for every variable, whether its mechanism varies across environments.
    max_parents, num_steps : int, optional
        ``bayes`` only: largest parent set considered, MCMC steps beyond exhaustive size.
    edge_prior : float
        ``bayes`` only: prior probability of each edge (0.5 = uniform over DAGs).
    targets : None, "unknown" or dict
        ``bayes`` only, continuous data.  ``None``: the exchangeable model, every mechanism's
        parameters drawn afresh per environment (:mod:`causalid.exchangeable.bayes`).  A dict
        ``{environment label: [variable names]}`` (labels as in ``data.envs``, e.g. from
        ``causalid.load(..., env=...)``; an empty list = observational) gives the known
        intervention targets: the mechanisms of the targets are changed in their environment,
        every other mechanism is shared by the environments that do not change it
        (:func:`~causalid.exchangeable.bayes.interventional_structure`).  ``"unknown"``: every
        mechanism may change in every environment but the first (the reference), with prior
        probability ``change_prior``; the posterior probability of each change is returned
        in :attr:`StructureResult.changes`.
    intervention : {"soft", "perfect"}
        With ``targets``: a changed mechanism keeps its parents with its own parameters
        (soft) or loses them (perfect).
    off_target : float
        With a ``targets`` dict: prior probability that a mechanism not named as a target
        changes anyway (0: targets taken as given).
    change_prior : float
        With ``targets="unknown"``: prior probability of each change.
    key : int or PRNG key
        Randomness of pair sampling, random features and MCMC (default 0).  The causal de
        Finetti tests compile their seed in as a constant: an int is used as it is, a key
        is turned into one.  ``seed=`` is a deprecated alias.
    progress : bool or None
        (None, the default: shown when someone watches, see :mod:`causalid._progress`.)
        Show progress on long runs.

    Returns
    -------
    StructureResult
    """
    progress = show_progress(progress)
    seed = int_seed(key_or_seed(key, seed, "discover"))
    data = _as_data(data)
    _check_alpha(alpha)
    if targets is not None:
        if method != "bayes":
            raise DataError(f"intervention targets are used by method='bayes' only; got method={method!r}")
        return interventional_discover(data, targets, intervention=intervention, off_target=off_target,
                                       change_prior=change_prior, max_parents=max_parents,
                                       num_steps=num_steps, edge_prior=edge_prior, seed=seed,
                                       progress=progress)
    if method == "cdf":
        return _cdf_many(
            data.values[None], data.mask[None], list(data.names), alpha=alpha, ci_test=ci_test, rule=rule,
            correction=correction, max_pairs=max_pairs, diagnose=diagnose, seed=seed, progress=progress,
            kind=data.kind(), envs=data.envs,
        )[0]
    if method == "bayes":
        return bayes_discover(data, max_parents=max_parents, num_steps=num_steps, edge_prior=edge_prior,
                              diagnose=diagnose, alpha=alpha, seed=seed, progress=progress)
    raise DataError(f"unknown method {method!r}; choose 'cdf' or 'bayes'")


@float64
def discover_batch(
    x,
    method: Method = "cdf",
    names: Sequence[str] | None = None,
    alpha: float = 0.05,
    **options,
) -> list[StructureResult]:
    """Run :func:`discover` on ``R`` independent data sets in one vectorised call.

    Parameters
    ----------
    x : array, shape (R, E, N, d)
        ``R`` data sets of ``E`` environments with ``N`` samples each.
    method, alpha, options
        As for :func:`discover` (``key=``; ``seed=`` is its deprecated alias).

    Returns
    -------
    list of StructureResult, one per data set.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 4:
        raise DataError(f"x has shape {x.shape}; discover_batch expects (replicate, env, sample, variable)")
    if not np.all(np.isfinite(x)):
        r = int(np.flatnonzero(~np.isfinite(x).all(axis=(1, 2, 3)))[0])
        raise DataError(f"data set {r} contains NaN or infinite values; remove or impute them first")
    R, E, N, d = x.shape
    names = list(names) if names is not None else [f"X{i}" for i in range(d)]
    if len(names) != d:
        raise DataError(f"got {len(names)} names for {d} variables")
    _check_alpha(alpha)
    kind = data_kind(x)
    seed = int_seed(key_or_seed(options.pop("key", None), options.pop("seed", None), "discover_batch"))
    if method == "cdf":
        if N < 2:
            raise DataError("the causal de Finetti tests need at least 2 samples per environment; got N = 1")
        opts = {k: options.pop(k) for k in list(options) if k in
                ("ci_test", "rule", "correction", "max_pairs", "diagnose", "progress")}
        if options:
            raise DataError(f"unknown option(s) for method 'cdf': {sorted(options)}")
        return _cdf_many(x, np.ones((R, E, N), dtype=bool), names, alpha=alpha, kind=kind,
                         envs=tuple(str(e) for e in range(E)), seed=seed, **opts)
    if method == "bayes":
        return bayes_discover_batch(x, names, kind, seed=seed, **options)
    raise DataError(f"unknown method {method!r}; choose 'cdf' or 'bayes'")


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise DataError(f"alpha must be in (0, 1); got {alpha}")


def _cdf_many(
    values: np.ndarray,
    mask: np.ndarray,
    names: list[str],
    *,
    alpha: float,
    kind: str,
    envs: Sequence[str],
    ci_test: str | None = None,
    rule: str = "ordered",
    correction: str | None = None,
    max_pairs: int = 64,
    diagnose: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> list[StructureResult]:
    R, E, _, d = values.shape
    if d < 2:
        raise DataError("structure discovery needs at least two variables")
    if correction not in CORRECTIONS:
        raise DataError(f"unknown correction {correction!r}; choose one of {CORRECTIONS}")
    if E < 2:
        raise DataError(
            "the causal de Finetti tests contrast environments, and the data have only one; give the "
            "environment column (env=...), or use method='bayes' with at least two environments"
        )
    counts = mask.sum(axis=-1)
    if counts.min() < 2:
        r, e = np.argwhere(counts < 2)[0]
        label = envs[e] if R == 1 else f"{e} of data set {r}"
        raise DataError(
            f"the causal de Finetti tests need at least 2 samples per environment; environment "
            f"'{label}' has {int(counts[r, e])}: merge or remove it"
        )
    test, data, num_levels, pairs_per_env = _pair_data(values, mask, kind, ci_test, max_pairs, seed)
    rows = E if test not in cdf.CLUSTER_TESTS else int(np.asarray(data.weights).sum(axis=1).min())
    cdf.check_test_sizes(test, rows, max_conditioning=2 * (d - 1) if diagnose else d - 1)

    bar = _progress(progress, f"causal de Finetti ({test}) on {R} data set(s)")
    rounds = 0

    def evaluate(batch):
        nonlocal rounds
        rounds += 1
        if bar is not None:
            bar.set_postfix_str(f"round {rounds}: {len(batch)} tests")
            bar.update(1)
        return cdf.evaluate_queries(data, batch, test, num_levels=num_levels, seed=seed)

    t0 = time.perf_counter()
    if d == 2:
        programs = [cdf.bivariate_program(alpha, rule) for _ in range(R)]
    else:
        programs = [cdf.multivariate_program(d, alpha, correction) for _ in range(R)]
    found = cdf.run_programs(programs, evaluate)
    for r, f in enumerate(found):
        failed = [t["test"] for t in f["tests"] if np.isnan(t["pvalue"])]
        if failed:
            where = "" if R == 1 else f" in data set {r}"
            if bar is not None:
                bar.close()
            raise DataError(
                f"the causal de Finetti test '{test}' gave no p-value for {failed[0]}{where}: {E} environments "
                "are too few for it (it treats each environment as one independent draw); add environments "
                "or use method='bayes'"
            )
    mech = None
    if diagnose:
        parent_maps = [{k: [j for j, kk in f["edges"] if kk == k] for k in range(d)} for f in found]
        mech = cdf.run_programs([cdf.mechanism_variability_program(d, pm) for pm in parent_maps], evaluate)
    elapsed = time.perf_counter() - t0
    if bar is not None:
        bar.close()

    settings = {"alpha": alpha, "ci_test": test, "rule": rule if d == 2 else None, "correction": correction,
                "pairs_per_env": pairs_per_env, "seed": seed, "diagnose": diagnose,
                "algorithm": "bivariate" if d == 2 else "multivariate"}
    results = []
    for r, f in enumerate(found):
        results.append(_cdf_result(f, None if mech is None else mech[r], names, alpha, settings,
                                   {"seconds": elapsed / R, "rounds": rounds, "score_name": "p-value"}))
    return results


def _pair_data(values, mask, kind, ci_test, max_pairs, seed):
    """Choose the CI test and build the sample pairs every causal de Finetti test reads."""
    discrete = kind in ("binary", "categorical")
    test = ci_test or ("gtest" if discrete else "gcm")
    if test not in _CI_TESTS:
        raise DataError(f"unknown ci_test {test!r}; choose one of {_CI_TESTS}")
    if test == "gtest" and not discrete:
        raise DataError("ci_test='gtest' needs discrete data coded 0..L-1; use 'gcm' or 'kci' for continuous data")
    num_levels = int(values[mask.astype(bool)].max()) + 1 if test == "gtest" else 2
    pairs_per_env = max_pairs if test in cdf.CLUSTER_TESTS else 1
    if test != "gtest":
        values = cdf.normal_scores(values, mask)
    pairs, w = make_pairs(values, mask, pairs_per_env, seed=seed)
    return test, cdf.PairData.build(pairs, w), num_levels, pairs_per_env


@float64
def diagnose_mechanisms(
    data, graph: nx.DiGraph, alpha: float = 0.05, ci_test: str | None = None, key=None, seed=None
) -> pd.DataFrame:
    """Which mechanisms vary across environments, for a given DAG.

    For every variable ``i`` the test ``X_i^(1) ⊥ X_i^(2) | pa^(1), pa^(2)`` (two samples of
    one environment) holds iff the mechanism of ``i`` is shared by all environments.  With
    X -> Y: cause-only variability (IEM) leaves the effect's mechanism shared, mechanism-only
    variability leaves the cause's shared (Guo et al. 2023; Reizinger et al. 2025).

    Returns
    -------
    pandas.DataFrame
        Columns ``variable``, ``parents``, ``pvalue``, ``varies`` (``pvalue <= alpha``).
        ``key`` as for :func:`discover` (``seed=`` is its deprecated alias).
    """
    seed = int_seed(key_or_seed(key, seed, "diagnose_mechanisms"))
    data = _as_data(data)
    _check_alpha(alpha)
    names = list(data.names)
    missing = set(graph.nodes) ^ set(names)
    if missing:
        raise DataError(f"graph and data disagree on variables {sorted(map(str, missing))}")
    data.require_samples(2, "the mechanism-variability test")
    test, pd_, num_levels, _ = _pair_data(data.values[None], data.mask[None], data.kind(), ci_test, 64, seed)
    parents = {names.index(k): [names.index(j) for j in graph.predecessors(k)] for k in names}
    (mech,) = cdf.run_programs(
        [cdf.mechanism_variability_program(len(names), parents)],
        lambda batch: cdf.evaluate_queries(pd_, batch, test, num_levels=num_levels, seed=seed),
    )
    return _mechanism_frame(names, graph, mech["pvalues"], alpha)


def _mechanism_frame(names, graph, pvalues, alpha) -> pd.DataFrame:
    """The pair-test verdicts; a p-value that could not be computed gives ``varies`` = NA and a
    warning, never "no change"."""
    p = np.asarray(pvalues, dtype=float)
    missing = [n for n, v in zip(names, p) if not np.isfinite(v)]
    if missing:
        warnings.warn(f"the mechanism-variability test gave no p-value for {missing} (too few environments "
                      "for the pair test); their verdict is NA, not 'no change' - use method='bayes', whose "
                      "verdict uses every sample", RuntimeWarning, stacklevel=3)
    varies = pd.array([None if not np.isfinite(v) else bool(v <= alpha) for v in p], dtype="boolean")
    return pd.DataFrame({
        "variable": names,
        "parents": [sorted(graph.predecessors(n)) for n in names],
        "pvalue": p,
        "varies": varies,
    })


def _cdf_result(found, mech, names, alpha, settings, info) -> StructureResult:
    records = []
    for t in found["tests"]:
        rec = dict(t, source=names[t["source"]], target=names[t["target"]])
        if "conditioning" in rec:
            rec["conditioning"] = [names[i] for i in rec["conditioning"]]
        records.append(rec)
    g = nx.DiGraph()
    g.add_nodes_from(names)
    if settings["algorithm"] == "bivariate":
        p_ind = found["tests"][2]["pvalue"]
        scores = {(j, k): p_ind for j, k in found["edges"]}
    else:
        scores = {(t["source"], t["target"]): t["pvalue"] for t in found["tests"] if t["test"] == "edge"}
    for j, k in found["edges"]:
        g.add_edge(names[j], names[k], score=scores[(j, k)])
    layers = None if found["layers"] is None else [[names[i] for i in layer] for layer in found["layers"]]
    mechanisms = None if mech is None else _mechanism_frame(names, g, mech["pvalues"], alpha)
    info = dict(info)
    if found.get("forced_layers"):
        info["forced_layers"] = [names[i] for i in found["forced_layers"]]
    return StructureResult(graph=g, records=records, method="cdf", settings=dict(settings), names=list(names),
                           layers=layers, mechanisms=mechanisms, info=info)


def _progress(show: bool, desc: str):
    if not show:
        return None
    return tqdm(desc=desc, unit="round", leave=False)


# ---------------------------------------------------------------------- method="bayes"
def _family(kind: str) -> str:
    return {"continuous": "linear_gaussian", "binary": "binary", "categorical": "categorical"}[kind]


def _options(max_parents, num_steps, edge_prior, seed) -> dict:
    opts = {"max_parents": max_parents, "edge_prior": edge_prior, "key": int(seed)}
    if num_steps is not None:
        if num_steps < 10:
            raise DataError(f"num_steps must be at least 10; got {num_steps}")
        opts.update(num_warmup=num_steps // 2, num_samples=num_steps)
    return opts


def bayes_discover(
    data: MultiEnvData,
    *,
    max_parents: int | None = None,
    num_steps: int | None = None,
    edge_prior: float = 0.5,
    diagnose: bool = True,
    alpha: float = 0.05,
    seed: int = 0,
    progress: bool | None = None,
) -> StructureResult:
    """Posterior over DAGs of the exchangeable hierarchical model (see :mod:`causalid.exchangeable.bayes`)."""
    progress = show_progress(progress)
    family = _family(data.kind())
    if progress:
        mode = "exhaustive enumeration" if data.num_vars <= 5 else "order MCMC"
        print(f"bayes: scoring parent sets of {data.num_vars} variables ({family}), then {mode}...",
              file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    post = bayes_structure(data.values, data.mask, family, progress=progress,
                           **_options(max_parents, num_steps, edge_prior, seed))
    seconds = time.perf_counter() - t0
    result = _result(post, list(data.names), family, max_parents, num_steps, edge_prior, seed, seconds)
    if diagnose:
        _diagnose(result, data, alpha, seed)
    return result


#: Environments from which the pair-based mechanism test is used (with few samples each).
PAIR_TEST_MIN_ENVS = 50
PAIR_TEST_MAX_SAMPLES = 20


def _diagnose(result: StructureResult, data: MultiEnvData, alpha: float, seed: int) -> None:
    """Attach a mechanism-change verdict to ``result``, choosing the test by the data's shape.

    Many small environments (at least ``PAIR_TEST_MIN_ENVS``, median at most
    ``PAIR_TEST_MAX_SAMPLES`` samples): the causal de Finetti pair test of
    :func:`diagnose_mechanisms`.  Few large environments (continuous data): the posterior
    probability of each (environment, variable) change given the MAP DAG
    (:func:`~causalid.exchangeable.bayes.mechanism_change_probs`, first environment the
    reference).  ``info["mechanism_diagnostic"]`` says which was used.
    """
    many_small = data.num_envs >= PAIR_TEST_MIN_ENVS and np.median(data.counts) <= PAIR_TEST_MAX_SAMPLES
    if many_small and data.counts.min() >= 2:
        result.mechanisms = diagnose_mechanisms(data, result.graph, alpha=alpha, key=seed)
        result.info["mechanism_diagnostic"] = "pair test (causal de Finetti, many small environments)"
    elif not many_small and data.kind() == "continuous":
        prior, _ = resolve_targets(data, "unknown")
        probs = mechanism_change_probs(data.values, data.mask, result.adjacency(), prior)
        result.changes = _change_frame(data, probs, prior)
        result.info["mechanism_diagnostic"] = ("interventional posterior given the MAP DAG (few large "
                                               "environments; first environment the reference)")
    else:
        result.info["mechanism_diagnostic"] = "none (discrete data with few environments, or environments with one sample)"


def bayes_discover_batch(x: np.ndarray, names, kind: str, *, max_parents=None, num_steps=None, edge_prior=0.5,
                         seed=0, **unknown) -> list[StructureResult]:
    """``method="bayes"`` for ``R`` data sets ``(R, E, N, d)`` of one ``kind`` (continuous, binary, categorical)."""
    if unknown:
        raise DataError(f"unknown option(s) for method 'bayes': {sorted(unknown)}")
    family = _family(kind)
    if num_steps is not None and x.shape[-1] <= 5:
        raise DataError(f"num_steps={num_steps} applies to MCMC only; batch mode with "
                        f"{x.shape[-1]} variables enumerates every DAG exactly (leave num_steps unset)")
    mask = np.ones(x.shape[:3], dtype=bool)
    t0 = time.perf_counter()
    posts = bayes_structure_batch(x, mask, family, max_parents=max_parents, edge_prior=edge_prior)
    seconds = (time.perf_counter() - t0) / max(len(posts), 1)  # the batch's time, shared out
    return [_result(post, list(names), family, max_parents, num_steps, edge_prior, seed, seconds)
            for post in posts]


def _result(post: BayesStructureResult, names, family, max_parents, num_steps, edge_prior, seed, seconds):
    d = len(names)
    g = nx.DiGraph()
    g.add_nodes_from(names)
    for i, j in np.argwhere(post.map_dag):
        g.add_edge(names[i], names[j], score=float(post.edge_probs[i, j]))
    rows = [{"source": names[i], "target": names[j], "probability": float(post.edge_probs[i, j]),
             "in_map_dag": bool(post.map_dag[i, j])}
            for i in range(d) for j in range(d) if i != j]
    info = {
        "score_name": "posterior probability",
        "posterior": post.method,
        "sampler": post.sampler,
        "num_dags": int(post.num_dags),
        "seconds": seconds,
        "top_dags": [
            {"log_posterior": float(lp), "log_score": float(ls),
             "edges": [[names[i], names[j]] for i, j in np.argwhere(a)]}
            for a, lp, ls in zip(post.top_dags[:5], post.top_log_post[:5], post.top_log_score[:5])
        ],
    }
    if post.diagnostics is not None:
        diag = post.diagnostics
        info["mcmc"] = {
            "acceptance": [float(a) for a in np.atleast_1d(diag.acceptance)],
            "max_edge_prob_diff_between_chains": float(diag.max_edge_prob_diff),
            "rhat_log_score": float(diag.rhat_log_score),
            "ess_log_score": float(diag.ess_log_score),
            "num_unique_dags": int(diag.num_unique_dags),
        }
    settings = {"family": family, "max_parents": max_parents, "num_steps": num_steps,
                "edge_prior": edge_prior, "seed": seed}
    return StructureResult(graph=g, records=rows, method="bayes", settings=settings,
                           names=list(names), info=info)


# ---------------------------------------------------------------------- interventions
def resolve_targets(data: MultiEnvData, targets, *, off_target: float = 0.0, change_prior: float = 0.1):
    """The prior change probabilities ``(env, var)`` for ``targets`` (see :func:`discover`).

    Returns
    -------
    prior : ndarray, shape (env, var)
        1 for a known target, ``off_target`` for the other mechanisms of a targets dict;
        ``change_prior`` everywhere but the first (reference) environment for ``"unknown"``.
    assumed : dict
        ``{environment: [targets]}`` as assumed (``"unknown"`` for unknown targets), for the
        record of the result.
    """
    names, envs = list(data.names), list(data.envs)
    for what, p in (("off_target", off_target), ("change_prior", change_prior)):
        if not 0.0 <= p < 1.0:
            raise DataError(f"{what}={p} must be a probability in [0, 1)")
    if isinstance(targets, str):
        if targets != "unknown":
            raise DataError(f"targets={targets!r}: give 'unknown', None or a dict {{environment: [variables]}}")
        if not 0.0 < change_prior < 1.0:
            raise DataError(f"change_prior={change_prior} must lie strictly between 0 and 1 for unknown targets")
        prior = np.full((len(envs), len(names)), float(change_prior))
        prior[0] = 0.0
        return prior, {e: ("reference" if k == 0 else "unknown") for k, e in enumerate(envs)}
    if not isinstance(targets, dict):
        raise DataError(f"targets must be None, 'unknown' or a dict {{environment: [variables]}}, "
                        f"not {type(targets).__name__}")
    table = {str(k): v for k, v in targets.items()}
    extra = sorted(set(table) - set(envs))
    if extra:
        raise DataError(f"targets name environment(s) {extra} that are not in the data; the data's "
                        f"environments are {envs}")
    missing = [e for e in envs if e not in table]
    if missing:
        raise DataError(f"targets give no entry for environment(s) {missing}; list every environment, "
                        "with an empty list for an observational one")
    prior = np.full((len(envs), len(names)), float(off_target))
    assumed = {}
    for k, e in enumerate(envs):
        tv = table[e]
        tv = [] if tv is None else [tv] if isinstance(tv, str) else list(tv)
        bad = [t for t in tv if t not in names]
        if bad:
            raise DataError(f"target(s) {bad} of environment '{e}' are not columns of the data; the "
                            f"variables are {names}")
        prior[k, [names.index(t) for t in tv]] = 1.0
        assumed[e] = sorted(set(tv), key=names.index)
    return prior, assumed


def interventional_discover(
    data: MultiEnvData,
    targets,
    *,
    intervention: str = "soft",
    off_target: float = 0.0,
    change_prior: float = 0.1,
    max_parents: int | None = None,
    num_steps: int | None = None,
    edge_prior: float = 0.5,
    seed: int = 0,
    progress: bool | None = None,
) -> StructureResult:
    """``discover(data, method="bayes", targets=...)``: DAG and mechanism changes from
    interventional data (see :func:`causalid.exchangeable.bayes.interventional_structure`)."""
    progress = show_progress(progress)
    if data.kind() != "continuous":
        raise DataError(f"intervention targets need continuous data (the linear-Gaussian score); the data are "
                        f"{data.kind()}")
    if data.num_envs < 2:
        raise DataError("intervention targets need at least two environments")
    prior, assumed = resolve_targets(data, targets, off_target=off_target, change_prior=change_prior)
    if progress:
        mode = "exhaustive enumeration" if data.num_vars <= 5 else "order MCMC"
        print(f"bayes ({intervention} interventions, {'unknown' if isinstance(targets, str) else 'known'} "
              f"targets): scoring parent sets of {data.num_vars} variables, then {mode}...",
              file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    post = interventional_structure(data.values, data.mask, prior, intervention=intervention, progress=progress,
                                    **_options(max_parents, num_steps, edge_prior, seed))
    seconds = time.perf_counter() - t0
    result = _result(post, list(data.names), "linear_gaussian", max_parents, num_steps, edge_prior, seed, seconds)
    result.settings.update(targets=assumed, intervention=intervention, off_target=off_target,
                           change_prior=change_prior if isinstance(targets, str) else None)
    result.changes = _change_frame(data, post.change_probs, prior)
    result.info["mechanism_diagnostic"] = "interventional posterior (every sample, exact sum over changes)"
    return result


def _change_frame(data: MultiEnvData, probs: np.ndarray, prior: np.ndarray) -> pd.DataFrame:
    """The verdict table: one row per (environment, variable)."""
    envs, names = list(data.envs), list(data.names)
    probs = np.asarray(probs, dtype=float)
    if not np.all(np.isfinite(probs)):
        raise DataError("the mechanism-change posterior could not be computed (non-finite values); "
                        "check the data for near-constant variables within an environment")
    return pd.DataFrame({
        "environment": np.repeat(envs, len(names)),
        "variable": np.tile(names, len(envs)),
        "probability": probs.ravel(),
        "changed": probs.ravel() > 0.5,
        "prior": prior.ravel(),
    })
