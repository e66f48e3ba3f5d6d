r"""Sweep plug-ins of the exchangeable wing (:mod:`causalid.verify.plugin`).

``bivariate``
    The causal de Finetti bivariate continuous reference (Guo et al. 2023, arXiv 2203.15756,
    :func:`causalid.models.exchangeable.scm_bivariate_continuous`): truth uniform over X→Y,
    Y→X and no edge.  Settings ``envs``, ``samples``, ``regime``.  Engines ``cdf`` and
    ``bayes`` (:func:`causalid.discover_batch`).  Metrics ``accuracy`` (1 when the graph is
    recovered exactly), ``shd``, ``normalized_shd``, ``precision``, ``recall``,
    ``direction_accuracy`` (:func:`causalid.structure_metrics`; NaN when no true edge was found).
``multivariate-binary``
    The multivariate binary reference (Guo et al. 2023,
    :func:`causalid.models.exchangeable.scm_multivariate_binary`).  Settings ``envs``,
    ``samples``, ``vars``; engines and metrics as ``bivariate``.
"""

from __future__ import annotations

import jax
import numpy as np

from causalid.errors import CausalIDError
from causalid.exchangeable.discover import discover_batch
from causalid.exchangeable.metrics import structure_metrics
from causalid.models.exchangeable import (
    bivariate_adjacency,
    scm_bivariate_continuous,
    scm_multivariate_binary,
)
from causalid.verify.plugin import (
    REQUIRED,
    Family,
    Scores,
    Setting,
    compile_ahead,
    draw_replicates,
    one_line,
)

__all__ = ["BIVARIATE", "MULTIVARIATE_BINARY"]


_STRUCTURE_METRICS = (
    "accuracy",
    "shd",
    "normalized_shd",
    "precision",
    "recall",
    "direction_accuracy",
)

_CDF_OPTIONS = {
    "alpha": Setting(float, 0.05, minimum=0.0, doc="significance level of the CI tests"),
    "ci_test": Setting(
        str,
        None,
        choices=("gcm", "kci", "rff", "fisherz", "gtest"),
        doc="CI test (default: gtest for discrete data, gcm for continuous)",
    ),
    "rule": Setting(
        str, "ordered", choices=("ordered", "reference"), doc="bivariate decision rule"
    ),
    "correction": Setting(
        str, None, choices=("bonferroni", "holm", "bh"), doc="multiple-testing control"
    ),
    "max_pairs": Setting(
        int, 64, minimum=1, doc="sample pairs per environment (cluster-robust tests)"
    ),
}
_BAYES_OPTIONS = {
    "max_parents": Setting(int, None, minimum=0, doc="largest parent set"),
    "edge_prior": Setting(float, 0.5, minimum=0.0, doc="prior probability of each edge"),
}


def _structure_scores(estimates: np.ndarray, truth: np.ndarray) -> list[dict]:
    """:func:`causalid.structure_metrics` plus ``accuracy`` (exact recovery) per replicate."""
    out = []
    for est, true in zip(estimates, truth):
        s = structure_metrics(est, true)
        s["accuracy"] = float(s["shd"] == 0)
        out.append(s)
    return out


def _discover_fit_score(method, options, sim, key, metrics):
    """All replicates in one :func:`causalid.discover_batch` call.

    The engine's integer seed is the sweep seed (``sim["seed"]``), not a per-cell one: the causal
    de Finetti engine compiles its tests with the seed as a constant, so one seed lets every
    cell of the same shapes reuse the compiled tests.  The cells still differ in their data.
    """
    x, truth = sim["x"], sim["adjacency"]
    scores = Scores(metrics, len(truth))
    opts = {k: v for k, v in options.items() if v is not None}
    if method == "cdf":
        opts["diagnose"] = False
    try:
        results = discover_batch(x, method=method, key=sim["seed"], **opts)
    except CausalIDError as exc:
        scores.fail(slice(None), one_line(exc))
        return scores
    est = np.stack([np.asarray(r.adjacency(), dtype=int) for r in results])
    for r, s in enumerate(_structure_scores(est, truth)):
        scores.set(
            r,
            s,
            "",
            undefined="undefined: the estimate has none of the true edges (or the truth none)",
        )
    return scores


def _check_discover(method, options, settings):
    if method == "cdf":
        if settings["samples"] < 2:
            raise ValueError(
                f"engine 'cdf' needs samples >= 2 per environment; got samples = "
                f"{settings['samples']}"
            )
        if options.get("ci_test") == "gtest" and "vars" not in settings:
            raise ValueError(
                "ci_test = 'gtest' needs discrete data; the bivariate family is continuous "
                "(use gcm, kci, rff or fisherz)"
            )
        if not 0 < options.get("alpha", 0.05) < 1:
            raise ValueError(f"alpha = {options['alpha']}: give a level in (0, 1)")
    if method == "bayes" and not 0 < options.get("edge_prior", 0.5) < 1:
        raise ValueError(f"edge_prior = {options['edge_prior']}: give a probability in (0, 1)")


def _bivariate_static(s) -> tuple:
    return (s["envs"], s["samples"], s["regime"])


def _precompile_bivariate(s, R):
    return compile_ahead(scm_bivariate_continuous, _bivariate_static(s), R)


def _simulate_bivariate(key, s, R):
    x, label = draw_replicates(scm_bivariate_continuous, _bivariate_static(s), jax.random.split(key, R))
    return {"x": np.asarray(x), "adjacency": bivariate_adjacency(label)}


def _binary_static(s) -> tuple:
    return (s["envs"], s["samples"], s["vars"])


def _precompile_binary(s, R):
    return compile_ahead(scm_multivariate_binary, _binary_static(s), R)


def _simulate_binary(key, s, R):
    x, adj = draw_replicates(scm_multivariate_binary, _binary_static(s), jax.random.split(key, R))
    return {"x": np.asarray(x), "adjacency": np.asarray(adj, dtype=int)}


_EXCHANGEABLE_SETTINGS = {
    "envs": Setting(int, REQUIRED, minimum=2, doc="environments E"),
    "samples": Setting(int, 2, minimum=1, doc="samples per environment N"),
}

BIVARIATE = Family(
    name="bivariate",
    settings={
        **_EXCHANGEABLE_SETTINGS,
        "regime": Setting(
            str,
            "both",
            choices=("both", "cause", "mechanism"),
            doc="which mechanisms vary across environments",
        ),
    },
    engines={"cdf": _CDF_OPTIONS, "bayes": _BAYES_OPTIONS},
    default_engines={"cdf": {"method": "cdf"}},
    metrics=_STRUCTURE_METRICS,
    default_metrics=("accuracy", "shd"),
    simulate=_simulate_bivariate,
    precompile=_precompile_bivariate,
    fit_score=_discover_fit_score,
    check_engine=_check_discover,
)

MULTIVARIATE_BINARY = Family(
    name="multivariate-binary",
    settings={
        **_EXCHANGEABLE_SETTINGS,
        "vars": Setting(int, 3, minimum=2, doc="variables d of the random DAG"),
    },
    engines={"cdf": _CDF_OPTIONS, "bayes": _BAYES_OPTIONS},
    default_engines={"cdf": {"method": "cdf"}},
    metrics=_STRUCTURE_METRICS,
    default_metrics=("normalized_shd", "shd", "accuracy"),
    simulate=_simulate_binary,
    precompile=_precompile_binary,
    fit_score=_discover_fit_score,
    check_engine=_check_discover,
)
