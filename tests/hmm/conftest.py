import numpy as np
import pytest


def _coded(seed=0, n=300):
    """Two overlapping Gaussian regimes; a fifth of the values were recorded by hand as 4.0."""
    rng = np.random.default_rng(seed)
    z = np.repeat(rng.integers(0, 2, n // 10), 10)
    y = np.where(z == 0, 2.0, 4.3) + np.where(z == 0, 0.3, 0.4) * rng.normal(size=n)
    y[rng.uniform(size=n) < 0.2] = 4.0
    return y


@pytest.fixture
def coded():
    """``coded(seed=0, n=300)``: a record with a hand-coded value, where a degenerate state tempts."""
    return _coded
