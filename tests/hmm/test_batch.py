"""fit_hmm_batch: many data sets of one layout in one vectorised EM, the same fits as one at a time."""

import numpy as np
import pytest

import causalid
from causalid.hmm.fit import fit_hmm_batch


def _replicates(emission, B=4, T=150):
    out = []
    for b in range(B):
        rng = np.random.default_rng(b)
        z = np.repeat(rng.integers(0, 2, T // 10), 10)
        if emission == "gaussian":
            y = np.where(z == 0, -1.0, 1.5) + rng.normal(size=T)
        else:
            y = rng.poisson(np.where(z == 0, 3.0, 10.0)).astype(float)
        out.append(y)
    return out


@pytest.mark.parametrize("emission, initial", [("gaussian", "free"), ("poisson", "stationary")])
def test_batched_fits_equal_fits_one_at_a_time(emission, initial):
    ys = _replicates(emission)
    kw = dict(num_restarts=8, initial=initial, max_iters=300)
    batch = fit_hmm_batch(ys, 2, emission, keys=list(range(len(ys))), **kw)
    for b, y in enumerate(ys):
        alone = causalid.fit_hmm(y, 2, emission, key=b, progress=False, **kw)
        assert batch[b].log_likelihood == pytest.approx(alone.log_likelihood, abs=1e-8)
        for got, want in zip(batch[b].params.to_dict().values(), alone.params.to_dict().values()):
            np.testing.assert_allclose(got, want, atol=1e-6)
        assert batch[b].settings == alone.settings and batch[b].degenerate == alone.degenerate
    with pytest.raises(causalid.DataError, match="one key per data set"):
        fit_hmm_batch(ys, 2, emission, keys=[0])


def test_the_hmm_sweep_scores_every_replicate_from_one_batched_fit(monkeypatch):
    """The sweep's em engine fits the replicates of a cell with fit_hmm_batch; its scores are those
    of fitting each replicate alone (the loop it replaced)."""
    import jax

    from causalid.hmm import sweep

    monkeypatch.setattr(sweep, "BATCH_ON_CPU", True)
    s = {"states": 2, "envs": 1, "sequences": 1, "steps": 120, "emission": "gaussian", "obs_dim": 1,
         "covariance": "full", "num_categories": 3, "vary": "none", "self_prob": 0.9, "separation": 4.0,
         "env_spread": 0.5}
    sim = sweep._simulate_hmm(jax.random.PRNGKey(0), s, 3)
    opts = {"shared": "truth", "restarts": 6, "max_iters": 200, "num_warmup": 1, "num_samples": 1, "num_chains": 1}
    metrics = ("state_accuracy", "loglik_gap", "converged")
    batched = sweep._hmm_fit_score("em", opts, sim, jax.random.PRNGKey(1), metrics)
    assert np.all(batched.values["state_accuracy"] > 0.9)
    monkeypatch.setattr(sweep, "fit_hmm_batch", lambda *a, **k: (_ for _ in ()).throw(causalid.DataError("off")))
    alone = sweep._hmm_fit_score("em", opts, sim, jax.random.PRNGKey(1), metrics)
    for m in metrics:
        np.testing.assert_allclose(batched.values[m], alone.values[m], atol=1e-9)
