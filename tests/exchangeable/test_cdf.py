"""The causal de Finetti engine.

Oracle: the algorithms are run against exact d-separation in the two-sample plate graph
(nodes X_i^(s) for samples s = 0, 1 and a mechanism parameter θ_i per varying node), so
every conditional-independence answer is the population truth.  With a perfect oracle the
algorithms must recover every DAG exactly (Guo et al., Theorem: the DAG is identified).
"""

import itertools

import jax
import networkx as nx
import numpy as np
import pytest

import causalid
from causalid import DataError
from causalid.exchangeable import cdf
from causalid.models.exchangeable import scm_bivariate_continuous, scm_multivariate_binary


def plate_graph(dag: nx.DiGraph, varying=None) -> nx.DiGraph:
    varying = set(dag.nodes) if varying is None else set(varying)
    g = nx.DiGraph()
    for s in (0, 1):
        for i in dag.nodes:
            g.add_node((i, s))
            for j in dag.predecessors(i):
                g.add_edge((j, s), (i, s))
    for i in varying:
        g.add_edge(("theta", i), (i, 0))
        g.add_edge(("theta", i), (i, 1))
    return g


def oracle(plate):
    def evaluate(batch):
        out = []
        for _, (a, sa, b, sb, cond) in batch:
            sep = nx.is_d_separator(plate, {(a, sa)}, {(b, sb)}, {(c, s) for c, s in cond})
            out.append(1.0 if sep else 0.0)
        return np.array(out)

    return evaluate


def all_dags(d):
    pairs = list(itertools.combinations(range(d), 2))
    for states in itertools.product((0, 1, 2), repeat=len(pairs)):
        g = nx.DiGraph()
        g.add_nodes_from(range(d))
        for (i, j), s in zip(pairs, states):
            if s == 1:
                g.add_edge(i, j)
            elif s == 2:
                g.add_edge(j, i)
        if nx.is_directed_acyclic_graph(g):
            yield g


@pytest.mark.parametrize("d, count", [(3, 25), (4, 543)])
def test_multivariate_recovers_every_dag_with_a_perfect_oracle(d, count):
    dags = list(all_dags(d))
    assert len(dags) == count
    programs = [cdf.multivariate_program(d, alpha=0.5) for _ in dags]
    # run each program against its own oracle in lock-step
    evaluators = [oracle(plate_graph(g)) for g in dags]

    def evaluate(batch):
        return np.concatenate([evaluators[r]([(r, q)]) for r, q in batch])

    found = cdf.run_programs(programs, evaluate)
    for g, f in zip(dags, found):
        assert sorted(f["edges"]) == sorted(g.edges), (sorted(g.edges), f)


@pytest.mark.parametrize("truth, varying", [
    ([(0, 1)], None), ([(1, 0)], None), ([], None),
    ([(0, 1)], {0}), ([(0, 1)], {1}), ([(1, 0)], {1}), ([(1, 0)], {0}),
])
def test_bivariate_rule_and_regimes_with_a_perfect_oracle(truth, varying):
    dag = nx.DiGraph(truth)
    dag.add_nodes_from([0, 1])
    plate = plate_graph(dag, varying)
    for rule in ("ordered", "reference"):
        (found,) = cdf.run_programs([cdf.bivariate_program(0.5, rule)], oracle(plate))
        assert found["edges"] == truth
    parents = {k: list(dag.predecessors(k)) for k in dag.nodes}
    (mech,) = cdf.run_programs([cdf.mechanism_variability_program(2, parents)], oracle(plate))
    varies = mech["pvalues"] < 0.5
    expected = [True, True] if varying is None else [i in varying for i in (0, 1)]
    assert varies.tolist() == expected


def test_adjust_pvalues_against_definitions():
    p = np.array([0.01, 0.04, 0.03, 0.2])
    np.testing.assert_allclose(cdf.adjust_pvalues(p, "bonferroni"), [0.04, 0.16, 0.12, 0.8])
    np.testing.assert_allclose(cdf.adjust_pvalues(p, "holm"), [0.04, 0.09, 0.09, 0.2])
    # BH: sorted p·m/i = 0.04, 0.06, 0.0533, 0.2, then the running minimum from the top
    np.testing.assert_allclose(cdf.adjust_pvalues(p, "bh"), [0.04, 0.16 / 3, 0.16 / 3, 0.2])


def _bivariate_batch(E, R, regime="both", seed=0):
    keys = jax.random.split(jax.random.PRNGKey(seed), R)
    x, label = jax.vmap(lambda k: scm_bivariate_continuous(k, E, 2, regime=regime))(keys)
    return np.asarray(x), np.asarray(label)


def _accuracy(results, labels):
    truth = {0: [("X", "Y")], 1: [("Y", "X")], 2: []}
    return np.mean([sorted(r.graph.edges) == truth[int(lab)] for r, lab in zip(results, labels)])


@pytest.mark.slow  # a reference-accuracy run (the benchmark measures the whole curve)
@pytest.mark.parametrize("E, published", [(100, 0.70), (500, 0.91)])
def test_bivariate_reference_accuracy_at_least_published(E, published):
    x, labels = _bivariate_batch(E, 100, seed=E)
    acc = _accuracy(causalid.discover_batch(x, names=["X", "Y"], diagnose=False), labels)
    assert acc >= published


@pytest.mark.parametrize("regime", ["cause", "mechanism"])
def test_iem_regimes_direction_accuracy(regime):
    x, labels = _bivariate_batch(500, 100, regime=regime, seed=7)
    res = causalid.discover_batch(x, names=["X", "Y"], diagnose=False)
    directed = labels < 2
    acc = _accuracy([r for r, keep in zip(res, directed) if keep], labels[directed])
    assert acc >= 0.9


def test_false_edge_rate_under_no_edge_is_alpha():
    # independent X and Y, mechanisms varying: "edge" answers come only from X1 ⊥ Y1 rejections
    rng = np.random.default_rng(11)
    R, E = 400, 100
    loc = rng.uniform(-1, 1, (R, E, 1, 2))
    x = rng.laplace(loc, 1.0, (R, E, 2, 2))
    res = causalid.discover_batch(x, diagnose=False)
    rate = np.mean([r.graph.number_of_edges() > 0 for r in res])
    se = np.sqrt(0.05 * 0.95 / R)
    assert abs(rate - 0.05) < 3 * se


@pytest.mark.slow  # a reference-accuracy run
def test_multivariate_binary_beats_published_nshd_at_E_10000():
    keys = jax.random.split(jax.random.PRNGKey(3), 100)
    x, adj = jax.vmap(lambda k: scm_multivariate_binary(k, 10000, 2, 3))(keys)
    res = causalid.discover_batch(np.asarray(x), diagnose=False)
    nshd = np.mean([causalid.normalized_shd(r.adjacency(), a) for r, a in zip(res, np.asarray(adj))])
    assert nshd <= 0.091


def test_single_dataset_front_door_and_mechanism_diagnostic(tmp_path):
    x, labels = _bivariate_batch(400, 1, regime="cause", seed=5)
    data = causalid.MultiEnvData.from_arrays(x[0], names=["X", "Y"])
    res = causalid.discover(data)
    assert set(res.mechanisms.columns) >= {"variable", "pvalue", "varies"}
    res.save(tmp_path / "r.json")
    back = causalid.StructureResult.load(tmp_path / "r.json")
    assert sorted(back.graph.edges) == sorted(res.graph.edges)
    assert back.settings == res.settings
    assert back.edges["source"].tolist() == res.edges["source"].tolist()
    assert back.edges["target"].tolist() == res.edges["target"].tolist()
    np.testing.assert_allclose(back.edges["pvalue"], res.edges["pvalue"], rtol=1e-12)
    assert back.mechanisms["varies"].tolist() == res.mechanisms["varies"].tolist()
    assert back.regime == res.regime


def test_ragged_environments_use_every_sample():
    # X -> Y with per-environment locations and spreads; 2..8 samples per environment.
    # (With Gaussian noise and only the locations varying, the partial covariance behind
    # Y1 ⊥ X2 | Y2 vanishes exactly, so the spreads must vary too.)
    rng = np.random.default_rng(0)
    blocks = []
    for _ in range(300):
        n = rng.integers(2, 9)
        loc, log_scale = rng.normal(size=2), rng.normal(size=2)
        xx = loc[0] + np.exp(log_scale[0]) * rng.normal(size=n)
        yy = 2 * xx + loc[1] + np.exp(log_scale[1]) * rng.normal(size=n)
        blocks.append(np.column_stack([xx, yy]))
    data = causalid.MultiEnvData.from_arrays(blocks, names=["X", "Y"])
    res = causalid.discover(data)
    assert res.settings["pairs_per_env"] > 1
    assert sorted(res.graph.edges) == [("X", "Y")]
    # every sample is in a pair: disjoint pairs cover all but one sample of odd environments
    from causalid.exchangeable.pairs import make_pairs

    _, w = make_pairs(data.values, data.mask, 64)
    assert w.sum() == 2 * np.sum(data.counts // 2)


def test_bad_requests_are_refused_clearly():
    x = np.random.default_rng(0).normal(size=(30, 2, 2))
    with pytest.raises(DataError, match="unknown ci_test"):
        causalid.discover(x, ci_test="nope")
    with pytest.raises(DataError, match="gtest' needs discrete data"):
        causalid.discover(x, ci_test="gtest")
    with pytest.raises(DataError, match="alpha must be in"):
        causalid.discover(x, alpha=1.5)
    with pytest.raises(DataError, match="at least two variables"):
        causalid.discover(x[..., :1])
    with pytest.raises(DataError, match="unknown method"):
        causalid.discover(x, method="magic")
    with pytest.raises(DataError, match=r"expects \(replicate, env, sample, variable\)"):
        causalid.discover_batch(x)
