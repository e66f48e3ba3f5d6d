"""The mechanism-change test on simulations with a known answer (issue target: the right verdict
in >= 90% of simulations for each truth, and a false-positive rate <= alpha under "neither").

20 environments x 5 sequences of 50 steps, 2-state Gaussian HMMs from
:func:`causalid.models.hmm.random_hmm_params` (``env_spread=0.5``: transition logits, means in
standard deviations), :func:`causalid.compare_mechanisms` at alpha = 0.05 (Holm over the two
tests) with its default parametric-bootstrap null (99 replicates; ``CAUSALID_BENCH_NULL=chi2``
for Wilks' chi-square, which is fast but anti-conservative at this size: false-positive rate
0.075 +- 0.042 under "neither" over 40 simulations).  Each simulation's seed is its index, so
the run is deterministic.  The proportions are printed with their binomial standard errors.

    pytest -m benchmark -s tests/benchmarks/test_hmm_mechanisms.py
    CAUSALID_BENCH_SIMS=100 CAUSALID_BENCH_NULL=chi2 pytest -m benchmark -s tests/benchmarks/test_hmm_mechanisms.py
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
import pytest
from causalid.models.hmm import HMMConfig, random_hmm_params, simulate_hmm

from causalid.hmm.compare import compare_mechanisms

SIMS = int(os.environ.get("CAUSALID_BENCH_SIMS", "25"))
NULL = os.environ.get("CAUSALID_BENCH_NULL", "bootstrap")
ALPHA = 0.05
VARY = {"neither": (), "transitions": ("transitions",), "emissions": ("emissions",),
        "both": ("transitions", "emissions")}


def _simulate(truth: str, seed: int):
    config = HMMConfig(2, "gaussian", 1, 20, VARY[truth])
    params = random_hmm_params(10_000 + seed, config, env_spread=0.5)
    return simulate_hmm(20_000 + seed, config, params, num_sequences=5, num_steps=50)["y"]


@pytest.mark.parametrize("truth", list(VARY))
def test_mechanism_change_verdicts(truth):
    verdicts, t0 = [], time.perf_counter()
    for s in range(SIMS):
        y = _simulate(truth, s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # restart-disagreement warnings on weakly separated draws
            report = compare_mechanisms(y, 2, null=NULL, num_bootstrap=99, alpha=ALPHA, num_restarts=3,
                                        key=s, progress=False)
        verdicts.append(report.verdict)
    dt = time.perf_counter() - t0
    correct = np.mean([v == truth for v in verdicts])
    se = np.sqrt(max(correct * (1 - correct), 1e-12) / SIMS)
    counts = {v: verdicts.count(v) for v in VARY}
    print(f"\nnull {NULL}: truth {truth:12s} correct {correct:.3f} +- {se:.3f} over {SIMS} simulations "
          f"({dt / SIMS:.1f} s each; load {os.getloadavg()[0]:.1f}); verdicts {counts}")
    if truth == "neither":
        print(f"false-positive rate {1 - correct:.3f} (target <= {ALPHA})")
        assert 1 - correct <= ALPHA
    assert correct >= 0.9
