"""Prediction-error identification of measured-input records (identify_lti(method="pem"))."""

import warnings

import numpy as np
import pytest

import causalid
from causalid import LTIData, identify_lti
from causalid.lti.pem import fit_percent

A_TRUE = np.array([[1.5, -0.7], [1.0, 0.0]])
B_TRUE = np.array([[1.0], [0.0]])
C_TRUE = np.array([[1.0, 0.5]])
K_TRUE = np.array([[0.6], [0.2]])


def innovations_record(T, seed, noise=0.3, offsets=(0.0, 0.0), coloured=False):
    """y from the innovations model (A, B, C, K) driven by white (or low-passed) u."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(T, 1))
    if coloured:
        for t in range(1, T):
            u[t] = 0.7 * u[t - 1] + u[t]
    e = noise * rng.normal(size=(T, 1))
    x = np.zeros(2)
    y = np.zeros((T, 1))
    for t in range(T):
        y[t] = C_TRUE @ x + e[t]
        x = A_TRUE @ x + B_TRUE @ u[t] + K_TRUE @ e[t]
    return u + offsets[0], y + offsets[1]


def transfer(A, B, C, D, w):
    z = np.exp(1j * w)
    return np.array([(C @ np.linalg.solve(z * np.eye(len(A)) - A, B) + D)[0, 0] for z in z])


def _tf_error(res, w=np.linspace(0.05, 3.0, 40)):
    g0 = transfer(A_TRUE, B_TRUE, C_TRUE, np.zeros((1, 1)), w)
    g = transfer(res.A, res.B, res.C, res.D, w)
    return np.abs(g - g0).max() / np.abs(g0).max()


def test_default_for_measured_inputs_is_pem_and_finds_the_order():
    u, y = innovations_record(1500, 0)
    data = LTIData.from_arrays(y[None], inputs=u[None], output_names=["y"], input_names=["u"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = identify_lti(data)
    assert res.method == "pem" and res.A.shape == (2, 2)
    assert res.info["converged"] and res.info["iterations"] < 50
    assert res.R[0, 0] == pytest.approx(0.09, rel=0.1)             # innovation variance 0.3²
    assert _tf_error(res) < 0.1
    order = res.order_selection
    assert isinstance(order, causalid.LTIOrderSelection) and order.chosen == 2
    text = res.summary()
    for words in ("order n=2", "poles", "stability", "fit on the estimation data", "innovation variance",
                  "whiteness", "input-residual", "persistently exciting"):
        assert words in text
    assert "sources" not in text and "NOT identifiable" not in text


def test_raw_uncentred_record_fits_like_the_centred_one():
    u, y = innovations_record(800, 1, offsets=(5.0, 50.0))
    raw = LTIData.from_arrays(y[None], inputs=u[None])
    centred = LTIData.from_arrays((y - y.mean(0))[None], inputs=(u - u.mean(0))[None])
    a = identify_lti(raw, state_dim=2)
    b = identify_lti(centred, state_dim=2)
    assert a.R[0, 0] == pytest.approx(b.R[0, 0], rel=1e-6)
    assert a.info["fit_percent"][0] == pytest.approx(b.info["fit_percent"][0], abs=1e-4)
    assert a.y_offset[0] == pytest.approx(b.y_offset[0] + y.mean(), abs=1e-6)
    np.testing.assert_allclose(a.predict(raw, kind="simulate") - y.mean(), b.predict(centred, kind="simulate"),
                               atol=1e-6)
    assert a.compare(raw).fit[0] > 80


def test_several_records_share_the_system_and_missing_samples_are_skipped():
    recs = [innovations_record(600, s) for s in (2, 3, 4)]
    u = np.stack([r[0] for r in recs])
    y = np.stack([r[1] for r in recs])
    y[1, 100:110] = np.nan                       # a gap in one record
    data = LTIData.from_arrays(y, inputs=u)
    res = identify_lti(data, state_dim=2)
    assert res.x0.shape == (3, 1, 2)
    assert res.info["converged"] and _tf_error(res) < 0.1
    pred = res.predict(data)
    assert np.isnan(pred).sum() == 0 and pred.shape == (3, 1, 600, 1)


def test_prediction_kinds_and_compare():
    u, y = innovations_record(1000, 5, noise=0.0)          # noise-free: simulation is exact
    data = LTIData.from_arrays(y[None], inputs=u[None])
    res = identify_lti(data, state_dim=2)
    assert res.compare(data).fit[0] > 99.9
    one, k1 = res.predict(data, kind="one-step"), res.predict(data, kind=1)
    np.testing.assert_allclose(one, k1)
    u2, y2 = innovations_record(1000, 6)
    noisy = LTIData.from_arrays(y2[None], inputs=u2[None])
    fit = identify_lti(noisy, state_dim=2)
    errs = [np.nanmean((fit.predict(noisy, kind=k) - y2[None, None]) ** 2) for k in (1, 2, 5)]
    assert errs[0] < errs[1] < errs[2]                      # longer horizons predict worse
    sim = fit.predict(noisy, kind="simulate")
    assert np.nanmean((sim - y2[None, None]) ** 2) > errs[2]
    cmp = fit.compare(noisy, kind="one-step")
    assert cmp.fit[0] == pytest.approx(fit_percent(noisy.y, one_step := fit.predict(noisy))[0])
    assert one_step.shape == noisy.y.shape
    with pytest.raises(causalid.DataError, match="kind must be"):
        fit.predict(noisy, kind="two-step")


def test_output_error_criterion_fits_the_simulation():
    u, y = innovations_record(1200, 7, coloured=True)
    data = LTIData.from_arrays(y[None], inputs=u[None])
    oe = identify_lti(data, state_dim=2, criterion="simulation")
    assert oe.K is None and oe.info["criterion"] == "simulation"
    assert _tf_error(oe) < 0.15
    assert "output error" in oe.summary()


def test_pem_refuses_designed_laws_and_bad_orders():
    y = np.random.default_rng(0).normal(size=(3, 100, 2))
    with pytest.raises(causalid.DataError, match="needs measured inputs"):
        identify_lti(LTIData.from_arrays(y, input_var=np.ones((3, 2))), method="pem")
    u = np.random.default_rng(1).normal(size=(3, 100, 1))
    with pytest.raises(causalid.DataError, match="state_dim"):
        identify_lti(LTIData.from_arrays(y, inputs=u), state_dim=0)


def test_not_exciting_inputs_are_refused():
    t = np.arange(400)
    u = np.sin(0.3 * t)[:, None]                               # one sinusoid: exciting of order 2 only
    y = np.convolve(u[:, 0], [0, 1, 0.5], mode="full")[:400, None] + 0.01 * np.random.default_rng(0).normal(size=(400, 1))
    data = LTIData.from_arrays(y[None], inputs=u[None])
    with pytest.raises(causalid.IdentifiabilityError, match="persistently exciting"):
        identify_lti(data, state_dim=3)


@pytest.mark.slow
def test_transfer_function_converges_at_the_rate_of_its_standard_errors():
    """Errors of G(e^{iω}) shrink like 1/√T and match the delta-method standard errors."""
    w = np.linspace(0.1, 2.5, 12)
    g0 = transfer(A_TRUE, B_TRUE, C_TRUE, np.zeros((1, 1)), w)
    z2, ses, errs = [], {}, {}
    for T in (600, 4800):
        for seed in (10, 11, 12):
            u, y = innovations_record(T, seed)
            res = identify_lti(LTIData.from_arrays(y[None], inputs=u[None]), state_dim=2)
            G, se = res.frequency_response(w)
            d = G[:, 0, 0] - g0
            z2 += list((d.real / se.real[:, 0, 0]) ** 2) + list((d.imag / se.imag[:, 0, 0]) ** 2)
            ses.setdefault(T, []).append(np.median(np.abs(se[:, 0, 0])))
            errs.setdefault(T, []).append(np.sqrt(np.mean(np.abs(d) ** 2)))
    # standard errors shrink by about √8 from T = 600 to 4800, and so do the errors
    assert 2.2 < np.mean(ses[600]) / np.mean(ses[4800]) < 3.6
    assert np.mean(errs[4800]) < np.mean(errs[600]) / 1.8
    # normalised errors are standard normal: mean square about 1 (72 correlated terms)
    assert 0.3 < np.mean(z2) < 2.5


def test_padded_fit_is_the_fit_of_the_smaller_order():
    """One compiled program of the largest order serves every order: an order-2 fit padded to
    order 5 takes the same Levenberg–Marquardt path as the unpadded fit (float64 rounding only)."""
    import jax.numpy as jnp

    from causalid._x64 import float64
    from causalid.lti.pem import PEMStructure, embedding, levenberg_marquardt, pack, records

    recs = [innovations_record(400, s) for s in (20, 21)]
    y = np.stack([r[1] for r in recs])
    y[0, 50:60] = np.nan                                     # a gap: the predictor runs open loop over it
    data = LTIData.from_arrays(y, inputs=np.stack([r[0] for r in recs]))
    rec = records(data)
    s, big = PEMStructure(2, 1, 1, True, True), PEMStructure(5, 1, 1, True, True)
    sy, su = rec.y_scale[0], rec.u_scale[0]
    theta0 = pack(s, A_TRUE * 0.97, B_TRUE * su / sy * 1.1, C_TRUE, np.zeros((1, 1)), K_TRUE * 0.8, np.zeros(1))

    @float64
    def fit(e):
        arrays = tuple(jnp.asarray(a) for a in (rec.y, rec.u, rec.w, rec.steps.astype(float)))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return levenberg_marquardt(e, theta0, arrays, tol=1e-10)

    emb = embedding(s, big)
    assert emb.active.size == s.size and emb.smask.tolist() == [1, 1, 0, 0, 0]
    th_a, info_a, (H_a, g_a, c_a) = fit(embedding(s))
    th_b, info_b, (H_b, g_b, c_b) = fit(emb)
    assert info_a["converged"] and info_b["converged"]
    assert info_a["iterations"] == info_b["iterations"] > 2
    assert info_a["initial_cost"] == pytest.approx(info_b["initial_cost"], rel=1e-12)
    assert c_b == pytest.approx(c_a, rel=1e-11)
    np.testing.assert_allclose(th_b, th_a, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(H_b, H_a, rtol=1e-7, atol=1e-9 * np.abs(H_a).max())
    padded = emb.pad(th_b)
    assert np.count_nonzero(padded) == np.count_nonzero(th_b)      # the padding stays at zero


@pytest.mark.parametrize("feedthrough,noise", [(False, True), (True, True), (True, False)])
def test_sensitivity_recursion_is_the_forward_mode_jacobian(feedthrough, noise):
    """The Gauss–Newton equations from the sensitivity recursion equal J^T J, J^T r from
    jax.jacfwd through the predictor (missing outputs and a partial fitting mask included)."""
    import functools

    import jax
    import jax.numpy as jnp

    from causalid._x64 import float64
    from causalid.lti import pem

    rng = np.random.default_rng(3)

    @float64
    def check():
        K_, T, m, p, n = 2, 60, 2, 3, 3
        y, u = jnp.asarray(rng.normal(size=(K_, T, p))), jnp.asarray(rng.normal(size=(K_, T, m)))
        w = jnp.asarray((rng.random((K_, T, p)) > 0.1).astype(float))
        wf = jnp.asarray((rng.random((K_, T)) > 0.2).astype(float))
        s = pem.PEMStructure(n, m, p, feedthrough, noise)
        th = jnp.asarray(rng.normal(size=s.size) * 0.3)
        sm = jnp.ones(n)
        x0 = pem._initial_states(th, s, y, u, w, wf, sm)
        fun = functools.partial(pem._residuals_from, s=s, y=y, u=u, w=w, wfit=wf, x0=x0)
        J, r = jax.jacfwd(fun)(th), fun(th)
        H, g, c = pem._normal_equations(th, s, y, u, w, wf, sm)
        return (np.asarray(a) for a in (H, J.T @ J, g, J.T @ r, c, r @ r))

    H, H0, g, g0, c, c0 = check()
    np.testing.assert_allclose(H, H0, rtol=1e-12, atol=1e-12 * np.abs(H0).max())
    np.testing.assert_allclose(g, g0, rtol=1e-12, atol=1e-12 * np.abs(g0).max())
    assert c == pytest.approx(c0, rel=1e-14)
