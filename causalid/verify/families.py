r"""Model families of a sweep: what can be set, simulated, fitted and scored.

A *family* names a generative model, the settings its generator takes (any of which may be a
grid axis of a sweep), the engines that can fit it and the metrics that score a fit.  One cell
of a sweep is one resolved setting of every generator key; :func:`evaluate_cell` simulates
``replicates`` data sets for it, runs every engine on them and scores each fit:

    simulate (key_sim, settings, R)  →  R data sets and their truth
    engine(data, key_fit)            →  R estimates
    metric(truth, estimate)          →  R values per metric

The simulation of all replicates is one compiled program where the generator is a pure JAX
program (bivariate, multivariate binary and HMM generators: a :func:`jax.lax.map` over the
replicates' keys, see :func:`_replicate_program`); the LTI generator draws a random system by
rejection (NumPy), so its replicates are drawn one by one.  Engines with a
batched form run once on all replicates (:func:`causalid.discover_batch` for the exchangeable
families); the LTI and HMM engines have none and run once per replicate.  Every engine of a
cell receives the same fit key (common random numbers: engines are compared on the same data
and the same random choices); the structure engines of :func:`causalid.discover_batch` take the
sweep seed itself as their integer seed, which they compile in as a constant.

Families
--------
``bivariate``
    The causal de Finetti bivariate continuous reference (science.md §1.4,
    :func:`causalid.models.exchangeable.scm_bivariate_continuous`): truth uniform over X→Y,
    Y→X and no edge.  Settings ``envs``, ``samples``, ``regime``.  Engines ``cdf`` and
    ``bayes`` (:func:`causalid.discover_batch`).  Metrics ``accuracy`` (1 when the graph is
    recovered exactly), ``shd``, ``normalized_shd``, ``precision``, ``recall``,
    ``direction_accuracy`` (:func:`causalid.structure_metrics`; NaN when no true edge was found).
``multivariate-binary``
    The multivariate binary reference (§1.4,
    :func:`causalid.models.exchangeable.scm_multivariate_binary`).  Settings ``envs``,
    ``samples``, ``vars``; engines and metrics as ``bivariate``.
``lti``
    Multi-environment LTI systems with designed input laws (§2.1,
    :mod:`causalid.models.lti`): a random stable system (``states`` = inputs = outputs,
    ``use_B``, ``use_C``), input laws from the ``design`` (``random``, ``max-variability``, or
    ``designed`` by :func:`causalid.design_lti` with ``design_criterion``), ``envs``
    environments of ``steps`` steps, optional ``obs_noise`` / ``process_noise`` variances.
    Engines ``moment``, ``mle``, ``bayes``, ``markov`` (:func:`causalid.identify_lti`).
    Metrics (:func:`causalid.identify.lti_metrics.lti_metrics`): ``mcc`` of the recovered
    sources, ``A_tilde_error``, ``B_tilde_amari``, ``B_tilde_error``, ``eigenvalue_error``,
    ``markov_error``, ``h2_error``.
``hmm``
    Multi-environment hidden Markov models (§3, :func:`causalid.models.hmm.random_hmm_params`
    and ``simulate_arrays``): ``states``, ``envs``, ``sequences`` per environment of ``steps``
    steps, ``emission`` (gaussian, poisson, categorical), ``obs_dim``, and which mechanisms
    ``vary`` across environments in the truth.  Engines ``em``, ``map``, ``nuts``
    (:func:`causalid.fit_hmm`, fitting the true sharing pattern unless ``shared`` says otherwise)
    and ``compare`` (:func:`causalid.compare_mechanisms`).  Metrics ``state_accuracy`` (Viterbi
    path vs true states after the best relabelling), ``trans_error`` (mean absolute error of the
    relabelled transition matrices), ``emission_error`` (relative error of the relabelled means /
    rates / probabilities), ``loglik_gap`` (log-likelihood per observed step of the fit minus that
    of the true parameters), ``converged`` (1/0), and ``mechanism_correct`` (``compare`` only:
    1 when the verdict names exactly the mechanisms that vary in the truth).

Nothing is dropped: a value that is missing is recorded as NaN with the reason in the ``error``
column of the store — for a metric that does not apply to an engine's estimate
(``A_tilde_error`` of a partial-observation fit, ``mechanism_correct`` of a single fit) a reason
beginning with ``"not applicable"``; for a fit that failed with a
:class:`~causalid.errors.CausalIDError` (or, for the LTI engines, a
:class:`~causalid.errors.ConvergenceWarning`) the exception's first line; for a metric that is
undefined on one replicate (``direction_accuracy`` when no true edge was found) why.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from causalid._compile import compile_lowered, compiled
from causalid.errors import CausalIDError, ConvergenceWarning

__all__ = ["FAMILIES", "Family", "Scores", "Setting", "cell_keys", "evaluate_cell"]

REQUIRED = object()
NOT_APPLICABLE = "not applicable"
"""How the ``error`` of a metric that does not apply to an engine begins (not a failure)."""


@dataclass(frozen=True)
class Setting:
    """One setting of a generator or an engine.

    Attributes
    ----------
    kind : {int, float, bool, str}
    default : value, None or ``REQUIRED``
        ``None``: not set (a family's ``resolve`` may derive it, e.g. ``envs = states + 1``);
        ``REQUIRED``: the sweep must give it.
    choices : tuple
        Allowed values of a ``str`` setting.
    minimum, maximum : float, optional
        Smallest and largest allowed values of a number.
    doc : str
    """

    kind: type
    default: Any = REQUIRED
    choices: tuple = ()
    minimum: float | None = None
    doc: str = ""
    maximum: float | None = None

    def check(self, value, where: str):
        """The value converted to ``kind``; raises ``ValueError`` with a one-line message."""
        kind = self.kind
        if value is None:
            raise ValueError(f"{where}: a value is required")
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{where} = {value!r}: give true or false")
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{where} = {value!r}: give an integer")
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{where} = {value!r}: give a number")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{where} = {value!r}: give a finite number")
        elif kind is str:
            if not isinstance(value, str):
                raise ValueError(f"{where} = {value!r}: give a string")
            if self.choices and value not in self.choices:
                raise ValueError(f"{where} = {value!r}: choose one of {list(self.choices)}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{where} = {value!r}: must be at least {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{where} = {value!r}: must be at most {self.maximum:g}")
        return value


@dataclass(frozen=True)
class Family:
    """A model family: its settings, engines and metrics, and how a cell is computed.

    Attributes
    ----------
    name : str
    settings : dict of Setting
        Generator settings; any of them may be a grid axis.
    engines : dict of {method: dict of Setting}
        Engine methods and their options.
    default_engines : dict
        Engines of a sweep that names none (``{name: {"method": ..., options}}``).
    metrics, default_metrics : tuple of str
    resolve : callable(settings) -> settings
        Cross-checks of one cell's settings (raises ``ValueError``).
    check_engine : callable(method, options, settings) -> None
        Cross-checks of an engine against a cell (raises ``ValueError``).
    simulate : callable(key, settings, R) -> dict
        ``R`` data sets with their truth (:func:`evaluate_cell` adds the sweep seed as
        ``"seed"``).
    fit_score : callable(method, options, sim, key, metrics) -> Scores
        Per-metric ``(R,)`` values and the reasons for the missing ones.
    precompile : callable(settings, R) -> callable or None
        Traces a cell's generator now and returns a function that compiles it (safe to run in
        another thread), or None when there is nothing to compile ahead.
    """

    name: str
    settings: dict[str, Setting]
    engines: dict[str, dict[str, Setting]]
    default_engines: dict[str, dict]
    metrics: tuple[str, ...]
    default_metrics: tuple[str, ...]
    simulate: Callable
    fit_score: Callable
    resolve: Callable = field(default=lambda settings: settings)
    check_engine: Callable = field(default=lambda method, options, settings: None)
    precompile: Callable = field(default=lambda settings, R: None)


def cell_keys(seed: int, index: int):
    """``(key_sim, key_fit)`` of cell ``index``: derived from the sweep seed and the index only.

    ``fold_in(PRNGKey(seed), index)`` split in two, so a cell draws the same numbers whatever
    order, process or machine it runs in.
    """
    key = jax.random.fold_in(jax.random.PRNGKey(int(seed)), int(index))
    k_sim, k_fit = jax.random.split(key)
    return k_sim, k_fit


class Scores:
    """Per-metric values of R replicates (NaN until set) and why a value is missing.

    Attributes
    ----------
    values : dict of {metric: float array (R,)}
    errors : dict of {metric: list of R str}
        "" where the value is set.
    """

    def __init__(self, metrics, R: int):
        self.values = {m: np.full(R, np.nan) for m in metrics}
        self.errors = {m: [""] * R for m in metrics}

    def fail(self, r: int | slice, message: str) -> None:
        """Every metric of replicate(s) ``r`` is missing, for ``message``."""
        for errs in self.errors.values():
            for i in range(len(errs))[r] if isinstance(r, slice) else [r]:
                errs[i] = message

    def set(
        self,
        r: int,
        scores: dict,
        missing: str,
        undefined: str = "undefined (NaN) for this replicate",
    ) -> None:
        """Values of replicate ``r`` from ``scores``; metrics absent from it get the reason
        ``missing``, NaN values the reason ``undefined``."""
        for m, v in self.values.items():
            if m not in scores:
                self.errors[m][r] = missing
                continue
            v[r] = scores[m]
            if np.isnan(v[r]):
                self.errors[m][r] = undefined


def _seed_int(key) -> int:
    """A non-negative int32 seed from a key, for engines that take integer seeds."""
    return int(jax.random.randint(key, (), 0, 2**31 - 1))


def evaluate_cell(
    family: Family, settings: dict, engines: dict, metrics, replicates: int, seed: int, index: int
) -> list[dict]:
    """Simulate, fit and score one cell.

    Returns
    -------
    list of dict
        One record per engine: ``engine``, ``values`` (dict metric → float array ``(R,)``),
        ``errors`` (dict metric → list of R strings, "" where the value is set) and ``seconds``
        (wall time of the engine on all replicates of the cell).
    """
    k_sim, k_fit = cell_keys(seed, index)
    sim = {**family.simulate(k_sim, settings, replicates), "seed": int(seed)}
    out = []
    for name, spec in engines.items():
        options = {k: v for k, v in spec.items() if k != "method"}
        t0 = time.perf_counter()
        scores = family.fit_score(spec["method"], options, sim, k_fit, tuple(metrics))
        seconds = time.perf_counter() - t0
        out.append(
            {"engine": name, "values": scores.values, "errors": scores.errors, "seconds": seconds}
        )
    return out


@functools.lru_cache(maxsize=64)
def _replicate_program(draw: Callable, *static) -> Callable:
    """``keys (R,) -> draw(key, *static)`` for every key, as one jitted program (cached).

    The replicates run in a compiled loop (:func:`jax.lax.map`), not a Python one.  For these
    small generators the loop compiles in about half the time of :func:`jax.vmap` (and
    compilation, once per cell shape, dominates a cell's simulation); it draws the same numbers
    (bit for bit for the exchangeable generators, up to rounding, ~1e-15, for the HMM's).
    """
    return jax.jit(lambda keys: jax.lax.map(lambda k: draw(k, *static), keys))


# executables compiled ahead of time by `precompile`, keyed by (draw, static, R); a handful
_AHEAD: dict = {}
_AHEAD_SIZE = 4


def _replicates(draw: Callable, static: tuple, keys):
    """``draw(key, *static)`` for every key: the executable compiled ahead, else compiled now
    (the same program with the same options either way, so the draws are the same)."""
    executable = _AHEAD.get((draw, static, keys.shape[0]))
    if executable is None:
        executable = compiled(_replicate_program(draw, *static), keys)
    return executable(keys)


def _ahead(draw: Callable, static: tuple, R: int) -> Callable[[], None] | None:
    """Trace the replicates' program now; return the function that compiles it.

    Tracing runs here, in the calling thread (NumPyro's effect handlers keep a global stack, so
    NumPyro programs must not be traced from two threads at once); the returned function only
    compiles (XLA releases the GIL) and may run in another thread while this one fits the
    previous cell.  The executable is the one :func:`_replicates` would build, so the draws are
    the same.
    """
    key = (draw, static, R)
    if key in _AHEAD:
        return None
    shape = jax.eval_shape(lambda: jax.random.split(jax.random.PRNGKey(0), R))
    lowered = _replicate_program(draw, *static).lower(shape)

    def compile_() -> None:
        executable = compile_lowered(lowered)
        while len(_AHEAD) >= _AHEAD_SIZE:
            _AHEAD.pop(next(iter(_AHEAD)))
        _AHEAD[key] = executable

    return compile_


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


# ------------------------------------------------------------------------ exchangeable families

_STRUCTURE_METRICS = (
    "accuracy",
    "shd",
    "normalized_shd",
    "precision",
    "recall",
    "direction_accuracy",
)

_CDF_OPTIONS = {
    "alpha": Setting(float, 0.05, minimum=0.0, doc="significance level of the CI tests"),
    "ci_test": Setting(
        str,
        None,
        choices=("gcm", "kci", "rff", "fisherz", "gtest"),
        doc="CI test (default: gtest for discrete data, gcm for continuous)",
    ),
    "rule": Setting(
        str, "ordered", choices=("ordered", "reference"), doc="bivariate decision rule"
    ),
    "correction": Setting(
        str, None, choices=("bonferroni", "holm", "bh"), doc="multiple-testing control"
    ),
    "max_pairs": Setting(
        int, 64, minimum=1, doc="sample pairs per environment (cluster-robust tests)"
    ),
}
_BAYES_OPTIONS = {
    "max_parents": Setting(int, None, minimum=0, doc="largest parent set"),
    "edge_prior": Setting(float, 0.5, minimum=0.0, doc="prior probability of each edge"),
}


def _structure_scores(estimates: np.ndarray, truth: np.ndarray) -> list[dict]:
    """:func:`causalid.structure_metrics` plus ``accuracy`` (exact recovery) per replicate."""
    from causalid.identify.metrics import structure_metrics

    out = []
    for est, true in zip(estimates, truth):
        s = structure_metrics(est, true)
        s["accuracy"] = float(s["shd"] == 0)
        out.append(s)
    return out


def _discover_fit_score(method, options, sim, key, metrics):
    """All replicates in one :func:`causalid.discover_batch` call.

    The engine's integer seed is the sweep seed (``sim["seed"]``), not a per-cell one: the causal
    de Finetti engine compiles its tests with the seed as a constant, so one seed lets every
    cell of the same shapes reuse the compiled tests.  The cells still differ in their data.
    """
    from causalid.infer.discover import discover_batch

    x, truth = sim["x"], sim["adjacency"]
    scores = Scores(metrics, len(truth))
    opts = {k: v for k, v in options.items() if v is not None}
    if method == "cdf":
        opts["diagnose"] = False
    try:
        results = discover_batch(x, method=method, seed=sim["seed"], **opts)
    except CausalIDError as exc:
        scores.fail(slice(None), _one_line(exc))
        return scores
    est = np.stack([np.asarray(r.adjacency(), dtype=int) for r in results])
    for r, s in enumerate(_structure_scores(est, truth)):
        scores.set(
            r,
            s,
            "",
            undefined="undefined: the estimate has none of the true edges (or the truth none)",
        )
    return scores


def _check_discover(method, options, settings):
    if method == "cdf":
        if settings["samples"] < 2:
            raise ValueError(
                f"engine 'cdf' needs samples >= 2 per environment; got samples = "
                f"{settings['samples']}"
            )
        if options.get("ci_test") == "gtest" and "vars" not in settings:
            raise ValueError(
                "ci_test = 'gtest' needs discrete data; the bivariate family is continuous "
                "(use gcm, kci, rff or fisherz)"
            )
        if not 0 < options.get("alpha", 0.05) < 1:
            raise ValueError(f"alpha = {options['alpha']}: give a level in (0, 1)")
    if method == "bayes" and not 0 < options.get("edge_prior", 0.5) < 1:
        raise ValueError(f"edge_prior = {options['edge_prior']}: give a probability in (0, 1)")


def _bivariate_static(s) -> tuple:
    return (s["envs"], s["samples"], s["regime"])


def _precompile_bivariate(s, R):
    from causalid.models.exchangeable import scm_bivariate_continuous

    return _ahead(scm_bivariate_continuous, _bivariate_static(s), R)


def _simulate_bivariate(key, s, R):
    from causalid.models.exchangeable import bivariate_adjacency, scm_bivariate_continuous

    x, label = _replicates(scm_bivariate_continuous, _bivariate_static(s), jax.random.split(key, R))
    return {"x": np.asarray(x), "adjacency": bivariate_adjacency(label)}


def _binary_static(s) -> tuple:
    return (s["envs"], s["samples"], s["vars"])


def _precompile_binary(s, R):
    from causalid.models.exchangeable import scm_multivariate_binary

    return _ahead(scm_multivariate_binary, _binary_static(s), R)


def _simulate_binary(key, s, R):
    from causalid.models.exchangeable import scm_multivariate_binary

    x, adj = _replicates(scm_multivariate_binary, _binary_static(s), jax.random.split(key, R))
    return {"x": np.asarray(x), "adjacency": np.asarray(adj, dtype=int)}


_EXCHANGEABLE_SETTINGS = {
    "envs": Setting(int, REQUIRED, minimum=2, doc="environments E"),
    "samples": Setting(int, 2, minimum=1, doc="samples per environment N"),
}

BIVARIATE = Family(
    name="bivariate",
    settings={
        **_EXCHANGEABLE_SETTINGS,
        "regime": Setting(
            str,
            "both",
            choices=("both", "cause", "mechanism"),
            doc="which mechanisms vary across environments",
        ),
    },
    engines={"cdf": _CDF_OPTIONS, "bayes": _BAYES_OPTIONS},
    default_engines={"cdf": {"method": "cdf"}},
    metrics=_STRUCTURE_METRICS,
    default_metrics=("accuracy", "shd"),
    simulate=_simulate_bivariate,
    precompile=_precompile_bivariate,
    fit_score=_discover_fit_score,
    check_engine=_check_discover,
)

MULTIVARIATE_BINARY = Family(
    name="multivariate-binary",
    settings={
        **_EXCHANGEABLE_SETTINGS,
        "vars": Setting(int, 3, minimum=2, doc="variables d of the random DAG"),
    },
    engines={"cdf": _CDF_OPTIONS, "bayes": _BAYES_OPTIONS},
    default_engines={"cdf": {"method": "cdf"}},
    metrics=_STRUCTURE_METRICS,
    default_metrics=("normalized_shd", "shd", "accuracy"),
    simulate=_simulate_binary,
    precompile=_precompile_binary,
    fit_score=_discover_fit_score,
    check_engine=_check_discover,
)


# ------------------------------------------------------------------------------------ LTI

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
    from causalid.models import lti

    n, E = s["states"], s["envs"]
    if s["design"] == "max-variability":
        return lti.max_variability_design(n, zero_means=s["zero_means"], key=key)
    if s["design"] == "random":
        return lti.random_design(key, E, n, zero_means=s["zero_means"])
    from causalid.design.lti import design_lti

    d = design_lti(
        n,
        E,
        var_bounds=(s["var_low"], s["var_high"]),
        mean_bound=None if s["zero_means"] else s["mean_bound"],
        steps=s["steps"],
        criterion=s["design_criterion"],
        key=key,
    )
    from causalid.dynamics.system import InputDesign

    return InputDesign(
        np.asarray(d.mean), np.asarray(d.var), name=f"designed ({s['design_criterion']})"
    )


def _simulate_lti(key, s, R):
    """R replicates; a designed law (``design = 'designed'``) is optimised once per cell."""
    from causalid.models import lti

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
    from causalid.data.lti import LTIData
    from causalid.dynamics.system import LTISystem
    from causalid.identify.lti_metrics import lti_metrics
    from causalid.infer.lti import identify_lti

    s = sim["settings"]
    opts = dict(options)
    obs = opts.pop("obs_noise")
    opts["obs_noise"] = {"none": None, "estimate": True, "known": s["obs_noise"]}[obs]
    if method == "markov" and opts.get("state_dim") is None:
        opts["state_dim"] = s["states"]
    seed = _seed_int(key)
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
            scores.fail(r, _one_line(exc))
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


# ------------------------------------------------------------------------------------ HMM

_HMM_METRICS = (
    "state_accuracy",
    "trans_error",
    "emission_error",
    "loglik_gap",
    "converged",
    "mechanism_correct",
)
_VARY = {
    "none": (),
    "transitions": ("transitions",),
    "emissions": ("emissions",),
    "both": ("transitions", "emissions"),
}
_SHARED_OF_VARY = {
    "none": "all",
    "transitions": "emissions",
    "emissions": "transitions",
    "both": "none",
}


def _hmm_config(s):
    from causalid.models.hmm import HMMConfig

    return HMMConfig(
        s["states"],
        s["emission"],
        obs_dim=s["obs_dim"],
        num_envs=s["envs"],
        vary=_VARY[s["vary"]],
        covariance=s["covariance"],
        num_categories=s["num_categories"] if s["emission"] == "categorical" else None,
    )


def _hmm_resolve(s):
    _hmm_config(s)  # the configuration's own checks
    return s


def _draw_hmm(key, config, sequences, steps, self_prob, separation, env_spread):
    """One replicate: a random HMM and its data."""
    from causalid.models.hmm import random_hmm_params, simulate_arrays

    k_par, k_run = jax.random.split(key)
    params = random_hmm_params(
        k_par, config, self_prob=self_prob, separation=separation, env_spread=env_spread
    )
    y, z = simulate_arrays(k_run, config, params, num_sequences=sequences, num_steps=steps)
    return params, y, z


def _hmm_static(s) -> tuple:
    keys = ("sequences", "steps", "self_prob", "separation", "env_spread")
    return (_hmm_config(s), *(s[k] for k in keys))


def _simulate_hmm(key, s, R):
    """R replicate HMMs and their data in one compiled draw."""
    static = _hmm_static(s)
    params, y, z = _replicates(_draw_hmm, static, jax.random.split(key, R))
    return {
        "config": static[0],
        "params": {k: np.asarray(v) for k, v in params.items()},
        "y": np.asarray(y, dtype=np.float64),
        "z": np.asarray(z),
        "settings": s,
    }


def _hmm_relabel(z_true: np.ndarray, z_fit: np.ndarray, K: int) -> np.ndarray:
    """Permutation ``perm``: fitted state ``perm[k]`` matches true state ``k`` (most agreement)."""
    from scipy.optimize import linear_sum_assignment

    counts = np.zeros((K, K))
    np.add.at(counts, (z_true.ravel(), z_fit.ravel()), 1)
    _, perm = linear_sum_assignment(-counts)
    return perm


def _hmm_emission_error(true: dict, fit: dict, perm, emission: str) -> float:
    key = {"gaussian": "means", "poisson": "rates", "categorical": "probs"}[emission]
    a, b = np.asarray(true[key]), np.asarray(fit[key])[:, perm]
    return float(np.linalg.norm(b - a) / max(np.linalg.norm(a), 1e-300))


def _hmm_fit_score(method, options, sim, key, metrics):
    from causalid.infer.hmm import fit_hmm
    from causalid.models.hmm import log_likelihood

    s, config = sim["settings"], sim["config"]
    R = len(sim["y"])
    scores = Scores(metrics, R)
    keys = jax.random.split(key, R)
    truth = _SHARED_OF_VARY[s["vary"]]
    for r in range(R):  # fit_hmm has no batched form over data sets
        y = sim["y"][r]
        if method == "compare":
            from causalid.infer.hmm_compare import compare_mechanisms

            try:
                with warnings.catch_warnings():
                    warnings.simplefilter(
                        "ignore", ConvergenceWarning
                    )  # restarts: the verdict is scored
                    rep = compare_mechanisms(
                        y,
                        s["states"],
                        s["emission"],
                        alpha=options["alpha"],
                        null=options["null"],
                        num_bootstrap=options["num_bootstrap"],
                        covariance=s["covariance"],
                        num_restarts=options["restarts"],
                        max_iters=options["max_iters"],
                        key=keys[r],
                        progress=False,
                    )
            except CausalIDError as exc:
                scores.fail(r, _one_line(exc))
                continue
            verdict = {"neither": "none"}.get(rep.verdict, rep.verdict)
            scores.set(
                r,
                {"mechanism_correct": float(verdict == s["vary"])},
                f"{NOT_APPLICABLE} to engine method 'compare' (it scores the verdict only)",
            )
            continue
        shared = truth if options["shared"] == "truth" else options["shared"]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore", ConvergenceWarning
                )  # recorded as the 'converged' metric
                res = fit_hmm(
                    y,
                    s["states"],
                    s["emission"],
                    shared=shared,
                    covariance=s["covariance"],
                    method=method,
                    num_restarts=options["restarts"],
                    max_iters=options["max_iters"],
                    key=keys[r],
                    num_warmup=options["num_warmup"],
                    num_samples=options["num_samples"],
                    num_chains=options["num_chains"],
                    num_categories=s["num_categories"] if s["emission"] == "categorical" else None,
                    progress=False,
                )
        except CausalIDError as exc:
            scores.fail(r, _one_line(exc))
            continue
        true_params = {k: v[r] for k, v in sim["params"].items()}
        z_true = sim["z"][r]
        z_fit = (
            np.stack([np.stack(seqs) for seqs in res.viterbi(y)])
            if s["envs"] > 1 or s["sequences"] > 1
            else np.asarray(res.viterbi(y))[None, None]
        )
        perm = _hmm_relabel(z_true, z_fit, s["states"])
        inv = np.argsort(perm)
        got = {
            "state_accuracy": float(np.mean(inv[z_fit] == z_true)),
            "trans_error": float(
                np.mean(np.abs(res.params["trans"][:, perm][:, :, perm] - true_params["trans"]))
            ),
            "emission_error": _hmm_emission_error(true_params, res.params, perm, s["emission"]),
            "loglik_gap": float(
                (res.log_likelihood - float(log_likelihood(true_params, y, config)))
                / res.num_observations
            ),
            "converged": float(res.converged),
        }
        scores.set(r, got, f"{NOT_APPLICABLE}: scores the verdict of engine method 'compare'")
    return scores


def _check_hmm_engine(method, options, settings):
    if method == "compare" and settings["envs"] < 2:
        raise ValueError(f"engine method 'compare' needs envs >= 2; got envs = {settings['envs']}")
    if method == "compare" and not 0 < options["alpha"] < 1:
        raise ValueError(f"alpha = {options['alpha']}: give a level in (0, 1)")


_HMM_FIT_OPTIONS = {
    "shared": Setting(
        str,
        "truth",
        choices=("truth", "all", "transitions", "emissions", "none"),
        doc="mechanisms the fit shares across environments (truth: the true pattern)",
    ),
    "restarts": Setting(int, 10, minimum=1, doc="EM random restarts"),
    "max_iters": Setting(int, 500, minimum=1, doc="EM iterations per restart"),
    "num_warmup": Setting(int, 500, minimum=1, doc="NUTS warm-up"),
    "num_samples": Setting(int, 500, minimum=1, doc="NUTS draws"),
    "num_chains": Setting(int, 2, minimum=1, doc="NUTS chains"),
}

HMM = Family(
    name="hmm",
    settings={
        "states": Setting(int, 2, minimum=1, doc="hidden states K"),
        "envs": Setting(int, 2, minimum=1, doc="environments E"),
        "sequences": Setting(int, 5, minimum=1, doc="sequences per environment"),
        "steps": Setting(int, 200, minimum=2, doc="time steps per sequence"),
        "emission": Setting(str, "gaussian", choices=("gaussian", "poisson", "categorical")),
        "obs_dim": Setting(int, 1, minimum=1, doc="observed channels D"),
        "covariance": Setting(
            str, "full", choices=("full", "diag"), doc="Gaussian emission covariance"
        ),
        "num_categories": Setting(int, 3, minimum=2, doc="symbols of categorical emissions"),
        "vary": Setting(str, "none", choices=tuple(_VARY), doc="mechanisms that vary in the truth"),
        "self_prob": Setting(
            float, 0.8, minimum=0.0, maximum=1.0, doc="probability of keeping a state"
        ),
        "separation": Setting(float, 3.0, minimum=0.0, doc="separation of the emission means"),
        "env_spread": Setting(
            float, 0.5, minimum=0.0, doc="spread of varying mechanisms across envs"
        ),
    },
    engines={
        **{m: _HMM_FIT_OPTIONS for m in ("em", "map", "nuts")},
        "compare": {
            "alpha": Setting(float, 0.05, minimum=0.0),
            "null": Setting(str, "chi2", choices=("chi2", "bootstrap")),
            "num_bootstrap": Setting(int, 99, minimum=1),
            "restarts": Setting(int, 5, minimum=1),
            "max_iters": Setting(int, 300, minimum=1),
        },
    },
    default_engines={"em": {"method": "em"}},
    metrics=_HMM_METRICS,
    default_metrics=("state_accuracy", "trans_error", "emission_error", "loglik_gap"),
    simulate=_simulate_hmm,
    precompile=lambda s, R: _ahead(_draw_hmm, _hmm_static(s), R),
    fit_score=_hmm_fit_score,
    resolve=_hmm_resolve,
    check_engine=_check_hmm_engine,
)


FAMILIES: dict[str, Family] = {f.name: f for f in (BIVARIATE, MULTIVARIATE_BINARY, LTI, HMM)}
