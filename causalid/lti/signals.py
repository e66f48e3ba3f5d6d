r"""Measured-input experiments: excitation signals and their D-optimal choice (Ljung, System Identification, 2nd ed., ch. 13; Pham & Cardoso 2001).

Generators
----------
:func:`prbs`       pseudo-random binary sequences: a maximum-length linear-feedback shift
                   register (period ``2^bits − 1``), each bit held for ``clock_period``
                   samples, values ``mean ± amplitude``.  Channels are cyclic shifts of the
                   same sequence by ``period / num_inputs`` (their circular cross-correlation
                   is ``−1/period``).  Holding bits concentrates the power below about
                   ``0.443 / clock_period`` cycles per sample (the half-power frequency of the
                   sinc² spectrum), which is how the band is limited.
:func:`multisine`  sums of cosines on the DFT grid of one period, restricted to a band
                   ``[f_lo, f_hi]`` (cycles per sample), Schroeder (low crest factor) or random
                   phases; channel ``j`` takes every ``num_inputs``-th grid line starting at
                   its own offset ("zippered"), so channels are orthogonal over a period.  The
                   result is scaled so that its peak deviation from ``mean`` is exactly
                   ``amplitude``.

Both accept ``pe_order``: the signal is then checked to be persistently exciting of that
order with :func:`causalid.lti.identifiability.persistent_excitation` (block-Hankel rank), and a
clear error says what to change when it is not.  :func:`excitation_order` reports the
largest order a signal reaches.

D-optimal choice
----------------
For the full-state regression ``x_{t+1} = A x_t + B u_t + w_t``, ``w_t ~ N(0, Σ_w)``, the
Fisher information of ``vec [A B]`` is ``G ⊗ Σ_w⁻¹`` with ``G = Σ_t E[z_t z_tᵀ]``,
``z_t = [x_t; u_t]``.  :func:`choose_signal` simulates the noise-free response of a prior
system to each candidate (``jax.lax.scan``, vmapped over candidates), adds the stationary
state covariance that the process noise contributes to ``E[x_t x_tᵀ]`` (T times
``P = A P Aᵀ + Σ_w``), and ranks the candidates by

    log det(G ⊗ Σ_w⁻¹) = n log det G − (n + m) log det Σ_w.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from causalid._checks import positive_int
from causalid._random import generators, seed_words
from causalid._x64 import float64
from causalid.dynamics.system import LTISystem
from causalid.errors import DataError
from causalid.lti.identifiability import persistent_excitation

__all__ = ["SignalChoice", "choose_signal", "excitation_order", "multisine", "prbs"]

#: Feedback taps (1-based register positions) of maximum-length shift registers; every entry
#: is checked to reach the full period 2^bits − 1 in the test suite.
_TAPS = {2: (2, 1), 3: (3, 2), 4: (4, 3), 5: (5, 3), 6: (6, 5), 7: (7, 6), 8: (8, 6, 5, 4), 9: (9, 5),
         10: (10, 7), 11: (11, 9), 12: (12, 6, 4, 1), 13: (13, 4, 3, 1), 14: (14, 5, 3, 1), 15: (15, 14),
         16: (16, 15, 13, 4), 17: (17, 14), 18: (18, 11)}


def _rng(key) -> np.random.Generator:
    """A NumPy generator seeded by the words of ``key`` (an int seed or a JAX key; see
    :func:`causalid._random.seed_words`): the draws here are a handful of numbers, which
    JAX's generator would first compile a program for."""
    return generators(seed_words(key), 1)[0]


def _check_common(num_steps, num_inputs, amplitude, mean):
    T = positive_int(num_steps, "num_steps")
    m = positive_int(num_inputs, "num_inputs")
    amp = float(amplitude)
    if not (amp > 0 and math.isfinite(amp)):
        raise DataError(f"amplitude={amplitude!r}: give a positive peak amplitude")
    mu = np.broadcast_to(np.asarray(mean, dtype=np.float64), (m,)).copy() if np.ndim(mean) == 0 else \
        np.asarray(mean, dtype=np.float64)
    if mu.shape != (m,) or not np.all(np.isfinite(mu)):
        raise DataError(f"mean must be a number or {m} numbers (one per input); got {mean!r}")
    return T, m, amp, mu


def _lfsr(seed: int, *, bits: int, taps: tuple[int, ...], length: int) -> np.ndarray:
    """``length`` output bits of a Fibonacci shift register started from ``seed`` (non-zero).

    A plain loop over bits (at most 2^18 of them): a shift register is inherently sequential
    and cheap, and a compiled scan would be recompiled for every register length.
    """
    mask = (1 << bits) - 1
    shifts = [t - 1 for t in taps]
    state = int(seed) & mask
    out = np.empty(length, dtype=np.int8)
    for k in range(length):
        fb = 0
        for sh in shifts:
            fb ^= (state >> sh) & 1
        state = ((state << 1) | fb) & mask
        out[k] = fb
    return out


@float64
def prbs(
    num_steps: int,
    num_inputs: int = 1,
    *,
    amplitude: float = 1.0,
    mean=0.0,
    clock_period: int = 1,
    bits: int | None = None,
    pe_order: int | None = None,
    key=0,
) -> np.ndarray:
    """A pseudo-random binary sequence, shape (num_steps, num_inputs).

    Parameters
    ----------
    num_steps, num_inputs : int
    amplitude : float
        Values are ``mean ± amplitude`` (the amplitude constraint holds exactly).
    mean : float or array (num_inputs,)
    clock_period : int
        Samples per bit; the power lies mostly below ``0.443 / clock_period`` cycles/sample.
    bits : int, optional
        Register length (2–18); period ``2^bits − 1`` bits.  Default: the smallest register
        whose period covers ``num_steps / clock_period`` bits (at least 2^6 − 1), so the
        sequence does not repeat within the record (records longer than 2^18 − 1 bits repeat
        the 18-bit sequence).
    pe_order : int, optional
        Check persistent excitation of this order (raise :class:`~causalid.errors.DataError`
        if not met).
    key : int or jax PRNG key
        Picks the register's start state (a random phase of the sequence).

    Examples
    --------
    >>> import numpy as np
    >>> from causalid.design import prbs
    >>> u = prbs(200, 2, amplitude=0.5, clock_period=2, key=0)
    >>> u.shape, np.unique(u).tolist()
    ((200, 2), [-0.5, 0.5])
    """
    T, m, amp, mu = _check_common(num_steps, num_inputs, amplitude, mean)
    hold = positive_int(clock_period, "clock_period")
    need = -(-T // hold)
    if bits is None:
        bits = max(6, math.ceil(math.log2(need + 1)))
        bits = min(bits, max(_TAPS))
    bits = int(bits)
    if bits not in _TAPS:
        raise DataError(f"bits={bits}: registers of {min(_TAPS)}–{max(_TAPS)} bits are available")
    period = 2**bits - 1
    seed = int(_rng(key).integers(1, period + 1))
    seq = _lfsr(seed, bits=bits, taps=_TAPS[bits], length=period)
    shifts = (np.arange(m) * period) // m
    idx = (np.arange(need)[:, None] + shifts[None, :]) % period
    u = np.repeat(2.0 * seq[idx] - 1.0, hold, axis=0)[:T]
    u = mu + amp * u
    if pe_order is not None:
        _require_excitation(u, pe_order, f"the PRBS ({bits}-bit register, clock period {hold})",
                            "raise num_steps or bits, or lower clock_period")
    return u


@float64
def multisine(
    num_steps: int,
    num_inputs: int = 1,
    *,
    band=(0.0, 0.5),
    amplitude: float = 1.0,
    mean=0.0,
    period: int | None = None,
    phases: str = "schroeder",
    pe_order: int | None = None,
    key=0,
) -> np.ndarray:
    """A multisine, shape (num_steps, num_inputs), with peak deviation ``amplitude``.

    Parameters
    ----------
    num_steps, num_inputs : int
    band : (f_lo, f_hi)
        Frequencies (cycles per sample, 0 ≤ f_lo < f_hi ≤ 0.5) of the excited grid lines
        ``k / period``; DC and the Nyquist line are never used.
    amplitude : float
        Peak of ``|u − mean|`` (exact).
    mean : float or array (num_inputs,)
    period : int, optional
        Length of one period (default ``num_steps``); the signal repeats after it.
    phases : {"schroeder", "random"}
        Schroeder phases ``φ_k = −π k (k − 1) / K`` (low crest factor) or uniform random
        phases drawn from ``key``.
    pe_order : int, optional
        Check persistent excitation of this order.  A channel with K lines is exciting of
        order 2K.
    key : int or jax PRNG key
        Seed of the random phases (``phases="random"`` only).

    Examples
    --------
    >>> import numpy as np
    >>> from causalid.design import multisine
    >>> u = multisine(256, 2, band=(0.02, 0.2), amplitude=1.0)
    >>> u.shape, round(float(np.abs(u).max()), 12)
    ((256, 2), 1.0)
    """
    T, m, amp, mu = _check_common(num_steps, num_inputs, amplitude, mean)
    P = T if period is None else positive_int(period, "period")
    try:
        f_lo, f_hi = (float(f) for f in band)
    except (TypeError, ValueError):
        raise DataError(f"band must be two frequencies (f_lo, f_hi) in cycles per sample; got {band!r}") from None
    if not (0.0 <= f_lo < f_hi <= 0.5):
        raise DataError(f"band=({f_lo:g}, {f_hi:g}): need 0 ≤ f_lo < f_hi ≤ 0.5 cycles per sample")
    if phases not in ("schroeder", "random"):
        raise DataError(f"phases={phases!r}; use 'schroeder' or 'random'")
    grid = np.arange(1, (P + 1) // 2)                                # excludes DC and Nyquist
    lines = grid[(grid / P >= f_lo) & (grid / P <= f_hi)]
    if len(lines) < m:
        raise DataError(f"the band ({f_lo:g}, {f_hi:g}) holds {len(lines)} frequency line(s) of a period of {P} "
                        f"samples, fewer than the {m} input(s); widen the band or lengthen the period")
    u = np.zeros((P, m))
    rng = _rng(key)
    for j in range(m):                  # one spectrum per channel (m is small); no loop over time
        k = lines[j::m]
        K = len(k)
        if phases == "schroeder":
            phi = -np.pi * np.arange(1, K + 1) * np.arange(K) / K
        else:
            phi = rng.uniform(0.0, 2 * np.pi, K)
        spec = np.zeros(P // 2 + 1, dtype=complex)
        spec[k] = np.exp(1j * phi)
        x = np.fft.irfft(spec, n=P)
        u[:, j] = x / np.abs(x).max()
    u = np.tile(u, (-(-T // P), 1))[:T]
    u = mu + amp * u
    if pe_order is not None:
        _require_excitation(u, pe_order, f"the multisine ({len(lines)} lines in the band over {m} channel(s))",
                            "widen the band, lengthen the period, or use fewer inputs per band")
    return u


def _require_excitation(u, order, what: str, fix: str) -> None:
    check = persistent_excitation(u, int(order))
    if not check.passed:
        raise DataError(f"{what} is not persistently exciting of order {int(order)} (block-Hankel rank "
                        f"{check.value['rank']} < {check.value['required']}); {fix}")


@float64
def excitation_order(u, max_order: int = 50) -> int:
    """The largest order L ≤ ``max_order`` for which ``u`` is persistently exciting.

    Uses :func:`causalid.lti.identifiability.persistent_excitation` (block-Hankel rank ``m L``);
    the order is found by bisection (exciting of order L implies order L − 1).  Returns 0
    when ``u`` is not even exciting of order 1 (a zero signal).
    """
    if not persistent_excitation(u, 1).passed:
        return 0
    lo, hi = 1, int(max_order)
    if persistent_excitation(u, hi).passed:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if persistent_excitation(u, mid).passed:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass
class SignalChoice:
    """The outcome of :func:`choose_signal`.

    Attributes
    ----------
    best : str
        Name of the D-optimal candidate.
    table : pandas.DataFrame
        One row per candidate, best first: ``candidate``, ``logdet_information`` (log det of
        the Fisher information of vec [A B]), ``peak``, ``rms``, ``crest_factor`` and
        ``pe_order`` (largest persistent-excitation order up to ``2n + 2``).
    """

    best: str
    table: pd.DataFrame

    def summary(self) -> str:
        return (f"D-optimal signal: '{self.best}'\n"
                + self.table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))

    def __str__(self) -> str:
        return self.summary()


@jax.jit
def _gram(A, B, U, P_noise):
    """Σ_t z_t z_tᵀ of z_t = [x_t; u_t] for the noise-free response to each candidate,
    plus T · blockdiag(P_noise, 0).  U: (K, T, m)."""
    n, _m = B.shape

    def one(u):
        def step(x, ut):
            return A @ x + B @ ut, x
        _, xs = jax.lax.scan(step, jnp.zeros(n, A.dtype), u)
        z = jnp.concatenate([xs, u], axis=1)
        return z.T @ z

    G = jax.vmap(one)(U)
    T = U.shape[1]
    return G.at[:, :n, :n].add(T * P_noise)


@float64
def choose_signal(candidates, system: LTISystem, *, noise_var=None) -> SignalChoice:
    """D-optimal choice among candidate input signals for a prior system.

    Parameters
    ----------
    candidates : dict name → array (T, m), or a list of such arrays
        Candidate signals of one common length T (the information grows with T).
    system : LTISystem
        Prior system; ``A`` and ``B`` act on the state, which the regression takes as
        measured (z_t = [x_t; u_t]).  ``A`` must be stable.
    noise_var : float or array (n, n), optional
        Process-noise covariance Σ_w (a float means ``noise_var · I``); default
        ``system.Q``.

    Returns
    -------
    SignalChoice

    Examples
    --------
    >>> import numpy as np
    >>> from causalid import LTISystem
    >>> from causalid.design import choose_signal, multisine, prbs
    >>> sys = LTISystem([[0.9, 0.1], [0.0, 0.7]], [[0.0], [1.0]], np.eye(2))
    >>> cands = {"prbs": prbs(400, key=1), "sine": multisine(400, band=(0.01, 0.02))}
    >>> choose_signal(cands, sys, noise_var=0.01).best
    'prbs'
    """
    if not isinstance(system, LTISystem):
        raise DataError(f"system must be an LTISystem; got {type(system).__name__}")
    if isinstance(candidates, dict):
        names = [str(k) for k in candidates]
        arrays = list(candidates.values())
    elif isinstance(candidates, (list, tuple)):
        names = [f"candidate {i}" for i in range(len(candidates))]
        arrays = list(candidates)
    else:
        raise DataError("candidates must be a dict name → array (T, m) or a list of arrays")
    if not arrays:
        raise DataError("candidates is empty; give at least one signal")
    n, m = system.n, system.m
    U = []
    for name, a in zip(names, arrays):
        a = np.asarray(a, dtype=np.float64)
        if a.ndim == 1 and m == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[1] != m:
            raise DataError(f"candidate '{name}' has shape {a.shape}; expected (T, {m})")
        if not np.all(np.isfinite(a)):
            raise DataError(f"candidate '{name}' contains NaN or inf")
        U.append(a)
    lengths = {a.shape[0] for a in U}
    if len(lengths) > 1:
        raise DataError(f"candidates have different lengths {sorted(lengths)}; compare signals of one length "
                        "(trim or extend them) since the information grows with the number of steps")
    if np.max(np.abs(np.linalg.eigvals(system.A))) >= 1:
        raise DataError("the prior system's A is not stable; the information of a long experiment diverges")
    if noise_var is None:
        if system.Q is None:
            raise DataError("give the process-noise covariance: noise_var= (a variance or an (n, n) matrix) "
                            "or a system with Q")
        W = np.asarray(system.Q, float)
    elif np.ndim(noise_var) == 0:
        if not float(noise_var) > 0:
            raise DataError(f"noise_var={noise_var}; give a positive variance")
        W = float(noise_var) * np.eye(n)
    else:
        W = np.asarray(noise_var, float)
        if W.shape != (n, n):
            raise DataError(f"noise_var must be a number or an ({n}, {n}) matrix; got shape {W.shape}")
    W = 0.5 * (W + W.T)
    if not np.all(np.isfinite(W)) or np.linalg.eigvalsh(W)[0] <= 0:
        raise DataError("the process-noise covariance must be finite and positive definite")
    _, logdet_w = np.linalg.slogdet(W)
    import scipy.linalg

    P_noise = scipy.linalg.solve_discrete_lyapunov(system.A, W)
    G = np.asarray(_gram(jnp.asarray(system.A), jnp.asarray(system.B), jnp.asarray(np.stack(U)),
                         jnp.asarray(P_noise)))
    sign, logdet_g = np.linalg.slogdet(G)
    logdet = np.where(sign > 0, n * logdet_g - (n + m) * logdet_w, -np.inf)
    stack = np.stack(U)
    centred = stack - stack.mean(axis=1, keepdims=True)
    peak = np.abs(centred).max(axis=(1, 2))
    rms = np.sqrt((centred**2).mean(axis=(1, 2)))
    table = pd.DataFrame({"candidate": names, "logdet_information": logdet, "peak": peak, "rms": rms,
                          "crest_factor": np.where(rms > 0, peak / np.where(rms > 0, rms, 1.0), np.inf),
                          "pe_order": [excitation_order(a, 2 * n + 2) for a in U]})
    table = table.sort_values("logdet_information", ascending=False, kind="stable").reset_index(drop=True)
    return SignalChoice(best=str(table["candidate"].iloc[0]), table=table)
