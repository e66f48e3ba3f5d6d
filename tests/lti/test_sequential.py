"""Sequential design of the next environment."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from causalid.models import lti

import causalid
from causalid import InputDesign, LTIData, design_next, identify_lti
from causalid.design import NextDesign
from causalid.errors import DataError

STEPS = 300
FAST = {"num_starts": 4, "num_iters": 60, "num_samples": 8}


@pytest.fixture(scope="module")
def data():
    # n = m = 3, 4 environments of 300 steps: the shapes of examples/design_experiment.py --quick
    system = lti.random_system(jax.random.PRNGKey(0), 3)
    law = InputDesign(np.zeros((4, 3)), np.array([[0.05, 0.5, 0.02], [0.6, 0.04, 0.1], [0.3, 0.3, 0.9],
                                                  [0.02, 0.1, 0.3]]))
    sim = lti.simulate_lti(jax.random.PRNGKey(1), system, design=law, num_steps=STEPS)
    return LTIData.from_arrays(sim["y"], input_mean=law.mean, input_var=law.var)


@pytest.fixture(scope="module")
def proposal(data):
    return design_next(data, var_bounds=(1e-2, 1.0), steps=STEPS - 1, key=0, **FAST)


def test_proposal_is_feasible_and_informative(proposal, data):
    assert isinstance(proposal, NextDesign)
    assert proposal.var.shape == (3,) and np.all((proposal.var >= 1e-2) & (proposal.var <= 1.0))
    assert np.all(proposal.mean == 0)
    assert proposal.eig > 0
    t = proposal.table
    assert list(t.columns) == ["parameter", "estimate", "sd_now", "sd_next", "shrinkage"]
    assert len(t) == 9 + 9 and t["parameter"].iloc[0] == "A[0,0]" and t["parameter"].iloc[-1] == "B[2,2]"
    # adding information can only shrink each marginal posterior sd (Σ_next = (Σ⁻¹ + F)⁻¹ ≤ Σ)
    assert np.all(t["sd_next"] <= t["sd_now"] * (1 + 1e-12)) and np.all(t["shrinkage"] >= -1e-12)
    assert proposal.report.context["num_envs"] == data.num_envs + 1
    aug = proposal.to_input_design()
    assert aug.var.shape == (5, 3)
    assert "Next environment" in proposal.summary()


def test_proposal_beats_every_random_candidate_by_its_own_estimate(proposal, data):
    # the optimiser's proposal has an EIG at least that of 16 random laws from the same box
    rng = np.random.default_rng(0)
    cands = np.exp(rng.uniform(np.log(1e-2), 0.0, (16, 3)))
    scored = design_next(data, candidates=cands, steps=STEPS - 1, key=0, **FAST)
    assert scored.candidates["eig"].is_monotonic_decreasing
    np.testing.assert_allclose(scored.var, cands[int(scored.candidates["candidate"].iloc[0])])
    assert proposal.eig >= scored.eig * (1 - 1e-6)


def test_result_needs_its_data_unless_it_has_a_posterior(data, proposal):
    fit = identify_lti(data, method="moment")
    with pytest.raises(DataError, match="pass data="):
        design_next(fit)
    again = design_next(fit, data=data, var_bounds=(1e-2, 1.0), steps=STEPS - 1, key=0, **FAST)
    np.testing.assert_allclose(again.var, proposal.var)            # same estimate, same posterior
    with pytest.raises(DataError, match="give the data once"):
        design_next(data, data=data)


def test_refuses_measured_inputs_and_other_objects():
    y = np.random.default_rng(0).normal(size=(1, 50, 3))
    u = np.random.default_rng(1).normal(size=(1, 50, 3))
    with pytest.raises(DataError, match="choose_signal"):
        design_next(LTIData.from_arrays(y, inputs=u))
    with pytest.raises(DataError, match="LTIData or an LTIResult"):
        design_next(np.zeros((3, 2)))


def test_bad_candidates_are_refused(data):
    with pytest.raises(DataError, match="input"):
        design_next(data, candidates=np.ones((4, 2)))
    with pytest.raises(DataError, match="> 0"):
        design_next(data, candidates=np.array([[1.0, -1.0, 1.0]]))


def test_save_and_load(proposal, tmp_path):
    path = tmp_path / "next.json"
    proposal.save(path)
    back = NextDesign.load(path)
    np.testing.assert_array_equal(back.var, proposal.var)
    assert back.eig == proposal.eig
    assert back.table.equals(proposal.table)
    assert causalid.design_next is design_next
    import json

    doc = json.loads(path.read_text())
    (tmp_path / "other.json").write_text(json.dumps({**doc, "format": "other"}))
    with pytest.raises(DataError, match=r"is not a causalid.NextDesign/1 file"):
        NextDesign.load(tmp_path / "other.json")
    del doc["eig"]
    (tmp_path / "cut.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"lacks field\(s\) \['eig'\]"):
        NextDesign.load(tmp_path / "cut.json")


@pytest.mark.slow
def test_posterior_draws_of_a_bayes_fit(data):
    # the NUTS draws are the posterior: no data needed; the eig design of E environments can use them too
    fit = identify_lti(data, method="bayes", num_warmup=150, num_samples=200, key=0)
    nxt = design_next(fit, var_bounds=(1e-2, 1.0), steps=STEPS - 1, key=0, **FAST)
    assert nxt.info["posterior"] == "posterior" and nxt.eig > 0
    # θ = (vec Ã, vec B̃) with vec stacking columns; np.cov uses ddof = 1
    draws = {k: np.asarray(fit.posterior.posterior[k].values).reshape(-1, 3, 3) for k in ("A", "B")}
    sd_post = np.concatenate([np.swapaxes(draws[k], 1, 2).reshape(-1, 9).std(0, ddof=1) for k in ("A", "B")])
    np.testing.assert_allclose(nxt.table["sd_now"], sd_post, rtol=1e-6)
    d = causalid.design_lti(3, 4, var_bounds=(1e-2, 1.0), criterion="eig", system=fit, steps=STEPS - 1, key=0,
                            num_starts=4, num_iters=60, num_samples=8)
    assert d.info["parameter_law"] == "posterior" and d.value > 0
