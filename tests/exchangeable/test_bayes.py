"""Tests of the Bayesian structure engine (causalid.exchangeable.bayes).

Oracles: brute-force integration of the per-environment marginals, brute-force enumeration of
DAGs (all adjacency patterns filtered by networkx), exhaustive enumeration against MCMC, and
recovery on data simulated from the engine's own exchangeable (ICM) model with fixed seeds.
Calibration of the recovery cases with these simulators and settings (30 seeds each,
MAP DAG == truth): linear-Gaussian (E=300, N=5) pair 30/30 in all three regimes, chain 29/30
(both), 30/30 (cause), 30/30 (effect), collider 30/30, 30/30, 29/30; binary (E=300, N=10) pair
and chain 29/30 (both), 30/30 (cause), 30/30 (effect).
"""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
from scipy import integrate, stats

import causalid  # also switches JAX to float64
from causalid.exchangeable.dags import enumerate_dags, is_acyclic, parent_sets
from causalid.exchangeable.bayes import (
    NIGHyper,
    bayes_structure,
    bayes_structure_batch,
    dirichlet_multinomial_log_marginal,
    linear_gaussian_log_marginal,
    local_scores,
)

PAIR = np.array([[0, 1], [0, 0]], bool)
CHAIN = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]], bool)
COLLIDER = np.array([[0, 0, 1], [0, 0, 1], [0, 0, 0]], bool)


# ------------------------------------------------------------------ simulators (ICM plate model)
def _varies(adj, j, regime):
    root = not adj[:, j].any()
    return regime == "both" or (regime == "cause" and root) or (regime == "effect" and not root)


def sim_linear_gaussian(rng, n_envs, n_samples, adj, regime, v_weight=2.0, a=3.0, b=2.0):
    """Nodes in index order; per environment (b_e, w_e) | s2 ~ N(m, s2 diag(1, v_weight)),
    s2 ~ IG(a, b) for a varying mechanism, fixed (m, b / (a - 1)) for an invariant one."""
    d = adj.shape[0]
    x = np.zeros((n_envs, n_samples, d))
    for j in range(d):
        pa = np.flatnonzero(adj[:, j])
        m = np.r_[rng.normal(), rng.uniform(0.5, 1.5, pa.size) * rng.choice([-1, 1], pa.size)]
        if _varies(adj, j, regime):
            s2 = 1.0 / rng.gamma(a, 1.0 / b, (n_envs, 1))
            beta = m + np.sqrt(s2 * np.r_[1.0, np.full(pa.size, v_weight)]) * rng.normal(
                size=(n_envs, m.size)
            )
        else:
            s2, beta = np.full((n_envs, 1), b / (a - 1)), np.tile(m, (n_envs, 1))
        mean = beta[:, :1] + np.einsum("enk,ek->en", x[:, :, pa], beta[:, 1:])
        x[:, :, j] = mean + np.sqrt(s2) * rng.normal(size=(n_envs, n_samples))
    return x


def sim_binary(rng, n_envs, n_samples, adj, regime, conc=4.0):
    """Per environment and parent configuration c, theta_{e,c} ~ Beta(conc p_c, conc (1 - p_c))
    independently (varying mechanism) or theta_c = p_c (invariant)."""
    d = adj.shape[0]
    x = np.zeros((n_envs, n_samples, d))
    for j in range(d):
        pa = np.flatnonzero(adj[:, j])
        n_cfg = 2**pa.size
        if pa.size:
            p = np.where(
                np.arange(n_cfg) % 2 == 0,
                rng.uniform(0.1, 0.35, n_cfg),
                rng.uniform(0.65, 0.9, n_cfg),
            )
            p = p[rng.permutation(n_cfg)]
        else:
            p = rng.uniform(0.2, 0.8, 1)
        theta = (
            rng.beta(conc * p, conc * (1 - p), (n_envs, n_cfg))
            if _varies(adj, j, regime)
            else np.tile(p, (n_envs, 1))
        )
        cfg = (
            (x[:, :, pa] @ (2 ** np.arange(pa.size))).astype(int)
            if pa.size
            else np.zeros((n_envs, n_samples), int)
        )
        x[:, :, j] = rng.uniform(size=(n_envs, n_samples)) < np.take_along_axis(theta, cfg, axis=1)
    return x


def _relabel(rng, x, adj):
    perm = rng.permutation(adj.shape[0])
    return x[..., perm], adj[np.ix_(perm, perm)]


def _full(x):
    return np.ones(x.shape[:2], bool)


# ------------------------------------------------------------------ closed forms vs brute force
def test_linear_gaussian_marginal_matches_monte_carlo():
    rng = np.random.default_rng(0)
    n = 3
    x, y = rng.normal(size=(n, 1)), rng.normal(size=n)
    hyper = NIGHyper(np.array([0.2, -0.3]), np.array([0.8, 1.5]), np.array(2.5), np.array(1.7))
    closed = float(linear_gaussian_log_marginal(y, x, np.ones(n, bool), hyper))

    draws = 400_000
    s2 = stats.invgamma(2.5, scale=1.7).rvs(draws, random_state=rng)
    beta = hyper.m + np.sqrt(s2[:, None] * hyper.v) * rng.normal(size=(draws, 2))
    mean = beta[:, :1] + beta[:, 1:] * x[:, 0]
    loglik = stats.norm.logpdf(y, mean, np.sqrt(s2)[:, None]).sum(axis=1)
    w = np.exp(loglik - loglik.max())
    estimate = np.log(w.mean()) + loglik.max()
    se = w.std() / w.mean() / np.sqrt(draws)  # delta method for log of a mean
    assert abs(closed - estimate) < 5 * se


def test_linear_gaussian_marginal_without_parents_is_student_t():
    # n = 1, no parents: y ~ t_{2a}(m, (b / a) (1 + v))
    hyper = NIGHyper(np.array([0.4]), np.array([0.7]), np.array(3.0), np.array(2.0))
    got = float(
        linear_gaussian_log_marginal(np.array([1.3]), np.zeros((1, 0)), np.ones(1, bool), hyper)
    )
    want = stats.t(df=6.0, loc=0.4, scale=np.sqrt(2.0 / 3.0 * 1.7)).logpdf(1.3)
    assert got == pytest.approx(want, abs=1e-10)


def test_dirichlet_multinomial_matches_quadrature_and_monte_carlo():
    # binary: two parent configurations, product of 1-D Beta integrals
    counts = np.array([[3.0, 1.0], [0.0, 2.0]])
    alpha = np.array([[0.7, 1.9], [2.5, 0.4]])
    want = 0.0
    for (n0, n1), (a0, a1) in zip(counts, alpha):

        def integrand(t, n0=n0, n1=n1, a0=a0, a1=a1):
            return t**n1 * (1 - t) ** n0 * stats.beta(a1, a0).pdf(t)

        val, _ = integrate.quad(integrand, 0, 1, epsabs=1e-14)
        want += np.log(val)
    assert float(dirichlet_multinomial_log_marginal(counts, alpha)) == pytest.approx(want, abs=1e-8)

    # three levels: Monte Carlo over Dirichlet draws
    rng = np.random.default_rng(1)
    counts3, alpha3 = np.array([[2.0, 0.0, 1.0]]), np.array([[1.2, 0.6, 2.0]])
    theta = rng.dirichlet(alpha3[0], 400_000)
    w = np.prod(theta ** counts3[0], axis=1)
    se = w.std() / w.mean() / np.sqrt(w.size)
    got = float(dirichlet_multinomial_log_marginal(counts3, alpha3))
    assert abs(got - np.log(w.mean())) < 5 * se

    # invariant limit: alpha -> infinity gives the multinomial likelihood sum n log p
    p = np.array([[0.2, 0.3, 0.5]])
    assert float(dirichlet_multinomial_log_marginal(counts3, 1e12 * p)) == pytest.approx(
        float(np.sum(counts3 * np.log(p))), abs=1e-6
    )


# ------------------------------------------------------------------ padding
def _ragged(rng, x, junk):
    """Keep a random number (>= 1) of samples per environment; fill the rest with ``junk``."""
    n_envs, n_max, _ = x.shape
    keep = rng.integers(1, n_max + 1, n_envs)
    mask = np.arange(n_max)[None, :] < keep[:, None]
    return np.where(mask[..., None], x, junk), mask


@pytest.mark.parametrize("family", ["linear_gaussian", "binary"])
def test_padding_has_no_influence(family):
    rng = np.random.default_rng(2)
    sim = sim_linear_gaussian if family == "linear_gaussian" else sim_binary
    x = sim(rng, 300, 5, CHAIN, "both")
    x, mask = _ragged(rng, x, 0.0)
    # the same data padded further, with junk in the padding and the samples shuffled in place
    extra = np.concatenate([x, np.zeros((300, 4, 3))], axis=1)
    mask2 = np.concatenate([mask, np.zeros((300, 4), bool)], axis=1)
    junk = rng.integers(0, 2, extra.shape).astype(float) * 7.0
    x2 = np.where(mask2[..., None], extra, junk)
    order = np.argsort(~mask2 + rng.uniform(size=mask2.shape) * 0.5, axis=1)  # real ones stay first
    x2 = np.take_along_axis(x2, order[..., None], axis=1)
    mask2 = np.take_along_axis(mask2, order, axis=1)

    sets = parent_sets(3, 2)
    child, parents = np.repeat(np.arange(3), sets.parents.shape[1]), sets.parents.reshape(-1, 2)
    a = local_scores(x, mask, child, parents, family)
    b = local_scores(x2, mask2, child, parents, family)
    np.testing.assert_allclose(
        np.asarray(a.log_marginal), np.asarray(b.log_marginal), rtol=1e-9, atol=1e-8
    )

    # and the per-environment closed forms ignore padded rows
    hyper = NIGHyper(np.zeros(2), np.ones(2), np.array(2.0), np.array(1.0))
    e = int(np.argmin(mask.sum(axis=1)))
    n_e = int(mask[e].sum())
    padded = linear_gaussian_log_marginal(
        x[e, :, 1], x[e, :, :1] + 9.0 * ~mask[e, :, None], mask[e], hyper
    )
    sliced = linear_gaussian_log_marginal(x[e, :n_e, 1], x[e, :n_e, :1], np.ones(n_e, bool), hyper)
    assert float(padded) == pytest.approx(float(sliced), abs=1e-12)


# ------------------------------------------------------------------ exhaustive enumeration
def _brute_force_dags(d):
    out = []
    for bits in itertools.product([0, 1], repeat=d * (d - 1)):
        adj = np.zeros((d, d), bool)
        adj[~np.eye(d, dtype=bool)] = bits
        if nx.is_directed_acyclic_graph(nx.DiGraph(adj)):
            out.append(adj)
    return np.array(out)


@pytest.mark.parametrize("d, count", [(2, 3), (3, 25), (4, 543)])
def test_enumerated_dags_are_all_the_dags(d, count):
    dags = enumerate_dags(d)
    assert len(dags) == count
    assert is_acyclic(dags).all()
    assert {a.tobytes() for a in dags} == {a.tobytes() for a in _brute_force_dags(d)}


def test_enumeration_of_five_nodes():
    dags = enumerate_dags(5)
    assert len(dags) == 29_281
    assert is_acyclic(dags).all()
    assert len({a.tobytes() for a in dags}) == 29_281


def _direct_log_score(res, adj):
    """Score of a DAG looked up by matching parent lists (independent of the rank arithmetic)."""
    total = 0.0
    for i in range(adj.shape[0]):
        want = sorted(np.flatnonzero(adj[:, i]).tolist())
        rows = [s for s, p in enumerate(res.parent_sets[i]) if sorted(p[p >= 0].tolist()) == want]
        assert len(rows) == 1
        total += res.score_table[i, rows[0]]
    return total


def test_exhaustive_posterior_is_normalised_and_consistent():
    rng = np.random.default_rng(3)
    x, _ = _relabel(rng, sim_linear_gaussian(rng, 300, 5, CHAIN, "both"), CHAIN)
    res = bayes_structure(x, _full(x), top_k=25)
    assert res.method == "exhaustive" and res.num_dags == 25
    post = np.exp(res.top_log_post)
    assert post.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(res.top_log_post) <= 0)
    np.testing.assert_allclose(
        np.einsum("g,gij->ij", post, res.top_dags), res.edge_probs, atol=1e-12
    )
    assert np.array_equal(res.map_dag, res.top_dags[0])
    direct = np.array([_direct_log_score(res, a) for a in res.top_dags])
    np.testing.assert_allclose(direct, res.top_log_score, rtol=1e-12)
    np.testing.assert_allclose(
        res.top_log_score - res.top_log_post, res.top_log_score[0] - res.top_log_post[0]
    )


# ------------------------------------------------------------------ MCMC vs exhaustive
def _linear_extensions(adj):
    d = adj.shape[0]
    return sum(
        all(pos[i] < pos[j] for i, j in zip(*np.nonzero(adj)))
        for pos in (np.argsort(p) for p in itertools.permutations(range(d)))
    )


@pytest.fixture(scope="module")
def weak_four_node_data():
    """Few environments and samples: a posterior spread over many DAGs."""
    rng = np.random.default_rng(4)
    adj = np.zeros((4, 4), bool)
    adj[0, 1] = adj[1, 2] = adj[0, 3] = True
    x = sim_linear_gaussian(rng, 25, 2, adj, "both", v_weight=0.5)
    exact = bayes_structure(x, _full(x), method="exhaustive", top_k=543)
    assert np.any((exact.edge_probs > 0.1) & (exact.edge_probs < 0.9))  # not degenerate
    return x, exact


def _within_mc_error(estimate, per_chain, target):
    """|estimate - target| <= 4 standard errors (between-chain, 8 chains) + 0.005."""
    se = per_chain.std(axis=0, ddof=1) / np.sqrt(per_chain.shape[0])
    err = np.abs(estimate - target)
    assert np.all(err <= 4 * se + 0.005), (err.max(), se.max())


def test_structure_mcmc_matches_exhaustive(weak_four_node_data):
    x, exact = weak_four_node_data
    res = bayes_structure(
        x,
        _full(x),
        method="mcmc",
        sampler="structure",
        max_parents=3,
        num_chains=8,
        num_samples=3000,
        top_k=5,
        key=0,
    )
    assert res.method == "mcmc" and res.sampler == "structure"
    assert np.all((res.diagnostics.acceptance > 0.05) & (res.diagnostics.acceptance < 0.95))
    np.testing.assert_allclose(res.score_table, exact.score_table)
    _within_mc_error(res.edge_probs, res.diagnostics.edge_probs_chains, exact.edge_probs)
    # DAG-level frequencies too (this is what a missing Hastings correction would bias)
    assert np.array_equal(res.top_dags, exact.top_dags[:5])
    _within_mc_error(res.top_freq, res.diagnostics.top_freq_chains, np.exp(exact.top_log_post[:5]))


def test_order_mcmc_matches_exhaustive_under_the_order_prior(weak_four_node_data):
    # order MCMC's DAG marginal is p(G | D) times the number of orders consistent with G
    x, exact = weak_four_node_data
    res = bayes_structure(
        x, _full(x), method="mcmc", sampler="order", max_parents=3, num_chains=8, top_k=5, key=1
    )
    w = np.exp(exact.top_log_post) * np.array([_linear_extensions(a) for a in exact.top_dags])
    w /= w.sum()
    _within_mc_error(
        res.edge_probs, res.diagnostics.edge_probs_chains, np.einsum("g,gij->ij", w, exact.top_dags)
    )
    assert np.array_equal(res.top_dags, exact.top_dags[:5])
    _within_mc_error(res.top_freq, res.diagnostics.top_freq_chains, w[:5])
    # the MAP tracked along the chain is the exact MAP
    assert np.array_equal(res.map_dag, exact.map_dag)
    assert res.top_log_score[0] == pytest.approx(exact.top_log_score[0])


# ------------------------------------------------------------------ recovery
@pytest.mark.parametrize(
    "adj, regime, seed",
    [
        (PAIR, "both", 0),
        (PAIR, "both", 1),
        (PAIR, "cause", 0),
        (PAIR, "cause", 1),
        (PAIR, "effect", 0),
        (PAIR, "effect", 1),
        (COLLIDER, "both", 0),
        (CHAIN, "cause", 0),
        (CHAIN, "effect", 0),
    ],
)
def test_linear_gaussian_recovers_the_dag(adj, regime, seed):
    rng = np.random.default_rng(100 + seed)
    x, truth = _relabel(rng, sim_linear_gaussian(rng, 300, 5, adj, regime), adj)
    res = bayes_structure(x, _full(x))
    assert np.array_equal(res.map_dag, truth)


@pytest.mark.parametrize(
    "adj, regime, seed",
    [
        (PAIR, "both", 0),
        (PAIR, "cause", 0),
        (PAIR, "effect", 0),
        (CHAIN, "both", 0),
        (CHAIN, "cause", 0),
        (CHAIN, "effect", 0),
    ],
)
def test_binary_recovers_the_dag(adj, regime, seed):
    rng = np.random.default_rng(200 + seed)
    x, truth = _relabel(rng, sim_binary(rng, 300, 10, adj, regime), adj)
    res = bayes_structure(x, _full(x), family="binary")
    assert np.array_equal(res.map_dag, truth)


# ------------------------------------------------------------------ input checks
def test_bad_inputs_are_refused():
    x = np.zeros((3, 4, 2))
    x[..., 0] = np.arange(4)
    x[..., 1] = np.arange(4) ** 2
    with pytest.raises(causalid.DataError):
        bayes_structure(x[:1], np.ones((1, 4), bool))  # one environment
    with pytest.raises(causalid.DataError):
        bayes_structure(x, np.ones((3, 4), bool), family="binary")  # not 0/1
    with pytest.raises(ValueError):
        bayes_structure(x, np.ones((3, 4), bool), family="poisson")
    with pytest.raises(ValueError):
        bayes_structure(np.zeros((3, 4, 6)), np.ones((3, 4), bool), method="exhaustive")


# ------------------------------------------------------------------ real data (run with -m slow)
@pytest.mark.slow
def test_sachs_eleven_proteins_with_order_mcmc():
    import networkx as nx

    from causalid.datasets import SACHS_VARIABLES, load_sachs, sachs_graph

    data = load_sachs()  # log intensities, 9 conditions as environments
    res = bayes_structure(data.values, data.mask, key=0)  # warns (an error here) if chains disagree
    assert res.method == "mcmc" and res.sampler == "order" and res.edge_probs.shape == (11, 11)
    assert is_acyclic(res.map_dag) and res.map_dag.sum(axis=0).max() <= 3
    assert np.all((res.diagnostics.acceptance > 0.05) & (res.diagnostics.acceptance < 0.95))
    truth = nx.to_numpy_array(sachs_graph("bnlearn17"), nodelist=list(SACHS_VARIABLES)) > 0
    skeleton = truth | truth.T
    assert (res.map_dag & skeleton).sum() >= 0.5 * res.map_dag.sum()  # measured: 10 of 12 edges


# ------------------------------------------------------------------ batch over replicates
@pytest.mark.parametrize(("family", "sim"), [("linear_gaussian", sim_linear_gaussian), ("binary", sim_binary)])
def test_batch_matches_per_replicate(family, sim):
    rng = np.random.default_rng(11)
    x = np.stack([sim(rng, 30, 5, adj, "both") for adj in (CHAIN, COLLIDER, CHAIN.T)])
    mask = np.ones(x.shape[:3], bool)
    mask[1, :4, 3:] = False  # ragged environments in one replicate only
    mask[2, -1] = False  # and an empty environment in another
    x = np.where(mask[..., None], x, 0.0)
    batch = bayes_structure_batch(x, mask, family, top_k=5)
    assert len(batch) == 3
    for r, res in enumerate(batch):
        ref = bayes_structure(x[r], mask[r], family, method="exhaustive", top_k=5)
        np.testing.assert_allclose(res.edge_probs, ref.edge_probs, rtol=0, atol=1e-8)
        np.testing.assert_allclose(res.score_table, ref.score_table, rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(res.top_log_post, ref.top_log_post, rtol=0, atol=1e-8)
        assert np.array_equal(res.map_dag, ref.map_dag) and np.array_equal(res.top_dags, ref.top_dags)
        assert res.method == "exhaustive" and res.num_dags == ref.num_dags == 25


def test_batch_refuses_more_than_five_variables():
    with pytest.raises(causalid.DataError, match="at most 5 variables"):
        bayes_structure_batch(np.zeros((2, 3, 4, 6)), np.ones((2, 3, 4), bool))


@pytest.mark.slow
def test_discover_batch_bayes_matches_per_replicate():
    rng = np.random.default_rng(3)
    x = np.stack([sim_linear_gaussian(rng, 40, 2, adj, "cause") for adj in (PAIR, PAIR.T, PAIR)])
    results = causalid.discover_batch(x, method="bayes")
    assert len(results) == 3
    for r, res in enumerate(results):
        ref = bayes_structure(x[r], _full(x[r]), "linear_gaussian")
        expected = {(f"X{i}", f"X{j}") for i, j in np.argwhere(ref.map_dag)}
        assert set(res.graph.edges) == expected
        probs = {(row["source"], row["target"]): row["probability"] for row in res.records}
        assert abs(probs[("X0", "X1")] - ref.edge_probs[0, 1]) < 1e-8
    with pytest.raises(causalid.DataError, match="MCMC only"):
        causalid.discover_batch(x, method="bayes", num_steps=100)

