"""Interventional structure learning: known and unknown targets, against brute-force oracles."""

import itertools

import networkx as nx
import numpy as np
import pytest
from scipy import integrate, stats

import causalid
from causalid.errors import DataError
from causalid.exchangeable.bayes import (
    InterventionHyper,
    NIGHyper,
    change_configs,
    interventional_structure,
    linear_gaussian_log_marginal,
    mechanism_change_probs,
)
from causalid.exchangeable.dags import enumerate_dags
from causalid.exchangeable.discover import resolve_targets


def _simulate(rng, n, scale_x=(1.0, 2.0, 1.0), cut_y=(False, False, True)):
    """x -> y -> z in three environments: env 1 widens x (soft), env 2 sets y (perfect).

    (A shift of level alone is no mechanism change: every environment has its own intercepts.)
    """
    out = []
    for sx, cy in zip(scale_x, cut_y):
        x = sx * rng.normal(size=n) + 0.5
        y = (rng.normal(size=n) - 1.0) if cy else 0.9 * x + 0.6 * rng.normal(size=n)
        z = -0.7 * y + 0.5 * rng.normal(size=n)
        out.append(np.stack([x, y, z], -1))
    return np.stack(out)


# ---------------------------------------------------------------- brute-force oracle
def _oracle_log_ml(y, design, v, a, b):
    """NIG marginal of one block: y ~ t_{2a}(0, b/a (I + Z diag(v) Z^T))."""
    if len(y) == 0:
        return 0.0
    cov = (b / a) * (np.eye(len(y)) + (design * v) @ design.T)
    return stats.multivariate_t(np.zeros(len(y)), cov, df=2 * a).logpdf(y)


def _oracle_block(x, envs, i, parents, hyper, per_env):
    """One block sharing a mechanism: an intercept per environment (v_env) or one for the
    block (v_intercept), and the weights."""
    y = np.concatenate([x[e][:, i] for e in envs]) if envs else np.zeros(0)
    if not envs:
        return 0.0
    if per_env:
        ind = np.concatenate([np.eye(len(envs))[k][None].repeat(len(x[e]), 0) for k, e in enumerate(envs)])
        v_int = np.full(len(envs), hyper.v_env)
    else:
        ind, v_int = np.ones((len(y), 1)), np.array([hyper.v_intercept])
    xs = np.concatenate([x[e][:, parents] for e in envs]).reshape(len(y), -1)
    design = np.concatenate([ind, xs], axis=1)
    v = np.concatenate([v_int, np.full(len(parents), hyper.v_weight)])
    return _oracle_log_ml(y, design, v, hyper.a, hyper.b)


def _oracle(x, prior, perfect, hyper, edge_prior=0.5):
    """p(G, C | D) by enumerating every DAG and every (env, var) change matrix."""
    e_, n, d = x.shape
    flat = x.reshape(-1, d)
    x = (x - flat.mean(0)) / flat.std(0)
    free = [(e, i) for e in range(e_) for i in range(d) if 0 < prior[e, i] < 1]
    dags = enumerate_dags(d)
    cache = {}

    def block(envs, i, pa, per_env):
        k = (tuple(envs), i, tuple(pa), per_env)
        if k not in cache:
            cache[k] = _oracle_block(x, list(envs), i, list(pa), hyper, per_env)
        return cache[k]

    modes = [True, False] if hyper.mix else [hyper.v_env is not None]

    joint, edge_w, change_w = [], [], []
    for bits in itertools.product([0, 1], repeat=len(free)):
        c = (prior >= 1).astype(int)
        for (e, i), bit in zip(free, bits):
            c[e, i] = bit
        lp_c = sum(np.log(prior[e, i] if bit else 1 - prior[e, i]) for (e, i), bit in zip(free, bits))
        for g in dags:
            total = lp_c
            for i in range(d):
                pa = list(np.flatnonzero(g[:, i]))
                total += len(pa) * np.log(edge_prior) + (d - 1 - len(pa)) * np.log1p(-edge_prior)
                shared = [e for e in range(e_) if not c[e, i]]
                per_mode = [block(shared, i, pa, m) + sum(block([e], i, [] if perfect else pa, m)
                                                          for e in range(e_) if c[e, i]) for m in modes]
                total += np.logaddexp.reduce(per_mode) - np.log(len(modes))
            joint.append(total)
            edge_w.append(g)
            change_w.append(c)
    joint = np.array(joint)
    w = np.exp(joint - np.logaddexp.reduce(joint))
    return (np.einsum("g,gij->ij", w, np.array(edge_w, float)),
            np.einsum("g,gei->ei", w, np.array(change_w, float)))


@pytest.mark.parametrize("perfect, intercepts", [(False, "env"), (True, "env"), (False, "mix"), (True, "shared")])
def test_matches_enumeration_of_all_dags_and_target_sets(perfect, intercepts):
    rng = np.random.default_rng(3)
    x = _simulate(rng, 12)
    prior = np.array([[0.0, 0.0, 0.0], [0.3, 1.0, 0.2], [0.0, 0.4, 0.3]])
    hyper = InterventionHyper(v_intercept=0.8, v_weight=1.5, a=2.0, b=1.5,
                              v_env=None if intercepts == "shared" else 0.7, mix=intercepts == "mix")
    res = interventional_structure(x, np.ones(x.shape[:2], bool), prior, method="exhaustive",
                                   intervention="perfect" if perfect else "soft", hyper=hyper)
    edge, change = _oracle(x, prior, perfect, hyper)
    np.testing.assert_allclose(res.edge_probs, edge, atol=1e-8)
    np.testing.assert_allclose(res.change_probs, change, atol=1e-8)


def test_closed_form_evidence_matches_numerical_integration():
    y = np.array([0.3, -1.2, 0.8, 2.1])
    m, v, a, b = 0.4, 1.7, 2.5, 1.3

    def integrand(beta, s2):
        lik = np.prod(stats.norm(beta[..., None], np.sqrt(s2)[..., None]).pdf(y), axis=-1)
        return lik * stats.norm(m, np.sqrt(s2 * v)).pdf(beta) * stats.invgamma(a, scale=b).pdf(s2)

    # a fine tensor grid in (beta, log s2): the integrand is smooth and decays fast
    beta = np.linspace(-12.0, 12.0, 1601)[:, None]
    t = np.linspace(-9.0, 7.0, 1601)[None, :]
    value = integrate.trapezoid(integrate.trapezoid(integrand(beta, np.exp(t)) * np.exp(t), t[0], axis=1),
                                beta[:, 0])
    closed = linear_gaussian_log_marginal(y, np.zeros((4, 0)), np.ones(4, bool),
                                          NIGHyper(np.array([m]), np.array([v]), a, b))
    assert abs(float(closed) - np.log(value)) < 1e-6, (float(closed), np.log(value))


def test_change_configs_enumerate_and_truncate():
    prior = np.array([[0.0, 1.0], [0.2, 0.5], [0.2, 0.0]])
    configs, log_prior, trunc = change_configs(prior)
    assert trunc is None
    np.testing.assert_allclose(np.exp(log_prior).sum(axis=1), 1.0)
    assert configs[1, :, 0].all()                       # fixed target always changed
    wide = np.full((14, 1), 0.1)
    with_cap = change_configs(wide, max_configs=110)
    assert with_cap[2] == 2 and with_cap[0].shape[1] == 1 + 14 + 91


# ---------------------------------------------------------------- the front door
def _data(rng, n=300):
    x = _simulate(rng, n)
    return causalid.MultiEnvData.from_arrays(x, names=["x", "y", "z"], envs=["obs", "scale_x", "do_y"])


def test_known_targets_recover_the_chain_and_report_them():
    data = _data(np.random.default_rng(0))
    targets = {"obs": [], "scale_x": ["x"], "do_y": ["y"]}
    res = causalid.discover(data, method="bayes", targets=targets, progress=False)
    assert sorted(res.graph.edges) == [("x", "y"), ("y", "z")]
    assert res.settings["targets"] == targets
    assert "intervention targets assumed" in res.summary()
    row = res.changes.set_index(["environment", "variable"])
    assert row.loc[("do_y", "y"), "probability"] == 1.0 and row.loc[("obs", "z"), "probability"] == 0.0


def test_unknown_targets_find_the_changed_mechanisms():
    data = _data(np.random.default_rng(1))
    res = causalid.discover(data, method="bayes", targets="unknown", progress=False)
    assert sorted(res.graph.edges) == [("x", "y"), ("y", "z")]
    found = res.changes[res.changes["changed"]]
    assert set(zip(found["environment"], found["variable"])) == {("scale_x", "x"), ("do_y", "y")}
    again = causalid.discover(data, method="bayes", targets="unknown", progress=False, key=7)
    np.testing.assert_allclose(again.changes["probability"], res.changes["probability"], atol=1e-6)


def test_two_environments_verdict_is_finite_and_correct():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 400, 1))
    y = 0.6 * x + rng.normal(size=(2, 400, 1))
    y[1] = -0.8 * x[1] + rng.normal(size=(400, 1))            # y's mechanism changes
    data = causalid.MultiEnvData.from_arrays(np.concatenate([x, y], -1), names=["x", "y"], envs=["a", "b"])
    res = causalid.discover(data, method="bayes", progress=False)
    assert "interventional posterior" in res.info["mechanism_diagnostic"]
    table = res.changes.set_index(["environment", "variable"])["probability"]
    assert np.all(np.isfinite(table.to_numpy()))
    assert table[("b", "y")] > 0.99 and table[("b", "x")] < 0.1 and table[("a", "y")] == 0.0


def test_no_change_is_rarely_flagged():
    rng = np.random.default_rng(4)
    flagged = 0
    for _ in range(4):
        x = rng.normal(size=(4, 300, 1))
        y = 0.7 * x + rng.normal(size=(4, 300, 1))
        probs = mechanism_change_probs(np.concatenate([x, y], -1), np.ones((4, 300), bool),
                                       [[0, 1], [0, 0]], resolve_targets(
                                           causalid.MultiEnvData.from_arrays(np.zeros((4, 2, 2)) + rng.normal(size=(4, 2, 2))),
                                           "unknown")[0])
        flagged += int((probs > 0.5).sum())
    assert flagged <= 1                                          # of 4 x 3 x 2 = 24 mechanisms


@pytest.mark.parametrize("targets, message", [
    ({"obs": [], "scale_x": ["w"], "do_y": ["y"]}, r"target\(s\) \['w'\] of environment 'scale_x' are not columns"),
    ({"obs": [], "scale_x": ["x"], "do_y": ["y"], "lab9": []}, r"environment\(s\) \['lab9'\] that are not in the data"),
    ({"obs": [], "scale_x": ["x"]}, r"no entry for environment\(s\) \['do_y'\]"),
    ("some", "give 'unknown', None or a dict"),
])
def test_bad_targets_are_refused(targets, message):
    data = _data(np.random.default_rng(0), n=20)
    with pytest.raises(DataError, match=message):
        causalid.discover(data, method="bayes", targets=targets, progress=False)


def test_targets_need_the_bayes_method():
    data = _data(np.random.default_rng(0), n=20)
    with pytest.raises(DataError, match="method='bayes' only"):
        causalid.discover(data, method="cdf", targets="unknown")


def test_sachs_targets_are_the_nominal_ones():
    from causalid.datasets import load_sachs, sachs_targets

    targets = sachs_targets()
    assert set(targets) == set(load_sachs().envs)
    assert targets["cd3cd28+u0126"] == ["Mek"] and targets["b2camp"] == ["PKA"]
    assert sum(map(len, targets.values())) == 7


def test_pair_test_never_reports_no_change_it_could_not_compute():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 300, 1))
    y = 0.6 * x + rng.normal(size=(2, 300, 1))
    data = causalid.MultiEnvData.from_arrays(np.concatenate([x, y], -1), names=["x", "y"], envs=["a", "b"])
    with pytest.warns(RuntimeWarning, match="verdict is NA"):
        table = causalid.diagnose_mechanisms(data, nx.DiGraph([("x", "y")]))
    assert table["varies"].isna().all()
