"""Causal de Finetti structure tests (Guo et al., NeurIPS 2023).

Inside an environment the samples are i.i.d. given the environment's mechanism
parameters; across environments the parameters of each mechanism are redrawn
independently.  Conditional independences *between two samples of one environment*
then reveal the causal structure:

* bivariate, X -> Y (or no edge): ``X1 ⊥ Y2 | X2`` holds while ``Y1 ⊥ X2 | Y2`` fails
  (the collider on ``Y2`` opens the path through the mechanism parameters); Y -> X is the
  mirror image; ``X1 ⊥ Y1`` holds only without an edge;
* multivariate: sink layers are peeled off — ``v`` is a sink of the remaining set ``R``
  iff ``X_v^(1) ⊥ X_k^(2) | X_{R \\ v}^(1)`` for every other ``k`` in ``R`` — and edges
  between layers are tested with ``X_j^(1) ⊥ X_k^(1) | C`` where ``C`` holds the layers
  upstream of ``j``, the other members of ``j``'s layer (possible co-parents) and the
  parents of ``k`` already found in the layers in between.  ``C`` always contains the
  other parents of ``k`` and no descendant of ``k``, so the test is valid for every pair.

Every algorithm is written as a generator that yields a batch of CI queries and receives
their p-values.  A driver runs one generator per data set in lock-step and evaluates
all queries of a round in one vmapped call, so ``R`` replicate data sets cost one
batched test evaluation per round, not ``R`` Python loops over tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable, Generator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from causalid._compile import compiled
from causalid._x64 import float64
from causalid.errors import DataError
from causalid.stats.ci import CI_TESTS
from causalid.stats.multitest import adjust_pvalues

# A query: (var_a, sample_a, var_b, sample_b, ((var, sample), ...)) meaning
# X_{var_a}^{(sample_a)} ⊥ X_{var_b}^{(sample_b)} | {X_var^{(sample)}}.
Query = tuple[int, int, int, int, tuple[tuple[int, int], ...]]
Program = Generator[list[Query], np.ndarray, dict]

CLUSTER_TESTS = ("gcm",)
# ----------------------------------------------------------------------------- programs
def bivariate_program(alpha: float, rule: str = "ordered") -> Program:
    """The bivariate causal de Finetti decision for variables 0 (X) and 1 (Y).

    ``rule="reference"`` is the published rule: X->Y if p_xy >= α, p_yx <= α, p_ind <= α;
    Y->X symmetrically; no edge if all three >= α; otherwise the largest p-value decides.
    ``rule="ordered"`` first decides adjacency with ``X1 ⊥ Y1`` (no edge iff p_ind >= α)
    and then orients by the larger of p_xy and p_yx; it never answers "no edge" because
    both directional tests happen to pass, and never orients an edge the independence
    test rejected as absent.
    """
    queries = [
        (0, 0, 1, 1, ((0, 1),)),  # X1 ⊥ Y2 | X2
        (1, 0, 0, 1, ((1, 1),)),  # Y1 ⊥ X2 | Y2
        (0, 0, 1, 0, ()),  # X1 ⊥ Y1
    ]
    p_xy, p_yx, p_ind = (float(v) for v in (yield queries))
    if rule == "reference":
        if p_xy >= alpha and p_yx <= alpha and p_ind <= alpha:
            edges = [(0, 1)]
        elif p_xy <= alpha and p_yx >= alpha and p_ind <= alpha:
            edges = [(1, 0)]
        elif p_xy >= alpha and p_yx >= alpha and p_ind >= alpha:
            edges = []
        else:
            edges = [[(0, 1)], [(1, 0)], []][int(np.argmax([p_xy, p_yx, p_ind]))]
    elif rule == "ordered":
        if p_ind >= alpha:
            edges = []
        else:
            edges = [(0, 1)] if p_xy >= p_yx else [(1, 0)]
    else:
        raise DataError(f"unknown bivariate rule {rule!r}; choose 'ordered' or 'reference'")
    tests = [
        {"test": "X1 ⊥ Y2 | X2", "source": 0, "target": 1, "pvalue": p_xy},
        {"test": "Y1 ⊥ X2 | Y2", "source": 1, "target": 0, "pvalue": p_yx},
        {"test": "X1 ⊥ Y1", "source": 0, "target": 1, "pvalue": p_ind},
    ]
    return {"edges": edges, "tests": tests, "layers": None}


def multivariate_program(d: int, alpha: float, correction: str | None = None) -> Program:
    """Sink-layer peeling followed by edge tests between layers (see the module docstring)."""
    remaining = list(range(d))
    layers: list[list[int]] = []
    tests: list[dict] = []
    forced = []
    while remaining:
        if len(remaining) == 1:
            layers.append(list(remaining))
            break
        queries, owners = [], []
        for v in remaining:
            rest = tuple((m, 0) for m in remaining if m != v)
            for k in remaining:
                if k != v:
                    queries.append((v, 0, k, 1, rest))
                    owners.append((v, k))
        p = np.asarray((yield queries), dtype=float)
        min_adj = {}
        for v in remaining:
            idx = [i for i, (o, _) in enumerate(owners) if o == v]
            adj = adjust_pvalues(p[idx], correction)
            min_adj[v] = float(adj.min())
            for i, a in zip(idx, adj):
                tests.append(
                    {"test": "sink", "source": v, "target": owners[i][1], "pvalue": float(p[i]),
                     "adjusted": float(a), "conditioning": [m for m, _ in queries[i][4]]}
                )
        sinks = [v for v in remaining if min_adj[v] >= alpha]
        if not sinks:  # every node looked like a non-sink: take the most sink-like one
            best = max(remaining, key=lambda v: min_adj[v])
            sinks = [best]
            forced.append(best)
        layers.append(sinks)
        remaining = [v for v in remaining if v not in sinks]

    layer_of = {v: i for i, layer in enumerate(layers) for v in layer}
    parents: dict[int, set[int]] = {v: set() for v in range(d)}
    for dist in range(1, len(layers)):
        queries, owners = [], []
        for n in range(dist, len(layers)):
            upstream = {v for i in range(n + 1, len(layers)) for v in layers[i]}
            for j in layers[n]:
                for k in layers[n - dist]:
                    between = {p for p in parents[k] if n - dist < layer_of[p] < n}
                    cond = sorted(upstream | (set(layers[n]) - {j}) | between)
                    queries.append((j, 0, k, 0, tuple((c, 0) for c in cond)))
                    owners.append((j, k, cond))
        if not queries:
            continue
        p = np.asarray((yield queries), dtype=float)
        adj = adjust_pvalues(p, correction)
        for (j, k, cond), pv, a in zip(owners, p, adj):
            if a <= alpha:
                parents[k].add(j)
            tests.append({"test": "edge", "source": j, "target": k, "pvalue": float(pv),
                          "adjusted": float(a), "conditioning": cond})
    edges = sorted((j, k) for k, ps in parents.items() for j in ps)
    return {"edges": edges, "tests": tests, "layers": layers, "forced_layers": forced}


def mechanism_variability_program(d: int, parents: dict[int, Sequence[int]]) -> Program:
    """Per node: does its mechanism vary across environments?

    ``X_i^(1) ⊥ X_i^(2) | pa^(1), pa^(2)`` holds iff node ``i``'s mechanism parameters are
    shared by all environments (given its parents, two samples can only be linked through
    them).  For a root this is ``X_i^(1) ⊥ X_i^(2)``.  A small p-value says the mechanism
    varies.  In the bivariate case X -> Y this is the regime diagnostic of the plate model (Guo et al. 2023; Reizinger et al. 2025):
    cause-only variability leaves ``Y1 ⊥ Y2 | X1, X2``, mechanism-only leaves ``X1 ⊥ X2``.
    """
    queries = []
    for i in range(d):
        pa = sorted(parents.get(i, ()))
        queries.append((i, 0, i, 1, tuple((m, 0) for m in pa) + tuple((m, 1) for m in pa)))
    p = np.asarray((yield queries), dtype=float)
    return {"pvalues": p}


# ----------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class PairData:
    """Pairs of samples for R data sets, flattened to rows.

    ``rows`` has shape (R, n, 2, d): n = E * P rows (pairs), two samples each.
    ``weights`` (R, n) marks real rows; ``cluster`` (n,) gives each row's environment.
    """

    rows: jax.Array
    weights: jax.Array
    cluster: np.ndarray
    num_clusters: int

    @classmethod
    def build(cls, pairs: np.ndarray, weights: np.ndarray) -> "PairData":
        # pairs (R, E, P, 2, d), weights (R, E, P); rows padded to a bucketed length so
        # that data sets of nearby sizes share one compiled test.
        R, E, P = weights.shape
        n = E * P
        n_pad = _bucket(n)
        rows = np.zeros((R, n_pad, 2, pairs.shape[-1]))
        rows[:, :n] = pairs.reshape(R, n, 2, -1)
        w = np.zeros((R, n_pad))
        w[:, :n] = weights.reshape(R, n)
        cluster = np.full(n_pad, E_pad := _bucket(E), dtype=np.int32) - 1
        cluster[:n] = np.repeat(np.arange(E), P)
        return cls(jnp.asarray(rows), jnp.asarray(w), cluster, E_pad)


def _bucket(n: int) -> int:
    """Round up to 1, 2, 3 or 4 times a power of two (at most 33% padding)."""
    if n <= 16:
        return n
    p = 2 ** (int(math.log2(n)) - 2)
    return int(math.ceil(n / p) * p)


def _two_moments(a: jax.Array) -> jax.Array:
    """``[a, a^2 - 1]``: on normal scores, the GCM then sees dependence in mean and in spread."""
    return jnp.stack([a, a * a - 1.0], axis=-1)


#: Tests for which all-zero extra columns in z change nothing (z is standardised, a zero
#: column stays zero and adds nothing to distances or to the ridge basis), so conditioning
#: sets can be padded to a few widths and share compiled code.
PADDABLE_TESTS = ("gcm", "kci", "rff")


def _test_fn(test: str, num_levels: int, num_clusters: int, seed: int) -> Callable:
    fn = CI_TESTS[test]
    if test == "gtest":
        return lambda x, y, z, w, c, k: fn(x, y, z, num_levels=num_levels, weights=w)
    if test == "gcm":
        # the data are normal scores: two rows of k standard normals lie sqrt(2k) apart
        return lambda x, y, z, w, c, k: fn(_two_moments(x), _two_moments(y), z, cluster=c,
                                           num_clusters=num_clusters, weights=w,
                                           bandwidth=jnp.sqrt(2.0 * jnp.maximum(k, 1)))
    if test == "rff":
        key = jax.random.PRNGKey(seed)
        return lambda x, y, z, w, c, k: fn(x, y, z, key, weights=w)
    return lambda x, y, z, w, c, k: fn(x, y, z, weights=w)


@partial(jax.jit, static_argnames=("test", "num_levels", "num_clusters", "seed"))
def _evaluate_group(rows, weights, cluster, rep, a, b, c, c_used, *, test, num_levels, num_clusters, seed):
    fn = _test_fn(test, num_levels, num_clusters, seed)

    def one(r, a, b, c, used):
        x = rows[r]  # (n, 2, d)
        xa = x[:, a[1], a[0]]
        xb = x[:, b[1], b[0]]
        z = x[:, c[:, 1], c[:, 0]] * used if c.shape[0] else jnp.zeros((x.shape[0], 0))
        return fn(xa, xb, z, weights[r], cluster, jnp.sum(used)).pvalue

    return jax.vmap(one)(rep, a, b, c, c_used)


def _width(k: int, test: str) -> int:
    """Conditioning-set width after padding: the next power of two for paddable tests."""
    if k == 0 or test not in PADDABLE_TESTS:
        return k
    return 1 << (k - 1).bit_length()


@float64
def evaluate_queries(
    data: PairData,
    queries: Sequence[tuple[int, Query]],
    test: str,
    num_levels: int = 2,
    seed: int = 0,
) -> np.ndarray:
    """p-values of ``(replicate, query)`` items, one vmapped call per conditioning width."""
    out = np.empty(len(queries))
    by_width: dict[int, list[int]] = {}
    for i, (_, q) in enumerate(queries):
        by_width.setdefault(_width(len(q[4]), test), []).append(i)
    for k, idx in by_width.items():
        q_pad = _bucket(len(idx))
        sel = idx + [idx[0]] * (q_pad - len(idx))
        rep = np.array([queries[i][0] for i in sel], dtype=np.int32)
        a = np.array([queries[i][1][0:2] for i in sel], dtype=np.int32)
        b = np.array([queries[i][1][2:4] for i in sel], dtype=np.int32)
        c = np.zeros((q_pad, k, 2), dtype=np.int32)
        used = np.zeros((q_pad, k))
        for row, i in enumerate(sel):
            cond = queries[i][1][4]
            if cond:
                c[row, : len(cond)] = cond
                used[row, : len(cond)] = 1.0
        args = (data.rows, data.weights, jnp.asarray(data.cluster), rep, a, b, c, used)
        p = compiled(_evaluate_group, *args, test=test, num_levels=num_levels,
                     num_clusters=data.num_clusters, seed=seed)(*args)
        out[idx] = np.asarray(p)[: len(idx)]
    return out


@float64
def run_programs(
    programs: Sequence[Program], evaluate: Callable[[list[tuple[int, Query]]], np.ndarray]
) -> list[dict]:
    """Run one program per data set in lock-step, batching every round's queries."""
    results: list[dict | None] = [None] * len(programs)
    pending: dict[int, list[Query]] = {}
    for r, g in enumerate(programs):
        try:
            pending[r] = next(g)
        except StopIteration as stop:  # a program with nothing to ask
            results[r] = stop.value
    while pending:
        batch = [(r, q) for r, qs in pending.items() for q in qs]
        p = evaluate(batch)
        start = 0
        for r in list(pending):
            n = len(pending[r])
            try:
                pending[r] = programs[r].send(p[start : start + n])
            except StopIteration as stop:
                results[r] = stop.value
                del pending[r]
            start += n
    return results  # type: ignore[return-value]


@float64
def normal_scores(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Replace every variable by its pooled normal scores ``Φ⁻¹(rank / (n + 1))``.

    Conditional independence is invariant under a bijection of each variable, so the
    causal de Finetti statements are unchanged, while heavy tails (Laplace noise, squared
    terms, skewed lab measurements) no longer dominate the moment-based tests.  Ranks are
    pooled over all environments and samples of a data set (the samples are exchangeable,
    so both members of a pair get the same transform); ties get their average rank.

    ``values`` (..., env, sample, var) and ``mask`` (..., env, sample); padding stays 0.
    """
    from scipy.special import ndtri
    from scipy.stats import rankdata

    lead = values.shape[:-3]
    E, N, d = values.shape[-3:]
    flat = values.reshape(*lead, E * N, d)
    m = mask.reshape(*lead, E * N)
    filled = np.where(m[..., None], flat, np.inf)  # padding ranks last
    ranks = rankdata(filled, axis=-2)
    n = m.sum(axis=-1)[..., None, None]
    scores = np.where(m[..., None], ndtri(ranks / (n + 1)), 0.0)
    return scores.reshape(values.shape)


def check_test_sizes(test: str, num_rows: int, max_conditioning: int) -> None:
    """Refuse designs where the chosen test has fewer rows than it needs."""
    need = max_conditioning + 5 if test == "fisherz" else 8
    if num_rows < need:
        hint = "" if test in CLUSTER_TESTS else " (this test uses one pair per environment; ci_test='gcm' uses all samples)"
        raise DataError(
            f"the causal de Finetti test '{test}' has only {num_rows} rows{hint}, too few to condition "
            f"on {max_conditioning} variable(s); add environments or use method='bayes'"
        )
