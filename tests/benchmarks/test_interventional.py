"""Simulated interventional data: causalid's bayes engine against GIES, GnIES and UT-IGSP.

Linear-Gaussian SCMs on random DAGs (d = 8, expected 1.5 parents per node), one
observational and five intervened environments (one distinct target each), 400 samples
per environment, soft and perfect interventions, simulated through
``causalid.models.exchangeable.simulate_interventions`` (interventions as NumPyro
substitutions).  Known targets: causalid ``targets={...}`` vs GIES (``pip install gies``).
Unknown targets: causalid ``targets="unknown"`` vs GnIES (``pip install gnies``) and
UT-IGSP (``pip install causaldag``).  Printed: mean SHD (peers' undirected edges counted as
wrongly oriented), edge F1, and for unknown targets the precision / recall of the
(environment, variable) change indicators (the observational reference environment
excluded).

    pytest -m benchmark -s tests/benchmarks/test_interventional.py
"""

import time
import warnings

import jax
import networkx as nx
import numpy as np
import pytest

import causalid
from causalid.exchangeable.metrics import edge_precision_recall, shd
from causalid.models.exchangeable import simulate_interventions

D, ENVS, N, REPS = 8, 6, 400, 5


def _dag(rng, names):
    """A random DAG over ``names`` in a random order, edge probability 3 / (d - 1)."""
    order = rng.permutation(D)
    adj = np.triu(rng.random((D, D)) < 3 / (D - 1), 1)
    g = nx.DiGraph()
    g.add_nodes_from(names)
    g.add_edges_from((names[order[i]], names[order[j]]) for i, j in np.argwhere(adj))
    return g


def _cpdag_as_dag(a, truth):
    """A peer's (I-)CPDAG adjacency: undirected pairs (a[i, j] = a[j, i] = 1) counted wrong."""
    a = np.asarray(a) != 0
    out = a & ~a.T
    for i, j in np.argwhere(np.triu(a & a.T)):
        if truth[i, j]:
            out[j, i] = True
        else:
            out[i, j] = True
    return out.astype(int)


def _f1(a, truth):
    p, r = edge_precision_recall(a, truth)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _change_pr(found, truth):
    found, truth = np.asarray(found, bool)[1:], np.asarray(truth, bool)[1:]
    tp = (found & truth).sum()
    return tp / max(found.sum(), 1), tp / max(truth.sum(), 1)


def _run(kind):
    rng = np.random.default_rng(0)
    rows = {}

    def add(name, a, truth, seconds, changes=None, true_changes=None):
        r = rows.setdefault(name, {"shd": [], "f1": [], "s": [], "cp": [], "cr": []})
        r["shd"].append(shd(a, truth))
        r["f1"].append(_f1(a, truth))
        r["s"].append(seconds)
        if changes is not None:
            p, rc = _change_pr(changes, true_changes)
            r["cp"].append(p)
            r["cr"].append(rc)

    for rep in range(REPS):
        names = [f"X{i}" for i in range(D)]
        graph = _dag(rng, names)
        picked = rng.choice(D, ENVS - 1, replace=False)
        targets = [[]] + [[names[i]] for i in picked]
        sim = simulate_interventions(jax.random.PRNGKey(rep), graph, targets, N, kind=kind)
        truth = nx.to_numpy_array(graph, nodelist=names, weight=None).astype(int)
        envs = [f"e{e}" for e in range(ENVS)]
        data = causalid.MultiEnvData.from_arrays(sim.x, names=names, envs=envs)
        known = dict(zip(envs, targets))

        t0 = time.perf_counter()
        res = causalid.discover(data, method="bayes", targets=known, intervention=kind, progress=False)
        add("causalid known", res.adjacency(), truth, time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = causalid.discover(data, method="bayes", targets="unknown", intervention=kind, progress=False)
        ch = res.changes["changed"].to_numpy().reshape(ENVS, D)
        add("causalid unknown", res.adjacency(), truth, time.perf_counter() - t0, ch, sim.changed)

        blocks = [sim.x[e] for e in range(ENVS)]
        idx = [[names.index(t) for t in tg] for tg in targets]
        try:
            import gies

            t0 = time.perf_counter()
            a, _ = gies.fit_bic(blocks, idx)
            add("GIES known", _cpdag_as_dag(a, truth), truth, time.perf_counter() - t0)
        except ImportError:
            pass
        try:
            import gnies

            t0 = time.perf_counter()
            _, a, found = gnies.fit(blocks)
            ch = np.zeros((ENVS, D), bool)
            ch[1:, sorted(found)] = True          # GnIES returns one target set for all environments
            add("GnIES unknown", _cpdag_as_dag(a, truth), truth, time.perf_counter() - t0, ch, sim.changed)
        except ImportError:
            pass
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from causaldag import unknown_target_igsp
                from conditional_independence import (
                    MemoizedCI_Tester,
                    MemoizedInvarianceTester,
                    gauss_invariance_suffstat,
                    gauss_invariance_test,
                    partial_correlation_suffstat,
                    partial_correlation_test,
                )

                t0 = time.perf_counter()
                ci = MemoizedCI_Tester(partial_correlation_test, partial_correlation_suffstat(sim.x[0]), alpha=1e-3)
                inv = MemoizedInvarianceTester(gauss_invariance_test,
                                               gauss_invariance_suffstat(sim.x[0], blocks[1:]), alpha=1e-3)
                setting = [{"known_interventions": set()} for _ in range(ENVS - 1)]
                dag, learned = unknown_target_igsp(setting, set(range(D)), ci, inv)
                a = np.zeros((D, D), int)
                for i, j in dag.arcs:
                    a[i, j] = 1
                ch = np.zeros((ENVS, D), bool)
                for e, tg in enumerate(learned):
                    ch[e + 1, sorted(tg)] = True
                add("UT-IGSP unknown", a, truth, time.perf_counter() - t0, ch, sim.changed)
        except ImportError:
            pass
    return rows


@pytest.mark.parametrize("kind", ["soft", "perfect"])
def test_interventional_simulations(kind):
    rows = _run(kind)
    print(f"\n{kind} interventions, d={D}, {ENVS} envs x {N} samples, {REPS} DAGs")
    print(f"{'method':18s} {'SHD':>6s} {'F1':>6s} {'chg P':>6s} {'chg R':>6s} {'s/run':>7s}")
    for name, r in rows.items():
        cp = f"{np.mean(r['cp']):6.2f}" if r["cp"] else "     -"
        cr = f"{np.mean(r['cr']):6.2f}" if r["cr"] else "     -"
        print(f"{name:18s} {np.mean(r['shd']):6.2f} {np.mean(r['f1']):6.2f} {cp} {cr} {np.mean(r['s']):7.2f}")
    for ours, peer in (("causalid known", "GIES known"), ("causalid unknown", "GnIES unknown"),
                       ("causalid unknown", "UT-IGSP unknown")):
        if peer in rows:
            a, b = np.mean(rows[ours]["shd"]), np.mean(rows[peer]["shd"])
            print(f"mean SHD {ours} / {peer}: {a:.2f} / {b:.2f}" + (f" = {a / b:.2f}" if b > 0 else ""))
    assert np.mean(rows["causalid known"]["shd"]) < D
