"""Statistical tests used by causalid (conditional independence, ...).

All tests are pure JAX, jit-compiled and :func:`jax.vmap`-able; see :mod:`causalid.stats.ci`.
"""

from causalid.stats.ci import CI_TESTS, CIResult, fisher_z, g_test, gcm, kci, kci_rff

__all__ = ["CIResult", "fisher_z", "g_test", "kci", "kci_rff", "gcm", "CI_TESTS"]
