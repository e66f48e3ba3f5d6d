"""Sachs et al. (2005), 9 conditions: causalid against causal-learn's PC and GES in one run.

PC (Fisher z, α = 0.05) and GES (BIC) see the pooled log data (the usual observational
baselines); causalid's engines see the same data with the condition of each cell.  Standard
SHD against the 17-edge (bnlearn) and 20-edge (Tetrad) literature graphs; the empty graph
scores 17 and 20.  CPDAG edges left undirected by PC/GES are scored both ways: counted as
wrongly oriented, and oriented in the truth's favour (the best case for the peer).

    pytest -m benchmark -s tests/benchmarks/test_sachs.py
"""

import time

import networkx as nx
import numpy as np

import causalid
from causalid.datasets import load_sachs, sachs_graph

GRAPHS = ("bnlearn17", "tetrad20")


def test_sachs_vs_pc_and_ges(peers):
    from causallearn.search.ConstraintBased.PC import pc
    from causallearn.search.ScoreBased.GES import ges

    data = load_sachs(transform="log")
    names = list(data.names)
    pooled = np.concatenate(data.blocks(), axis=0)
    truths = {g: nx.to_numpy_array(sachs_graph(g), nodelist=names, weight=None).astype(int) for g in GRAPHS}
    rows = {}

    for method in ("bayes", "cdf"):
        t0 = time.perf_counter()
        res = causalid.discover(data, method=method)
        dt = time.perf_counter() - t0
        a = res.adjacency()
        rows[f"causalid {method}"] = ({g: (causalid.shd(a, t),) * 2 for g, t in truths.items()}, dt, int(a.sum()))

    t0 = time.perf_counter()
    cg = pc(pooled, 0.05, "fisherz", show_progress=False)
    dt = time.perf_counter() - t0
    directed, undirected = peers.causallearn_graph(cg.G.graph)
    rows["causal-learn PC"] = ({g: peers.shd_cpdag(directed, undirected, t) for g, t in truths.items()}, dt,
                               int(directed.sum() + undirected.sum() // 2))
    t0 = time.perf_counter()
    rec = ges(pooled)
    dt = time.perf_counter() - t0
    directed, undirected = peers.causallearn_graph(rec["G"].graph)
    rows["causal-learn GES"] = ({g: peers.shd_cpdag(directed, undirected, t) for g, t in truths.items()}, dt,
                                int(directed.sum() + undirected.sum() // 2))
    rows["empty graph"] = ({g: (int(t.sum()),) * 2 for g, t in truths.items()}, 0.0, 0)

    print(f"\n{'method':20s} {'edges':>5s} " + " ".join(f"{'SHD ' + g:>22s}" for g in GRAPHS) + f" {'seconds':>8s}")
    for name, (scores, dt, ne) in rows.items():
        cells = " ".join(f"{s[0]:>10d} (best {s[1]:>3d})    " for s in scores.values())
        print(f"{name:20s} {ne:>5d} {cells} {dt:>8.1f}")
    best_peer = min(min(rows[p][0]["bnlearn17"]) for p in ("causal-learn PC", "causal-learn GES"))
    ours = rows["causalid bayes"][0]["bnlearn17"][0]
    print(f"SHD ratio vs bnlearn17, causalid bayes / best peer (best case): {ours / best_peer:.2f}")
    assert ours < 17 and ours < best_peer
