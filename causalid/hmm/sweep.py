r"""Sweep plug-in of the HMM wing (:mod:`causalid.verify.plugin`).

``hmm``
    Multi-environment hidden Markov models (the causal de Finetti view of HMMs, Guo et al. 2023; :func:`causalid.models.hmm.random_hmm_params`
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
"""

from __future__ import annotations

import functools
import contextlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from causalid.errors import CausalIDError, ConvergenceWarning
from causalid.hmm.compare import compare_mechanisms
from causalid.hmm.fit import fit_hmm, fit_hmm_batch
from causalid.hmm.starts import DegenerateFitWarning
from causalid._compile import compiled, to_device
from causalid.models.hmm import HMMConfig, random_hmm_params, sequence_log_likelihoods, simulate_arrays
from causalid.verify.plugin import (
    NOT_APPLICABLE,
    Family,
    Scores,
    Setting,
    compile_ahead,
    draw_replicates,
    one_line,
)

__all__ = ["HMM"]


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
    params, y, z = draw_replicates(_draw_hmm, static, jax.random.split(key, R))
    return {
        "config": static[0],
        "params": jax.tree.map(np.asarray, params),
        "y": np.asarray(y, dtype=np.float64),
        "z": np.asarray(z),
        "settings": s,
    }


def _hmm_relabel(z_true: np.ndarray, z_fit: np.ndarray, K: int) -> np.ndarray:
    """Permutation ``perm``: fitted state ``perm[k]`` matches true state ``k`` (most agreement)."""
    counts = np.zeros((K, K))
    np.add.at(counts, (z_true.ravel(), z_fit.ravel()), 1)
    _, perm = linear_sum_assignment(-counts)
    return perm


def _hmm_emission_error(true, fit, perm, emission: str) -> float:
    """Relative error of the relabelled means / rates / probabilities (the first emission field)."""
    a, b = np.asarray(true.emissions[0]), np.asarray(fit.emissions[0])[:, perm]
    return float(np.linalg.norm(b - a) / max(np.linalg.norm(a), 1e-300))


#: Whether the ``em`` engine fits a cell's replicates as one batch (:func:`causalid.hmm.fit.fit_hmm_batch`)
#: on CPU too; on other backends it always does.  The scores are the same either way (tested).  On
#: CPU an EM iteration costs the same per fit in a batch as alone (measured with 2 Gaussian
#: states, 3 environments x 4 sequences x 100 steps: 0.154 ms per fit with 5 fits, 0.162 ms with
#: 60), so a batch saves no work there, while its shrinking batch sizes compile more programs:
#: a 4-cell x 12-replicate sweep took 32.0 s batched against 26.9 s one at a time from a fresh
#: process (``tests/benchmarks/test_hmm_sweep.py``).
BATCH_ON_CPU = False


@functools.partial(jax.jit, static_argnames=("config",))
def _true_log_likelihoods(params, y, *, config):
    """The log-likelihood of every replicate's data under its true parameters, ``(R,)``: one
    program per shape (run eagerly, its dozens of small operations each compiled on first use
    and dispatched one by one for every replicate)."""
    return jax.vmap(lambda p, yy: jnp.sum(sequence_log_likelihoods(p, yy, config, partial=False)))(params, y)


class _Degenerate:
    """Counts the replicates whose fits warned of degenerate states, for one summary per cell.

    A sweep fits hundreds of replicates, and short simulated sequences leave a state unvisited
    in some environment often enough that a warning per fit would bury everything else; the
    scores of those replicates are kept, and the cell says once how many there were."""

    def __init__(self):
        self.count, self.example = 0, None

    @contextlib.contextmanager
    def watch(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("ignore", ConvergenceWarning)  # recorded as a metric or scored
            warnings.simplefilter("always", DegenerateFitWarning)
            yield
        hits = [w for w in caught if issubclass(w.category, DegenerateFitWarning)]
        for w in caught:
            if not issubclass(w.category, DegenerateFitWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if hits:
            self.count += 1
            self.example = self.example or str(hits[0].message).split(". ")[0]

    def report(self, R: int, method: str) -> None:
        if self.count:
            warnings.warn(f"{self.count} of {R} replicates of this cell had degenerate '{method}' fits "
                          f"(e.g. {self.example}); their scores are kept", DegenerateFitWarning, stacklevel=3)


def _hmm_fit_score(method, options, sim, key, metrics):

    s, config = sim["settings"], sim["config"]
    R = len(sim["y"])
    scores = Scores(metrics, R)
    keys = jax.random.split(key, R)
    truth = _SHARED_OF_VARY[s["vary"]]
    shared = truth if options.get("shared", "truth") == "truth" else options["shared"]
    batch = None
    true_ll = None
    if method != "compare":
        args = (jax.tree.map(to_device, sim["params"]), to_device(sim["y"]))
        true_ll = np.asarray(compiled(_true_log_likelihoods, *args, config=config)(*args))
    if method == "em" and (BATCH_ON_CPU or jax.default_backend() != "cpu"):
        # every replicate's EM in one vectorised program (the same fits as one at a time)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # recorded as the 'converged' metric
                batch = fit_hmm_batch(
                    list(sim["y"]),
                    s["states"],
                    s["emission"],
                    keys=list(keys),
                    shared=shared,
                    covariance=s["covariance"],
                    num_restarts=options["restarts"],
                    max_iters=options["max_iters"],
                    num_categories=s["num_categories"] if s["emission"] == "categorical" else None,
                )
        except CausalIDError:
            batch = None  # scored one at a time below, each replicate with its own error
    degenerate = _Degenerate()
    for r in range(R):
        y = sim["y"][r]
        if method == "compare":
            try:
                with degenerate.watch():  # restarts: the verdict is scored
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
                scores.fail(r, one_line(exc))
                continue
            verdict = {"neither": "none"}.get(rep.verdict, rep.verdict)
            scores.set(
                r,
                {"mechanism_correct": float(verdict == s["vary"])},
                f"{NOT_APPLICABLE} to engine method 'compare' (it scores the verdict only)",
            )
            continue
        try:
            with degenerate.watch():  # convergence is recorded as the 'converged' metric
                res = batch[r] if batch is not None else fit_hmm(
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
            scores.fail(r, one_line(exc))
            continue
        true_params = jax.tree.map(lambda v, r=r: v[r], sim["params"])
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
                np.mean(np.abs(res.params.trans[:, perm][:, :, perm] - true_params.trans))
            ),
            "emission_error": _hmm_emission_error(true_params, res.params, perm, s["emission"]),
            "loglik_gap": float(
                (res.log_likelihood - float(true_ll[r]))
                / res.num_observations
            ),
            "converged": float(res.converged),
        }
        scores.set(r, got, f"{NOT_APPLICABLE}: scores the verdict of engine method 'compare'")
    degenerate.report(R, method)
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
    precompile=lambda s, R: compile_ahead(_draw_hmm, _hmm_static(s), R),
    fit_score=_hmm_fit_score,
    resolve=_hmm_resolve,
    check_engine=_check_hmm_engine,
)
