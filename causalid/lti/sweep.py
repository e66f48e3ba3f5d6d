r"""Sweep plug-in of the LTI wing (:mod:`causalid.verify.plugin`).

``lti``
    Multi-environment LTI systems with designed input laws (Rajendran et al. 2024, arXiv 2311.18048,
    :mod:`causalid.models.lti`): a random stable system (``states`` = inputs = outputs,
    ``use_B``, ``use_C``), input laws from the ``design`` (``random``, ``max-variability``, or
    ``designed`` by :func:`causalid.design_lti` with ``design_criterion``), ``envs``
    environments of ``steps`` steps, optional ``obs_noise`` / ``process_noise`` variances.
    Engines ``moment``, ``mle``, ``bayes``, ``markov`` (:func:`causalid.identify_lti`).
    Metrics (:func:`causalid.lti.metrics.lti_metrics`): ``mcc`` of the recovered
    sources, ``A_tilde_error``, ``B_tilde_amari``, ``B_tilde_error``, ``eigenvalue_error``,
    ``markov_error``, ``h2_error``.
"""

from __future__ import annotations

import warnings

import jax
import numpy as np

from causalid.dynamics.system import InputDesign, LTISystem
from causalid.errors import CausalIDError, ConvergenceWarning
from causalid.lti.data import LTIData
from causalid.lti.design import design_lti
from causalid.lti.fit import identify_lti
from causalid.lti.metrics import lti_metrics
from causalid.models import lti
from causalid.verify.plugin import NOT_APPLICABLE, Family, Scores, Setting, one_line, seed_int

__all__ = ["LTI"]


_LTI_METRICS = (
    "mcc",
    "A_tilde_error",
    "B_tilde_amari",
    "B_tilde_error",
    "eigenvalue_error",
    "markov_error",
    "h2_error",
)


def _lti_resolve(s):
    n = s["states"]
    if s["envs"] is None:
        s["envs"] = n + 1
    if s["design"] == "max-variability" and s["envs"] != n + 1:
        raise ValueError(
            f"design = 'max-variability' has states + 1 = {n + 1} environments; got envs = "
            f"{s['envs']} (leave envs unset or use another design)"
        )
    if s["envs"] < 2:
        raise ValueError(f"envs = {s['envs']}: give at least 2 environments")
    if s["design"] == "designed" and s["var_low"] <= 0:
        raise ValueError(f"var_low = {s['var_low']}: the designer needs input variances > 0")
    if s["var_high"] <= s["var_low"]:
        raise ValueError(
            f"var_low = {s['var_low']} and var_high = {s['var_high']}: need var_low < var_high"
        )
    return s


def _lti_design(key, s):
    n, E = s["states"], s["envs"]
    if s["design"] == "max-variability":
        return lti.max_variability_design(n, zero_means=s["zero_means"], key=key)
    if s["design"] == "random":
        return lti.random_design(key, E, n, zero_means=s["zero_means"])
    d = design_lti(
        n,
        E,
        var_bounds=(s["var_low"], s["var_high"]),
        mean_bound=None if s["zero_means"] else s["mean_bound"],
        steps=s["steps"],
        criterion=s["design_criterion"],
        key=key,
    )
    return InputDesign(
        np.asarray(d.mean), np.asarray(d.var), name=f"designed ({s['design_criterion']})"
    )


def _simulate_lti(key, s, R):
    """R replicates; a designed law (``design = 'designed'``) is optimised once per cell."""
    n = s["states"]
    k_design, k_rep = jax.random.split(key)
    shared = _lti_design(k_design, s) if s["design"] == "designed" else None
    reps = []
    for k in jax.random.split(k_rep, R):  # random_system draws by rejection (NumPy): no vmap
        k_sys, k_des, k_run = jax.random.split(k, 3)
        system = lti.random_system(k_sys, n, use_B=s["use_B"], use_C=s["use_C"])
        design = shared if shared is not None else _lti_design(k_des, s)
        out = lti.simulate_lti(
            k_run,
            system,
            design=design,
            num_steps=s["steps"],
            obs_noise_var=s["obs_noise"],
            process_noise_var=s["process_noise"],
        )
        reps.append({"system": system, "design": design, "y": out["y"], "u": out["u"][:, :, :-1]})
    return {"replicates": reps, "settings": s}


def _lti_fit_score(method, options, sim, key, metrics):

    s = sim["settings"]
    opts = dict(options)
    obs = opts.pop("obs_noise")
    opts["obs_noise"] = {"none": None, "estimate": True, "known": s["obs_noise"]}[obs]
    if method == "markov" and opts.get("state_dim") is None:
        opts["state_dim"] = s["states"]
    seed = seed_int(key)
    scores = Scores(metrics, len(sim["replicates"]))
    for r, rep in enumerate(sim["replicates"]):  # identify_lti has no batched form
        data = LTIData.from_arrays(
            rep["y"], input_mean=rep["design"].mean, input_var=rep["design"].var
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", ConvergenceWarning)
                res = identify_lti(data, method=method, key=seed, **opts)
        except (CausalIDError, ConvergenceWarning) as exc:
            scores.fail(r, one_line(exc))
            continue
        est = LTISystem(res.A, res.B, res.C)
        got = lti_metrics(rep["system"], est, sources_true=rep["u"], sources_est=res.sources)
        rho = float(np.max(np.abs(np.linalg.eigvals(np.asarray(res.A)))))
        unstable = "h2_error" in scores.values and "h2_error" not in got and rho >= 1
        if unstable:  # a failed fit, not a metric that does not apply: counted as missing
            got["h2_error"] = np.nan
        scores.set(
            r,
            got,
            f"{NOT_APPLICABLE} to a '{method}' estimate in {res.coordinates} coordinates"
            + ("" if res.sources is not None else " without sources"),
        )
        if unstable:
            scores.errors["h2_error"][r] = f"estimate unstable (spectral radius {rho:.4g} >= 1)"
    return scores


LTI = Family(
    name="lti",
    settings={
        "states": Setting(int, 2, minimum=1, doc="state dimension n (= inputs = outputs)"),
        "envs": Setting(int, None, minimum=2, doc="environments E (default states + 1)"),
        "steps": Setting(int, 2000, minimum=3, doc="time steps per environment"),
        "design": Setting(
            str,
            "random",
            choices=("random", "max-variability", "designed"),
            doc="input laws: random (σ² = |N(0,I)|/2), the one-hot max-variability "
            "design, or designed by causalid.design_lti",
        ),
        "design_criterion": Setting(
            str,
            "pairwise",
            choices=("pairwise", "cond", "moment"),
            doc="criterion of design = 'designed'",
        ),
        "var_low": Setting(float, 1e-2, minimum=0.0, doc="smallest input variance (designed)"),
        "var_high": Setting(float, 1.0, minimum=0.0, doc="largest input variance (designed)"),
        "mean_bound": Setting(
            float, 1.0, minimum=0.0, doc="bound on |mean| (designed, zero_means false)"
        ),
        "zero_means": Setting(bool, False, doc="zero input means"),
        "use_B": Setting(bool, True, doc="random B (false: B = I)"),
        "use_C": Setting(bool, True, doc="random C (false: C = I)"),
        "obs_noise": Setting(float, 0.0, minimum=0.0, doc="observation-noise variance r"),
        "process_noise": Setting(float, 0.0, minimum=0.0, doc="process-noise variance q"),
    },
    engines={
        method: {
            "obs_noise": Setting(
                str,
                "none",
                choices=("none", "estimate", "known"),
                doc="observation noise of the fit: none, estimated, or the true variance",
            ),
            "process_noise": Setting(bool, False, doc="estimate a process-noise variance"),
            "check": Setting(bool, True, doc="check identifiability first (failures are recorded)"),
            **(
                {
                    "max_iters": Setting(int, 2000, minimum=1),
                    "tol": Setting(float, 1e-7, minimum=0.0),
                }
                if method == "mle"
                else {}
            ),
            **(
                {
                    "num_warmup": Setting(int, 500, minimum=1),
                    "num_samples": Setting(int, 1000, minimum=1),
                    "num_chains": Setting(int, 1, minimum=1),
                }
                if method == "bayes"
                else {}
            ),
            **(
                {
                    "horizon": Setting(int, None, minimum=1),
                    "state_dim": Setting(
                        int, None, minimum=1, doc="model order (default: the true states)"
                    ),
                }
                if method == "markov"
                else {}
            ),
        }
        for method in ("moment", "mle", "bayes", "markov")
    },
    default_engines={"moment": {"method": "moment"}},
    metrics=_LTI_METRICS,
    default_metrics=("mcc", "A_tilde_error", "B_tilde_amari"),
    simulate=_simulate_lti,
    fit_score=_lti_fit_score,
    resolve=_lti_resolve,
)
