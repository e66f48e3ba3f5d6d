"""The synthetic reference table of Rajendran et al. 2024 (arXiv 2311.18048), re-run with causalid's LTI engines.

Setting (the reference experiment): n states, m = n inputs, full-state output (C square),
A = 0.9·A0/ρ(A0), B and C random Gaussian or the identity, E = n + 1 environments with
designed input laws u_t ~ N(μ_e, diag σ²_e), 12000 steps per environment from x_0 = 0, no
noise.  Columns are (zero_means, use_B, use_C) ∈ {F, T}³ with the random design
σ²_e = |N(0, I)|/2, plus the "max variability" design (nonzero means, B = C = I).

For every cell and seed the data are simulated with :func:`causalid.models.lti.simulate_lti`,
each engine is run with :func:`causalid.identify_lti`, and the table shows, averaged over
seeds, the pooled MCC of the recovered sources and the relative Frobenius error of
Ã = C A C⁻¹, next to the *published* MCC of the reference SGD learner (hard-coded from
Rajendran et al. 2024; the reference scored 64-sample batches, we score the pooled data).

    python examples/lti_reference_table.py                     # n = 2, 3; 2 seeds; moment + mle
    python examples/lti_reference_table.py --n 2 3 5 8 10 --seeds 5 --out table.csv
    python examples/lti_reference_table.py --n 2 --seeds 1 --methods moment
"""

import argparse
import csv
import time

import jax
import numpy as np

import causalid
from causalid import LTIData, identify_lti
from causalid.models import lti

# Rajendran et al. 2024 (arXiv 2311.18048): final train MCC of the reference code, 5 seeds; columns (zero_means, use_B, use_C)
PUBLISHED_COLUMNS = ("FFF", "FFT", "FTF", "FTT", "TFF", "TFT", "TTF", "TTT", "max-var")
PUBLISHED_MCC = {
    2: (0.866, 0.767, 0.730, 0.697, 0.633, 0.675, 0.734, 0.725, 0.968),
    3: (0.901, 0.910, 0.916, 0.861, 0.659, 0.618, 0.633, 0.667, 1.000),
    5: (0.892, 0.929, 0.928, 0.911, 0.657, 0.618, 0.620, 0.539, 0.995),
    8: (0.943, 0.940, 0.941, 0.867, 0.585, 0.479, 0.523, 0.414, 0.977),
    10: (0.939, 0.915, 0.925, 0.924, 0.708, 0.611, 0.604, 0.525, 0.996),
}


def columns():
    """(label, zero_means, use_B, use_C, design) for the nine columns of the table."""
    out = []
    for zero_means in (False, True):
        for use_B in (False, True):
            for use_C in (False, True):
                label = "".join("T" if f else "F" for f in (zero_means, use_B, use_C))
                out.append((label, zero_means, use_B, use_C, "random"))
    out.append(("max-var", False, False, False, "max-variability"))
    return out


def published(n, label):
    row = PUBLISHED_MCC.get(n)
    return float("nan") if row is None else row[PUBLISHED_COLUMNS.index(label)]


def simulate_cell(n, seed, zero_means, use_B, use_C, design, steps):
    """Data and truth of one cell (same key layout as tests/infer/test_lti.py::reference_cell)."""
    k = jax.random.split(jax.random.PRNGKey(seed), 4)
    system = lti.random_system(k[0], n, use_B=use_B, use_C=use_C)
    if design == "max-variability":
        des = lti.max_variability_design(n, zero_means=zero_means, key=k[1])
    else:
        des = lti.random_design(k[1], n + 1, n, zero_means=zero_means)
    sim = lti.simulate_lti(k[2], system, design=des, num_steps=steps)
    data = LTIData.from_arrays(sim["y"], input_mean=des.mean, input_var=des.var)
    A_tilde = system.C @ system.A @ np.linalg.inv(system.C)
    return data, A_tilde, sim["u"][:, :, :-1]            # u_{T-1} reaches no observation


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[2, 3], help="state dimensions (rows of the table)")
    ap.add_argument("--seeds", type=int, default=2, help="seeds per cell (the reference used 5)")
    ap.add_argument("--steps", type=int, default=12000, help="time steps per environment")
    ap.add_argument("--methods", nargs="+", default=["moment", "mle"], choices=["moment", "mle", "bayes"])
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--out", help="write the table as CSV (one row per n, column and method)")
    args = ap.parse_args(argv)

    start = time.perf_counter()
    rows = []
    for n in args.n:
        for label, zero_means, use_B, use_C, design in columns():
            acc = {m: {"mcc": [], "a_err": [], "seconds": 0.0} for m in args.methods}
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                data, A_tilde, u = simulate_cell(n, seed, zero_means, use_B, use_C, design, args.steps)
                for method in args.methods:
                    t0 = time.perf_counter()
                    res = identify_lti(data, method=method)
                    acc[method]["seconds"] += time.perf_counter() - t0
                    acc[method]["mcc"].append(causalid.mcc(u, res.sources))
                    acc[method]["a_err"].append(causalid.relative_error(A_tilde, res.A))
            for method in args.methods:
                a = acc[method]
                rows.append({
                    "n": n, "column": label, "zero_means": zero_means, "use_B": use_B, "use_C": use_C,
                    "design": design, "method": method, "seeds": args.seeds, "steps": args.steps,
                    "mcc": float(np.mean(a["mcc"])), "mcc_min": float(np.min(a["mcc"])),
                    "a_tilde_error": float(np.mean(a["a_err"])),
                    "a_tilde_error_max": float(np.max(a["a_err"])),
                    "seconds": a["seconds"], "published_mcc": published(n, label),
                })

    head = f"{'n':>3} {'column':>8} {'published':>9}"
    for method in args.methods:
        head += f" {method + ' MCC':>11} {method + ' Ã err':>12} {'s':>6}"
    print(f"pooled MCC and relative error of Ã, mean over {args.seeds} seed(s), {args.steps} steps; "
          "'published' = reference SGD learner's MCC (Rajendran et al. 2024)")
    print(head)
    for n in args.n:
        for label, *_ in columns():
            cell = {r["method"]: r for r in rows if r["n"] == n and r["column"] == label}
            line = f"{n:>3} {label:>8} {published(n, label):>9.3f}"
            for method in args.methods:
                r = cell[method]
                line += f" {r['mcc']:>11.4f} {r['a_tilde_error']:>12.2e} {r['seconds']:>6.2f}"
            print(line)
    total = time.perf_counter() - start
    print(f"wall time {total:.1f} s (including simulation and JIT compilation)")
    if args.out:
        with open(args.out, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
