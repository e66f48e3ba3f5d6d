"""Plan an LTI experiment, run it in simulation, identify the system, and compare with random laws.

The question an experimenter faces (Rajendran et al. 2024, arXiv 2311.18048): with E environments of T steps
each and input variances limited to a box [lo, hi], which input law should each
environment use so that B̃ (the input matrix, in observed coordinates) and the sources are
identified as precisely as possible?

1. Plan: ``causalid.design_lti`` chooses the laws with the criterion written for the
   engine used next — ``"moment"``, the predicted error of the closed-form engine (on its
   own it finds the structure of the reference's one-hot "max variability" design, a quiet
   baseline and one loud channel per environment, or a variant of it that is at least as
   good by the criterion).  The identifiability report is printed.
2. Simulate: ``causalid.models.lti.simulate_lti`` runs random stable systems (n = m) under
   the designed laws and under random laws of the same budget (every variance log-uniform
   on the same box).
3. Identify: ``causalid.identify_lti(method="moment")`` on both, scored by the Amari
   distance of B̂ and the MCC of the recovered sources.
4. Next: ``causalid.design_next`` proposes a further environment for the first system and
   lists which parameters it is expected to sharpen most.

    python examples/design_experiment.py                  # n = m = 4, 8 systems
    python examples/design_experiment.py --quick          # n = m = 3, 3 systems, 300 steps (smoke test)
    python examples/design_experiment.py --inputs 5 --systems 20 --steps 2000 --plot design.png
"""

import argparse
import time

import jax
import numpy as np
from causalid.models import lti

import causalid
from causalid import InputDesign, LTIData, identify_lti
from causalid.lti.metrics import amari_distance, mcc


def _score(system, design, steps, seed):
    sim = lti.simulate_lti(jax.random.PRNGKey(seed), system, design=design, num_steps=steps)
    data = LTIData.from_arrays(sim["y"], input_mean=design.mean, input_var=design.var)
    res = identify_lti(data, method="moment")
    return data, {"amari": amari_distance(system.C @ system.B, res.B),
                  "mcc": mcc(sim["u"][:, :, :-1], res.sources)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=4, help="n = m, the state and input dimension")
    ap.add_argument("--envs", type=int, default=None, help="environments (default m + 1)")
    ap.add_argument("--steps", type=int, default=1000, help="time steps per environment")
    ap.add_argument("--var-bounds", type=float, nargs=2, default=(1e-2, 1.0), metavar=("LO", "HI"))
    ap.add_argument("--criterion", default="moment", choices=list(causalid.design.CRITERIA[:3]))
    ap.add_argument("--systems", type=int, default=8, help="random systems to compare on")
    ap.add_argument("--quick", action="store_true",
                    help="small settings for a smoke test (also fewer optimiser starts and steps)")
    ap.add_argument("--plot", default="", help="write a figure of the design here")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    search = {}                        # optimiser settings: the library's defaults unless --quick
    next_search = {}
    if args.quick:
        args.inputs, args.systems, args.steps = 3, 3, 300
        search = {"num_starts": 8, "num_iters": 100}
        next_search = {"num_starts": 4, "num_iters": 60, "num_samples": 8}
    m = args.inputs
    E = args.envs or m + 1
    lo, hi = args.var_bounds

    t0 = time.perf_counter()
    design = causalid.design_lti(m, E, var_bounds=(lo, hi), steps=args.steps, criterion=args.criterion,
                                 key=args.seed, **search)
    print(design.summary())
    print(f"(planned in {time.perf_counter() - t0:.1f} s)\n")
    if args.plot:
        import matplotlib.pyplot as plt

        plt.close(design.plot(path=args.plot))
        print(f"wrote {args.plot}")

    rng = np.random.default_rng(args.seed)
    rows = []
    first_data = None
    for s in range(args.systems):
        system = lti.random_system(jax.random.PRNGKey(100 + s), m)
        random_law = InputDesign(None, np.exp(rng.uniform(np.log(lo), np.log(hi), (E, m))), name="random")
        data, designed = _score(system, design.to_input_design(), args.steps, s)
        _, rnd = _score(system, random_law, args.steps, s)
        if first_data is None:
            first_data = data
        rows.append({"system": s, "designed_amari": designed["amari"], "random_amari": rnd["amari"],
                     "designed_mcc": designed["mcc"], "random_mcc": rnd["mcc"]})
    print(f"{'system':>6} {'Amari designed':>15} {'Amari random':>13} {'MCC designed':>13} {'MCC random':>11}")
    for r in rows:
        print(f"{r['system']:>6} {r['designed_amari']:>15.5f} {r['random_amari']:>13.5f} "
              f"{r['designed_mcc']:>13.5f} {r['random_mcc']:>11.5f}")
    med_d = float(np.median([r["designed_amari"] for r in rows]))
    med_r = float(np.median([r["random_amari"] for r in rows]))
    print(f"median Amari error: designed {med_d:.5f}, random {med_r:.5f} (ratio {med_d / med_r:.2f}); "
          f"predicted for the design {design.values['moment']:.5f}")

    nxt = causalid.design_next(first_data, var_bounds=(lo, hi), steps=args.steps - 1, key=args.seed,
                               **next_search)
    print("\nnext environment for system 0:")
    print(nxt.summary())
    return {"design": design, "rows": rows, "median_designed": med_d, "median_random": med_r, "next": nxt}


if __name__ == "__main__":
    main()
