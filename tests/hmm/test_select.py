"""Choosing the number of states: degenerate fits refused, ICL's entropy term, held-out scores."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from causalid.models.hmm import HMMConfig, emission_log_lik, make_hmm_params

import causalid
from causalid.hmm.em import path_entropy

JAX_X64 = True  # drives the JAX kernels from JAX code (see tests/conftest.py)



def test_selection_does_not_pick_a_spike_on_coded_values(tmp_path, coded):
    """On a record with a hand-coded value, BIC prefers a model with a spike state; the spike
    sits at the variance floor, so that fit is refused and the recommendation is a sound one."""
    sel = causalid.select_num_states(coded(), (1, 2, 3, 4), num_restarts=10, progress=False)
    t = sel.table.set_index("num_states")
    assert not t.loc[t["bic"].idxmin(), "eligible"]           # the raw BIC pick is degenerate
    assert sel.recommended == 2 and t.loc[2, "eligible"]
    assert "refused" in sel.reason and "variance floor" in sel.reason
    path = sel.save(tmp_path / "sel.json")
    back = causalid.StateSelection.load(path)
    assert back.recommended == 2 and back.reason == sel.reason


def test_path_entropy_matches_enumeration_of_every_path():
    config = HMMConfig(2, "gaussian", 1, 1)
    p = make_hmm_params([0.3, 0.7], [[0.8, 0.2], [0.3, 0.7]], means=[[0.0], [1.0]], covs=[[[1.0]], [[0.5]]])
    y = np.array([0.1, 0.9, -0.4, 1.3, 0.5, 0.2])
    one_env = jax.tree.map(lambda a: jnp.asarray(a[0]), p)
    ll = np.asarray(emission_log_lik(one_env, jnp.asarray(y[:, None]), config))  # (T, K)
    logs = []
    for z in itertools.product(range(2), repeat=len(y)):
        lp = np.log(p.init[0, z[0]]) + ll[0, z[0]]
        for t in range(1, len(y)):
            lp += np.log(p.trans[0, z[t - 1], z[t]]) + ll[t, z[t]]
        logs.append(lp)
    logs = np.array(logs)
    post = np.exp(logs - np.logaddexp.reduce(logs))
    want = -np.sum(post * np.log(post))
    got = float(path_entropy(jax.tree.map(jnp.asarray, p), jnp.asarray(y[None, None, :, None]), jnp.asarray([[len(y)]]),
                             config=config, partial=False))
    assert got == pytest.approx(want, rel=1e-10)


def test_icl_is_bic_plus_twice_the_path_entropy_and_heldout_picks_the_true_count():
    rng = np.random.default_rng(1)
    z = np.repeat(rng.integers(0, 2, 30), 8)
    y = np.where(z == 0, -1.5, 1.5) + rng.normal(size=z.size)
    icl = causalid.select_num_states(y, (1, 2, 3), criterion="icl", num_restarts=6, progress=False)
    t = icl.table
    assert np.all(t["icl"] >= t["bic"] - 1e-9) and t.loc[t.num_states == 1, "icl"].item() == pytest.approx(
        t.loc[t.num_states == 1, "bic"].item())
    assert icl.recommended == 2
    held = causalid.select_num_states(y, (1, 2, 3), criterion="heldout", num_restarts=6, folds=4, progress=False)
    h = held.table.set_index("num_states")["heldout"]
    # blocked time: the held-out blocks are far better predicted with two states than with one
    # (a third state nests the second and may score about the same)
    assert h[2] > h[1] + 20 and held.recommended in (2, 3) and "HELDOUT" in held.reason
    # several sequences: whole sequences are held out
    seqs = [y[:80], y[80:160], y[160:]]
    held = causalid.select_num_states(seqs, (1, 2), criterion="heldout", num_restarts=4, progress=False)
    assert held.recommended == 2
    with pytest.raises(causalid.DataError, match="criterion must be one of"):
        causalid.select_num_states(y, (1, 2), criterion="dic", progress=False)
