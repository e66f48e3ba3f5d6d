"""Does the default HMM fit find the optimum?  Earthquake counts and 25 simulated HMMs.

For every case, the reference optimum is the best log-likelihood of a 200-start fit; the
default ``fit_hmm`` must reach it (within 1e-3 nats per 100 observations) for each of 10 keys,
or warn (ConvergenceWarning / DegenerateFitWarning).  hmmlearn, from its own single default
start per seed, is measured in the same run (measured: 270/270 reached, 3 warnings, 0.13 s per fit;
hmmlearn 160/270, 0.33 s per fit).  The true-count selection rate of
``select_num_states`` (BIC) on the simulated cases is printed (measured: 10 of 13 well-separated
and 0 of 12 poorly separated cases, every miss one state too few or more; never too many).

    pytest -m benchmark -s tests/benchmarks/test_hmm_starts.py
    CAUSALID_BENCH_CASES=5 CAUSALID_BENCH_KEYS=3 pytest -m benchmark -s tests/benchmarks/test_hmm_starts.py
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
import pytest
from causalid.models.hmm import HMMConfig, random_hmm_params, simulate_hmm

import causalid
from causalid.datasets import load_earthquakes
from causalid.errors import ConvergenceWarning

KEYS = int(os.environ.get("CAUSALID_BENCH_KEYS", 10))
NUM_CASES = int(os.environ.get("CAUSALID_BENCH_CASES", 27))
# other simulated cases and keys than those the defaults were developed on: e.g.
# CAUSALID_BENCH_SEEDS=500,700 CAUSALID_BENCH_KEY0=10 (measured: 248/270 reached, 4 of the 22
# misses warned)
PARAM_SEED, SIM_SEED = (int(v) for v in os.environ.get("CAUSALID_BENCH_SEEDS", "100,200").split(","))
KEY0 = int(os.environ.get("CAUSALID_BENCH_KEY0", 0))


def _cases():
    y = load_earthquakes()["count"].to_numpy().astype(float)
    cases = [("earthquakes K=2", y, 2, "poisson", None), ("earthquakes K=3", y, 3, "poisson", None)]
    specs = []
    for emission in ("gaussian", "poisson", "categorical"):
        for K in (2, 3):
            for sep in (3.0, 1.0):  # well and poorly separated
                specs.append((emission, K, sep))
    specs = (specs * 3)[:25]
    for i, (emission, K, sep) in enumerate(specs):
        C = 4 if emission == "categorical" else None
        config = HMMConfig(K, emission, 1, 1, num_categories=C)
        params = random_hmm_params(PARAM_SEED + i, config, separation=sep if emission != "categorical" else sep / 1.5)
        sim = simulate_hmm(SIM_SEED + i, config, params, num_sequences=1, num_steps=300)
        cases.append((f"{emission} K={K} sep={sep} #{i}", sim["y"][0, 0], K, emission, C))
    return cases[:NUM_CASES]


def _hmmlearn_fit(y, K, emission, seed, C):
    from hmmlearn import hmm

    X = y.reshape(-1, 1)
    model = {"gaussian": lambda: hmm.GaussianHMM(K, n_iter=500, tol=1e-6, random_state=seed),
             "poisson": lambda: hmm.PoissonHMM(K, n_iter=500, tol=1e-6, random_state=seed),
             "categorical": lambda: hmm.CategoricalHMM(K, n_iter=500, tol=1e-6, random_state=seed,
                                                       n_features=C)}[emission]()
    X = X.astype(int) if emission != "gaussian" else X
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
        return model.score(X)


def test_default_fit_reaches_the_200_start_optimum_or_warns():
    pytest.importorskip("hmmlearn")
    rows, failures = [], []
    t_ours = t_peer = 0.0
    for name, y, K, emission, C in _cases():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = causalid.fit_hmm(y, K, emission, num_restarts=200, num_refine=20, num_categories=C,
                                   progress=False).log_likelihood
        tol = 1e-3 * max(1.0, len(y) / 100)
        ok = warned = peer_ok = 0
        for key in range(KEY0, KEY0 + KEYS):
            t = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fit = causalid.fit_hmm(y, K, emission, key=key, num_categories=C, progress=False)
            t_ours += time.perf_counter() - t
            reached = fit.log_likelihood >= ref - tol
            warn = any(issubclass(w.category, (ConvergenceWarning, causalid.DegenerateFitWarning)) for w in caught)
            ok += reached
            warned += (not reached) and warn
            if not reached and not warn:
                failures.append((name, key, fit.log_likelihood, ref))
            t = time.perf_counter()
            peer_ok += _hmmlearn_fit(y, K, emission, key, C) >= ref - tol
            t_peer += time.perf_counter() - t
        rows.append((name, ref, ok, warned, peer_ok))
    print(f"\n{'case':32s} {'best (200 starts)':>18s} {'causalid reached':>17s} {'warned':>7s} {'hmmlearn reached':>17s}")
    for name, ref, ok, warned, peer_ok in rows:
        print(f"{name:32s} {ref:18.4f} {ok:>12d}/{KEYS:<4d} {warned:>7d} {peer_ok:>12d}/{KEYS:<4d}")
    total = len(rows) * KEYS
    print(f"causalid default fit: reached {sum(r[2] for r in rows)}/{total}, warned {sum(r[3] for r in rows)}, "
          f"{t_ours / total:.2f} s per fit; hmmlearn single start: reached {sum(r[4] for r in rows)}/{total}, "
          f"{t_peer / total:.2f} s per fit (shared machine)")
    assert not failures, failures


def test_true_state_count_selection_rate():
    cases = [c for c in _cases() if not c[0].startswith("earthquakes")]
    hits, over = {"well": [], "poorly": []}, []
    for name, y, K, emission, C in cases:
        with warnings.catch_warnings():  # restarts of the larger models disagree: that is expected here
            warnings.simplefilter("ignore")
            sel = causalid.select_num_states(y, range(1, K + 3), emission, num_categories=C, progress=False)
        hits["well" if "sep=3.0" in name else "poorly"].append(sel.recommended == K)
        over.append(sel.recommended > K)
        print(f"{name:32s} true {K}  picked {sel.recommended}")
    for sep, h in hits.items():
        print(f"{sep} separated: true count picked in {sum(h)}/{len(h)} (BIC, degenerate fits refused)")
    # BIC may take too few states for overlapping ones at 300 steps, but never too many, and finds
    # well-separated ones
    assert not any(over)
    assert sum(hits["well"]) >= 0.7 * len(hits["well"])
