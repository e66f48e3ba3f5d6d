"""GPU check: parallel against sequential scans, a batched sweep, and dynamax on the same inputs.

Run it on the machine to measure (about 2–4 minutes on one GPU at the default sizes)::

    python tests/benchmarks/gpu_check.py                  # T = 1e3, 1e4, 1e5
    python tests/benchmarks/gpu_check.py --steps 1000 10000 --batch 256

It times, after compilation, each at every T:

* the Kalman filter and the filter + RTS smoother (:mod:`causalid.dynamics.kalman`),
  ``method="sequential"`` (``lax.scan``) against ``method="parallel"`` (associative scan);
* the HMM forward–backward smoother (:func:`causalid.dynamics.hmm.hmm_smoother`), both methods;
* a batched sweep: the Kalman log-likelihood of ``--batch`` replicates in one ``vmap``ped
  program against the same replicates one call at a time;
* dynamax's sequential and parallel LGSSM filters and its HMM smoother on the same inputs,
  when dynamax is installed (``pip install ".[bench]"``).

and checks that the methods agree (log-likelihoods to a relative 1e-8, float64).  It prints a
table of median seconds and the ratios sequential / parallel and one-at-a-time / batched, with
the device.  ``tests/test_gpu_check.py`` runs it on CPU at tiny sizes (correctness only).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from causalid.dynamics.hmm import hmm_smoother
from causalid.dynamics.kalman import kalman_filter, kalman_smoother, make_params

STATE, OBS, HMM_STATES = 4, 2, 4


def _lgssm(rng):
    A = 0.9 * np.linalg.qr(rng.normal(size=(STATE, STATE)))[0]
    C = rng.normal(size=(OBS, STATE))
    return make_params(A, C, 0.1 * np.eye(STATE), 0.5 * np.eye(OBS))


def _hmm(rng):
    trans = rng.dirichlet(np.full(HMM_STATES, 0.5), size=HMM_STATES) + 4 * np.eye(HMM_STATES)
    return np.full(HMM_STATES, 1 / HMM_STATES), trans / trans.sum(1, keepdims=True)


def _time(fn, *args, repeats):
    jax.block_until_ready(fn(*args))                     # compile
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def _dynamax():
    """dynamax's inference modules, or None; its import changes the global matmul precision,
    which is restored."""
    saved = jax.config.jax_default_matmul_precision
    try:
        with warnings.catch_warnings():  # dynamax uses JAX names that newer JAX deprecates
            warnings.simplefilter("ignore", DeprecationWarning)
            from dynamax.hidden_markov_model import inference as hmm_inf
            from dynamax.linear_gaussian_ssm import inference as lgssm_inf
            from dynamax.linear_gaussian_ssm import parallel_inference as lgssm_par
    except ImportError:
        return None
    finally:
        jax.config.update("jax_default_matmul_precision", saved)
    return lgssm_inf, lgssm_par, hmm_inf


def run(steps=(1_000, 10_000, 100_000), batch=64, repeats=3, seed=0, out=sys.stdout) -> list[dict]:
    """Time and check every kernel at each number of steps; returns the rows printed."""
    rng = np.random.default_rng(seed)
    rows = []
    peers = _dynamax()
    with jax.enable_x64(True):
        params = _lgssm(rng)
        init, trans = _hmm(rng)
        init, trans = jnp.asarray(init), jnp.asarray(trans)
        for T in steps:
            y = jnp.asarray(rng.normal(size=(T, OBS)))
            log_lik = jnp.asarray(rng.normal(size=(T, HMM_STATES)))
            # every program returns its whole output, so that XLA cannot prune the backward pass
            kal = {m: jax.jit(lambda y, m=m: _smoothed(kalman_smoother(params, y, method=m)))
                   for m in ("sequential", "parallel")}
            filt = {m: jax.jit(lambda y, m=m: _filtered(kalman_filter(params, y, method=m)))
                    for m in ("sequential", "parallel")}
            hmm = {m: jax.jit(lambda ll, m=m: _hmm_out(hmm_smoother(init, trans, ll, method=m)))
                   for m in ("sequential", "parallel")}
            values = ({m: float(kal[m](y)[0]) for m in kal} | {f"filter {m}": float(filt[m](y)[0]) for m in filt}
                      | {f"hmm {m}": float(hmm[m](log_lik)[0]) for m in hmm})
            _agree(values["sequential"], values["parallel"], f"Kalman smoother log-likelihood at T = {T}")
            _agree(values["sequential"], values["filter parallel"], f"Kalman filter log-likelihood at T = {T}")
            _agree(values["hmm sequential"], values["hmm parallel"], f"HMM log-likelihood at T = {T}")
            np.testing.assert_allclose(kal["sequential"](y)[1], kal["parallel"](y)[1], rtol=1e-7, atol=1e-9,
                                       err_msg="smoothed means differ between the methods")
            row = {"T": T,
                   "smoother sequential": _time(kal["sequential"], y, repeats=repeats),
                   "smoother parallel": _time(kal["parallel"], y, repeats=repeats),
                   "filter sequential": _time(filt["sequential"], y, repeats=repeats),
                   "filter parallel": _time(filt["parallel"], y, repeats=repeats),
                   "hmm sequential": _time(hmm["sequential"], log_lik, repeats=repeats),
                   "hmm parallel": _time(hmm["parallel"], log_lik, repeats=repeats)}
            # the batched sweep: replicates in one vmapped program against one call each
            ys = jnp.asarray(rng.normal(size=(batch, min(T, 10_000), OBS)))
            one = jax.jit(lambda y: kalman_smoother(params, y).log_likelihood)
            many = jax.jit(jax.vmap(lambda y: kalman_smoother(params, y).log_likelihood))
            batched = np.asarray(many(ys))
            looped = np.asarray([float(one(ys[r])) for r in range(batch)])
            np.testing.assert_allclose(batched, looped, rtol=1e-9, err_msg="batched and one-at-a-time differ")
            row["sweep one at a time"] = _time(lambda ys: [one(ys[r]) for r in range(batch)], ys, repeats=repeats)
            row["sweep batched"] = _time(many, ys, repeats=repeats)
            if peers is not None:
                row |= _peer_times(peers, params, init, trans, y, log_lik, values, repeats)
            rows.append(row)
    _print(rows, batch, out)
    return rows


def _smoothed(r):
    return r.log_likelihood, r.smoothed_means, r.smoothed_covs


def _filtered(r):
    return r.log_likelihood, r.filtered_means, r.filtered_covs


def _hmm_out(r):
    return r.log_likelihood, r.smoothed


def _peer_times(peers, params, init, trans, y, log_lik, values, repeats) -> dict:
    lgssm_inf, lgssm_par, hmm_inf = peers
    dp = lgssm_inf.make_lgssm_params(params.m0, params.P0, params.A, params.Q, params.C, params.R)
    def filt(f):
        return jax.jit(lambda y: (lambda r: (r.marginal_loglik, r.filtered_means, r.filtered_covariances))(f(dp, y)))

    seq, par = filt(lgssm_inf.lgssm_filter), filt(lgssm_par.lgssm_filter)
    hsm = jax.jit(lambda ll: (lambda r: (r.marginal_loglik, r.smoothed_probs))(hmm_inf.hmm_smoother(init, trans, ll)))
    _agree(values["sequential"], float(seq(y)[0]), "dynamax's sequential Kalman filter", rtol=1e-6)
    _agree(values["sequential"], float(par(y)[0]), "dynamax's parallel Kalman filter", rtol=1e-6)
    _agree(values["hmm sequential"], float(hsm(log_lik)[0]), "dynamax's HMM smoother", rtol=1e-6)
    return {"dynamax filter sequential": _time(seq, y, repeats=repeats),
            "dynamax filter parallel": _time(par, y, repeats=repeats),
            "dynamax hmm smoother": _time(hsm, log_lik, repeats=repeats)}


def _agree(a: float, b: float, what: str, rtol: float = 1e-8) -> None:
    if not np.isclose(a, b, rtol=rtol, atol=0.0):
        raise AssertionError(f"{what}: {a!r} against {b!r}")


def _print(rows, batch, out) -> None:
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); median seconds after compiling; "
          f"sweep: {batch} replicates, T = min(T, 10000)", file=out)
    keys = [k for k in rows[0] if k != "T"]
    print(f"{'T':>8} " + " ".join(f"{k:>26}" for k in keys), file=out)
    for r in rows:
        print(f"{r['T']:>8} " + " ".join(f"{r[k]:>26.4g}" for k in keys), file=out)
    print("ratios (> 1: the second is faster):", file=out)
    for r in rows:
        parts = [f"smoother seq/par {r['smoother sequential'] / r['smoother parallel']:.2f}",
                 f"filter seq/par {r['filter sequential'] / r['filter parallel']:.2f}",
                 f"hmm seq/par {r['hmm sequential'] / r['hmm parallel']:.2f}",
                 f"sweep loop/batched {r['sweep one at a time'] / r['sweep batched']:.1f}"]
        if "dynamax filter parallel" in r:
            parts.append(f"filter dynamax/causalid seq {r['dynamax filter sequential'] / r['filter sequential']:.2f}"
                         f", par {r['dynamax filter parallel'] / r['filter parallel']:.2f}")
            parts.append(f"dynamax hmm / causalid hmm seq {r['dynamax hmm smoother'] / r['hmm sequential']:.2f}")
        print(f"{r['T']:>8}  " + ", ".join(parts), file=out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    run(args.steps, args.batch, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
