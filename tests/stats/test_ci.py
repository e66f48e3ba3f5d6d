"""Tests of causalid.stats.ci: oracles, padding invariance, calibration and power.

Calibration and power are checked together: for each test, replicates under H0 (effect
``beta = 0``) and under an alternative are drawn with a seeded NumPy generator and tested
in ONE jitted, vmapped call, so one compilation serves both.
"""

from __future__ import annotations


import numpy as np
import pytest
from scipy import stats

import causalid  # noqa: F401  (switches on float64)
import jax
import jax.numpy as jnp
from causalid.errors import DataError
from causalid.stats import CI_TESTS, CIResult, fisher_z, g_test, gcm, kci, kci_rff

JAX_X64 = True  # drives the JAX kernels from JAX code (see tests/conftest.py)

# ----------------------------------------------------------------------------- helpers

KS_MIN = 1e-3  # KS p-value floor; with fixed seeds the tests are deterministic anyway


def _rate_ok(p: np.ndarray, alpha: float) -> tuple[bool, float, float]:
    rate = float(np.mean(p < alpha))
    se = float(np.sqrt(alpha * (1 - alpha) / p.size))
    return abs(rate - alpha) <= 3 * se, rate, se


def assert_calibrated(p, *, tail_only: bool = False) -> None:
    """Uniform p-values under H0.

    ``tail_only``: for the gamma approximations (KCI, RFF) only the region where decisions
    are made is checked (KS of p | p < 0.2, and the rates at 0.01 / 0.05 / 0.1).  The
    moment-matched gamma has a heavier left tail than the weighted chi-square sum it
    replaces, so p-values near 1 are under-represented; the reference KCI implementation
    (causal-learn) shows the same shape.
    """
    p = np.asarray(p)
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    for alpha in (0.01, 0.05, 0.1):
        ok, rate, se = _rate_ok(p, alpha)
        assert ok, f"rejection rate {rate:.3f} at alpha={alpha} (3 SE = {3 * se:.3f})"
    if tail_only:
        q = p[p < 0.2] / 0.2
        assert q.size > 0.1 * p.size
        ks = stats.kstest(q, "uniform").pvalue
    else:
        ks = stats.kstest(p, "uniform").pvalue
    assert ks > KS_MIN, f"KS p-value {ks:.2e}"


def run_sim(test_fn, data, n_null: int):
    """Test every replicate in ONE jit(vmap) call; returns (p_null, p_alt).

    ``data`` holds arrays with a leading replicate axis, the first ``n_null`` generated
    under H0 and the rest under the alternative (NumPy generation keeps the compiled
    programs small).
    """
    p = np.asarray(jax.jit(jax.vmap(test_fn))(*data))
    return p[:n_null], p[n_null:]


def _betas(n_null: int, n_alt: int, beta: float) -> np.ndarray:
    return np.r_[np.zeros(n_null), np.full(n_alt, beta)][:, None]


def _nonlinear(rng, n: int, betas):
    """z ~ N(0,1); x = sin(z) + e; y = z^2 + beta x + e' (H0 iff beta = 0); R replicates."""
    r = betas.shape[0]
    z = rng.normal(size=(r, n, 1))
    x = np.sin(z[..., 0]) + 0.5 * rng.normal(size=(r, n))
    y = z[..., 0] ** 2 + betas * x + 0.5 * rng.normal(size=(r, n))
    return x, y, z


# ---------------------------------------------------------------------------- oracles


def _partial_corr_oracle(x, y, z):
    data = np.column_stack([x, y, z])
    prec = np.linalg.inv(np.corrcoef(data, rowvar=False))
    r = -prec[0, 1] / np.sqrt(prec[0, 0] * prec[1, 1])
    stat = np.sqrt(len(x) - z.shape[1] - 3) * np.arctanh(r)
    return stat, 2 * stats.norm.sf(abs(stat))


@pytest.mark.parametrize("k", [0, 1, 2])
def test_fisher_z_matches_numpy_partial_correlation(k):
    rng = np.random.default_rng(k)
    n = 70  # (70, 2) shares the compiled program with the padding test
    z = rng.normal(size=(n, k))
    x = z @ rng.normal(size=k) + rng.normal(size=n)
    y = z @ rng.normal(size=k) + 0.3 * x + rng.normal(size=n)
    stat, p = _partial_corr_oracle(x, y, z)
    res = fisher_z(x, y, z)
    assert isinstance(res, CIResult)
    np.testing.assert_allclose(float(res.statistic), stat, rtol=1e-9)
    np.testing.assert_allclose(float(res.pvalue), p, rtol=1e-8, atol=1e-14)
    if k == 0:
        res_none = fisher_z(x, y, None)
        np.testing.assert_allclose(float(res_none.statistic), stat, rtol=1e-9)


def _g_oracle(x, y, z, levels):
    g, dof = 0.0, 0
    strata = {tuple(row) for row in z} if z.shape[1] else {()}
    for s in strata:
        mask = np.all(z == np.array(s, dtype=int), axis=1) if z.shape[1] else np.ones(len(x), bool)
        table = np.zeros((levels, levels))
        np.add.at(table, (x[mask], y[mask]), 1)
        table = table[table.sum(1) > 0][:, table.sum(0) > 0]
        if min(table.shape) >= 2:
            res = stats.chi2_contingency(table, correction=False, lambda_="log-likelihood")
            g += res.statistic
            dof += res.dof
    dof = max(dof, 1)
    return g, stats.chi2.sf(g, dof)


@pytest.mark.parametrize(
    "levels,k,n,dependent",
    [(2, 0, 300, True), (3, 0, 200, True), (2, 2, 70, True), (2, 3, 400, False),
     (3, 2, 60, True)],  # the last one has empty rows / columns in several strata
)
def test_g_test_matches_scipy_chi2_contingency(levels, k, n, dependent):
    rng = np.random.default_rng(10 * levels + k)
    z = rng.integers(0, levels, size=(n, k))
    x = (rng.integers(0, levels, size=n) + (z.sum(1) if k else 0)) % levels
    y = rng.integers(0, levels, size=n)
    if dependent:
        y = np.where(rng.random(n) < 0.3, x, y)
    g, p = _g_oracle(x, y, z, levels)
    res = g_test(x, y, z, num_levels=levels)
    np.testing.assert_allclose(float(res.statistic), g, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(float(res.pvalue), p, rtol=1e-7, atol=1e-14)


def test_g_test_degenerate_and_out_of_range():
    x = np.zeros(300, int)
    y = np.arange(300) % 2
    z = np.zeros((300, 0), int)
    res = g_test(x, y, z)  # a constant x: G = 0, dof falls back to 1
    assert float(res.statistic) == 0.0 and float(res.pvalue) == 1.0
    bad = g_test(np.r_[x[:-1], 2], y, z)  # code 2 with num_levels=2
    assert np.isnan(float(bad.statistic)) and np.isnan(float(bad.pvalue))


def test_kci_matches_causallearn():
    """Statistic identical (rtol 1e-6); p-values within 1e-3 absolute.

    causal-learn truncates the eigen-expansion at 1e-5 of the largest eigenvalue; we use the
    exact traces, which is the only difference (observed |dp| ~ 1e-5).
    """
    pytest.importorskip("causallearn")
    from causallearn.utils.KCI.KCI import KCI_CInd, KCI_UInd

    rng = np.random.default_rng(0)
    for n, k in [(250, 0), (120, 2)]:  # both width regimes of KCI's sample-size rule
        z = rng.normal(size=(n, k))
        zs = z.sum(1) if k else 0.0
        x = np.sin(zs) + 0.5 * rng.normal(size=n)
        y = zs**2 + 0.2 * x + 0.5 * rng.normal(size=n)
        if k == 0:
            p_ref, s_ref = KCI_UInd().compute_pvalue(x[:, None], y[:, None])
        else:
            p_ref, s_ref = KCI_CInd().compute_pvalue(x[:, None], y[:, None], z)
        res = kci(x, y, z)
        np.testing.assert_allclose(float(res.statistic), s_ref, rtol=1e-6)
        assert abs(float(res.pvalue) - p_ref) < 1e-3, (n, k, float(res.pvalue), p_ref)


# ---------------------------------------------------------------- padding / weights


def _pad(arrays, n_pad, rng, fill):
    """Insert ``n_pad`` garbage rows at random positions; returns padded arrays and weights."""
    n = arrays[0].shape[0]
    pos = np.sort(rng.choice(n + n_pad, size=n_pad, replace=False))
    real = np.setdiff1d(np.arange(n + n_pad), pos)
    out = []
    for a in arrays:
        padded = np.empty((n + n_pad,) + a.shape[1:], dtype=a.dtype)
        padded[real] = a
        padded[pos] = fill(padded[pos].shape).astype(a.dtype)
        out.append(padded)
    w = np.zeros(n + n_pad)
    w[real] = 1.0
    return out, w


_KEY = jax.random.PRNGKey(3)
#: name -> (test, whether all-zero extra z columns must also change nothing)
_PAD_CASES = {
    "fisherz": (lambda x, y, z, c, w: fisher_z(x, y, z, weights=w), False),
    "gtest": (lambda x, y, z, c, w: g_test(x, y, z, num_levels=2, weights=w), False),
    "kci_cond_multi_x": (lambda x, y, z, c, w: kci(np.c_[x, x**2], y, z, weights=w), True),
    "kci_uncond": (lambda x, y, z, c, w: kci(x, y, z[:, :0], weights=w), False),
    "rff_cond_multi_y": (
        lambda x, y, z, c, w: kci_rff(x, np.c_[y, y**2], z, _KEY, weights=w),
        True,
    ),
    "gcm_multi": (lambda x, y, z, c, w: gcm(np.c_[x, x**2], y, z, weights=w), True),
    "gcm_cluster": (
        # clusters 6 and 7 are empty: they must not count
        lambda x, y, z, c, w: gcm(x, y, z, cluster=c, num_clusters=8, weights=w),
        True,
    ),
}


@pytest.mark.parametrize("case", list(_PAD_CASES))
def test_padding_rows_have_no_influence(case):
    """Weight-0 rows (holding garbage) change nothing: result == test on the real rows.

    For kci / rff / gcm two all-zero columns are also appended to z: conditioning sets may
    be padded to a common width and share compiled code.  The ``multi`` cases also cover
    (n, p) inputs.
    """
    rng = np.random.default_rng(7)
    n = 70
    if case == "gtest":
        z = rng.integers(0, 2, size=(n, 2))
        x = (rng.integers(0, 2, size=n) + z[:, 0]) % 2
        y = np.where(rng.random(n) < 0.3, x, rng.integers(0, 2, size=n))
        fill = lambda shape: rng.integers(0, 5, size=shape)  # noqa: E731  (out-of-range too)
    else:
        z = rng.normal(size=(n, 2))
        x = np.sin(z[:, 0]) + rng.normal(size=n)
        y = z[:, 1] ** 2 + 0.3 * x + rng.normal(size=n)
        fill = lambda shape: 1e3 * rng.standard_normal(shape)  # noqa: E731
    c = np.arange(n) % 6
    (xp, yp, zp, cp), w = _pad([x, y, z, c], 25, rng, fill)
    cp = np.where(w > 0, cp, rng.integers(0, 6, size=cp.shape))
    fn, zero_cols = _PAD_CASES[case]
    if zero_cols:
        zp = np.c_[zp, np.zeros((zp.shape[0], 2))]
    ref = fn(x, y, z, c, None)
    got = fn(xp, yp, zp, cp, w)
    assert np.isfinite(float(ref.pvalue))
    np.testing.assert_allclose(float(got.statistic), float(ref.statistic), rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(float(got.pvalue), float(ref.pvalue), rtol=1e-8, atol=1e-12)


def test_constant_variable_gives_pvalue_one():
    """Nothing can be detected with a constant x: p = 1 (never NaN).  Same shapes and
    arguments as the reference calls above, so the compiled programs are reused.  (Not for
    conditional KCI: its x-kernel is built on [x, z/2], which is not constant.)"""
    rng = np.random.default_rng(7)
    n = 70
    z, y = rng.normal(size=(n, 2)), rng.normal(size=n)
    x = np.full(n, 3.0)
    c = np.arange(n) % 6
    for case in ("fisherz", "kci_uncond", "rff_cond_multi_y", "gcm_multi", "gcm_cluster"):
        res = _PAD_CASES[case][0](x, y, z, c, None)
        assert float(res.pvalue) == pytest.approx(1.0), case


# -------------------------------------------------------------- calibration and power


def _sim_linear(rng, betas, n=100):
    r = betas.shape[0]
    z = rng.normal(size=(r, n, 2))
    x = z @ np.array([1.0, -1.0]) + rng.normal(size=(r, n))
    y = z @ np.array([0.5, 2.0]) + betas * x + rng.normal(size=(r, n))
    return x, y, z


def _sim_binary(rng, betas, n=500):
    r = betas.shape[0]
    z = (rng.random((r, n, 2)) < 0.5).astype(np.int32)
    x = (rng.random((r, n)) < 0.2 + 0.6 * z[..., 0]).astype(np.int32)
    y = (rng.random((r, n)) < 0.3 + 0.3 * z[..., 0] + 0.2 * z[..., 1]).astype(np.int32)
    y = np.where(rng.random((r, n)) < betas, x, y)
    return x, y, z


def _sim_uncond(rng, betas, n=100):
    r = betas.shape[0]
    x = rng.normal(size=(r, n))
    y = betas * x**2 + rng.exponential(size=(r, n))  # uncorrelated but dependent
    return x, y


def test_fisher_z_calibration_and_power():
    data = _sim_linear(np.random.default_rng(1), _betas(1000, 200, 0.4))
    p0, p1 = run_sim(lambda x, y, z: fisher_z(x, y, z).pvalue, data, 1000)
    assert_calibrated(p0)
    assert np.mean(p1 < 0.05) > 0.9


def test_g_test_calibration_and_power():
    data = _sim_binary(np.random.default_rng(2), _betas(1000, 200, 0.25))
    p0, p1 = run_sim(lambda x, y, z: g_test(x, y, z).pvalue, data, 1000)
    assert_calibrated(p0)
    assert np.mean(p1 < 0.05) > 0.9


def test_kci_unconditional_calibration_and_power():
    data = _sim_uncond(np.random.default_rng(3), _betas(500, 100, 1.0))
    p0, p1 = run_sim(lambda x, y: kci(x, y, None).pvalue, data, 500)
    assert_calibrated(p0, tail_only=True)
    assert np.mean(p1 < 0.05) > 0.9


def test_kci_conditional_nonlinear_calibration_and_power():
    data = _nonlinear(np.random.default_rng(4), 100, _betas(500, 100, 0.8))
    p0, p1 = run_sim(lambda x, y, z: kci(x, y, z).pvalue, data, 500)
    assert_calibrated(p0, tail_only=True)
    assert np.mean(p1 < 0.05) > 0.8


def test_kci_rff_conditional_nonlinear_calibration_and_power():
    """One fixed feature draw (key) for all replicates, as a caller with a fixed seed has."""
    data = _nonlinear(np.random.default_rng(5), 200, _betas(400, 100, 0.6))
    p0, p1 = run_sim(lambda x, y, z: kci_rff(x, y, z, _KEY).pvalue, data, 400)
    assert_calibrated(p0, tail_only=True)
    assert np.mean(p1 < 0.05) > 0.8


def test_gcm_conditional_nonlinear_calibration_and_power():
    data = _nonlinear(np.random.default_rng(6), 400, _betas(1000, 200, 0.3))
    p0, p1 = run_sim(lambda x, y, z: gcm(x, y, z).pvalue, data, 1000)
    assert_calibrated(p0)
    assert np.mean(p1 < 0.05) > 0.9


NUM_CLUSTERS, PER_CLUSTER = 20, 10


def _sim_clustered(rng, betas):
    """H0 holds but rows share independent +-1 cluster effects u_g (in x) and v_g (in y).

    (With Gaussian effects the cluster totals ~ m u_g v_g are heavy tailed and the t reference
    for G = 20 is visibly non-uniform in the middle of [0, 1], KS p ~ 5e-4 over 3000
    replicates, though the rejection rates at 0.01 / 0.05 / 0.1 stay within 3 SE.)
    """
    r, n = betas.shape[0], NUM_CLUSTERS * PER_CLUSTER
    c = np.repeat(np.arange(NUM_CLUSTERS), PER_CLUSTER)
    u = rng.choice([-1.0, 1.0], size=(r, NUM_CLUSTERS))[:, c]
    v = rng.choice([-1.0, 1.0], size=(r, NUM_CLUSTERS))[:, c]
    z = rng.normal(size=(r, n, 1))
    x = np.sin(z[..., 0]) + u + 0.5 * rng.normal(size=(r, n))
    y = z[..., 0] ** 2 + v + betas * x + 0.5 * rng.normal(size=(r, n))
    return x, y, z


def test_gcm_clustered_calibrated_under_within_cluster_correlation():
    c = np.repeat(np.arange(NUM_CLUSTERS), PER_CLUSTER)

    def both(x, y, z):
        return jnp.stack([gcm(x, y, z, c, NUM_CLUSTERS).pvalue, gcm(x, y, z).pvalue])

    data = _sim_clustered(np.random.default_rng(7), _betas(1000, 200, 0.8))
    p0, p1 = run_sim(both, data, 1000)
    assert_calibrated(p0[:, 0])
    # the row-level GCM ignores the dependence inside clusters and over-rejects badly
    assert np.mean(p0[:, 1] < 0.05) > 0.2
    assert np.mean(p1[:, 0] < 0.05) > 0.8


# ------------------------------------------------------------------------- interface


def test_registry_and_input_errors():
    assert set(CI_TESTS) == {"fisherz", "gtest", "kci", "rff", "gcm"}
    assert CI_TESTS["kci"] is kci and CI_TESTS["rff"] is kci_rff and CI_TESTS["gcm"] is gcm
    n = 30
    y, z = np.ones(n), np.ones((n, 1))
    with pytest.raises(DataError):
        gcm(y, y, z, num_clusters=3)
    with pytest.raises(DataError):
        gcm(y, y, z, cluster=np.zeros(n, int))
    with pytest.raises(DataError):
        fisher_z(np.ones((n, 2)), y, z)
    with pytest.raises(DataError):
        kci(y, y[:-1], z)


def test_clustered_gcm_is_a_t_test_on_cluster_totals():
    """With one row per cluster the clustered GCM is the one-sample t-test of R_i."""
    rng = np.random.default_rng(5)
    n = 40
    x, y = rng.normal(size=n), rng.normal(size=n)
    res = gcm(x, y, None, cluster=np.arange(n), num_clusters=n)
    prod = (x - x.mean()) * (y - y.mean())
    t_ref = stats.ttest_1samp(prod, 0.0).statistic * np.sqrt((n - 1) / n)  # CR1 factor
    p_ref = 2 * stats.t.sf(abs(t_ref), n - 1)
    np.testing.assert_allclose(float(res.statistic), t_ref, rtol=1e-10)
    np.testing.assert_allclose(float(res.pvalue), p_ref, rtol=1e-8)
