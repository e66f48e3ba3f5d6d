"""Simulation-based calibration of the LTI Bayesian engine (NUTS with the Kalman likelihood).

Power of the engine tests (why the replicate counts below give robust verdicts)
-------------------------------------------------------------------------------
Correct cases: under a calibrated engine the family-wise false-failure rate of
``SBCResult.test`` is ``alpha = 0.01`` per run by construction (chi-square per parameter, Holm
over the parameters), whatever ``R`` is; the seeds used are not special (the p-values measured
on five seeds are listed next to each test).

Misspecified cases: the chi-square statistic of a parameter is about ``R * D + df``, with
``D = sum_b (q_b - p_b)^2 / p_b`` the chi-square divergence of its rank histogram ``q`` from
uniform ``p``, so its non-centrality is ``R * D``.  Measured on three seeds, the most affected
parameter has ``D = 2.8 - 4.3`` (NIG, sigma2) and ``D = 2.6 - 3.6`` (LTI, B).  With ``R = 80``
and 8 bins, ``D = 0.5`` (five times less than seen) already gives non-centrality 40 and a power
of 0.99 at the Holm threshold ``0.01 / 2``; at the measured ``D`` the power is 1 - 1e-12 or
more, and the p-values measured on five seeds are below 1e-35.
"""

from __future__ import annotations

import numpy as np
import pytest

import causalid  # noqa: F401
from causalid.errors import DataError
from causalid.lti import sbc


# ------------------------------------------------------------------ LTI (identify_lti, bayes)
# Small enough for the default suite: n = m = 1, two environments, T = 10, noise-free (the
# engine's default), NUTS with the Kalman likelihood; R = 80 replicates of 40 draws (thin 2).
# Measured (global Holm p-value): correct 1.00, 0.44, 1.00, 0.40, 0.44 on seeds 0-4;
# misspecified (observation noise of variance 0.5 that the engine does not model) p < 1e-35 on
# the same seeds.
def _lti(**kw):
    return sbc.lti_problem(num_envs=2, num_steps=10, num_warmup=100, max_tree_depth=6, **kw)


def test_lti_sbc_passes_when_correct_and_fails_when_misspecified():
    correct, wrong = _lti(), _lti(simulation_obs_noise=0.5)
    assert wrong.posterior_draws is correct.posterior_draws  # one compiled sampler
    assert wrong.prior_sample is correct.prior_sample
    good = correct.run(80, key=0, num_draws=40, thin=2)
    bad = wrong.run(80, key=0, num_draws=40, thin=2)
    assert good.parameters == ["A[0,0]", "B[0,0]"]
    assert set(good.diagnostics) == {"divergences", "accept_prob", "max_depth_hits"}
    assert (good.frame["divergences"] == 0).mean() > 0.9
    assert good.test().passed
    verdict = bad.test()
    assert not verdict.passed and verdict.p_value < 1e-10


def test_lti_problem_checks_its_input():
    with pytest.raises(DataError, match="input_var"):
        sbc.lti_problem(num_envs=3, input_var=np.ones((2, 1)))
    with pytest.raises(DataError, match="obs_noise"):
        sbc.lti_problem(obs_noise="sometimes")
    with pytest.raises(DataError, match="degenerate"):
        sbc.lti_problem(state_dim=2, input_dim=1)


@pytest.mark.slow
def test_lti_sbc_full_size():
    # n = m = 2 with random B (sign-canonical columns), three environments, T = 20, noise-free
    # (identify_lti's default), R = 100.  Measured on seed 1: correct p = 0.86, misspecified
    # (observation noise of variance 0.5 in the data only) p = 4e-24; about 10 minutes on a
    # busy 2-core machine.
    kw = {
        "num_envs": 3,
        "num_steps": 20,
        "state_dim": 2,
        "input_dim": 2,
        "num_warmup": 200,
        "max_tree_depth": 6,
    }
    good = sbc.lti_problem(**kw).run(100, key=1, num_draws=50, thin=2)
    assert good.parameters == [
        "A[0,0]",
        "A[0,1]",
        "A[1,0]",
        "A[1,1]",
        "B[0,0]",
        "B[0,1]",
        "B[1,0]",
        "B[1,1]",
    ]
    assert good.test().passed
    bad = sbc.lti_problem(**kw, simulation_obs_noise=0.5).run(100, key=1, num_draws=50, thin=2)
    assert not bad.test().passed
