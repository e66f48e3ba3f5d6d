"""The result of an HMM fit: parameters, information criteria, decoding, save/load, plots."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from causalid._checks import positive_int
from causalid._compile import to_device
from causalid._progress import show_progress
from causalid._random import as_key
from causalid._results import Result
from causalid._x64 import float64
from causalid.dynamics.hmm import (
    hmm_filter,
    hmm_log_likelihood,
    hmm_posterior_sample,
    hmm_smoother,
    hmm_viterbi,
)
from causalid.errors import DataError
from causalid.hmm.data import SequenceData
from causalid.hmm.em import bootstrap_hmm, numpy_params
from causalid.hmm.plots import plot_hmm_params, plot_hmm_result
from causalid.models.hmm import HMMConfig, HMMParams, emission_log_lik, transition_matrices


@dataclass
class HMMResult(Result):
    """A fitted (multi-environment) HMM.

    Attributes
    ----------
    params : HMMParams
        Per-environment parameters (NumPy arrays): ``init (E, K)``, ``trans (E, K, K)`` and the
        emissions, ``params.emissions.means (E, K, D)`` + ``covs (E, K, D, D)``, ``rates (E, K,
        D)`` or ``probs (E, K, D, C)``; shared mechanisms repeat over ``E``.  States are in canonical order (increasing first emission mean / rate,
        averaged over environments) and aligned across environments.  For ``method="nuts"`` these
        are posterior means of the aligned draws.
    config : HMMConfig
    log_likelihood : float
        :math:`\\log p(y \\mid \\hat\\theta)`, exact (states marginalised).
    num_observations : int
        Observed time steps (the ``n`` of BIC).
    posterior : arviz.InferenceData or None
        ``method="nuts"``: aligned draws of every parameter.
    trace : ndarray or None
        EM log-likelihood per iteration of the best restart.
    restart_log_likelihoods : ndarray or None
        Final log-likelihood of every EM restart.
    standard_errors : HMMParams or None
        Parametric-bootstrap standard errors (shaped like ``params``), set by :meth:`bootstrap`.
    bootstrap_params : HMMParams or None
        The label-aligned bootstrap refits (leading axis: replicate); kept in memory, not saved.
    degenerate : list of str
        What makes the fit degenerate, in words (an empty state, duplicated states, a variance
        at the floor; :func:`causalid.hmm.starts.degeneracy`); empty for a sound fit.
    """

    params: HMMParams
    config: HMMConfig
    log_likelihood: float
    num_observations: int
    method: str = "em"
    names: tuple = ()
    env_names: tuple = ()
    converged: bool = True
    num_iters: int = 0
    trace: Any = None
    restart_log_likelihoods: Any = None
    posterior: Any = None
    settings: dict = field(default_factory=dict)
    standard_errors: HMMParams | None = None
    bootstrap_params: HMMParams | None = field(default=None, repr=False)
    degenerate: list = field(default_factory=list)

    def __post_init__(self):
        # the flat dictionaries of older versions (and of hand-made results) become typed
        if self.params is not None and not isinstance(self.params, HMMParams):
            self.params = HMMParams.from_dict(self.params)
        if self.standard_errors is not None and not isinstance(self.standard_errors, HMMParams):
            self.standard_errors = HMMParams.from_dict(self.standard_errors)

    # --------------------------------------------------------------- criteria
    @property
    def num_params(self) -> int:
        return self.config.num_params()

    @property
    def aic(self) -> float:
        return -2.0 * self.log_likelihood + 2.0 * self.num_params

    @property
    def bic(self) -> float:
        return -2.0 * self.log_likelihood + self.num_params * np.log(self.num_observations)

    # --------------------------------------------------------------- decoding
    def _per_sequence(self, data, kernel, key=None, num_samples: int = 0):
        """Apply ``kernel`` to every sequence in one compiled, vmapped program over the padded
        ``(E, N, T)`` layout (compiled once per kernel and shapes, then reused); results come back
        trimmed to each sequence's length."""
        data = SequenceData.coerce(data)
        if data.obs_dim != self.config.obs_dim:
            raise DataError(f"the data have {data.obs_dim} column(s); the model was fitted to {self.config.obs_dim}")
        if data.num_envs not in (1, self.config.num_envs):
            raise DataError(f"the data have {data.num_envs} environments; the model has {self.config.num_envs} "
                            "(give one environment's sequences, or data with every environment)")
        E = data.num_envs
        per_env = jax.tree.map(lambda v: to_device(np.asarray(v)[:E]), self.params._replace(trans_weights=None))
        w = self.params.trans_weights
        w = None if w is None else to_device(np.asarray(w))
        inputs = None if data.inputs is None else to_device(data.inputs)
        key = as_key(0 if key is None else key)
        res = np.asarray(_per_sequence_program(per_env, w, to_device(data.y), to_device(data.lengths), inputs, key,
                                               kernel=kernel, config=self.config, num_samples=num_samples))
        out = [[res[e, n, : int(data.lengths[e, n])] if res.ndim > 2 else res[e, n]
                for n in range(data.y.shape[1]) if data.lengths[e, n] > 0] for e in range(E)]
        return out[0][0] if len(out) == 1 and len(out[0]) == 1 else out

    @float64
    def decode(self, data, pairs=None) -> dict:
        """``{(env, sequence): (viterbi path (L,), smoothed posteriors (L, K))}`` for the non-empty
        sequences ``pairs`` of ``data`` (default: all of them).

        Only those sequences are decoded (the others are blanked to length 0); every environment is
        kept so that each sequence is decoded with its own environment's parameters.
        """
        data = SequenceData.coerce(data)
        full = np.asarray(data.lengths)
        if pairs is None:
            pairs = [tuple(map(int, p)) for p in np.argwhere(full > 0)]
        lengths = np.zeros_like(full)
        for e, n in pairs:
            lengths[e, n] = full[e, n]
        sub = SequenceData(data.y, lengths, data.names, data.env_names, data.inputs, data.input_names)

        def nested(x):  # one sequence's array as is, else lists env -> sequences
            return [[x]] if isinstance(x, np.ndarray) else x

        paths, posts = nested(self.viterbi(sub)), nested(self.smooth(sub))
        out = {}
        for e in range(data.num_envs):
            kept = [n for n in range(lengths.shape[1]) if lengths[e, n] > 0]
            for i, n in enumerate(kept):
                out[(e, n)] = (np.asarray(paths[e][i]), np.asarray(posts[e][i]))
        return out

    @float64
    def viterbi(self, data) -> Any:
        """Most probable state path of each sequence (an int array, or nested lists env → sequence).

        With one environment of data and a multi-environment model, environment 0's parameters
        are used; pass all environments to decode each with its own parameters.
        """
        return self._per_sequence(data, _viterbi_kernel)

    @float64
    def smooth(self, data) -> Any:
        """Posterior state probabilities :math:`p(z_t \\mid y)` of each sequence, ``(T, K)`` arrays."""
        return self._per_sequence(data, _smooth_kernel)

    @float64
    def sample_states(self, data, key=0, num_samples: int = 100) -> Any:
        """Exact posterior draws of the state paths, ``(num_samples, T)`` per sequence."""
        draws = self._per_sequence(data, _sample_kernel, key=key,
                                   num_samples=positive_int(num_samples, "num_samples"))
        swap = lambda a: np.swapaxes(a, 0, 1)
        return swap(draws) if isinstance(draws, np.ndarray) else [[swap(a) for a in env] for env in draws]

    @float64
    def score(self, data) -> float:
        """Log-likelihood of (new) data under the fitted parameters."""
        res = self._per_sequence(data, _loglik_kernel)
        return float(np.sum(res))

    @float64
    def pseudo_residuals(self, data, kind: str = "forecast", *, key: int = 0, alpha: float = 0.01):
        """Ordinary or one-step forecast pseudo-residuals with their tests and QQ / ACF plot
        (:mod:`causalid.hmm.residuals`; randomised for Poisson and categorical emissions).

        Returns
        -------
        ResidualCheck
        """
        from causalid.hmm.residuals import residual_check

        if kind not in ("ordinary", "forecast"):
            raise DataError(f"kind must be 'ordinary' or 'forecast'; got {kind!r}")
        if self.config.input_dim:
            raise DataError("pseudo-residuals of input-driven HMMs are not available yet")
        data = SequenceData.coerce(data)
        w = self._per_sequence(data, _loo_weights_kernel if kind == "ordinary" else _forecast_weights_kernel)
        w = [[w]] if isinstance(w, np.ndarray) else w
        present = [[n for n in range(data.lengths.shape[1]) if data.lengths[e, n] > 0] for e in range(data.num_envs)]
        weights = [(e, n, np.asarray(w[e][i])) for e in range(data.num_envs) for i, n in enumerate(present[e])]
        return residual_check(self, data, kind, weights, int(key), float(alpha))

    # --------------------------------------------------------------- uncertainty
    def bootstrap(self, data, num_bootstrap: int = 200, *, key=0, max_iters: int | None = None,
                  tol: float | None = None, progress: bool | None = None) -> HMMResult:
        """Parametric-bootstrap standard errors; see :func:`causalid.hmm.fit.bootstrap_hmm`.

        Returns a copy with :attr:`standard_errors` set (and an ``se`` column in
        :meth:`parameter_table`)."""
        progress = show_progress(progress)

        return bootstrap_hmm(self, data, num_bootstrap, key=key, max_iters=max_iters, tol=tol,
                             progress=progress)

    # --------------------------------------------------------------- tables
    def summary(self) -> str:
        c = self.config
        lines = [
            f"HMM fit ({self.method}): {c.num_states} states, {c.emission} emissions"
            + (f" ({c.covariance} covariance)" if c.emission == "gaussian" else "")
            + f", {c.num_envs} environment(s)",
            f"varying across environments: {', '.join(c.vary) if c.vary else 'nothing (one HMM)'}",
            (f"log-likelihood {self.log_likelihood:.4f}   AIC {self.aic:.2f}   BIC {self.bic:.2f}   "
             f"({self.num_params} parameters, {self.num_observations} observed steps)"),
        ]
        if self.method == "em":
            lines.append(f"EM: {self.num_iters} iterations, {'converged' if self.converged else 'NOT converged'}"
                         + ("" if c.initial == "free" else f"; {c.initial} initial distribution"))
        for msg in self.degenerate:
            lines.append(f"DEGENERATE: {msg}")
        lines.append(self.parameter_table().to_string())
        return "\n".join(lines)

    def parameter_table(self) -> pd.DataFrame:
        """Long table of every parameter: columns env, mechanism, name, state, value (and ``se``
        once :meth:`bootstrap` has run)."""
        se = None if self.standard_errors is None else numpy_params(self.standard_errors).to_dict()
        rows = []
        envs = self.env_names or tuple(str(e) for e in range(self.config.num_envs))
        for key, v in numpy_params(self.params).to_dict().items():
            if key == "trans_weights":
                for idx in np.ndindex(v.shape):
                    err = np.nan if se is None else np.asarray(se[key])[idx]
                    rows.append(("all", "transitions", f"trans_weights{list(idx)}", idx[0], v[idx], err))
                continue
            mech = "transitions" if key in ("init", "trans") else "emissions"
            vary = self.config.trans_vary if mech == "transitions" else self.config.emis_vary
            for e in range(v.shape[0] if vary else 1):
                for idx in np.ndindex(v.shape[1:]):
                    err = np.nan if se is None else np.asarray(se[key])[(e,) + idx]
                    rows.append((envs[e] if vary else "all", mech, f"{key}{list(idx)}", idx[0], v[(e,) + idx],
                                 err))
        table = pd.DataFrame(rows, columns=["env", "mechanism", "name", "state", "value", "se"])
        return table if se is not None else table.drop(columns="se")

    def to_frame(self) -> pd.DataFrame:
        """Every parameter in long form (:meth:`parameter_table`)."""
        return self.parameter_table()

    # --------------------------------------------------------------- save / load
    REQUIRED = ("config", "params", "log_likelihood", "num_observations")

    def _to_payload(self) -> dict:
        c = self.config
        return {
            "config": {"num_states": c.num_states, "emission": c.emission, "obs_dim": c.obs_dim,
                       "num_envs": c.num_envs, "vary": list(c.vary), "covariance": c.covariance,
                       "num_categories": c.num_categories, "input_dim": c.input_dim, "initial": c.initial},
            "params": numpy_params(self.params).to_dict(),  # the flat layout (as in earlier versions)
            "log_likelihood": self.log_likelihood, "num_observations": self.num_observations,
            "aic": self.aic, "bic": self.bic, "method": self.method, "names": list(self.names),
            "env_names": list(self.env_names), "converged": self.converged, "num_iters": self.num_iters,
            "trace": None if self.trace is None else np.asarray(self.trace),
            "restart_log_likelihoods": None if self.restart_log_likelihoods is None
            else np.asarray(self.restart_log_likelihoods),
            "settings": self.settings, "degenerate": list(self.degenerate),
            "standard_errors": None if self.standard_errors is None
            else numpy_params(self.standard_errors).to_dict(),
        }

    @classmethod
    def _from_payload(cls, d: dict) -> HMMResult:
        c = d["config"]
        config = HMMConfig(c["num_states"], c["emission"], c["obs_dim"], c["num_envs"], tuple(c["vary"]),
                           c["covariance"], c["num_categories"], c["input_dim"], c.get("initial", "free"))
        arr = lambda v: None if v is None else np.asarray(v, dtype=float)
        return cls(
            params=HMMParams.from_dict({k: np.asarray(v, dtype=float) for k, v in d["params"].items()}),
            config=config,
            log_likelihood=d["log_likelihood"], num_observations=d["num_observations"],
            method=d.get("method", "em"), names=tuple(d.get("names", ())), env_names=tuple(d.get("env_names", ())),
            converged=d.get("converged", True), num_iters=d.get("num_iters", 0), trace=arr(d.get("trace")),
            restart_log_likelihoods=arr(d.get("restart_log_likelihoods")), settings=d.get("settings", {}),
            degenerate=[str(m) for m in d.get("degenerate") or []],
            standard_errors=None if d.get("standard_errors") is None
            else HMMParams.from_dict({k: np.asarray(v, dtype=float) for k, v in d["standard_errors"].items()}),
        )

    def save(self, path) -> Path:
        """Write the result as JSON; a NUTS posterior goes beside it as NetCDF (``<path>.posterior.nc``)."""
        path = super().save(path)
        if self.posterior is not None:
            self.posterior.to_netcdf(str(path) + ".posterior.nc")
        return path

    @classmethod
    def load(cls, path) -> HMMResult:
        """Read a result written by :meth:`save` (with its NUTS posterior, when saved beside it)."""
        result = super().load(path)
        nc = Path(str(path) + ".posterior.nc")
        if nc.exists():
            import arviz as az  # arviz (and its matplotlib) only when a posterior is read

            result.posterior = az.from_netcdf(str(nc))
        return result

    def _plot(self, ax=None, data=None, **options):
        """Without ``data``: the fitted transition matrices and emission parameters
        (:func:`causalid.hmm.plots.plot_hmm_params`).  With ``data``: the data coloured by
        Viterbi state, and the state posteriors (:func:`causalid.hmm.plots.plot_hmm_result`;
        ``options`` as there)."""
        if data is None:
            return plot_hmm_params(self, ax=ax, **options)
        return plot_hmm_result(self, data, ax=ax, **options)

    def __repr__(self) -> str:
        c = self.config
        return (f"HMMResult({c.num_states} states, {c.emission}, {c.num_envs} env(s), vary={list(c.vary)}, "
                f"log_likelihood={self.log_likelihood:.4f}, method={self.method!r})")


# ------------------------------------------------------------------ compiled per-sequence kernels
def _viterbi_kernel(init, trans, ll, n, key, num_samples):
    return hmm_viterbi(init, trans, ll, n)[0]


def _smooth_kernel(init, trans, ll, n, key, num_samples):
    return hmm_smoother(init, trans, ll, n).smoothed


def _loglik_kernel(init, trans, ll, n, key, num_samples):
    return hmm_log_likelihood(init, trans, ll, n)


def _loo_weights_kernel(init, trans, ll, n, key, num_samples):
    r""":math:`P(z_t = k \mid y_{-t})`: the smoothed posterior with step t's own emission divided out."""
    post = hmm_smoother(init, trans, ll, n).smoothed
    return jax.nn.softmax(jnp.log(jnp.maximum(post, 1e-300)) - ll, axis=-1)


def _forecast_weights_kernel(init, trans, ll, n, key, num_samples):
    r""":math:`P(z_t = k \mid y_{0:t-1})`: the filter pushed one step ahead."""
    filt = hmm_filter(init, trans, ll, n).filtered
    return jnp.concatenate([init[None], filt[:-1] @ trans])


def _sample_kernel(init, trans, ll, n, key, num_samples):
    return jnp.swapaxes(hmm_posterior_sample(key, init, trans, ll, n, num_samples=num_samples), 0, 1)


@functools.partial(jax.jit, static_argnames=("kernel", "config", "num_samples"))
def _per_sequence_program(params, w, y, lengths, inputs, key, *, kernel, config, num_samples):
    """``kernel(init, trans, log_lik, length, key, num_samples)`` on every ``(env, sequence)``;
    a module-level jitted function, so each kernel compiles once per configuration and shapes."""

    def one(p, y_n, n, u):
        ll = emission_log_lik(p.emissions, y_n, config)
        tr = transition_matrices(p.trans, w, u)
        return kernel(p.init, tr, ll, n, key, num_samples)

    per_seq = jax.vmap(one, in_axes=(None, 0, 0, None if inputs is None else 0))
    return jax.vmap(per_seq, in_axes=(0, 0, 0, None if inputs is None else 0))(params, y, lengths, inputs)
