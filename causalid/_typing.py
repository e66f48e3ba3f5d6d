"""Array aliases and the dimension vocabulary used across causalid.

Arrays are ordered ``(env, sample | time, feature)``.  The names below are used in
docstrings and type hints so that an array's meaning is never guessed from its shape:

``env``      environments e = 1..E (conditions, batches, labs, segments)
``sample``   exchangeable samples n = 1..N_e inside one environment
``var``      observed variables i = 1..d
``pair``     ordered pairs of distinct samples (n, m) drawn inside one environment
"""

from __future__ import annotations

from typing import Literal

import jax

Array = jax.Array

CIMethod = Literal["fisherz", "gtest", "kci", "rff", "gcm"]
Family = Literal["linear_gaussian", "anm", "binary", "categorical"]
Regime = Literal["both", "cause", "mechanism"]
