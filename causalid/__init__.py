"""causalid: probabilistic programming for causal and dynamical identification.

Importing causalid switches JAX to 64-bit floats (``jax_enable_x64``): ranks, condition
numbers and long likelihood sums need them.  Arrays you pass in float32 are promoted.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from causalid.data import MultiEnvData, load  # noqa: E402
from causalid.errors import CausalIDError, DataError, IdentifiabilityError  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "CausalIDError",
    "DataError",
    "IdentifiabilityError",
    "MultiEnvData",
    "load",
    "__version__",
]
