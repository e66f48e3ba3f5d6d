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
