r"""The next intervention experiment, chosen by expected information about the causal graph.

Given interventional data ``D`` (a :class:`~causalid.exchangeable.data.MultiEnvData` with its
targets, as for ``discover(method="bayes", targets=...)``), the posterior over DAGs and
mechanism changes of :func:`~causalid.exchangeable.bayes.interventional_structure` is
represented by weighted graphs :math:`\{(G_k, w_k)\}` (every DAG for small ``d``, the best
distinct DAGs the order-MCMC chains visited otherwise, weights renormalised over them).  A
candidate experiment ``c`` (a new environment that intervenes on a set of variables, ``n``
samples) is scored by its expected information gain about the graph,

.. math::

    \mathrm{EIG}(c) = I(G; Y \mid D, c) = \mathbb E_{G \sim p(G \mid D),\,
    Y \sim p(Y \mid G, D, c)} \Bigl[\log p(Y \mid G, D, c)
    - \log \sum_k w_k\, p(Y \mid G_k, D, c)\Bigr],

estimated by Monte Carlo over ``(G, Y)`` draws (its standard error is reported).  Both the
draws and the densities are those of the engine's model (:class:`InterventionHyper`: on the
engine's globally standardised scale, every mechanism block has a conjugate
Normal–Inverse-Gamma prior and every environment its own random intercept):

* a graph is drawn from the weights; for every variable the new environment's change
  indicator is drawn from the candidate's change prior (1 on its targets, ``off_target``
  elsewhere); an unchanged mechanism draws its parameters from their posterior given the
  current data of its shared block, a changed one from the prior (``"soft"``: same parents,
  new parameters; ``"perfect"``: parents cut); the linear SEM is then simulated;
* :math:`p(Y \mid G_k, D, c)` factorises over variables, and each factor sums the change
  indicator out in closed form, :math:`(1 - \pi_i)\, p(y_i \mid y_{\mathrm{pa}}, D_{\text{shared}})
  + \pi_i\, p_{\text{own}}(y_i \mid y_{\mathrm{pa}})`, with the NIG evidences of the pooled and
  own blocks.

Every local factor is computed once per distinct (variable, parent set) of the weighted graphs,
for all draws at once (``vmap`` over draws, families and sample sizes).  Batches of several
experiments score their joint information (the change indicators of all new environments are
summed out jointly) and are built greedily.  The mechanism changes of the current data are
fixed where the targets fix them and set to the engine's posterior verdict (probability > 0.5)
where they are uncertain (a plug-in).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.scipy.special import logsumexp

from causalid._linalg import cholesky, solve_lower, solve_upper_t
from causalid._plotting import pyplot
from causalid._progress import progress_bar
from causalid._results import Result
from causalid._x64 import float64
from causalid.errors import DataError
from causalid.exchangeable.bayes import (
    InterventionHyper,
    NIGHyper,
    env_intercept_stats,
    interventional_structure,
    nig_log_marginal_stats,
)
from causalid.exchangeable.data import MultiEnvData
from causalid.exchangeable.discover import resolve_targets
from causalid.exchangeable.metrics import shd

__all__ = [
    "InterventionDesign",
    "entropy_heuristic",
    "next_intervention",
    "replay",
    "run_sequential",
]

_HYPER = InterventionHyper(v_env=1.0)


# ============================================================================ candidates
def _candidates(candidates, names) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Names, target masks (cand, var) and costs of ``candidates``."""
    names = list(names)
    if isinstance(candidates, (list, tuple)):
        candidates = {str(v): [v] for v in candidates}
    if not isinstance(candidates, Mapping) or not candidates:
        raise DataError("candidates must be a non-empty dict {name: [variables]} (or {name: {'targets': [...], "
                        "'cost': c}}), or a list of variable names (one single-variable candidate each)")
    labels, masks, costs = [], [], []
    for name, spec in candidates.items():
        cost = 1.0
        if isinstance(spec, Mapping):
            if "targets" not in spec:
                raise DataError(f"candidate '{name}' gives no 'targets'")
            cost = float(spec.get("cost", 1.0))
            spec = spec["targets"]
        tv = [] if spec is None else [spec] if isinstance(spec, str) else list(spec)
        bad = [t for t in tv if t not in names]
        if bad:
            raise DataError(f"candidate '{name}' intervenes on {bad}, which are not variables of the data; "
                            f"the variables are {names}")
        if not np.isfinite(cost) or cost <= 0:
            raise DataError(f"candidate '{name}' has cost {cost}; give a positive number")
        m = np.zeros(len(names), bool)
        m[[names.index(t) for t in tv]] = True
        labels.append(str(name))
        masks.append(m)
        costs.append(cost)
    return labels, np.array(masks), np.array(costs)


# ============================================================================ closed forms
def _env_stats(z, mask, v_env):
    """Per-environment Gram matrices of ``(1, z)`` (env, d+1, d+1) and counts; with ``v_env`` the
    random intercept is integrated out as the engine does
    (:func:`~causalid.exchangeable.bayes.env_intercept_stats`)."""
    w = mask.astype(z.dtype)[..., None]
    zz = jnp.concatenate([jnp.ones(z.shape[:-1] + (1,), z.dtype), z], axis=-1) * w
    gram = jnp.einsum("...ni,...nj->...ij", zz, zz)
    n = jnp.sum(mask, axis=-1).astype(z.dtype)
    if v_env is None:
        return gram, n
    return env_intercept_stats(gram, v_env)[0], n


def _family_stats(gram, child, keep):
    """The sufficient statistics of the regression of ``child`` on the columns ``keep`` of
    ``(1, z)``: Gram of the kept columns (zero elsewhere), cross products, sum of squares."""
    kf = keep.astype(gram.dtype)
    return gram * kf[:, None] * kf[None, :], gram[:, child + 1] * kf, gram[child + 1, child + 1], kf


def _evidence(gram, n, child, keep, prior_var, a, b):
    """Log evidence of the family: the engine's closed form
    (:func:`~causalid.exchangeable.bayes.nig_log_marginal_stats`, zero prior mean)."""
    g_kk, g, yy, kf = _family_stats(gram, child, keep)
    hyper = NIGHyper(jnp.zeros(kf.shape[0], gram.dtype), prior_var * kf, a, b)
    return nig_log_marginal_stats(g_kk, g, yy, n, hyper)


def _nig_posterior(gram, n, child, keep, prior_var, a, b):
    r"""NIG posterior of the regression of ``child`` on the columns ``keep`` of ``(1, z)``, for
    drawing parameters: the Cholesky factor of the precision :math:`\Lambda_n = V^{-1} + G_{kk}`
    (identity on dropped columns), the mean :math:`m_n`, :math:`a_n` and :math:`b_n`."""
    g_kk, g, yy, kf = _family_stats(gram, child, keep)
    prec0 = jnp.where(keep, 1.0 / prior_var, 1.0)
    chol = cholesky(jnp.diag(prec0) + g_kk)
    mn = solve_upper_t(chol, solve_lower(chol, g))
    return chol, mn, a + 0.5 * n, b + 0.5 * jnp.maximum(yy - g @ mn, 0.0)


def _dag_inverse(i_minus_w):
    r"""``(I - W)^{-1}`` for the weights ``W`` (..., d, d) of a DAG: ``W`` is nilpotent, so the
    inverse is the finite sum :math:`\sum_{k<d} W^k`, plain matrix products (no LAPACK call,
    which can deadlock inside a ``vmap``-ed program on CPU: see :mod:`causalid._linalg`)."""
    d = i_minus_w.shape[-1]
    eye = jnp.eye(d, dtype=i_minus_w.dtype)
    w = eye - i_minus_w

    def step(_, carry):
        power, total = carry
        power = power @ w
        return power, total + power

    return jax.lax.fori_loop(1, d, step, (jnp.broadcast_to(eye, w.shape), jnp.broadcast_to(eye, w.shape)))[1]


# ============================================================================ the model
@dataclass
class _Model:
    """The current posterior, in the arrays the Monte Carlo kernel needs."""

    names: list
    adj: np.ndarray  # (K, d, d) weighted graphs
    logw: np.ndarray  # (K,) normalised log weights
    fam: np.ndarray  # (K, d) family index of every node
    fam_child: np.ndarray  # (U,)
    fam_keep: np.ndarray  # (U, d+1) bool, columns of (1, z)
    shared: np.ndarray  # (d, d+1, d+1) transformed Gram of each variable's shared block
    shared_n: np.ndarray  # (d,)
    hyper: InterventionHyper
    intervention: str
    off_target: float
    edge_probs: np.ndarray
    map_dag: np.ndarray
    notes: list = field(default_factory=list)

    @property
    def d(self):
        return len(self.names)


def _as_continuous(data) -> MultiEnvData:
    if not isinstance(data, MultiEnvData):
        raise DataError(f"data must be a MultiEnvData (causalid.exchangeable.load or MultiEnvData.from_frame), "
                        f"not {type(data).__name__}")
    if data.kind() != "continuous":
        raise DataError(f"the intervention designer needs continuous data (the linear-Gaussian score); "
                        f"the data are {data.kind()}")
    return data


def _split_single(values, mask, prior, notes):
    """A single environment is scored as two halves (the engine needs two environment blocks;
    both halves are observational, so only the intercept model sees the split)."""
    if values.shape[0] > 1:
        return values, mask, prior
    n = int(mask[0].sum())
    if n < 4:
        raise DataError("the data hold one environment with fewer than 4 samples; add data")
    idx = np.flatnonzero(mask[0])
    h = n // 2
    v = np.zeros((2, n - h, values.shape[-1]))
    m = np.zeros((2, n - h), bool)
    v[0, :h], m[0, :h] = values[0, idx[:h]], True
    v[1, : n - h], m[1, : n - h] = values[0, idx[h:]], True
    notes.append("one environment: scored as two halves (the engine needs two environment blocks)")
    return v, m, np.repeat(prior, 2, axis=0)


@float64
def _posterior_model(data, targets, *, intervention, off_target, change_prior, hyper, max_graphs,
                     key, engine) -> _Model:
    data = _as_continuous(data)
    if intervention not in ("soft", "perfect"):
        raise DataError(f"unknown intervention {intervention!r}; use 'soft' or 'perfect'")
    if not 0.0 <= off_target < 1.0:
        raise DataError(f"off_target={off_target} must be a probability in [0, 1)")
    if int(max_graphs) < 1:
        raise DataError(f"max_graphs={max_graphs} must be at least 1")
    if data.num_envs == 1 and targets is None:
        targets = {data.envs[0]: []}
    if targets is None:
        raise DataError("give the targets of the current data: a dict {environment: [variables]} (empty lists "
                        "for observational environments) or 'unknown'")
    prior, _ = resolve_targets(data, targets, off_target=off_target, change_prior=change_prior)
    notes: list[str] = []
    values, mask, prior = _split_single(np.asarray(data.values, float), np.asarray(data.mask, bool), prior, notes)
    post = interventional_structure(values, mask, prior, intervention=intervention, hyper=hyper,
                                    top_k=int(max_graphs), key=key, **(engine or {}))
    lp = np.asarray(post.top_log_post, float)
    ok = np.isfinite(lp)
    adj, lp = np.asarray(post.top_dags)[ok].astype(bool), lp[ok]
    logw = lp - np.logaddexp.reduce(lp)
    d = values.shape[-1]
    # families: distinct (child, parent set) of the weighted graphs
    keys = {}
    fam = np.zeros((len(adj), d), np.int64)
    for k in range(len(adj)):
        for i in range(d):
            fam[k, i] = keys.setdefault((i, adj[k, :, i].tobytes()), len(keys))
    fam_child = np.array([i for i, _ in keys], np.int64)
    fam_keep = np.zeros((len(keys), d + 1), bool)
    for (i, pa), u in keys.items():
        fam_keep[u, 1:] = np.frombuffer(pa, dtype=bool)
        fam_keep[u, 0] = hyper.v_env is None
    # the engine's standardisation and the shared block of every variable
    w = mask[..., None]
    cnt = w.sum(axis=(0, 1))
    mu = np.where(w, values, 0).sum(axis=(0, 1)) / cnt
    sd = np.sqrt(np.where(w, (values - mu) ** 2, 0).sum(axis=(0, 1)) / cnt)
    z = np.where(w, (values - mu) / sd, 0.0)
    gram, n = _env_stats(jnp.asarray(z), jnp.asarray(mask), hyper.v_env)
    changed = np.where((prior > 0) & (prior < 1), np.asarray(post.change_probs) > 0.5, prior >= 1)
    keep_env = (~changed).astype(float)  # (env, var)
    shared = np.einsum("ei,ejk->ijk", keep_env, np.asarray(gram))
    shared_n = keep_env.T @ np.asarray(n)
    if post.method == "mcmc":
        notes.append(f"posterior: the {len(adj)} best distinct DAGs visited by order MCMC, renormalised")
    return _Model(list(data.names), adj, logw, fam, fam_child, fam_keep, shared, shared_n, hyper,
                  intervention, float(off_target), np.asarray(post.edge_probs), np.asarray(post.map_dag), notes)


def _prior_vars(hyper: InterventionHyper, d: int) -> np.ndarray:
    return np.concatenate([[hyper.v_intercept], np.full(d, hyper.v_weight)])


def _edge_entropy(p):
    """Total binary entropy (nats) of the edge indicators ``p`` (..., d, d)."""
    q = jnp.clip(p, 1e-12, 1 - 1e-12)
    h = -(q * jnp.log(q) + (1 - q) * jnp.log1p(-q))
    return jnp.sum(jnp.where(p * (1 - p) > 0, h, 0.0), axis=(-2, -1))


def _pad(x, n, fill=0):
    """``x`` padded along its first axis to length ``n`` with ``fill``."""
    x = np.asarray(x)
    if len(x) >= n:
        return x
    return np.concatenate([x, np.full((n - len(x),) + x.shape[1:], fill, dtype=x.dtype)])


def _kernel_arrays(model: _Model, max_graphs: int | None = None) -> dict:
    """The model's arrays, padded (graphs to ``max_graphs``, families to a multiple of 128) so
    that compiled kernels are reused across posteriors of the same size."""
    perfect = model.intervention == "perfect"
    k = max(len(model.adj), max_graphs or 0)
    u = -(-len(model.fam_child) // 128) * 128
    keep = _pad(model.fam_keep, u, False)
    own = np.zeros_like(keep) if perfect else keep.copy()
    if perfect and model.hyper.v_env is None:
        own[:, 0] = True
    child = _pad(model.fam_child, u, 0)
    return {
        "adj": jnp.asarray(_pad(model.adj.astype(float), k, 0.0)),
        "logw": jnp.asarray(_pad(model.logw, k, -np.inf)),
        "fam": jnp.asarray(_pad(model.fam, k, 0)),
        "child": jnp.asarray(child),
        "keep": jnp.asarray(keep),
        "own_keep": jnp.asarray(own),
        "shared": jnp.asarray(model.shared[child]),
        "shared_n": jnp.asarray(model.shared_n[child]),
        "pv": jnp.asarray(_prior_vars(model.hyper, model.d)),
    }


@partial(jax.jit, static_argnames=("sizes", "m_envs", "v_env", "a", "b"))
def _info_draws(arr, keys, graphs, gam_shared, gam_own, pis, *, sizes: tuple, m_envs: int, v_env, a: float, b: float):
    """Per-draw information ``log p(Y|G,D) - log p(Y|D)`` and change of the edge entropy, for
    every sample size: arrays (draw, size).  ``graphs`` (draw,): the drawn graphs;
    ``gam_shared`` (draw, d) and ``gam_own`` (draw, m, d): Gamma(a_n) and Gamma(a) variates of
    the noise precisions (drawn outside: JAX's Gamma sampler is slow to compile); ``pis`` (m, d):
    change priors of the new environments."""
    adj, logw, fam = arr["adj"], arr["logw"], arr["fam"]
    fchild, fkeep, own_keep, pv = arr["child"], arr["keep"], arr["own_keep"], arr["pv"]
    shared, shared_n = arr["shared"], arr["shared_n"]
    d = adj.shape[-1]
    n_max = max(sizes)
    sizes_a = jnp.asarray(sizes)
    configs = jnp.asarray(list(itertools.product([0.0, 1.0], repeat=m_envs)))  # (C, m)
    chol_p, mean_p, _, bn_p = jax.vmap(
        lambda g, n, c, k: _nig_posterior(g, n, c, k, pv, a, b))(shared, shared_n, fchild, fkeep)
    ml_shared = jax.vmap(lambda g, n, c, k: _evidence(g, n, c, k, pv, a, b))(shared, shared_n, fchild, fkeep)
    h0 = _edge_entropy(jnp.einsum("k,kij->ij", jnp.exp(logw), adj))

    def simulate(key, k, g_sh, g_own):
        """The m new environments under graph k: values (m, n_max, d)."""
        kc, kb, kob, ki, ke = jax.random.split(key, 5)
        f = fam[k]  # (d,)
        change = jax.random.uniform(kc, (m_envs, d)) < pis
        # shared parameters (one draw for all new environments)
        sig_sh = bn_p[f] / g_sh  # (d,)
        eps = jax.random.normal(kb, (d, d + 1))
        dev = jax.vmap(solve_upper_t)(chol_p[f], eps)
        beta_sh = (mean_p[f] + jnp.sqrt(sig_sh)[:, None] * dev) * fkeep[f]
        # own parameters of a changed mechanism, one draw per environment
        sig_own = b / g_own
        beta_own = jnp.sqrt(sig_own[..., None] * pv) * jax.random.normal(kob, (m_envs, d, d + 1)) * own_keep[f]
        sig = jnp.where(change, sig_own, sig_sh)
        beta = jnp.where(change[..., None], beta_own, beta_sh)  # (m, child, 1 + parent)
        icpt = beta[..., 0]
        if v_env is not None:
            icpt = icpt + jnp.sqrt(sig * v_env) * jax.random.normal(ki, (m_envs, d))
        wmat = jnp.swapaxes(beta[..., 1:], -1, -2)  # (m, parent, child)
        noise = jax.random.normal(ke, (m_envs, n_max, d)) * jnp.sqrt(sig)[:, None, :]
        return (icpt[:, None, :] + noise) @ _dag_inverse(jnp.eye(d) - wmat)

    def family_loglik(new_gram, new_n):
        """log p(Y_1..m | D, family) for every family (U,); the change indicators of the new
        environments are summed out."""
        def one(g_sh, n_sh, ml_sh, c, keep, okeep):
            own = jax.vmap(lambda g, n: _evidence(g, n, c, okeep, pv, a, b))(new_gram, new_n)  # (m,)
            lp1, lp0 = jnp.log(pis[:, c]), jnp.log1p(-pis[:, c])

            def per_config(cfg):
                pooled = g_sh + jnp.einsum("j,jab->ab", 1 - cfg, new_gram)
                ml = _evidence(pooled, n_sh + (1 - cfg) @ new_n, c, keep, pv, a, b)
                lp = jnp.sum(jnp.where(cfg > 0, lp1, lp0))
                return jnp.where(lp > -jnp.inf, lp + ml - ml_sh + cfg @ own, -jnp.inf)

            return logsumexp(jax.vmap(per_config)(configs))

        return jax.vmap(one)(shared, shared_n, ml_shared, fchild, fkeep, own_keep)

    def draw(inp):
        key, k, g_sh, g_own = inp
        y = simulate(key, k, g_sh, g_own)  # (m, n_max, d)

        def at_size(n):
            msk = jnp.broadcast_to(jnp.arange(n_max)[None, :] < n, y.shape[:2])
            g, nn = _env_stats(y, msk, v_env)
            ll = jnp.sum(family_loglik(g, nn)[fam], axis=1)  # (K,)
            joint = logw + ll
            norm = logsumexp(joint)
            wpost = jnp.exp(joint - norm)
            dh = _edge_entropy(jnp.einsum("k,kij->ij", wpost, adj)) - h0
            return ll[k] - norm, dh

        return jax.vmap(at_size)(sizes_a)

    return jax.lax.map(draw, (keys, graphs, gam_shared, gam_own), batch_size=8)


def _standardised_sizes(samples, default) -> tuple:
    if samples is None:
        return (int(default),)
    s = [samples] if np.isscalar(samples) else list(samples)
    if not s or any(int(v) != v or v < 2 for v in s):
        raise DataError(f"samples={samples}: give sample sizes (integers of at least 2)")
    return tuple(int(v) for v in s)


# ============================================================================ the result
class InterventionDesign(Result):
    """Ranking of candidate intervention experiments by expected information about the graph.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per candidate: ``candidate``, ``targets``, ``eig`` (nats, at the sample size
        ``samples``), ``eig_se`` (its Monte Carlo standard error), ``entropy_change``
        (expected change of the summed edge entropy, nats), ``cost``, ``eig_per_cost``,
        ``rank`` (by ``eig``).
    batch : list of str
        The chosen experiments (greedy; one for ``batch=1``).
    batch_eig, batch_eig_se : list of float
        Joint information of the first 1, 2, ... chosen experiments.
    curve : pandas.DataFrame
        ``samples``, ``eig``, ``eig_se``, ``entropy_change`` of the best candidate for every
        requested sample size.
    samples : int
        The sample size of the ranking.
    settings : dict
    """

    REQUIRED = ("table", "batch", "curve", "samples")

    def __init__(self, table, batch, batch_eig, batch_eig_se, curve, samples, settings=None):
        self.table = table
        self.batch = list(batch)
        self.batch_eig = [float(v) for v in batch_eig]
        self.batch_eig_se = [float(v) for v in batch_eig_se]
        self.curve = curve
        self.samples = int(samples)
        self.settings = dict(settings or {})

    @property
    def best(self) -> str:
        """The candidate with the highest expected information gain."""
        return str(self.table.sort_values("rank").iloc[0]["candidate"])

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def _to_payload(self) -> dict:
        t = self.table.copy()
        t["targets"] = [list(v) for v in t["targets"]]
        return {"table": t.to_dict(orient="list"), "batch": self.batch, "batch_eig": self.batch_eig,
                "batch_eig_se": self.batch_eig_se, "curve": self.curve.to_dict(orient="list"),
                "samples": self.samples, "settings": self.settings}

    @classmethod
    def _from_payload(cls, d):
        t = pd.DataFrame(d["table"])
        t["targets"] = [tuple(v) for v in t["targets"]]
        return cls(t, d["batch"], d.get("batch_eig", []), d.get("batch_eig_se", []), pd.DataFrame(d["curve"]),
                   d["samples"], d.get("settings", {}))

    def summary(self) -> str:
        head = (f"next intervention by expected information gain about the graph ({self.samples} samples, "
                f"{self.settings.get('draws', '?')} draws, {self.settings.get('graphs', '?')} weighted graphs)")
        lines = [head]
        for _, r in self.table.sort_values("rank").iterrows():
            tv = ",".join(r["targets"]) or "-"
            lines.append(f"  {int(r['rank']):>2}. {r['candidate']:<20} targets {tv:<20} EIG {r['eig']:.3f} "
                         f"± {r['eig_se']:.3f} nats  dH(edges) {r['entropy_change']:+.3f}  cost {r['cost']:g}")
        if len(self.batch) > 1:
            lines.append(f"  batch (greedy): {', '.join(self.batch)}; joint EIG "
                         f"{self.batch_eig[-1]:.3f} ± {self.batch_eig_se[-1]:.3f}")
        if len(self.curve) > 1:
            pts = ", ".join(f"{int(n)}: {e:.3f}" for n, e in zip(self.curve["samples"], self.curve["eig"]))
            lines.append(f"  EIG of {self.best} by samples: {pts}")
        lines.append(f"  best: {self.best}")
        return "\n".join(lines)

    def _plot(self, ax=None, **options):
        plt = pyplot()
        if ax is None:
            fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        else:
            fig, axes = ax.figure, [ax, None]
        t = self.table.sort_values("rank")
        axes[0].barh(t["candidate"][::-1], t["eig"][::-1], xerr=2 * t["eig_se"][::-1], color="C0")
        axes[0].set_xlabel(f"expected information gain (nats, {self.samples} samples; ±2 se)")
        if axes[1] is not None:
            axes[1].errorbar(self.curve["samples"], self.curve["eig"], yerr=2 * self.curve["eig_se"], marker="o")
            axes[1].set_xlabel(f"samples of {self.best}")
            axes[1].set_ylabel("EIG (nats)")
        fig.tight_layout()
        return fig


# ============================================================================ the front door
def _keys(key, n):
    if isinstance(key, (int, np.integer)):
        key = jax.random.key(int(key))
    return jax.random.split(key, n)


@float64
def _estimate(model, arr, keys, pis, sizes):
    h = model.hyper
    rng = np.random.default_rng(np.asarray(jax.random.key_data(keys[0])).ravel().astype(np.uint64))
    w = np.exp(model.logw - np.logaddexp.reduce(model.logw))
    graphs = rng.choice(len(w), size=len(keys), p=w / w.sum())
    an = float(h.a) + 0.5 * model.shared_n[model.fam_child[model.fam[graphs]]]  # (draw, d)
    gam_shared, gam_own = rng.gamma(an), rng.gamma(float(h.a), size=(len(keys), len(pis), model.d))
    info, dh = _info_draws(arr, keys, jnp.asarray(graphs), jnp.asarray(gam_shared), jnp.asarray(gam_own),
                           jnp.asarray(pis, jnp.float64), sizes=tuple(sizes), m_envs=len(pis),
                           v_env=None if h.v_env is None else float(h.v_env), a=float(h.a), b=float(h.b))
    info, dh = np.asarray(info), np.asarray(dh)  # (draw, size)
    n = info.shape[0]
    return info.mean(0), info.std(0, ddof=1) / np.sqrt(n), dh.mean(0)


def next_intervention(
    data: MultiEnvData,
    targets=None,
    candidates=None,
    *,
    samples=None,
    batch: int = 1,
    key: int = 0,
    draws: int = 256,
    intervention: str = "soft",
    off_target: float = 0.0,
    change_prior: float = 0.1,
    max_graphs: int = 256,
    hyper: InterventionHyper = _HYPER,
    engine: dict | None = None,
    progress: bool | None = None,
) -> InterventionDesign:
    """Rank candidate intervention experiments by expected information gain about the DAG.

    Parameters
    ----------
    data : MultiEnvData
        The current (continuous) data, one environment per condition.
    targets : dict or "unknown"
        As for ``discover(data, method="bayes", targets=...)``; may be left out for a single
        observational environment.
    candidates : dict or list
        ``{name: [variables]}`` or ``{name: {"targets": [variables], "cost": c}}``; a list of
        variable names gives one single-variable candidate each.
    samples : int or list of int, optional
        Sample size(s) of the new environment (default: the median size of the current
        environments).  With several, the ranking uses the first and ``curve`` gives the best
        candidate's information at each.
    batch : int
        Number of experiments to choose (greedily, by their joint information).
    key : int or jax key
    draws : int
        Monte Carlo draws of (graph, data) per candidate.
    intervention : {"soft", "perfect"}
        The engine's model of a change, for the current data and the simulated experiments.
    off_target : float
        Prior probability that a candidate also changes each variable it does not target
        (and the same for the current data's targets, as in :func:`discover`).
    change_prior : float
        For ``targets="unknown"``.
    max_graphs : int
        Weighted graphs that represent the posterior (the best ones; exhaustive for small d).
    hyper : InterventionHyper
        The engine's prior.
    engine : dict, optional
        Options passed to :func:`~causalid.exchangeable.bayes.interventional_structure`
        (``num_samples``, ``num_warmup``, ``num_chains``, ``method``, ...).
    progress : bool, optional

    Returns
    -------
    InterventionDesign

    Examples
    --------
    >>> import numpy as np
    >>> from causalid.exchangeable.data import MultiEnvData
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(300, 1)); y = 0.9 * x + 0.5 * rng.normal(size=(300, 1))
    >>> data = MultiEnvData.from_arrays([np.hstack([x, y])], names=["X", "Y"], envs=["obs"])
    >>> res = next_intervention(data, {"obs": []}, ["X", "Y"], samples=100, draws=64)
    >>> sorted(res.table["candidate"]), bool(res.table["eig"].min() > 0)
    (['X', 'Y'], True)
    """
    t0 = time.perf_counter()
    data = _as_continuous(data)
    if candidates is None:
        raise DataError("give the candidate experiments: {name: [variables]} or a list of variables")
    _candidates(candidates, data.names)
    _check_design_options(candidates, batch, draws)
    sizes = _standardised_sizes(samples, np.median(data.counts))
    model = _posterior_model(data, targets, intervention=intervention, off_target=off_target,
                             change_prior=change_prior, hyper=hyper, max_graphs=max_graphs, key=key,
                             engine=engine)
    return _design(model, candidates, sizes, batch=batch, key=key, draws=draws, progress=progress, t0=t0,
                   max_graphs=max_graphs)


def _check_design_options(candidates, batch, draws):
    n = len(candidates)
    if not 1 <= int(batch) <= min(n, 3):
        raise DataError(f"batch={batch}: choose between 1 and {min(n, 3)} experiments "
                        f"(greedy joint scoring sums 2**batch change patterns per variable)")
    if int(draws) < 8:
        raise DataError(f"draws={draws} is too few for a standard error; use at least 8")


@float64
def _design(model, candidates, sizes, *, batch, key, draws, progress, t0, max_graphs=None) -> InterventionDesign:
    """Rank ``candidates`` under the posterior ``model`` (see :func:`next_intervention`)."""
    labels, tmask, costs = _candidates(candidates, model.names)
    batch = int(batch)
    pis_of = np.where(tmask, 1.0, model.off_target)  # (cand, d)
    keys = _keys(key, 1 + batch)
    bar = progress_bar(progress, total=len(labels) * batch, desc="candidates")
    arr = _kernel_arrays(model, max_graphs)
    eig, se, dh = np.zeros(len(labels)), np.zeros(len(labels)), np.zeros(len(labels))
    draw_keys = jax.random.split(keys[0], int(draws))
    curves = []
    for c in range(len(labels)):  # common random numbers across candidates
        curves.append(_estimate(model, arr, draw_keys, pis_of[c][None], sizes))  # every size at once
        if bar is not None:
            bar.update()
    eig = np.array([cv[0][0] for cv in curves])
    se = np.array([cv[1][0] for cv in curves])
    dh = np.array([cv[2][0] for cv in curves])
    top = int(np.argmax(eig))
    chosen, beig, bse = [top], [float(eig[top])], [float(se[top])]
    for step in range(1, batch):
        best = (-np.inf, -1, 0.0)
        bkeys = jax.random.split(keys[step], int(draws))
        for c in range(len(labels)):
            if c in chosen:
                continue
            e, s, _ = _estimate(model, arr, bkeys, pis_of[chosen + [c]], sizes[:1])
            if bar is not None:
                bar.update()
            if e[0] > best[0]:
                best = (float(e[0]), c, float(s[0]))
        chosen.append(best[1])
        beig.append(best[0])
        bse.append(best[2])
    e, s, h = curves[top]
    if bar is not None:
        bar.close()
    rank = np.empty(len(labels), int)
    rank[np.argsort(-eig, kind="stable")] = np.arange(1, len(labels) + 1)
    names = list(model.names)
    table = pd.DataFrame({
        "candidate": labels,
        "targets": [tuple(names[i] for i in np.flatnonzero(m)) for m in tmask],
        "eig": eig, "eig_se": se, "entropy_change": dh, "cost": costs, "eig_per_cost": eig / costs,
        "rank": rank,
    })
    curve = pd.DataFrame({"samples": list(sizes), "eig": e, "eig_se": s, "entropy_change": h})
    settings = {"draws": int(draws), "graphs": len(model.adj), "intervention": model.intervention,
                "off_target": model.off_target, "batch": batch, "key": int(key) if isinstance(key, (int, np.integer))
                else None, "seconds": time.perf_counter() - t0, "notes": model.notes,
                "edge_entropy": float(np.asarray(_edge_entropy(jnp.asarray(model.edge_probs))))}
    return InterventionDesign(table, [labels[c] for c in chosen], beig, bse, curve, sizes[0], settings)


# ============================================================================ sequential loops
def entropy_heuristic(edge_probs, candidates, names) -> str:
    """The candidate whose targets' incident edges carry the most posterior entropy.

    For every pair ``{i, j}`` the edge has three states (``i -> j``, ``j -> i``, none) with
    probabilities from ``edge_probs``; a candidate's score is the summed entropy of the pairs
    that touch one of its targets.
    """
    p = np.clip(np.asarray(edge_probs, float), 0.0, 1.0)
    none = np.clip(1.0 - p - p.T, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.nan_to_num(p * np.log(p)) + np.nan_to_num(p.T * np.log(p.T)) + np.nan_to_num(none * np.log(none)))
    np.fill_diagonal(h, 0.0)
    labels, tmask, _ = _candidates(candidates, names)
    touch = tmask[:, :, None] | tmask[:, None, :]  # (cand, i, j)
    score = (touch * np.triu(h, 1)[None]).sum(axis=(1, 2))
    return labels[int(np.argmax(score))]


def _choose(strategy, data, targets, candidates, rng, options):
    """The next candidate under ``strategy`` and the posterior's edge probabilities and MAP DAG."""
    labels = list(candidates)
    model = _posterior_model(data, targets, intervention=options.get("intervention", "soft"),
                             off_target=options.get("off_target", 0.0), change_prior=0.1,
                             hyper=options.get("hyper", _HYPER),
                             max_graphs=options.get("max_graphs", 256), key=int(rng.integers(2**31)),
                             engine=options.get("engine"))
    if strategy == "random":
        pick = labels[int(rng.integers(len(labels)))]
    elif strategy == "entropy":
        pick = entropy_heuristic(model.edge_probs, candidates, data.names)
    elif strategy == "eig":
        sizes = _standardised_sizes(options.get("samples"), np.median(data.counts))
        res = _design(model, candidates, sizes, batch=1, key=int(rng.integers(2**31)),
                      draws=options.get("draws", 256), progress=False, t0=time.perf_counter(),
                      max_graphs=options.get("max_graphs", 256))
        pick = res.best
    else:
        raise DataError(f"unknown strategy {strategy!r}; use 'eig', 'random' or 'entropy'")
    return pick, model


def _row(step, pick, model, truth):
    row = {"step": step, "chosen": pick}
    if truth is not None:
        truth = np.asarray(truth) != 0
        row["shd"] = shd(model.map_dag, truth)
        hit = np.all(model.adj == truth[None], axis=(1, 2))
        row["true_graph_mass"] = float(np.exp(model.logw)[hit].sum())
    return row


def _final_model(data, targets, options, rng) -> _Model:
    """The posterior after the last experiment of a sequential run, with the run's options."""
    return _posterior_model(data, targets, intervention=options.get("intervention", "soft"),
                            off_target=options.get("off_target", 0.0), change_prior=0.1,
                            hyper=options.get("hyper", _HYPER), max_graphs=options.get("max_graphs", 256),
                            key=int(rng.integers(2**31)), engine=options.get("engine"))


def run_sequential(
    simulator: Callable,
    data: MultiEnvData,
    candidates,
    *,
    steps: int = 3,
    samples: int = 400,
    strategy: str = "eig",
    truth=None,
    seed: int = 0,
    **options,
) -> pd.DataFrame:
    """Choose, run and add experiments one after another on a simulator.

    Parameters
    ----------
    simulator : callable
        ``simulator(targets, n, seed) -> array (n, d)``: the new environment's data when
        ``targets`` (list of variable names) are intervened on.
    data : MultiEnvData
        The starting data (observational environments).
    candidates : dict or list
        As for :func:`next_intervention`; each may be chosen more than once.
    steps, samples : int
        Experiments to run and samples of each.
    strategy : {"eig", "random", "entropy"}
        :func:`next_intervention`'s best, a uniform random candidate, or
        :func:`entropy_heuristic`.
    truth : array (var, var), optional
        The true DAG: the table then reports SHD of the MAP DAG and the posterior mass of the
        true graph after each step.
    seed : int
    **options
        Passed to :func:`next_intervention` (``draws``, ``intervention``, ``max_graphs``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per step (step 0: the starting data): ``step``, ``chosen``, ``shd``,
        ``true_graph_mass``.

    For a real lab the loop is the same by hand: run ``next_intervention``, perform
    ``result.best`` with the suggested number of samples, add the new condition to the data
    and its targets to the targets dict, and ask again.
    """
    data = _as_continuous(data)
    labels, tmask, _ = _candidates(candidates, data.names)
    cands = {lab: [data.names[i] for i in np.flatnonzero(m)] for lab, m in zip(labels, tmask)}
    rng = np.random.default_rng(seed)
    blocks = list(data.blocks())
    envs = list(data.envs)
    targets = {e: [] for e in envs}
    options.setdefault("samples", samples)
    rows = []
    for step in range(steps + 1):
        cur = MultiEnvData.from_arrays(blocks, names=data.names, envs=envs)
        if step == steps:
            model = _final_model(cur, targets, options, rng)
            rows.append(_row(step, None, model, truth))
            break
        pick, model = _choose(strategy, cur, targets, cands, rng, options)
        rows.append(_row(step, pick, model, truth))
        new = np.asarray(simulator(cands[pick], int(samples), int(rng.integers(2**31))), float)
        label = f"step{step + 1}:{pick}"
        blocks.append(new)
        envs.append(label)
        targets[label] = cands[pick]
    return pd.DataFrame(rows)


def replay(
    data: MultiEnvData,
    targets: dict,
    observational: Sequence[str],
    *,
    steps: int = 4,
    strategy: str = "eig",
    truth=None,
    seed: int = 0,
    **options,
) -> pd.DataFrame:
    """Replay a multi-condition data set: start from its observational conditions and let the
    strategy pick the order in which the other conditions arrive.

    Parameters
    ----------
    data : MultiEnvData
    targets : dict
        Nominal targets of every condition (``{condition: [variables]}``).
    observational : list of str
        The starting conditions.
    steps : int
        Conditions to add.
    strategy : {"eig", "random", "entropy"}
    truth : array (var, var), optional
        Reference graph for SHD.
    seed : int
    **options
        Passed to :func:`next_intervention` (``samples`` defaults to the condition's size).

    Returns
    -------
    pandas.DataFrame
        As for :func:`run_sequential` (``chosen`` names a condition).
    """
    data = _as_continuous(data)
    envs = list(data.envs)
    bad = [e for e in observational if e not in envs]
    if bad or not observational:
        raise DataError(f"observational conditions {bad or observational} are not environments of the data {envs}")
    rest = [e for e in envs if e not in observational]
    if steps > len(rest):
        raise DataError(f"steps={steps} but only {len(rest)} conditions remain to add")
    blocks = dict(zip(envs, data.blocks()))
    rng = np.random.default_rng(seed)
    have = list(observational)
    rows = []
    for step in range(steps + 1):
        cur = MultiEnvData.from_arrays([blocks[e] for e in have], names=data.names, envs=have)
        tg = {e: list(targets[e]) for e in have}
        cands = {e: list(targets[e]) for e in rest}
        if step == steps or not cands:
            model = _final_model(cur, tg, options, rng)
            rows.append(_row(step, None, model, truth))
            break
        opts = dict(options)
        opts.setdefault("samples", int(np.median(data.counts)))
        pick, model = _choose(strategy, cur, tg, cands, rng, opts)
        rows.append(_row(step, pick, model, truth))
        have.append(pick)
        rest.remove(pick)
    return pd.DataFrame(rows)
