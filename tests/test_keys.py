"""key= everywhere: an int seed and its PRNG key give the same numbers; seed= is a deprecated alias."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import causalid
from causalid.exchangeable.simulate import random_dag, simulate_dataset


@pytest.fixture(scope="module")
def x():
    x, _, _ = simulate_dataset("bivariate", 60, 2, key=3)
    return x


def test_seed_is_a_deprecated_alias_of_key(x):
    with pytest.warns(DeprecationWarning, match="seed= is deprecated; pass key="):
        old = causalid.discover(x, seed=5)
    new = causalid.discover(x, key=5)
    assert old.to_dict() == {**new.to_dict(), "info": {**new.info, "seconds": old.info["seconds"]}}
    with pytest.raises(causalid.DataError, match="give key= .*not both"):
        causalid.discover(x, key=1, seed=1)
    with pytest.warns(DeprecationWarning):
        assert sorted(random_dag(5, seed=2).edges) == sorted(random_dag(5, key=2).edges)


def test_a_prng_key_is_accepted_wherever_an_int_is(x):
    res = causalid.discover(x, key=jax.random.PRNGKey(7))
    assert res.settings["seed"] >= 0
    a, _, _ = simulate_dataset("bivariate", 10, 2, key=4)
    b, _, _ = simulate_dataset("bivariate", 10, 2, key=jax.random.PRNGKey(4))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(causalid.DataError, match="key must be an int seed or a jax.random.PRNGKey"):
        simulate_dataset("bivariate", 10, 2, key="abc")
