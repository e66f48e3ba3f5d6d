"""The intervention designer against a dense, independent reference on three variables."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from causalid.design import entropy_heuristic, next_intervention, run_sequential
from causalid.errors import DataError
from causalid.exchangeable.bayes import (
    InterventionHyper,
    NIGHyper,
    interventional_structure,
    linear_gaussian_log_marginal,
)
from causalid.exchangeable.data import MultiEnvData

HYP = InterventionHyper(v_env=1.0)
NAMES = ["X", "Y", "Z"]


def _data(seed=0):
    """x -> y -> z: an observational environment and one that widens x (a known soft target)."""
    rng = np.random.default_rng(seed)
    out = []
    for n, sx in ((50, 1.0), (30, 2.0)):
        x = sx * rng.normal(size=n)
        y = 0.8 * x + 0.6 * rng.normal(size=n)
        z = -0.7 * y + 0.6 * rng.normal(size=n)
        out.append(np.stack([x, y, z], axis=1))
    data = MultiEnvData.from_arrays(out, names=NAMES, envs=["obs", "doX"])
    return data, {"obs": [], "doX": ["X"]}


# ------------------------------------------------------------------ the dense reference
def _design(onehot, parents):
    """Columns of the dense model: one random intercept per environment, then the parents."""
    return np.concatenate([onehot, parents], axis=-1)


def _hyper(n_env, n_par):
    v = np.concatenate([[0.0], np.full(n_env, HYP.v_env), np.full(n_par, HYP.v_weight)])
    return NIGHyper(np.zeros(1 + n_env + n_par), v, HYP.a, HYP.b)


def _dense_ml(y, x, n_env, n_par):
    """Log marginal of every row of ``y`` (batch, n) given ``x`` (batch, n, k) (vmapped)."""
    mask = np.ones(y.shape[-1], bool)
    hyp = _hyper(n_env, n_par)
    with jax.enable_x64(True):
        return np.asarray(jax.vmap(lambda a, b: linear_gaussian_log_marginal(a, b, mask, hyp))(
            jnp.asarray(y), jnp.asarray(x)))


def _standardise(data):
    x = np.concatenate(data.blocks())
    return [(b - x.mean(0)) / x.std(0) for b in data.blocks()]


def _onehot(sizes):
    return np.concatenate([np.eye(len(sizes))[np.full(n, e)] for e, n in enumerate(sizes)])


def _reference_eig(data, targets, cand, n_new, draws_per_graph, seed):
    """Exact sum over all 25 DAGs of p(G | D) times a Monte Carlo mean over future data drawn
    from the dense posterior predictive, scored with dense Student-t marginals."""
    blocks = _standardise(data)
    d = len(NAMES)
    envs = list(data.envs)
    tmask = np.array([[v in targets[e] for v in NAMES] for e in envs])
    post = interventional_structure(data.values, data.mask,
                                    tmask.astype(float), hyper=HYP, method="exhaustive", top_k=100)
    dags = np.asarray(post.top_dags).astype(bool)
    logw = np.asarray(post.top_log_post)
    assert len(dags) == 25
    rng = np.random.default_rng(seed)
    # shared block of each variable
    shared = [[k for k in range(len(envs)) if not tmask[k, i]] for i in range(d)]

    def fam_rows(i, pa):
        rows = np.concatenate([blocks[k] for k in shared[i]])
        oh = _onehot([len(blocks[k]) for k in shared[i]])
        return rows[:, i], _design(oh, rows[:, pa])

    # check: dense evidence of D differs from the engine's log score by one graph-free constant
    diffs = []
    for g, score in zip(dags, np.asarray(post.top_log_score)):
        tot = 0.0
        for i in range(d):
            pa = np.flatnonzero(g[:, i])
            y, x = fam_rows(i, pa)
            tot += _dense_ml(y[None], x[None], len(shared[i]), len(pa))[0]
            for k in range(len(envs)):
                if tmask[k, i]:
                    b = blocks[k]
                    tot += _dense_ml(b[None, :, i], _design(np.ones((len(b), 1)), b[:, pa])[None], 1, len(pa))[0]
        tot += g.sum() * np.log(0.5) + (d * (d - 1) - g.sum()) * np.log(0.5)
        diffs.append(score - tot)
    assert np.ptp(diffs) < 1e-6

    def posterior_draw(i, pa):
        y, x = fam_rows(i, pa)
        k = x.shape[1]
        v = np.concatenate([np.full(len(shared[i]), HYP.v_env), np.full(len(pa), HYP.v_weight)])
        lam = np.diag(1 / v) + x.T @ x
        mn = np.linalg.solve(lam, x.T @ y)
        an, bn = HYP.a + len(y) / 2, HYP.b + 0.5 * (y @ y - mn @ lam @ mn)
        s2 = bn / rng.gamma(an)
        coef = rng.multivariate_normal(mn, s2 * np.linalg.inv(lam))
        return coef[len(shared[i]):], s2, k

    # simulate every graph's future data
    ys = []
    for g in dags:
        order = [int(v) for v in _topo(g)]
        sims = np.zeros((draws_per_graph, n_new, d))
        for r in range(draws_per_graph):
            for i in order:
                pa = np.flatnonzero(g[:, i])
                if i in cand:
                    s2 = HYP.b / rng.gamma(HYP.a)
                    beta = rng.normal(size=len(pa)) * np.sqrt(s2 * HYP.v_weight)
                else:
                    beta, s2, _ = posterior_draw(i, pa)
                mu = rng.normal() * np.sqrt(s2 * HYP.v_env)
                sims[r, :, i] = mu + sims[r][:, pa] @ beta + np.sqrt(s2) * rng.normal(size=n_new)
        ys.append(sims)
    ys = np.concatenate(ys)  # (25 * draws, n, d)
    # log p(Y | G', D) for every family, then every graph
    fam_ll = {}
    for i in range(d):
        for pa in itertools.chain.from_iterable(itertools.combinations([j for j in range(d) if j != i], r)
                                                for r in range(d)):
            pa = list(pa)
            if i in cand:  # the new environment's own mechanism
                x = _design(np.ones((ys.shape[0], n_new, 1)), ys[:, :, pa])
                fam_ll[i, tuple(pa)] = _dense_ml(ys[:, :, i], x, 1, len(pa))
            else:
                y0, x0 = fam_rows(i, pa)
                oh = np.concatenate([np.zeros((ys.shape[0], len(y0), 1)), np.broadcast_to(
                    np.ones((n_new, 1)), (ys.shape[0], n_new, 1))], axis=1)
                xd = np.concatenate([np.broadcast_to(x0[:, : len(shared[i])], (ys.shape[0],) + x0[:, : len(
                    shared[i])].shape), np.zeros((ys.shape[0], n_new, len(shared[i])))], axis=1)
                xp = np.concatenate([np.broadcast_to(x0[:, len(shared[i]):], (ys.shape[0], len(y0), len(pa))),
                                     ys[:, :, pa]], axis=1)
                x = np.concatenate([xd, oh, xp], axis=-1)
                y = np.concatenate([np.broadcast_to(y0, (ys.shape[0], len(y0))), ys[:, :, i]], axis=1)
                both = _dense_ml(y, x, len(shared[i]) + 1, len(pa))
                fam_ll[i, tuple(pa)] = both - _dense_ml(y0[None], x0[None], len(shared[i]), len(pa))[0]
    ll = np.stack([sum(fam_ll[i, tuple(np.flatnonzero(g[:, i]))] for i in range(d)) for g in dags], axis=1)
    joint = logw[None] + ll
    norm = np.logaddexp.reduce(joint, axis=1)
    src = np.repeat(np.arange(len(dags)), draws_per_graph)
    info = (ll[np.arange(len(src)), src] - norm).reshape(len(dags), draws_per_graph)
    w = np.exp(logw)
    est = w @ info.mean(1)
    se = np.sqrt(np.sum(w**2 * info.var(1, ddof=1) / draws_per_graph))
    return est, se


def _topo(g):
    import networkx as nx

    return list(nx.topological_sort(nx.from_numpy_array(g.astype(int), create_using=nx.DiGraph)))


@pytest.mark.parametrize("cand", ["Z", "Y"])
@pytest.mark.slow
def test_eig_agrees_with_exact_enumeration_and_a_dense_reference(cand):
    data, targets = _data()
    res = next_intervention(data, targets, {cand: [cand]}, samples=12, draws=2048, key=3,
                            engine={"method": "exhaustive"})
    est, se = float(res.table["eig"][0]), float(res.table["eig_se"][0])
    ref, ref_se = _reference_eig(data, targets, [NAMES.index(cand)], 12, 120, seed=1)
    assert res.settings["graphs"] == 25
    assert se < 0.05 and ref_se < 0.05
    assert abs(est - ref) < 4 * np.hypot(se, ref_se), (est, se, ref, ref_se)
    assert 0 < est < np.log(25)


def test_eig_estimate_of_the_fast_path_matches_the_reference_values():
    """A quick check at the settings of the dense comparison above (fixed key): the
    intervention on Y, which separates the chain's two remaining orientations, carries the
    most information; X, already targeted, carries almost none."""
    data, targets = _data()
    res = next_intervention(data, targets, ["X", "Y", "Z"], samples=[12, 48], draws=512, key=3,
                            engine={"method": "exhaustive"}, progress=False)
    t = res.table.set_index("candidate")
    assert res.best == "Y"
    assert t.loc["X", "eig"] < 0.05 < t.loc["Z", "eig"] < t.loc["Y", "eig"] < np.log(25)
    assert np.all(t["eig_se"] > 0) and np.all(t["entropy_change"] < 0.05)
    # more samples of the chosen experiment, more information (the curve)
    assert res.curve["eig"].iloc[1] > res.curve["eig"].iloc[0]


def test_batches_soft_perfect_and_off_target_candidates():
    data, targets = _data()
    cands = {"Y": ["Y"], "Z": {"targets": ["Z"], "cost": 3.0}, "YZ": ["Y", "Z"]}
    for opts in ({"intervention": "perfect"}, {"off_target": 0.2}):
        res = next_intervention(data, targets, cands, samples=20, draws=64, batch=2, key=1,
                                engine={"method": "exhaustive"}, progress=False, **opts)
        assert len(res.batch) == 2 and len(set(res.batch)) == 2
        # the joint information of two experiments is at least that of the first, within error
        assert res.batch_eig[1] > res.batch_eig[0] - 3 * res.batch_eig_se[1]
        assert res.table.set_index("candidate").loc["Z", "cost"] == 3.0
        assert np.all(np.isfinite(res.table["eig"]))


def test_bad_input_names_the_problem():
    data, targets = _data()
    with pytest.raises(DataError, match="not variables of the data"):
        next_intervention(data, targets, {"k": ["W"]})
    with pytest.raises(DataError, match="batch=4"):
        next_intervention(data, targets, ["X", "Y"], batch=4)
    with pytest.raises(DataError, match="give the targets"):
        next_intervention(data, None, ["X"])
    with pytest.raises(DataError, match="sample sizes"):
        next_intervention(data, targets, ["X"], samples=[1])
    with pytest.raises(DataError, match="MultiEnvData"):
        next_intervention(np.zeros((2, 3, 3)), targets, ["X"])


def test_entropy_heuristic_picks_the_node_of_the_uncertain_edges():
    p = np.zeros((3, 3))
    p[1, 2] = p[2, 1] = 0.5       # Y - Z unresolved
    p[0, 1] = 1.0                  # X -> Y known
    assert entropy_heuristic(p, {"X": ["X"], "Z": ["Z"]}, NAMES) == "Z"
    assert entropy_heuristic(p, ["X", "Y"], NAMES) == "Y"


def test_run_sequential_reports_shd_and_mass_of_the_true_graph():
    truth = np.array([[0, 1], [0, 0]])

    def simulator(targets, n, seed):
        r = np.random.default_rng(seed)
        x = r.normal(size=n) * (2.0 if "X" in targets else 1.0)
        y = (0.0 if "Y" in targets else 0.9) * x + 0.5 * r.normal(size=n)
        return np.stack([x, y], 1)

    start = MultiEnvData.from_arrays([simulator([], 200, 0)], names=["X", "Y"], envs=["obs"])
    hist = run_sequential(simulator, start, ["X", "Y"], steps=2, samples=100, truth=truth, draws=32)
    assert list(hist["step"]) == [0, 1, 2] and pd.isna(hist["chosen"].iloc[-1])
    assert hist["true_graph_mass"].iloc[-1] > 0.9 and hist["shd"].iloc[-1] == 0
