"""Multi-environment LTI identification (Rajendran et al. 2024, arXiv 2311.18048): three benchmarks, run on demand only.

1. ``test_reference_table`` — the reference-table cells of Rajendran et al. 2024 (arXiv 2311.18048) with timings:
   n ∈ {2, 3, 5, 8, 10} (``CAUSALID_BENCH_LTI_N="2,3,5"`` restricts it), E = n + 1
   environments, 12000 steps per environment, columns (zero_means, use_B, use_C) with
   random designs plus the max-variability design, 5 seeds; causalid's ``moment`` and
   ``mle`` engines against the published reference learner's final train MCC.  Asserted:
   every seed reaches pooled MCC 0.99 and every cell's mean relative error of Ã is ≤ 2e-2.
2. ``test_measured_inputs_vs_nfoursid`` — measured inputs on real recordings (statsmodels'
   bundled US macro data and Danish money-demand data) and on a simulated noisy system:
   held-out one-step-ahead prediction error of causalid's ``mle`` against nfoursid's N4SID,
   both scored by the same Kalman predictor.
3. ``test_nuts_speed`` — NUTS (``method="bayes"``) effective samples per second on a
   2-state, 3-environment system against the published NumPyro figure.

    pytest -m benchmark -s tests/benchmarks/test_lti_identification.py
    CAUSALID_BENCH_LTI_N="2,3,5" pytest -m benchmark -s tests/benchmarks/test_lti_identification.py::test_reference_table

Timings are wall-clock seconds on whatever machine runs them (shared CPUs make them noisy);
the first fit of each shape includes JAX compilation and is reported separately.
"""

from __future__ import annotations

import os
import time
import warnings

import jax
import numpy as np
import pandas as pd
import pytest

import causalid
from causalid import LTIData, identify_lti
from causalid.dynamics.kalman import kalman_filter, make_params
from causalid.errors import ConvergenceWarning
from causalid.models import lti

KEY = jax.random.PRNGKey

# ======================================================================================
# 1. reference table
# ======================================================================================

#: Rajendran et al. 2024 (arXiv 2311.18048): final train MCC of the published reference learner (SGD on a bias-free
#: linear demixer, no log-det term), 5 seeds; columns FFF..TTT = (zero_means, use_B, use_C).
PUBLISHED_REFERENCE_LEARNER = {
    2: (.866, .767, .730, .697, .633, .675, .734, .725, .968),
    3: (.901, .910, .916, .861, .659, .618, .633, .667, 1.000),
    5: (.892, .929, .928, .911, .657, .618, .620, .539, .995),
    8: (.943, .940, .941, .867, .585, .479, .523, .414, .977),
    10: (.939, .915, .925, .924, .708, .611, .604, .525, .996),
}
#: (label, zero_means, use_B, use_C, design), in the column order of the table.  The
#: max-variability column uses means drawn N(0, I), B = C = I (as in tests/infer/test_lti.py).
COLUMNS = [("".join("T" if f else "F" for f in (z, b, c)), z, b, c, "random")
           for z in (False, True) for b in (False, True) for c in (False, True)]
COLUMNS.append(("max-var", False, False, False, "max-variability"))
SEEDS = range(5)
STEPS = 12_000
MCC_MIN, A_ERR_MAX = 0.99, 2e-2


def _bench_ns() -> list[int]:
    raw = os.environ.get("CAUSALID_BENCH_LTI_N", "")
    ns = [int(s) for s in raw.replace(" ", "").split(",") if s] or sorted(PUBLISHED_REFERENCE_LEARNER)
    unknown = [n for n in ns if n not in PUBLISHED_REFERENCE_LEARNER]
    if unknown:
        raise ValueError(f"CAUSALID_BENCH_LTI_N: no published row for n={unknown}; "
                         f"choose from {sorted(PUBLISHED_REFERENCE_LEARNER)}")
    return ns


def _reference_cell(n, seed, *, design, zero_means, use_B, use_C, steps=STEPS):
    """One cell of the reference DGP (Rajendran et al. 2024, arXiv 2311.18048): data and the truth in observed
    coordinates (Ã = C A C⁻¹, sources u_0..u_{T-2})."""
    k = jax.random.split(KEY(seed), 4)
    system = lti.random_system(k[0], n, use_B=use_B, use_C=use_C)
    des = (lti.max_variability_design(n, zero_means=zero_means, key=k[1]) if design == "max-variability"
           else lti.random_design(k[1], n + 1, n, zero_means=zero_means))
    sim = lti.simulate_lti(k[2], system, design=des, num_steps=steps)
    data = LTIData.from_arrays(sim["y"], input_mean=des.mean, input_var=des.var)
    A_tilde = system.C @ system.A @ np.linalg.inv(system.C)
    return data, A_tilde, sim["u"][:, :, :-1]


def test_reference_table():
    ns = _bench_ns()
    methods = ("moment", "mle")
    print(f"\nReference-table cells (Rajendran et al. 2024): E = n+1, {STEPS} steps/env, {len(SEEDS)} seeds, no noise; "
          f"n = {ns}.  MCC = pooled causalid.mcc(u[:, :, :-1], sources), mean over seeds; "
          f"errA = relative Frobenius error of Ã (mean / max over seeds); s/fit = median wall "
          f"seconds of identify_lti over the seeds; ref = published reference learner (final "
          f"train MCC); ratio = causalid mle MCC / ref.")
    header = (f"{'n':>3} {'cell':>7} | {'MCC mom':>8} {'MCC mle':>8} {'min mle':>8} | {'errA mom':>9} "
              f"{'errA mle':>9} {'max mle':>9} | {'s/fit mom':>9} {'s/fit mle':>9} | {'ref':>6} {'ratio':>6}")
    failures, rows, seeds_over = [], [], []
    t_all = time.perf_counter()
    for n in ns:
        print(header)
        cold = {}
        for j, (label, zero_means, use_B, use_C, design) in enumerate(COLUMNS):
            res = {m: {"mcc": [], "err": [], "sec": []} for m in methods}
            for seed in SEEDS:
                data, A_true, u_true = _reference_cell(n, seed, design=design, zero_means=zero_means,
                                                       use_B=use_B, use_C=use_C)
                for m in methods:
                    t0 = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ConvergenceWarning)
                        fit = identify_lti(data, method=m)
                    sec = time.perf_counter() - t0
                    cold.setdefault(m, sec)             # first fit of this n: includes compilation
                    mcc = causalid.mcc(u_true, fit.sources)
                    err = causalid.relative_error(A_true, fit.A)
                    res[m]["mcc"].append(mcc)
                    res[m]["err"].append(err)
                    res[m]["sec"].append(sec)
                    if mcc < MCC_MIN:
                        failures.append(f"n={n} {label} seed={seed} {m}: MCC {mcc:.4f} < {MCC_MIN}")
                    if err > A_ERR_MAX:
                        seeds_over.append(f"n={n} {label} seed={seed} {m}: errA {err:.4f}")
            ref = PUBLISHED_REFERENCE_LEARNER[n][j]
            mo, ml = res["moment"], res["mle"]
            mcc_mle = float(np.mean(ml["mcc"]))
            for m in methods:
                if np.mean(res[m]["err"]) > A_ERR_MAX:
                    failures.append(f"n={n} {label} {m}: mean errA {np.mean(res[m]['err']):.4f} > {A_ERR_MAX}")
            rows.append((n, label, mcc_mle, ref))
            print(f"{n:>3} {label:>7} | {np.mean(mo['mcc']):>8.4f} {mcc_mle:>8.4f} {np.min(ml['mcc']):>8.4f} | "
                  f"{np.mean(mo['err']):>9.2e} {np.mean(ml['err']):>9.2e} {np.max(ml['err']):>9.2e} | "
                  f"{np.median(mo['sec']):>9.3f} {np.median(ml['sec']):>9.3f} | {ref:>6.3f} {mcc_mle / ref:>6.2f}")
        print(f"    n={n}: first (cold, incl. JIT compilation) fit: moment {cold['moment']:.2f} s, "
              f"mle {cold['mle']:.2f} s")
    ratios = np.array([r[2] / r[3] for r in rows])
    print(f"causalid mle MCC / published reference learner: min x{ratios.min():.2f}, "
          f"median x{np.median(ratios):.2f}, max x{ratios.max():.2f} over {len(rows)} cells; "
          f"total {time.perf_counter() - t_all:.0f} s")
    # A cell is (n, column), summarised over its 5 seeds as in the published table: every seed
    # must reach MCC 0.99, and the cell's mean relative error of Ã must be at most 2e-2.  Single
    # seeds above 2e-2 are listed: with an ill-conditioned C (Ã = C A C⁻¹ large) 12000 steps
    # do not always reach it, and the mle error then matches its own standard errors.
    if seeds_over:
        print("single seeds above relative error 2e-2 (not asserted):\n  " + "\n  ".join(seeds_over))
    assert not failures, "cells below MCC 0.99 or above mean relative error 2e-2:\n" + "\n".join(failures)


# ======================================================================================
# 2. measured inputs: causalid mle vs nfoursid N4SID, held-out one-step prediction
# ======================================================================================

ORDERS = (1, 2, 3, 4)
TRAIN_FRACTION = 0.8


def _standardise(y, u, cut):
    """Standardise with training-segment statistics only."""
    return ((y - y[:cut].mean(0)) / y[:cut].std(0), (u - u[:cut].mean(0)) / u[:cut].std(0))


def _macrodata():
    """US quarterly macro data 1959Q1–2009Q3 (statsmodels, bundled).

    Inputs: Δ 3-month T-bill rate (pp), real federal government spending growth
    (100 Δlog).  Outputs: real GDP growth (100 Δlog), CPI inflation (annualised, as
    given), Δ unemployment rate (pp).  202 quarters after differencing."""
    import statsmodels.api as sm

    d = sm.datasets.macrodata.load_pandas().data
    u = np.column_stack([np.diff(d["tbilrate"]), 100 * np.diff(np.log(d["realgovt"]))])
    y = np.column_stack([100 * np.diff(np.log(d["realgdp"])), d["infl"].to_numpy()[1:], np.diff(d["unemp"])])
    return y, u, ("gdp_growth", "inflation", "d_unemp"), ("d_tbill", "govt_growth")


def _danish_data():
    """Danish money demand 1974Q1–1987Q3 (statsmodels, bundled; Johansen & Juselius).

    Inputs: Δ bond rate, Δ deposit rate.  Outputs: Δ log real money, Δ log real income,
    Δ log prices.  54 quarters after differencing."""
    import statsmodels.api as sm

    d = sm.datasets.danish_data.load_pandas().data
    u = np.diff(d[["ibo", "ide"]].to_numpy(), axis=0)
    y = np.diff(d[["lrm", "lry", "lpy"]].to_numpy(), axis=0)
    return y, u, ("d_lrm", "d_lry", "d_lpy"), ("d_ibo", "d_ide")


def _simulated():
    """3 states, 2 white-noise inputs, 2 outputs, process- and observation-noise variance 0.1
    (covariances 0.1 I), 2000 steps; returns the truth too (its predictor is the floor)."""
    system = lti.random_system(KEY(3), 3, m=2, p=2)
    T, q, r = 2000, 0.1, 0.1
    u = np.asarray(jax.random.normal(KEY(4), (1, 1, T, 2)))
    sim = lti.simulate_lti(KEY(5), system, inputs=u, num_steps=T, process_noise_var=q, obs_noise_var=r)
    truth = dict(A=system.A, B=system.B, C=system.C, D=np.zeros((2, 2)), Q=q * np.eye(3), R=r * np.eye(2),
                 S=np.zeros((3, 2)))
    return sim["y"][0, 0], u[0, 0], ("y0", "y1"), ("u0", "u1"), truth


def kalman_predict(A, B, C, D, Q, R, S, y, u):
    """One-step-ahead predictions ŷ_t = E[y_t | y_{0:t-1}, u_{0:t}] of
    x_{t+1} = A x_t + B u_t + w_t, y_t = C x_t + D u_t + v_t, Cov[w; v] = [[Q, S], [Sᵀ, R]].

    Correlated noise (S ≠ 0, as in N4SID's innovation-form estimate) is handled exactly by
    decorrelating: w_t = G v_t + w'_t with G = S R⁻¹, so x_{t+1} = (A − G C) x_t + (B − G D) u_t
    + G y_t + w'_t with Cov w' = Q − G Sᵀ; y_t enters as an extra input.  The filter is
    causalid's :func:`~causalid.dynamics.kalman.kalman_filter`, started at x_0 ~ N(0, I)
    (nfoursid's own convention) and run over the whole record, train and held-out.
    """
    n, p = A.shape[0], C.shape[0]
    G = S @ np.linalg.inv(R)
    Qd = Q - G @ S.T
    Qd = (Qd + Qd.T) / 2 + 1e-10 * np.eye(n)
    params = make_params(A - G @ C, C, Qd, R, B=np.hstack([B - G @ D, G]), D=np.hstack([D, np.zeros((p, p))]),
                         m0=np.zeros(n), P0=np.eye(n))
    f = kalman_filter(params, y, np.hstack([u, y]), method="sequential")
    return np.asarray(f.predicted_means) @ C.T + u @ D.T


def _nfoursid_fit(y, u, k, block_rows):
    from nfoursid.nfoursid import NFourSID

    p, m = y.shape[1], u.shape[1]
    cols = [f"y{i}" for i in range(p)] + [f"u{i}" for i in range(m)]
    frame = pd.DataFrame(np.hstack([y, u]), columns=cols)
    nf = NFourSID(frame, output_columns=cols[:p], input_columns=cols[p:], num_block_rows=block_rows)
    nf.subspace_identification()
    ss, cov = nf.system_identification(rank=k)
    # cov is Cov[v; w] = [[R, Sᵀ], [S, Q]] of the output and state residuals (nfoursid.kalman's layout)
    return dict(A=ss.a, B=ss.b, C=ss.c, D=ss.d, R=cov[:p, :p], S=cov[p:, :p], Q=cov[p:, p:]), nf


def _max_block_rows(T, m, p):
    """Largest block-row count b whose stacked Hankel [U_f; U_p; Y_p; Y_f] (2b(m+p) rows,
    T − 2b + 1 columns) has at least as many columns as rows (otherwise its QR is degenerate)."""
    return (T + 1) // (2 * (m + p) + 2)


def _block_rows(k, T, m, p):
    """nfoursid's block rows: max(2k, 5) — the horizon causalid's own N4SID start uses — capped by
    :func:`_max_block_rows` for short records."""
    return max(min(max(2 * k, 5), _max_block_rows(T, m, p)), -(-k // p))


def _check_predictor_against_nfoursid(model, y, u):
    """Our decorrelated predictor must reproduce nfoursid's own (correlated-noise) Kalman filter."""
    from nfoursid.kalman import Kalman
    from nfoursid.state_space import StateSpace

    cov = np.block([[model["R"], model["S"].T], [model["S"], model["Q"]]])
    kf = Kalman(StateSpace(model["A"], model["B"], model["C"], model["D"]), cov)
    steps = min(60, len(y))
    for t in range(steps):
        kf.step(y[t][:, None], u[t][:, None])
    theirs = np.hstack(kf.y_predicteds).T[:-1]                 # C x_{t+1|t}, t = 0..steps-2
    ours = kalman_predict(**model, y=y[:steps], u=u[:steps]) - u[:steps] @ model["D"].T
    np.testing.assert_allclose(ours[1:], theirs, rtol=1e-6, atol=1e-8)


def _compare(name, y, u, outputs, inputs, truth=None):
    """Held-out comparison at orders k = 1..4.  Real recordings are standardised with training
    statistics; the simulated record (zero-mean, unit-scale inputs) is left in its own units so
    that the true system's predictor applies unchanged."""
    T = len(y)
    cut = int(round(TRAIN_FRACTION * T))
    if truth is None:
        y, u = _standardise(y, u, cut)
    p, m = y.shape[1], u.shape[1]
    held = slice(cut, None)
    train = LTIData.from_arrays(y[None, :cut], inputs=u[None, :cut], output_names=outputs, input_names=inputs)

    def sq_err(pred):
        return ((pred[held] - y[held]) ** 2).mean(1)              # per held-out step, mean over outputs

    print(f"\n[{name}] {T} steps ({cut} train / {T - cut} held out), outputs {outputs}, inputs {inputs}; "
          f"{'raw units' if truth is not None else 'standardised with training statistics'}; "
          f"feedthrough D estimated by both; held-out MSE "
          f"(mean over outputs) of one-step predictions E[y_t | y_<t, u_<=t]; nfoursid block rows "
          f"min(max(2k, 5), {_max_block_rows(cut, m, p)}) (the cap keeps its Hankel QR well posed)")
    floor = None
    if truth is not None:
        floor_err = sq_err(kalman_predict(**truth, y=y, u=u))
        floor = float(floor_err.mean())
    zero = float((y[held] ** 2).mean())
    print(f"  reference MSEs: predict zero{' (= the training mean)' if truth is None else ''} {zero:.4f}"
          + (f"; true system's own predictor (floor) {floor:.4f}" if floor is not None else ""))
    print(f"  {'k':>2} | {'causalid':>9} {'BIC':>9} {'conv':>5} {'s/fit':>7} | {'nfoursid':>9} {'rows':>4} "
          f"{'S!=0':>5} {'s/fit':>6} | {'ratio n4/c':>10} | {'n4 oracle':>9}")
    table = {}
    for k in ORDERS:
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            fit = identify_lti(train, method="mle", state_dim=k, feedthrough=True)
        t_c = time.perf_counter() - t0
        conv = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        err_c = sq_err(kalman_predict(fit.A, fit.B, fit.C, fit.D, fit.Q, fit.R, np.zeros((k, p)), y, u))
        rows = _block_rows(k, cut, m, p)
        t0 = time.perf_counter()
        model, _ = _nfoursid_fit(y[:cut], u[:cut], k, rows)
        t_n = time.perf_counter() - t0
        if k == ORDERS[0]:
            _check_predictor_against_nfoursid(model, y, u)
        err_n = sq_err(kalman_predict(**model, y=y, u=u))
        s_rel = np.linalg.norm(model["S"]) / np.sqrt(np.linalg.norm(model["Q"]) * np.linalg.norm(model["R"]))
        # for information only: nfoursid's best block-row count chosen on the held-out data
        oracle = []
        for b in (2, 3, 4, 6, 8, 10):
            if b * p < k or b > _max_block_rows(cut, m, p):
                continue
            try:
                oracle.append(float(sq_err(kalman_predict(**_nfoursid_fit(y[:cut], u[:cut], k, b)[0], y=y, u=u)).mean()))
            except (np.linalg.LinAlgError, ValueError):
                pass
        table[k] = dict(c=err_c, n=err_n, bic=fit.bic)
        mc, mn = float(err_c.mean()), float(err_n.mean())
        print(f"  {k:>2} | {mc:>9.4f} {fit.bic:>9.1f} {'yes' if conv else 'NO':>5} {t_c:>7.1f} | {mn:>9.4f} {rows:>4} "
              f"{s_rel:>5.2f} {t_n:>6.2f} | {mn / mc:>10.3f} | {min(oracle) if oracle else float('nan'):>9.4f}")
    k_star = min(table, key=lambda k: table[k]["bic"])
    d = table[k_star]["n"] - table[k_star]["c"]                     # paired per-step differences
    se = float(d.std(ddof=1) / np.sqrt(len(d)))
    mc, mn = float(table[k_star]["c"].mean()), float(table[k_star]["n"].mean())
    print(f"  rule: k chosen by causalid's BIC on the training segment: k* = {k_star}; at k*: causalid {mc:.4f}, "
          f"nfoursid {mn:.4f} (ratio nfoursid/causalid {mn / mc:.3f}; paired difference {mn - mc:+.4f} "
          f"± {se:.4f} s.e.)" + (f"; floor {floor:.4f} (causalid x{mc / floor:.3f})" if floor is not None else ""))
    return dict(k=k_star, causalid=mc, nfoursid=mn, se=se, floor=floor)


def test_measured_inputs_vs_nfoursid():
    pytest.importorskip("nfoursid", reason="benchmarks need nfoursid: pip install '.[bench]'")
    pytest.importorskip("statsmodels", reason="benchmarks need statsmodels: pip install '.[bench]'")
    print("\nnfoursid S!=0: ‖S‖/sqrt(‖Q‖‖R‖) of its noise covariance Cov[w; v] (innovation form: w = K e, "
          "v = e, so S = K R ≠ 0); both models are scored by the same exact correlated-noise Kalman "
          "predictor (checked against nfoursid.kalman.Kalman).  'n4 oracle': nfoursid's best over block "
          "rows {2,3,4,6,8,10} chosen on the held-out data (information only, not asserted).")
    results = {}
    for name, loader in (("US macro (statsmodels macrodata)", _macrodata),
                         ("Danish money demand (statsmodels danish_data)", _danish_data)):
        y, u, outs, ins = loader()
        results[name] = _compare(name, y, u, outs, ins)
    y, u, outs, ins, truth = _simulated()
    sim = _compare("simulated: n=3, m=2, p=2, q=r=0.1", y, u, outs, ins, truth=truth)
    for name, r in results.items():
        assert r["causalid"] <= r["nfoursid"], (name, r)
    # Simulated: both sit near the floor, where their difference is sampling noise; causalid
    # must be within 5% of the floor and not worse than nfoursid by more than 2 paired s.e.
    assert sim["causalid"] <= 1.05 * sim["floor"], sim
    assert sim["causalid"] <= sim["nfoursid"] + 2 * sim["se"], sim


# ======================================================================================
# 3. NUTS speed
# ======================================================================================

PUBLISHED_NUMPYRO_ESS_PER_S = 77.0


def _nuts_case(T, num_samples=1000, seed=0):
    system = lti.random_system(KEY(seed), 2, use_C=False)               # C = I: full state observed
    des = lti.random_design(KEY(seed + 1), 3, 2)
    sim = lti.simulate_lti(KEY(seed + 2), system, design=des, num_steps=T)
    data = LTIData.from_arrays(sim["y"], input_mean=des.mean, input_var=des.var)
    t0 = time.perf_counter()
    fit = identify_lti(data, method="bayes", num_warmup=500, num_samples=num_samples)
    total = time.perf_counter() - t0
    return fit, total, causalid.relative_error(system.A, fit.A)


def test_nuts_speed():
    print(f"\nNUTS: 2 states, C = I, B random, E = 3 environments with random designed input laws, T steps "
          f"per environment (T = 200: 3 x 200 = 600 steps in all), num_warmup=500, num_samples=1000, one chain; "
          f"ESS = min over the entries of Ã, B̃ (arviz); published NumPyro figure "
          f"{PUBLISHED_NUMPYRO_ESS_PER_S:.0f} ESS/s.")
    print(f"{'T/env':>6} {'ESS min':>8} {'s warmup':>9} {'s sample':>9} {'ESS/s sample':>13} {'ESS/s engine':>13} "
          f"{'ESS/s call':>11} {'x published':>12} {'errA':>8} {'div':>4}")
    out = {}
    for T in (200, 600):
        fit, total, err = _nuts_case(T)
        i = fit.info
        out[T] = (fit, total)
        print(f"{T:>6} {i['ess_min']:>8.0f} {i['seconds_warmup']:>9.2f} {i['seconds_sampling']:>9.2f} "
              f"{i['ess_per_second_sampling']:>13.1f} {i['ess_per_second']:>13.1f} {i['ess_min'] / total:>11.1f} "
              f"{i['ess_per_second_sampling'] / PUBLISHED_NUMPYRO_ESS_PER_S:>12.2f} {err:>8.4f} {i['divergences']:>4}")
    # 'sample' seconds include compiling the sampling loop (a new MCMC object per call); its
    # steady-state cost is the marginal time per draw between 1000 and 3000 draws.
    fit3, _, _ = _nuts_case(200, num_samples=3000)
    marginal = (fit3.info["seconds_sampling"] - out[200][0].info["seconds_sampling"]) / 2000
    ess_per_draw = out[200][0].info["ess_min"] / 1000
    print(f"ESS/s sample = ess_min / seconds of mcmc.run (includes its compilation); ESS/s engine = ess_min / "
          f"(warmup + sampling, incl. compilation); ESS/s call = ess_min / whole identify_lti call.  "
          f"Steady state (T=200): marginal {1e3 * marginal:.2f} ms per draw from a 3000-draw run -> about "
          f"{ess_per_draw / max(marginal, 1e-9):.0f} ESS/s once compiled.")
    assert out[200][0].info["ess_per_second_sampling"] >= PUBLISHED_NUMPYRO_ESS_PER_S
