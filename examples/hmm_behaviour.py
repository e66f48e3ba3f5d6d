"""Which mechanism does a drug change: how animals switch behaviour, or how each behaviour looks?

A simulated open-field experiment.  Tracked animals alternate between three behavioural states —
rest, explore, run — seen through two per-frame features, speed (cm/s) and turning rate
(rad/s).  Six conditions (a stimulant at six doses) are the environments, with four sessions of
different lengths each and short tracking drop-outs (frames with no observation).  The drug acts
on the *cause* mechanism only: higher doses make the animals leave rest sooner and break into
runs more often (the transition matrix changes), while the body's mechanics — the speed and
turning of each state — stay the same (the emissions are shared).

The data are drawn from the same NumPyro program that is later fitted
(:func:`causalid.models.hmm.hmm_model` through ``simulate_arrays``).  The four nested models —
nothing varies, transitions vary, emissions vary, both vary — are fitted by EM and compared by
likelihood-ratio tests and BIC (:func:`compare_mechanisms`); the chosen model is printed,
scored against the truth, and drawn.

    python examples/hmm_behaviour.py [--sessions 4] [--frames 200 400] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import jax
import numpy as np

import causalid
from causalid.hmm.compare import compare_mechanisms
from causalid.models.hmm import HMMConfig, make_hmm_params, simulate_arrays

STATES = ("rest", "explore", "run")
DOSES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)  # mg/kg: the six conditions
# per-state emissions shared by every condition: mean (speed, turning) and covariance
MEANS = np.array([[0.5, 0.1], [6.0, 1.5], [22.0, 0.4]])
COVS = np.array([
    [[0.1, 0.0], [0.0, 0.01]],
    [[4.0, 0.6], [0.6, 0.25]],
    [[16.0, -0.4], [-0.4, 0.04]],
])


def transitions(dose: float) -> np.ndarray:
    """Transition matrix at a dose: the stimulant shortens rest and makes running likelier."""
    d = np.log1p(dose)
    leave_rest = 0.02 * (1 + 2 * d)
    explore_to_run = 0.01 * (1 + 4 * d)
    return np.array([
        [1 - leave_rest, 0.8 * leave_rest, 0.2 * leave_rest],
        [0.05, 1 - 0.05 - explore_to_run, explore_to_run],
        [0.02, 0.10, 0.88],
    ])


def simulate(seed: int, sessions: int, frames: tuple[int, int], dropout: float):
    """Sessions of ragged length with tracking drop-outs: (SequenceData, true parameters)."""
    E, K = len(DOSES), len(STATES)
    config = HMMConfig(K, "gaussian", obs_dim=2, num_envs=E, vary=("transitions",))
    params = make_hmm_params([0.6, 0.3, 0.1], np.stack([transitions(d) for d in DOSES]), means=MEANS, covs=COVS,
                             num_envs=E)
    k_sim, k_cut = jax.random.split(jax.random.PRNGKey(seed))
    draw = jax.jit(lambda key, p: simulate_arrays(key, config, p, num_sequences=sessions, num_steps=frames[1]))
    y_all, _ = (np.asarray(a) for a in draw(k_sim, jax.tree.map(jax.numpy.asarray, params)))
    rng = np.random.default_rng(int(jax.random.randint(k_cut, (), 0, 2**31 - 1)))
    y = []
    for e in range(E):
        ys = []
        for n in range(sessions):
            length = int(rng.integers(frames[0], frames[1] + 1))
            seq = y_all[e, n, :length].copy()
            # tracking drop-outs: bursts of 1-5 frames with nothing observed
            for start in np.flatnonzero(rng.uniform(size=length) < dropout / 3):
                seq[start:start + int(rng.integers(1, 6))] = np.nan
            ys.append(seq)
        y.append(ys)
    data = causalid.SequenceData.from_arrays(y, names=["speed", "turning"],
                                             env_names=[f"{d:g} mg/kg" for d in DOSES])
    return data, params


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=4, help="sessions per condition")
    p.add_argument("--frames", type=int, nargs=2, default=(200, 400), metavar=("MIN", "MAX"),
                   help="session lengths are drawn uniformly from MIN..MAX frames")
    p.add_argument("--dropout", type=float, default=0.03, help="fraction of frames lost to tracking drop-outs")
    p.add_argument("--restarts", type=int, default=4, help="EM restarts per model")
    p.add_argument("--max-iters", type=int, default=100, help="EM iterations per restart")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="folder for the figure (default: a new temporary folder)")
    args = p.parse_args(argv)

    data, truth = simulate(args.seed, args.sessions, tuple(args.frames), args.dropout)
    steps = int(data.lengths.sum())
    print(f"{data}: {steps - data.num_observations} of {steps} frames lost to tracking drop-outs\n")

    report = compare_mechanisms(data, len(STATES), "gaussian", null="chi2", num_restarts=args.restarts,
                                max_iters=args.max_iters, key=args.seed, progress=False)
    print(report.summary())
    print(report.models.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    by_bic = report.models.loc[report.models["bic"].idxmin(), "model"]
    if by_bic != report.verdict:
        print(f"(BIC prefers '{by_bic}': charging log n = {np.log(data.num_observations):.1f} per parameter, it "
              "needs more data than the likelihood-ratio tests before per-environment parameters pay off)")
    print()

    fit = report.fits[report.verdict]
    print(fit.summary(), "\n")

    # against the truth (the states are in canonical order: increasing speed = rest, explore, run)
    trans_error = float(np.max(np.abs(fit.params.trans - truth.trans)))
    means_error = float(np.max(np.abs(fit.params.emissions.means - truth.emissions.means) / np.sqrt(
        np.diagonal(truth.emissions.covs, axis1=-2, axis2=-1))))
    print(f"largest transition-probability error: {trans_error:.3f}; largest emission-mean error: "
          f"{means_error:.2f} standard deviations")
    for (i, j) in ((0, 0), (1, 2)):
        print(f"P({STATES[i]} -> {STATES[j]}) by dose: " + ", ".join(
            f"{name} {fit.params.trans[e, i, j]:.3f} (true {truth.trans[e, i, j]:.3f})"
            for e, name in enumerate(data.env_names)))

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="causalid_hmm_"))
    out.mkdir(parents=True, exist_ok=True)
    figure = out / "hmm_behaviour.png"
    # a session of the lowest and of the highest dose
    fig = fit.plot(data=data, path=figure, sequences=[(0, 0), (len(DOSES) - 1, 0)], state_names=STATES)
    import matplotlib.pyplot as plt

    plt.close(fig)
    print(f"wrote {figure}")
    return {"verdict": report.verdict, "tests": report.tests, "models": report.models,
            "trans_error": trans_error, "means_error": means_error, "figure": figure}


if __name__ == "__main__":
    main()
