"""Measured-input signals: PRBS, multisines, persistent excitation, D-optimal choice."""

from __future__ import annotations

import numpy as np
import pytest

from causalid import LTISystem
from causalid.design import choose_signal, excitation_order, multisine, prbs
from causalid.lti.signals import _TAPS, _lfsr
from causalid.errors import DataError


@pytest.mark.parametrize("bits", sorted(_TAPS))
def test_shift_registers_have_maximum_length(bits):
    # over one period every non-zero bits-long window appears exactly once (the definition of an
    # m-sequence); then the sequence repeats
    P = 2**bits - 1
    seq = _lfsr(1, bits=bits, taps=_TAPS[bits], length=P + bits).astype(np.int64)
    np.testing.assert_array_equal(seq[P:], seq[:bits])
    windows = sum(seq[k: k + P] << k for k in range(bits))
    assert len(np.unique(windows)) == P and not np.any(windows == 0)


def test_prbs_levels_hold_and_channels():
    u = prbs(1000, 3, amplitude=0.5, mean=[1.0, 0.0, -1.0], clock_period=4, key=3)
    assert u.shape == (1000, 3)
    for j, mu in enumerate([1.0, 0.0, -1.0]):
        assert set(np.round(u[:, j] - mu, 12)) == {-0.5, 0.5}
    # bits are held for clock_period samples
    assert np.all(u[0:4, 0] == u[0, 0]) and np.all(u[4:8, 1] == u[4, 1])
    c = np.corrcoef(u.T)
    assert np.all(np.abs(c[np.triu_indices(3, 1)]) < 0.15)
    np.testing.assert_array_equal(prbs(50, key=7), prbs(50, key=7))
    assert not np.array_equal(prbs(200, key=7), prbs(200, key=8))


def test_prbs_excitation_check():
    u = prbs(2000, 1, bits=10)
    assert excitation_order(u, 12) == 12
    with pytest.raises(DataError, match="not persistently exciting of order 8"):
        prbs(2000, 1, bits=2, pe_order=8)           # period 3: exciting of order 3 at most
    with pytest.raises(DataError, match="bits=30"):
        prbs(100, bits=30)


def test_multisine_peak_band_and_orthogonality():
    T = 512
    u = multisine(T, 2, band=(0.05, 0.2), amplitude=2.0, mean=1.0)
    np.testing.assert_allclose(np.abs(u - 1.0).max(), 2.0, rtol=1e-12)
    spec = np.abs(np.fft.rfft(u - 1.0, axis=0)) ** 2
    freqs = np.fft.rfftfreq(T)
    inside = (freqs >= 0.05) & (freqs <= 0.2)
    assert spec[~inside].sum() < 1e-20 * spec[inside].sum()
    assert abs(np.mean((u[:, 0] - 1) * (u[:, 1] - 1))) < 1e-12          # zippered lines: orthogonal
    rnd = multisine(T, 1, band=(0.05, 0.2), phases="random", key=1)
    assert np.isclose(np.abs(rnd).max(), 1.0)


def test_multisine_with_k_lines_is_exciting_of_order_2k():
    # lines 1..K of a 16-sample period (well-spread frequencies, so the Hankel rank is clear-cut)
    K, P = 4, 16
    u = multisine(20 * P, 1, band=(1 / P, K / P), period=P)
    assert excitation_order(u, 3 * K) == 2 * K
    with pytest.raises(DataError, match="not persistently exciting of order 9"):
        multisine(20 * P, 1, band=(1 / P, K / P), period=P, pe_order=2 * K + 1)


def test_multisine_errors():
    with pytest.raises(DataError, match="band"):
        multisine(100, band=(0.3, 0.1))
    with pytest.raises(DataError, match="fewer than the 3 input"):
        multisine(100, 3, band=(0.1, 0.11))
    with pytest.raises(DataError, match="amplitude"):
        multisine(100, amplitude=0.0)
    with pytest.raises(DataError, match="phases"):
        multisine(100, phases="zero")


def test_choose_signal_matches_a_direct_computation():
    A = np.array([[0.9, 0.1], [0.0, 0.7]])
    B = np.array([[0.0], [1.0]])
    system = LTISystem(A, B, np.eye(2))
    cands = {"prbs": prbs(400, key=1), "slow sine": multisine(400, band=(0.01, 0.02)), "zero": np.zeros((400, 1))}
    q = 0.01
    out = choose_signal(cands, system, noise_var=q)
    assert out.best == "prbs"
    assert list(out.table["candidate"]) == ["prbs", "slow sine", "zero"]
    # oracle: simulate the noise-free state in NumPy, add T times the stationary noise covariance
    from scipy.linalg import solve_discrete_lyapunov

    u = cands["prbs"]
    x = np.zeros((400, 2))
    for t in range(399):
        x[t + 1] = A @ x[t] + B @ u[t]
    z = np.hstack([x, u])
    G = z.T @ z
    G[:2, :2] += 400 * solve_discrete_lyapunov(A, q * np.eye(2))
    W = q * np.eye(2)
    expected = np.linalg.slogdet(np.kron(G, np.linalg.inv(W)))[1]
    assert np.isclose(out.table["logdet_information"].iloc[0], expected, rtol=1e-9)
    assert out.table.loc[out.table["candidate"] == "zero", "pe_order"].item() == 0
    assert "D-optimal signal" in out.summary()


def test_choose_signal_errors():
    system = LTISystem(0.5 * np.eye(2), np.ones((2, 1)), np.eye(2))
    with pytest.raises(DataError, match="different lengths"):
        choose_signal([np.ones((10, 1)), np.ones((12, 1))], system, noise_var=1.0)
    with pytest.raises(DataError, match="noise_var"):
        choose_signal([np.ones((10, 1))], system)
    with pytest.raises(DataError, match=r"expected \(T, 1\)"):
        choose_signal([np.ones((10, 2))], system, noise_var=1.0)
    # a determinant > 0 is not enough: two negative eigenvalues
    with pytest.raises(DataError, match="positive definite"):
        choose_signal([np.ones((10, 1))], system, noise_var=-np.eye(2))
