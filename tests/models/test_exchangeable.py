"""Tests of the exchangeable ICM programs and the causal de Finetti reference generators."""

import causalid  # noqa: F401  (float64)
import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer import Predictive
from numpyro.infer.util import log_density
from scipy import stats

from causalid.errors import DataError
from causalid.models.exchangeable import (
    ANM_CENTRES,
    _covering_dag,
    _run_binary,
    _run_bivariate,
    icm_model,
    intervene,
    scm_bivariate_continuous,
    scm_multivariate_binary,
    simulate,
    site_dims,
)

JAX_X64 = True  # drives the JAX kernels from JAX code (see tests/conftest.py)

KEY = jax.random.PRNGKey(0)
# columns in insertion order: W, Y, X, Z ; roots W, X
GRAPH = nx.DiGraph([("W", "Y"), ("X", "Y"), ("Y", "Z")])
NODES = ["W", "Y", "X", "Z"]
ALPHA = 1e-3  # false-alarm rate of the frequency tests


def _draws(runner, num, *args):
    """All site values of ``num`` runs of a compiled reference program, vmapped over keys.

    The public ``scm_*`` functions vmap the same compiled runner, so comparing with them reuses
    the compilation.
    """
    return jax.device_get(jax.vmap(lambda k: runner(k, *args))(jax.random.split(KEY, num)))


# ----------------------------------------------------------------------------- icm_model
E, N = 3, 4  # one size for all icm_model tests: eager JAX compiles each primitive once per shape


def _trace(model, *args, **kwargs):
    return handlers.trace(handlers.seed(model, KEY)).get_trace(*args, **kwargs)


def test_predictive_shapes_and_site_names():
    S, g = 2, nx.DiGraph([("X", "Y")])
    draws = Predictive(icm_model, num_samples=S, parallel=True)(KEY, g, E, N)
    dims, coords = site_dims(g)
    assert set(draws) == set(dims) == {"X", "Y"} | {
        f"{n}_{p}{h}" for n in "XY" for p in ("bias", "log_noise") for h in ("", "_mu", "_tau")
    } | {f"Y_weight{h}" for h in ("", "_mu", "_tau")}
    sizes = {"env": E, "sample": N, **{k: len(v) for k, v in coords.items()}}
    for site, axes in dims.items():
        shape = [S] + [sizes[a] for a in axes]
        if axes[:1] == ("env",) and site not in ("X", "Y"):
            shape.insert(2, 1)  # the sample plate's singleton axis
        assert draws[site].shape == tuple(shape), site
    assert draws["Y"].shape == (S, E, N) and draws["Y_weight"].shape == (S, E, 1, 1)
    assert draws["Y_weight_mu"].shape == (S, 1) and coords == {"Y_feature": ["X"]}


@pytest.mark.parametrize("family", ["linear_gaussian", "anm", "binary", "categorical"])
def test_families_site_shapes(family):
    tr = _trace(icm_model, GRAPH, E, N, family=family, regime="cause")
    dims, coords = site_dims(GRAPH, family, regime="cause")
    values = {k: v["value"] for k, v in tr.items() if v["type"] == "sample"}
    assert set(values) == set(dims)
    K = {"binary": 2, "categorical": 3}.get(family)
    nfeat = {"anm": len(ANM_CENTRES), "categorical": 2}.get(family, 1)
    out = (2,) if family == "categorical" else ()
    assert values["W_bias"].shape == (E, 1) + out  # W is a root: varies under "cause"
    assert values["Y_weight"].shape == (2 * nfeat,) + out  # Y is not: shared
    assert ("Y_log_noise" in values) == (K is None) and "W_weight" not in values
    assert len(coords["Y_feature"]) == 2 * nfeat
    assert coords["Y_feature"][0] == {
        "linear_gaussian": "W", "binary": "W", "anm": "tanh(W+1)", "categorical": "W=1"
    }[family]
    for n in NODES:
        assert values[n].shape == (E, N)
        if K is not None:
            assert set(np.unique(values[n])) <= set(range(K))


def test_simulate_returns_columns_and_squeezed_parameters():
    x, params = simulate(GRAPH, KEY, E, N, regime="cause")
    assert x.shape == (E, N, 4) and x.dtype == jnp.float64
    assert params["W_bias"].shape == (E,) and params["Y_weight"].shape == (2,)
    assert params["W_bias_mu"].shape == () and "Y_bias_mu" not in params
    assert not set(NODES) & set(params)
    tr = _trace(icm_model, GRAPH, E, N, regime="cause")
    np.testing.assert_array_equal(x[..., 1], tr["Y"]["value"])  # same key, same draw
    np.testing.assert_array_equal(params["W_bias"], tr["W_bias"]["value"][:, 0])


def test_padding_does_not_enter_the_log_density():
    g = nx.DiGraph([("X", "Y")])
    counts = np.array([4, 3, 1])
    tr = _trace(icm_model, g, E, N)
    params = {k: v["value"] for k, v in tr.items() if v["type"] == "sample" and k not in ("X", "Y")}
    x = jnp.stack([tr["X"]["value"], tr["Y"]["value"]], -1)
    mask = jnp.arange(N)[None, :] < counts[:, None]

    def lp(x, mask, num_samples=N):
        return float(log_density(icm_model, (g, E, num_samples), dict(x=x, mask=mask), params)[0])

    pad_a = jnp.where(mask[..., None], x, 1e3)
    pad_b = jnp.where(mask[..., None], x, -7.0)
    assert lp(pad_a, mask) == pytest.approx(lp(pad_b, mask), rel=1e-12)

    # the data term of the ragged set is the Gaussian log density of the real samples only
    data_term = lp(pad_a, mask) - lp(pad_a, jnp.zeros_like(mask))
    p = {k: np.asarray(v) for k, v in params.items()}
    xn = np.asarray(x)
    sd_x, sd_y = np.exp(p["X_log_noise"][:, 0]), np.exp(p["Y_log_noise"][:, 0])
    oracle = sum(
        stats.norm.logpdf(xn[e, :n, 0], p["X_bias"][e, 0], sd_x[e]).sum()
        + stats.norm.logpdf(
            xn[e, :n, 1], p["Y_bias"][e, 0] + p["Y_weight"][e, 0, 0] * xn[e, :n, 0], sd_y[e]
        ).sum()
        for e, n in enumerate(counts)
    )
    assert data_term == pytest.approx(oracle, rel=1e-10)

    # equal truncation: padded + mask gives the log density of the sliced array, no mask
    m2 = jnp.broadcast_to(jnp.arange(N) < 2, (E, N))
    sliced = lp(x[:, :2], None, 2)
    assert lp(jnp.where(m2[..., None], x, 5.0), m2) == pytest.approx(sliced, rel=1e-12)


def test_do_changes_descendants_only():
    g = nx.DiGraph([("W", "X"), ("X", "Y"), ("Y", "V")])
    g.add_node("Z")
    col = {n: i for i, n in enumerate(g.nodes)}
    x = handlers.seed(icm_model, KEY)(g, E, N)
    x_do = handlers.seed(intervene(icm_model, {"X": 2.0}), KEY)(g, E, N)
    assert jnp.all(x_do[..., col["X"]] == 2.0)
    for n in ("W", "Z"):  # non-descendants keep their draws
        assert jnp.array_equal(x_do[..., col[n]], x[..., col[n]])
    for n in ("Y", "V"):  # descendants change everywhere
        assert jnp.all(x_do[..., col[n]] != x[..., col[n]])
    # an intervention on the sink touches nothing else
    x_sink = handlers.seed(intervene(icm_model, {"V": jnp.zeros((E, N))}), KEY)(g, E, N)
    assert jnp.array_equal(jnp.delete(x_sink, col["V"], -1), jnp.delete(x, col["V"], -1))
    # the trace keeps the natural draw of X; the intervened value reaches Y
    tr = _trace(intervene(icm_model, {"X": 2.0}), g, E, N)
    assert jnp.array_equal(tr["X"]["value"], x[..., col["X"]])
    assert jnp.array_equal(tr["Y"]["value"], x_do[..., col["Y"]])


@pytest.mark.parametrize(
    "regime, varying",
    [
        ("both", {"W", "X", "Y", "Z"}),
        ("cause", {"W", "X"}),
        ("mechanism", {"Y", "Z"}),
        (["X", "Z"], {"X", "Z"}),
    ],
)
def test_regimes_put_sites_inside_or_outside_the_env_plate(regime, varying):
    tr = _trace(icm_model, GRAPH, E, N, regime=regime)
    frames = {
        name: {f.name for f in site["cond_indep_stack"]}
        for name, site in tr.items()
        if site["type"] == "sample"
    }
    for node in NODES:
        assert frames[node] == {"env", "sample"}
        params = ["bias", "log_noise"] + (["weight"] if GRAPH.in_degree(node) else [])
        for p in params:
            site = f"{node}_{p}"
            if node in varying:
                assert frames[site] == {"env"}
                assert frames[f"{site}_mu"] == frames[f"{site}_tau"] == set()
            else:
                assert frames[site] == set() and f"{site}_mu" not in frames
    dims, _ = site_dims(GRAPH, regime=regime)
    assert set(dims) == set(frames)
    assert {k for k, v in dims.items() if v[:1] == ("env",)} == {
        k for k, f in frames.items() if "env" in f
    }


def test_invalid_graphs_and_names_raise():
    with pytest.raises(DataError, match="cycle"):
        simulate(nx.DiGraph([("A", "B"), ("B", "A")]), KEY, 2, 2)
    with pytest.raises(DataError, match="'Q'"):
        site_dims(GRAPH, names=["W", "Y", "X", "Q"])
    with pytest.raises(DataError, match="clashes"):
        site_dims(nx.DiGraph([("A", "B"), ("A", "A_bias")]))
    with pytest.raises(DataError, match="not in the graph"):
        site_dims(GRAPH, regime=["nope"])


# ----------------------------------------------------------------------------- bivariate DGP
E_BIV, R_BIV = 7, 6000


@pytest.fixture(scope="module")
def biv():
    return _draws(_run_bivariate, R_BIV, E_BIV, 2, "both")


def test_bivariate_structures_are_uniform(biv):
    counts = np.bincount(biv["label"], minlength=3)
    assert counts.size == 3 and stats.chisquare(counts).pvalue > ALPHA


def test_bivariate_exactly_half_the_envs_are_nonlinear(biv):
    z = biv["nonlinear"]
    assert np.all(z.sum(-1) == E_BIV // 2)
    p = (E_BIV // 2) / E_BIV  # and each environment equally likely to be chosen
    assert np.all(np.abs(z.mean(0) - p) < 4 * np.sqrt(p * (1 - p) / R_BIV))


def test_bivariate_data_follow_the_reference_formula(biv):
    for r in range(60):
        a, b, c, d, k = biv["coef"][r]
        A = [np.array([[1, 0], [a, b]]), np.array([[c, d], [0, 1]]), np.eye(2)][biv["label"][r]]
        eps = biv["eps"][r]
        x = eps @ A.T + k * biv["nonlinear"][r][:, None, None] * ((eps**2) @ (A - np.eye(2)).T)
        np.testing.assert_allclose(biv["x"][r], x, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(biv["theta"][r], biv["loc_env"][r][:, 0, 0])
        np.testing.assert_array_equal(biv["psi"][r], biv["loc_env"][r][:, 0, 1])
    assert set(np.unique(biv["coef"])) == set(range(1, 10))


def test_bivariate_no_edge_moments(biv):
    # X = eps_x ~ Laplace(theta, 1), theta ~ U(-1, 1): E X = 0, Var X = 2 + 1/3,
    # E[X^4] = 1/5 + 6 (1/3) 2 + 24, and within an environment E[X_1 X_2] = E theta^2 = 1/3.
    x = biv["x"][biv["label"] == 2]  # (R', env, sample, var)
    for j in range(2):
        v = x[:, :, 0, j].ravel()  # one sample per environment: independent draws
        n = v.size
        var, m4 = 7 / 3, 1 / 5 + 4 + 24
        assert abs(v.mean()) < 4 * np.sqrt(var / n)
        assert abs(v.var() - var) < 4 * np.sqrt((m4 - var**2) / n)
        prod = (x[:, :, 0, j] * x[:, :, 1, j]).ravel()
        assert abs(prod.mean() - 1 / 3) < 4 * np.sqrt((4 + 4 / 3 + 1 / 5 - 1 / 9) / n)
    # the two variables are independent: correlation within 4 standard errors of 0
    c = np.corrcoef(x[:, :, 0, 0].ravel(), x[:, :, 0, 1].ravel())[0, 1]
    assert abs(c) < 4 / np.sqrt(x[:, :, 0, 0].size)


@pytest.mark.parametrize("regime", ["cause", "mechanism"])
def test_bivariate_regimes_share_the_right_noise_location(regime):
    d = _draws(_run_bivariate, 60, 5, 2, regime)
    const = lambda v: np.all(v == v[:, :1], axis=-1)  # noqa: E731
    x_cause = d["label"] != 1
    x_varies = x_cause if regime == "cause" else ~x_cause
    assert np.array_equal(~const(d["theta"]), x_varies)
    assert np.array_equal(~const(d["psi"]), ~x_varies)
    assert np.all(const(d["theta"]) | const(d["psi"]))


def test_scm_bivariate_continuous_is_the_vmapped_program(biv):
    keys = jax.random.split(KEY, R_BIV)
    x, label = jax.vmap(lambda k: scm_bivariate_continuous(k, E_BIV))(keys)
    assert x.shape == (R_BIV, E_BIV, 2, 2) and x.dtype == jnp.float64
    np.testing.assert_array_equal(x, biv["x"])
    np.testing.assert_array_equal(label, biv["label"])
    with pytest.raises(DataError):
        scm_bivariate_continuous(KEY, 4, regime="effect")


# ----------------------------------------------------------------------------- binary DGP
R_BIN = 4000
VALID_3 = {3, 5, 6, 7}  # bit 0: edge 0->1, bit 1: 0->2, bit 2: 1->2


@pytest.fixture(scope="module")
def binary():
    return _draws(_run_binary, R_BIN, 5, 2, 3)


def test_binary_dags_valid_and_uniform(binary):
    adj = binary["adjacency"]
    assert np.all(np.tril(adj) == 0)
    assert np.all((adj.sum(1) + adj.sum(2)) > 0)  # every node on an edge
    code = adj[:, 0, 1] + 2 * adj[:, 0, 2] + 4 * adj[:, 1, 2]
    assert set(np.unique(code)) == VALID_3
    counts = np.array([(code == c).sum() for c in sorted(VALID_3)])
    assert stats.chisquare(counts).pvalue > ALPHA


def test_binary_data_follow_the_reference_formula(binary):
    adj, u, x = binary["adjacency"].astype(bool), binary["noise"].astype(bool), binary["x"]
    ref = np.zeros_like(u)
    for i in range(3):
        pa = adj[:, :, i][:, None, None, :]  # (R, 1, 1, var)
        and_pa = np.all(ref | ~pa, axis=-1) & pa.any(-1)
        ref[..., i] = u[..., i] ^ and_pa
    np.testing.assert_array_equal(x, ref.astype(float))
    # moments: node 0 is always a root, P(X0 = 1) = E theta = 1/4; in 0->1, 0->2 the child
    # X1 = U1 xor X0 has P(X1 = 1) = 2 (1/4)(3/4) = 3/8 (one sample per environment)
    x0 = x[..., 0, 0].ravel()
    assert abs(x0.mean() - 1 / 4) < 4 * np.sqrt(3 / 16 / x0.size)
    sel = (adj[:, 0, 1] & adj[:, 0, 2] & ~adj[:, 1, 2])
    x1 = x[sel][..., 0, 1].ravel()
    assert abs(x1.mean() - 3 / 8) < 4 * np.sqrt(15 / 64 / x1.size)
    assert np.all((binary["theta"] > 0) & (binary["theta"] < 1))


def test_scm_multivariate_binary_is_the_vmapped_program(binary):
    keys = jax.random.split(KEY, R_BIN)
    x, adj = jax.vmap(lambda k: scm_multivariate_binary(k, 5))(keys)
    assert x.shape == (R_BIN, 5, 2, 3) and adj.shape == (R_BIN, 3, 3)
    np.testing.assert_array_equal(x, binary["x"])
    np.testing.assert_array_equal(adj, binary["adjacency"])


def test_covering_dag_sampler_on_four_nodes():
    adj = np.asarray(jax.jit(jax.vmap(lambda k: _covering_dag(k, 4)))(jax.random.split(KEY, 500)))
    assert np.all(np.tril(adj) == 0)
    assert np.all((adj.sum(1) + adj.sum(2)) > 0)
    assert np.all(adj[:, np.triu_indices(4, 1)[0], np.triu_indices(4, 1)[1]].mean(0) > 0.3)


def test_bivariate_adjacency_of_the_reference_labels():
    from causalid.models.exchangeable import bivariate_adjacency

    adj = bivariate_adjacency(np.array([0, 1, 2]))
    np.testing.assert_array_equal(adj, [[[0, 1], [0, 0]], [[0, 0], [1, 0]], [[0, 0], [0, 0]]])
    assert bivariate_adjacency(1).shape == (2, 2)
