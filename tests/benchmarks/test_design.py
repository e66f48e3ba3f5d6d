"""The designer (causalid.design), run on demand only:

    pytest -m benchmark -s tests/benchmarks/test_design.py

1. ``test_designed_beats_random_laws`` — 20 random systems with n = m = 5, E = m + 1 = 6
   environments, T = 2000 steps each, variances in [1e-2, 1] (zero means): identification
   by ``identify_lti`` (closed-form "moment" and maximum-likelihood "mle" engines) from
   designed input laws against random diverse laws of the same budget (every variance
   log-uniform on the same box).  Asserted: the median Amari error is at most half that of
   the random laws for each engine with the criterion written for it ("moment" for the
   closed-form engine, "pairwise" for the efficient one); every combination is printed.
2. ``test_next_environment_beats_random`` — sequential design: after 4 environments of 300
   steps under random laws (n = m = 3), the proposed 5th environment against a random
   feasible one (log-uniform on the box), each simulated and refitted; the realised
   reduction of the posterior entropy is measured with the Laplace approximation at the
   refitted maximum-likelihood estimate: the Hessian, by ``jax.hessian``, of the log density
   of ``causalid.models.lti.lti_model`` for these data (its exact transition density plus
   its Gaussian prior on A, B), computed from the simulated data, independently of the
   designer's expected-information formulas.  Asserted: the proposal wins
   in at least 80 % of 20 cases.
3. ``test_design_time_n10_cold`` — the Done-when target "the design for n = m = 10 takes
   under 2 s on CPU" as a user meets it: ``design_lti(10, 11)`` with the default criterion,
   once per fresh Python process (so including JAX tracing and XLA compilation), with and
   without a prior system (built in NumPy, so that nothing warms JAX up before the call).
   Only the call is timed (``import causalid`` is reported separately).  Three processes
   per case; the median wall-clock and CPU seconds are printed against the 2 s target with
   the machine's load average, and asserted: median CPU seconds under 2 s (CPU time, not
   wall time, because on a shared machine the wall time mostly measures the other
   processes; on an idle machine the two agree within ~10 %).
   ``test_design_time_n10_warm`` — later calls of the same shape in one process.
4. ``test_finds_max_variability_design`` — for m = 2..6 and E = m + 1 on the reference box
   [1e-4, 1], each system-free criterion's design against the one-hot design by that
   criterion.

Timings are machine-dependent; the cold call is dominated by XLA compilation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from causalid.models import lti

from causalid import InputDesign, LTIData, identify_lti
from causalid.design import design_criteria, design_lti, design_next
from causalid.lti.metrics import amari_distance

KEY = jax.random.PRNGKey


def _random_laws(seed: int, E: int, m: int, lo: float, hi: float) -> InputDesign:
    rng = np.random.default_rng(seed)
    return InputDesign(None, np.exp(rng.uniform(np.log(lo), np.log(hi), (E, m))), name="random")


def _amari(system, design, T, seed, methods):
    sim = lti.simulate_lti(KEY(seed), system, design=design, num_steps=T)
    data = LTIData.from_arrays(sim["y"], input_mean=design.mean, input_var=design.var)
    return {meth: amari_distance(system.C @ system.B, identify_lti(data, method=meth, check=False).B)
            for meth in methods}


@pytest.mark.filterwarnings("ignore::causalid.ConvergenceWarning")
def test_designed_beats_random_laws():
    n = m = 5
    E, T, bounds, num_systems = m + 1, 2000, (1e-2, 1.0), 20
    methods = ("moment", "mle")
    designs = {c: design_lti(m, E, var_bounds=bounds, steps=T, criterion=c, key=0).to_input_design()
               for c in ("pairwise", "cond", "moment")}
    errors = {(name, meth): [] for name in (*designs, "random") for meth in methods}
    for s in range(num_systems):
        system = lti.random_system(KEY(1000 + s), n)
        laws = dict(designs, random=_random_laws(s, E, m, *bounds))
        for name, d in laws.items():
            for meth, err in _amari(system, d, T, s, methods).items():
                errors[(name, meth)].append(err)
    med = {k: float(np.median(v)) for k, v in errors.items()}
    print(f"\nmedian Amari error of B̃ over {num_systems} random systems (n = m = {n}, E = {E}, T = {T}, "
          f"variances in {bounds}, zero means):")
    print(f"  {'laws':<22}" + "".join(f"{'engine ' + meth:>28}" for meth in methods))
    for name in (*designs, "random"):
        cells = ""
        for meth in methods:
            v, r = med[(name, meth)], med[("random", meth)]
            cells += f"{v:>16.5f}" + (f" (x{v / r:.2f})" if name != "random" else " " * 8) + "    "
        label = "random (log-uniform)" if name == "random" else f"designed: {name}"
        print(f"  {label:<22}{cells}")
    # each engine with the criterion written for it: the closed-form engine's first-order
    # error ('moment') and the efficient estimator's pairwise Fisher determinant ('pairwise')
    assert med[("moment", "moment")] <= 0.5 * med[("random", "moment")], med
    assert med[("pairwise", "mle")] <= 0.5 * med[("random", "mle")], med


def _observed_precision(data: LTIData, A, B, prior) -> np.ndarray:
    """−∇² of the log density of lti_model at (A, B): the Laplace posterior precision of
    θ = (vec A, vec B), vec stacking columns.  For complete noise-free full-state data the
    program adds the exact transition density (``models.lti._transition_loglik``, through
    ``numpyro.factor``) to its Gaussian prior on A and B; both are evaluated here directly,
    so that the data can be traced without switching the program to its Kalman route."""
    n, m = B.shape
    theta = jnp.concatenate([jnp.asarray(A).T.reshape(-1), jnp.asarray(B).T.reshape(-1)])
    H = np.asarray(_hessian(n, m, prior)(theta, jnp.asarray(data.y), jnp.asarray(data.input_mean),
                                         jnp.asarray(data.input_var)))
    return -0.5 * (H + H.T)


_HESSIANS: dict = {}


def _hessian(n, m, prior):
    """jax.hessian of the log density in θ, jitted once per size."""
    if (n, m, prior) not in _HESSIANS:
        def logp(theta, y, mean, var):
            At = theta[: n * n].reshape(n, n).T
            Bt = theta[n * n:].reshape(m, n).T
            loglik = lti._transition_loglik(At, Bt, jnp.eye(n), mean, var, y, 0.0)
            logprior = (jax.scipy.stats.norm.logpdf(At, 0.0, prior.a_scale).sum()
                        + jax.scipy.stats.norm.logpdf(Bt, 0.0, prior.b_scale).sum())
            return loglik + logprior

        _HESSIANS[(n, m, prior)] = jax.jit(jax.hessian(logp))
    return _HESSIANS[(n, m, prior)]


def _entropy(precision: np.ndarray) -> float:
    """Gaussian entropy up to a constant: −½ log det(precision)."""
    sign, logdet = np.linalg.slogdet(precision)
    assert sign > 0
    return -0.5 * float(logdet)


def _augment(data: LTIData, y_new, mean_new, var_new) -> LTIData:
    y = np.concatenate([data.y, y_new], axis=0)
    return LTIData.from_arrays(y, input_mean=np.vstack([data.input_mean, mean_new[None]]),
                               input_var=np.vstack([data.input_var, var_new[None]]))


@pytest.mark.filterwarnings("ignore::causalid.ConvergenceWarning")
def test_next_environment_beats_random():
    n = m = 3
    E0, T, bounds, cases = 4, 300, (1e-2, 1.0), 20
    prior = lti.LTIPrior()
    wins, gains = 0, []
    for c in range(cases):
        system = lti.random_system(KEY(2000 + c), n)
        law0 = _random_laws(3000 + c, E0, m, *bounds)
        law0 = InputDesign(np.zeros_like(law0.var), law0.var)
        sim0 = lti.simulate_lti(KEY(4000 + c), system, design=law0, num_steps=T)
        data0 = LTIData.from_arrays(sim0["y"], input_mean=law0.mean, input_var=law0.var)
        proposal = design_next(data0, var_bounds=bounds, steps=T - 1, key=c)
        rnd = _random_laws(5000 + c, 1, m, *bounds).var[0]
        fit0 = identify_lti(data0, method="mle")
        h0 = _entropy(_observed_precision(data0, fit0.A, fit0.B, prior))
        reduction = {}
        for name, var in (("designed", proposal.var), ("random", rnd)):
            law = InputDesign(np.zeros((1, m)), var[None])
            sim = lti.simulate_lti(KEY(6000 + c), system, design=law, num_steps=T)
            data1 = _augment(data0, sim["y"], law.mean[0], law.var[0])
            fit1 = identify_lti(data1, method="mle")
            reduction[name] = h0 - _entropy(_observed_precision(data1, fit1.A, fit1.B, prior))
        wins += reduction["designed"] > reduction["random"]
        gains.append((reduction["designed"], reduction["random"], proposal.eig))
    g = np.asarray(gains)
    print(f"\nsequential design, {cases} cases (n = m = {n}, {E0} environments of {T} steps, next of {T} steps):")
    print(f"  designed next environment reduced the posterior entropy more than a random one in {wins}/{cases} "
          f"= {wins / cases:.0%} of cases")
    print(f"  median realised entropy reduction: designed {np.median(g[:, 0]):.3f} nats, random "
          f"{np.median(g[:, 1]):.3f} nats; median predicted EIG of the proposal {np.median(g[:, 2]):.3f} nats")
    assert wins >= 0.8 * cases, g


_COLD_CALL = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import causalid
t_import = time.perf_counter() - t0
system = None
if sys.argv[1] == "system":                 # a stable full-state system, built without JAX
    rng = np.random.default_rng(0)
    A = 0.8 * np.linalg.qr(rng.normal(size=(10, 10)))[0]
    system = causalid.LTISystem(A, rng.normal(size=(10, 10)), np.eye(10))
wall, cpu = time.perf_counter(), time.process_time()
d = causalid.design_lti(10, 11, var_bounds=(1e-2, 1.0), system=system, key=0)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({"import": t_import, "wall": wall, "cpu": cpu, "value": d.value}))
"""


@pytest.mark.parametrize("case", ["no system", "system"])
def test_design_time_n10_cold(case):
    target, runs = 2.0, 3
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    rows = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _COLD_CALL, case.replace(" ", "-")], capture_output=True,
                             text=True, env=env, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    wall = float(np.median([r["wall"] for r in rows]))
    cpu = float(np.median([r["cpu"] for r in rows]))
    imp = float(np.median([r["import"] for r in rows]))
    print(f"\ncold design_lti(10, 11), default criterion, {case}, fresh process (median of {runs}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs): call wall {wall:.2f} s, cpu {cpu:.2f} s "
          f"(target {target:.0f} s); import causalid {imp:.2f} s; values {[round(r['value'], 4) for r in rows]}")
    assert len({r["value"] for r in rows}) == 1, rows            # same seed, same design
    assert cpu < target, (f"cold call {cpu:.2f} s of CPU" + (
        "; with a system causalid.check_lti's controllability and Fisher-information checks "
        "(python-control's import, a compiled Fisher information) dominate" if case == "system" else ""), rows)


def test_design_time_n10_warm():
    m, E = 10, 11
    design_lti(m, E, var_bounds=(1e-2, 1.0), key=0)                     # compiles (unless done already)
    rows = []
    for key in (1, 2):
        t, c = time.perf_counter(), time.process_time()
        d = design_lti(m, E, var_bounds=(1e-2, 1.0), key=key)
        rows.append((time.perf_counter() - t, time.process_time() - c, d.value))
    print(f"\ndesign_lti(n = m = {m}, E = {E}, criterion 'pairwise', 32 starts x 200 steps + polish), warm:")
    for wall, cpu, value in rows:
        print(f"  wall {wall:6.2f} s   cpu {cpu:6.2f} s   value {value:.4g}")
    assert max(r[0] for r in rows) < 2.0, rows


@pytest.mark.parametrize("m", [2, 3, 4, 5, 6])
def test_finds_max_variability_design(m):
    bounds = (1e-4, 1.0)
    ref = design_criteria(lti.max_variability_design(m, zero_means=True), var_bounds=bounds)
    out = []
    for criterion, key, better in (("pairwise", "pairwise", 1), ("cond", "sigma_min_rel", 1), ("moment", "moment", -1)):
        d = design_lti(m, m + 1, var_bounds=bounds, criterion=criterion, key=0)
        out.append((criterion, d.value, ref[key]))
        assert better * (d.value - ref[key]) >= -1e-9 * abs(ref[key]), (criterion, d.value, ref[key])
    print(f"\nm = {m}: " + "; ".join(f"{c} designed {v:.6g} vs one-hot {r:.6g}" for c, v, r in out))
