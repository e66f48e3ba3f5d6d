"""``method="bayes"`` of :func:`causalid.discover`: the DAG posterior as a StructureResult."""

from __future__ import annotations

import time

import networkx as nx
import numpy as np

from causalid.data.container import MultiEnvData
from causalid.errors import DataError
from causalid.infer.bayes import BayesStructureResult, bayes_structure, bayes_structure_batch
from causalid.infer.result import StructureResult


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
    progress: bool = False,
) -> StructureResult:
    """Posterior over DAGs of the exchangeable hierarchical model (see :mod:`causalid.infer.bayes`)."""
    family = _family(data.kind())
    if progress:
        import sys

        mode = "exhaustive enumeration" if data.num_vars <= 5 else "order MCMC"
        print(f"bayes: scoring parent sets of {data.num_vars} variables ({family}), then {mode}...",
              file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    post = bayes_structure(data.values, data.mask, family, **_options(max_parents, num_steps, edge_prior, seed))
    seconds = time.perf_counter() - t0
    result = _result(post, list(data.names), family, max_parents, num_steps, edge_prior, seed, seconds)
    if diagnose and data.counts.min() >= 2 and data.num_envs >= 6:
        from causalid.infer.discover import diagnose_mechanisms

        result.mechanisms = diagnose_mechanisms(data, result.graph, alpha=alpha, seed=seed)
    return result


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
            {"log_posterior": float(lp), "edges": [[names[i], names[j]] for i, j in np.argwhere(a)]}
            for a, lp in zip(post.top_dags[:5], post.top_log_post[:5])
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
