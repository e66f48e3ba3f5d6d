"""The plain installation (``pip install .``) carries every documented job's dependencies.

`.ci/run` proves it on a fresh machine (a plain install runs ``causalid verify`` and
``causalid report`` before the test extras are installed); this test keeps the declaration
from drifting.
"""

from importlib.metadata import requires

from packaging.requirements import Requirement


def _plain_requirements() -> set[str]:
    reqs = [Requirement(r) for r in requires("causalid") or []]
    return {r.name.lower() for r in reqs if r.marker is None}


def test_the_sweep_store_and_dask_come_with_the_plain_install():
    plain = _plain_requirements()
    assert {"pyarrow", "dask", "jax", "numpyro", "networkx", "scipy", "arviz", "control"} <= plain
    dask = next(Requirement(r) for r in requires("causalid") if Requirement(r).name == "dask"
                and Requirement(r).marker is None)
    assert "distributed" in dask.extras
