r"""Bayesian structure learning from multi-environment exchangeable data.

The model is the causal de Finetti / independent-causal-mechanisms (ICM) plate model of
Guo et al. 2023 (arXiv 2203.15756) and Reizinger et al. 2025 (arXiv 2406.14302).  For a DAG :math:`G` with parent sets :math:`\mathrm{pa}(i)`,

.. math::

    \theta_{e,i} \sim \pi_i(\cdot \mid \eta_{i,\mathrm{pa}(i)})
    \quad\text{independently over } e, i,
    \qquad
    x_{e,n,i} \mid x_{e,n,\mathrm{pa}(i)}, \theta_{e,i}
    \sim p_i(\cdot \mid x_{e,n,\mathrm{pa}(i)}, \theta_{e,i}),

with samples :math:`n` i.i.d. inside environment :math:`e`.  Integrating every per-environment
mechanism parameter :math:`\theta_{e,i}` out leaves a marginal likelihood that factorises over
nodes *and* environments,

.. math::

    \log p(D \mid G) = \sum_i \underbrace{\sum_e \log \int \prod_n p_i(x_{e,n,i} \mid
    x_{e,n,\mathrm{pa}(i)}, \theta)\, \pi_i(\theta \mid \eta_{i,\mathrm{pa}(i)})\, d\theta}_{
    \text{local score } s(i, \mathrm{pa}(i))}.

The hyperparameters :math:`\eta` are shared by all environments and set by type-II maximum
likelihood (empirical Bayes, EB); a BIC penalty :math:`\tfrac12 |\eta| \log E` (``E`` = number of
non-empty environments, the sample size that informs :math:`\eta`) charges for them, so that a
larger parent set is not preferred just because EB can switch its extra coefficients off.
Because each environment's mechanisms are independent draws, this score is *not* Markov
equivalence invariant: the factorisation in the causal direction has independent per-
environment parameters, the anti-causal one does not, and EB-fitted priors reward the former.
That holds when both mechanisms vary, when only the cause's varies (the effect's prior collapses
onto a point, which EB finds), or when only the effect's varies.

Families
--------
``linear_gaussian``
    The data are first standardised *globally* (each variable centred and scaled by its mean and
    standard deviation over all real samples of all environments; one affine map per variable
    changes every DAG's score by the same constant).  Per environment
    :math:`x_i = \beta_e^\top z + \varepsilon`, :math:`z = (1, x_S)`,
    :math:`\varepsilon \sim N(0, \sigma_e^2)`, with the conjugate Normal–Inverse-Gamma prior
    :math:`\beta_e \mid \sigma_e^2 \sim N(m, \sigma_e^2\,\mathrm{diag}(v))`,
    :math:`\sigma_e^2 \sim \mathrm{IG}(a, b)`.  The per-environment marginal is multivariate
    Student-t, :math:`y_e \sim t_{2a}(Z_e m, \tfrac{b}{a}(I + Z_e V Z_e^\top))`
    (:func:`linear_gaussian_log_marginal`).  EB fits :math:`\eta = (m, v, a, b)`, so
    :math:`|\eta| = 2(|S| + 1) + 2`.  Caveat: the conjugate prior ties the spread of the
    coefficients to :math:`\sigma_e`; data whose coefficients and noise vary independently
    are fitted less well (direction recovery then needs more environments).
``binary`` / ``categorical``
    Integer codes ``0..L_i-1``.  Per environment and parent configuration :math:`c`,
    :math:`\theta_{e,i,c} \sim \mathrm{Dir}(\alpha_{i,c})`, independently over :math:`c`,
    giving a Dirichlet–multinomial marginal (:func:`dirichlet_multinomial_log_marginal`).
    EB fits every :math:`\alpha_{i,c,l}`; :math:`|\eta| = L_i \times` the number of parent
    configurations seen in the data (unseen configurations leave the likelihood untouched and
    are not counted).  EB was chosen over a fixed symmetric prior because a fixed prior cannot
    say "this mechanism does not vary across environments" (:math:`\alpha \to \infty`), which
    is what identifies the direction under cause- or effect-only variability; with the
    parametrisation below it converged in every run we checked.  Caveat: mechanisms whose
    rows are dependent within an environment (e.g. ``child = Bern(theta_e) XOR parents``, one
    :math:`\theta_e` for all rows) are outside this family, and the score can prefer a wrong
    direction on them.

Empirical Bayes
---------------
``eb_steps`` Adam steps (cosine-decayed rate from ``eb_lr``) maximise the log marginal
likelihood summed over environments, for all candidate parent sets at once (``vmap`` over sets
and environments).  Starts are moment estimates (pooled least squares and residual variance;
smoothed pooled level frequencies).  An invariant mechanism puts the optimum at infinity
(:math:`v \to 0`, :math:`a \to \infty`, :math:`\alpha \to \infty`), which a log
parametrisation reaches only slowly; the parametrisations used instead make those limits
interior points:

* linear-Gaussian: :math:`v = \omega^2`, :math:`a = 1 / \tau^2`, :math:`b = a\,e^{\gamma}`
  (free: :math:`m, \omega, \tau, \gamma`);
* Dirichlet: :math:`\alpha_{c} = \mathrm{softmax}(\lambda_c) / \tau_c^2`
  (free: :math:`\lambda_c, \tau_c`).

The log-gamma differences are evaluated so that they stay exact as the concentration grows
(:func:`_lgamma_diff`, :func:`_rising_log`).  With the defaults (500 steps, rate 0.1) the fitted
log marginals matched multi-start L-BFGS to within 1e-6 nats on simulated data and on the
Sachs data (a rate of 0.15 diverged on a few Sachs parent sets).

Structure posterior
-------------------
Structure prior: each of the ``d(d-1)`` possible edges independently with probability
``edge_prior`` (``0.5``: uniform over DAGs; smaller values are a sparsity prior, a
Binomial(d-1, edge_prior) prior on each node's number of parents), truncated to at most
``max_parents`` parents per node.  :func:`bayes_structure` enumerates every DAG for
``d <= 5`` and otherwise runs MCMC (order MCMC or structure MCMC) on the cached table of local
scores.
"""

from __future__ import annotations

import itertools
import warnings
from functools import partial
from math import comb
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, logsumexp

from causalid._linalg import chol_logdet_quad, chol_solve
from causalid._progress import progress_bar
from causalid._x64 import float64
from causalid.errors import ConvergenceWarning, DataError
from causalid.exchangeable.dags import (
    MAX_EXHAUSTIVE_NODES,
    ParentSets,
    dag_ranks,
    enumerate_dags,
    parent_sets,
    reachability,
)

ScoreFamily = Literal["linear_gaussian", "binary", "categorical"]
Method = Literal["auto", "exhaustive", "mcmc"]
Sampler = Literal["order", "structure"]

_LOG_2PI = float(np.log(2.0 * np.pi))


# ============================================================================ closed forms
def _lgamma_diff(x, h):
    r""":math:`\log\Gamma(x + h) - \log\Gamma(x)` for :math:`x > 0, h \ge 0`, stable for huge ``x``.

    For :math:`x \ge 10` the Stirling series is differenced analytically,

    .. math::

        (x - \tfrac12)\,\mathrm{log1p}(h/x) + h \log(x + h) - h
        + \tfrac1{12}\Delta(y^{-1}) - \tfrac1{360}\Delta(y^{-3}) + \tfrac1{1260}\Delta(y^{-5}),
        \qquad \Delta(f) = f(x + h) - f(x),

    (absolute error below 1e-10), so that the limit of an invariant mechanism (concentration
    :math:`\to\infty`) is computed without cancellation; below 10 the two log-gamma values are
    subtracted directly.
    """
    big = x >= 10.0
    xb = jnp.where(big, x, 10.0)
    xs = jnp.where(big, 1.0, x)
    y = xb + h
    stirling = (
        (xb - 0.5) * jnp.log1p(h / xb)
        + h * jnp.log(y)
        - h
        + (1.0 / y - 1.0 / xb) / 12.0
        - (1.0 / y**3 - 1.0 / xb**3) / 360.0
        + (1.0 / y**5 - 1.0 / xb**5) / 1260.0
    )
    return jnp.where(big, stirling, gammaln(xs + h) - gammaln(xs))


class NIGHyper(NamedTuple):
    r"""Normal–Inverse-Gamma hyperparameters of one linear-Gaussian mechanism.

    :math:`\beta \mid \sigma^2 \sim N(m, \sigma^2 \mathrm{diag}(v))`,
    :math:`\sigma^2 \sim \mathrm{IG}(a, b)`
    (density :math:`\propto \sigma^{-2(a+1)} e^{-b/\sigma^2}`),
    with :math:`\beta = (\text{intercept}, \text{weights})`.

    Attributes
    ----------
    m : array, shape (coef,)
    v : array, shape (coef,), non-negative (0 pins a coefficient to ``m``)
    a : array, shape ()
    b : array, shape ()
    """

    m: jax.Array
    v: jax.Array
    a: jax.Array
    b: jax.Array


def nig_log_marginal_stats(gram, zy, yy, n, hyper: NIGHyper):
    r"""NIG marginal of environments from sufficient statistics (batch axes lead).

    With :math:`G = Z^\top Z`, :math:`r = Z^\top(y - Zm)`, :math:`q = \|y - Zm\|^2`,
    :math:`D = \mathrm{diag}(\sqrt v)` and :math:`\Lambda = I + D G D`,

    .. math::

        \log p(y) = -\tfrac n2 \log 2\pi - \tfrac12 \log|\Lambda| + a \log b
        - (a + \tfrac n2) \log\bigl(b + \tfrac12 (q - r^\top D \Lambda^{-1} D r)\bigr)
        + \log\Gamma(a + \tfrac n2) - \log\Gamma(a).

    It is evaluated as :math:`-\tfrac n2 \log(2\pi b) - \tfrac12\log|\Lambda|
    - (a + \tfrac n2)\,\mathrm{log1p}(\tfrac{\mathrm{quad}}{2b})
    + [\log\Gamma(a + \tfrac n2) - \log\Gamma(a)]`,
    which stays exact as :math:`a, b \to \infty` (an invariant noise variance).  Coefficients whose
    rows of ``gram`` and ``zy`` are zero drop out exactly.
    """
    m, v, a, b = hyper
    sv = jnp.sqrt(v)
    p = m.shape[-1]
    lam = jnp.eye(p) + sv[..., :, None] * gram * sv[..., None, :]
    gm = jnp.einsum("...ij,...j->...i", gram, m)
    r = zy - gm
    q = yy - 2.0 * jnp.sum(m * zy, -1) + jnp.sum(m * gm, -1)
    logdet, wq = chol_logdet_quad(lam, sv * r)
    quad = jnp.maximum(q - wq, 0.0)
    return (
        -0.5 * n * (_LOG_2PI + jnp.log(b))
        - 0.5 * logdet
        - (a + 0.5 * n) * jnp.log1p(0.5 * quad / b)
        + _lgamma_diff(a, 0.5 * n)
    )


@float64
def linear_gaussian_log_marginal(y, x, mask, hyper: NIGHyper):
    r"""Log marginal likelihood of one environment under the linear-Gaussian mechanism.

    .. math::

        y_n = \beta^\top z_n + \varepsilon_n,\quad z_n = (1, x_n),\quad
        \varepsilon_n \sim N(0, \sigma^2),\quad
        \beta \mid \sigma^2 \sim N(m, \sigma^2 V),\quad \sigma^2 \sim \mathrm{IG}(a, b),

    integrated over :math:`(\beta, \sigma^2)`:
    :math:`y \sim t_{2a}\bigl(Zm, \tfrac ba (I + Z V Z^\top)\bigr)`.

    Parameters
    ----------
    y : array, shape (sample,)
    x : array, shape (sample, k)
        Parent values (``k`` may be 0).
    mask : array, shape (sample,), bool
        Real samples; padded ones are ignored.
    hyper : NIGHyper
        ``m`` and ``v`` of shape ``(k + 1,)`` (intercept first).

    Returns
    -------
    float array, shape ()
        :math:`\log p(y_{\text{mask}} \mid x_{\text{mask}})`.
    """
    y = jnp.asarray(y, dtype=jnp.float64)
    x = jnp.asarray(x, dtype=jnp.float64).reshape(y.shape[0], -1)
    w = jnp.asarray(mask, dtype=jnp.float64)
    z = jnp.concatenate([jnp.ones_like(y)[:, None], x], axis=1) * w[:, None]
    yw = y * w
    hyper = NIGHyper(*(jnp.asarray(h, dtype=jnp.float64) for h in hyper))
    return nig_log_marginal_stats(z.T @ z, z.T @ yw, yw @ yw, w.sum(), hyper)


_MAX_LOGSUM_COUNT = 64


def _rising_log(x, h, max_count: int | None):
    r""":math:`\log\Gamma(x + h) - \log\Gamma(x)` for integer counts ``h``.

    With a static bound ``max_count <= 64`` on ``h`` it is the exact finite sum
    :math:`\sum_{k < h} \log(x + k)` (many times faster than log-gamma and its gradient on
    CPU, and exact for any ``x``); otherwise :func:`_lgamma_diff`.
    """
    if max_count is None or max_count > _MAX_LOGSUM_COUNT:
        return _lgamma_diff(x, h)
    out = jnp.zeros(jnp.broadcast_shapes(jnp.shape(x), jnp.shape(h)))
    for k in range(int(max_count)):
        out = out + jnp.where(k < h, jnp.log(x + k), 0.0)
    return out


def _dm_log_marginal(counts, alpha, level_mask, max_count: int | None):
    a_c = jnp.sum(jnp.where(level_mask, alpha, 0.0), axis=-1)
    n_c = counts.sum(axis=-1)
    per_level = jnp.where(
        level_mask, _rising_log(jnp.where(level_mask, alpha, 1.0), counts, max_count), 0.0
    )
    return jnp.sum(per_level.sum(axis=-1) - _rising_log(a_c, n_c, max_count))


@float64
def dirichlet_multinomial_log_marginal(counts, alpha, level_mask=None):
    r"""Log probability of an ordered categorical sample under a Dirichlet prior per configuration.

    .. math::

        \log p = \sum_c \Bigl[\log\Gamma(A_c) - \log\Gamma(A_c + n_c)
        + \sum_l \bigl(\log\Gamma(\alpha_{c,l} + n_{c,l}) - \log\Gamma(\alpha_{c,l})\bigr)\Bigr],
        \quad A_c = \sum_l \alpha_{c,l},\ n_c = \sum_l n_{c,l},

    the probability of the observed sequence (no multinomial coefficient) with
    :math:`\theta_c \sim \mathrm{Dir}(\alpha_c)` integrated out.

    Parameters
    ----------
    counts : array, shape (..., config, level)
        :math:`n_{c,l}` for one environment (leading axes are summed over too).
    alpha : array, shape (config, level), positive
    level_mask : array, shape (level,), bool, optional
        Levels that exist (padded levels must have zero counts); all by default.

    Returns
    -------
    float array, shape ()
    """
    counts = jnp.asarray(counts, dtype=jnp.float64)
    alpha = jnp.asarray(alpha, dtype=jnp.float64)
    lm = jnp.ones(counts.shape[-1], bool) if level_mask is None else jnp.asarray(level_mask, bool)
    return _dm_log_marginal(counts, alpha, lm, None)


# ============================================================================ empirical Bayes
def _adam_maximize(f, x0, steps: int, lr: float):
    """Maximise ``f`` from ``x0`` (a pytree) with ``steps`` Adam steps, cosine-decayed rate."""
    grad = jax.grad(f)
    b1, b2, eps = 0.9, 0.999, 1e-8
    zeros = jax.tree.map(jnp.zeros_like, x0)

    def step(carry, t):
        x, m1, m2 = carry
        g = grad(x)
        m1 = jax.tree.map(lambda u, gi: b1 * u + (1 - b1) * gi, m1, g)
        m2 = jax.tree.map(lambda u, gi: b2 * u + (1 - b2) * gi * gi, m2, g)
        rate = lr * (0.01 + 0.99 * 0.5 * (1.0 + jnp.cos(jnp.pi * t / steps)))
        c1, c2 = 1 - b1 ** (t + 1), 1 - b2 ** (t + 1)
        x = jax.tree.map(
            lambda xi, u, w: xi + rate * (u / c1) / (jnp.sqrt(w / c2) + eps), x, m1, m2
        )
        return (x, m1, m2), None

    (x, _, _), _ = jax.lax.scan(step, (x0, zeros, zeros), jnp.arange(steps, dtype=jnp.float64))
    return x


_TINY = 1e-12


def _nig_from_unconstrained(u) -> NIGHyper:
    """``v = omega^2``, ``a = 1 / tau^2``, ``b = a exp(log_c)``: the invariant-mechanism limits
    ``v -> 0`` and ``a -> inf`` sit at ``omega = 0`` and ``tau = 0``, interior points where the
    objective is smooth and quadratic, so a fixed Adam budget reaches them."""
    a = 1.0 / (u["tau"] ** 2 + _TINY)
    return NIGHyper(u["m"], u["omega"] ** 2, a, a * jnp.exp(u["log_c"]))


@partial(jax.jit, static_argnames=("steps",))
def _lg_local_scores(tstats, child, parents, n_envs, steps: int, lr: float):
    """EB-fitted, penalised linear-Gaussian local scores for a batch of (child, parent set).

    ``tstats`` (env, var+1, var+1) are the per-environment Gram matrices of ``(1, x)``.
    """
    pmask = parents >= 0

    def one(i, pa, pm):
        keep = jnp.concatenate([jnp.ones(1, bool), pm])
        idx = jnp.concatenate([jnp.zeros(1, parents.dtype), jnp.where(pm, pa + 1, 0)])
        k2 = (keep[:, None] & keep[None, :]).astype(jnp.float64)
        gram = tstats[:, idx][:, :, idx] * k2  # (env, p, p)
        zy = tstats[:, idx, i + 1] * keep  # (env, p)
        yy = tstats[:, i + 1, i + 1]
        n = tstats[:, 0, 0]

        def objective(u):
            hyper = _nig_from_unconstrained(u)
            return jnp.sum(nig_log_marginal_stats(gram, zy, yy, n, hyper))

        # moment start: pooled least squares, pooled residual variance, a = 3 (IG mean = s2)
        g_p, h_p = gram.sum(0), zy.sum(0)
        m0 = chol_solve(g_p + jnp.diag(jnp.where(keep, 1e-8, 1.0)), h_p)
        s2 = (yy.sum() - 2 * m0 @ h_p + m0 @ g_p @ m0) / jnp.maximum(n.sum(), 1.0)
        s2 = jnp.maximum(s2, 1e-6)
        u0 = {
            "m": m0,
            "omega": jnp.ones_like(m0),
            "tau": jnp.sqrt(1.0 / 3.0),
            "log_c": jnp.log(2.0 * s2 / 3.0),
        }
        u = _adam_maximize(objective, u0, steps, lr)
        logml = objective(u)
        n_hyper = 2 * (1 + pm.sum()) + 2
        return logml, n_hyper

    logml, n_hyper = jax.vmap(one)(child, parents, pmask)
    return logml - 0.5 * n_hyper * jnp.log(n_envs), logml, n_hyper


@partial(jax.jit, static_argnames=("n_configs", "n_levels"))
def _dm_counts(codes, weights, cards, child, parents, n_configs: int, n_levels: int):
    """Counts ``(set, env, config, level)`` for a batch of (child, parent set)."""
    e_, n_ = codes.shape[:2]
    env_id = jnp.broadcast_to(jnp.arange(e_)[:, None], (e_, n_))

    def one(i, pa):
        pm = pa >= 0
        card = jnp.where(pm, cards[jnp.maximum(pa, 0)], 1)
        stride = jnp.cumprod(jnp.concatenate([jnp.ones(1, card.dtype), card[:-1]]))
        xp = jnp.where(pm, codes[:, :, jnp.maximum(pa, 0)], 0)  # (env, sample, K)
        config = jnp.sum(xp * stride, axis=-1)
        seg = (env_id * n_configs + config) * n_levels + codes[:, :, i]
        c = jax.ops.segment_sum(
            weights.ravel(), seg.ravel(), num_segments=e_ * n_configs * n_levels
        )
        return c.reshape(e_, n_configs, n_levels)

    return jax.lax.map(lambda a: one(*a), (child, parents), batch_size=16)


@partial(jax.jit, static_argnames=("steps", "max_count"))
def _dm_local_scores(counts, level_mask, n_envs, steps: int, lr: float, max_count: int | None):
    """EB-fitted, penalised Dirichlet–multinomial local scores.

    ``counts`` has shape (set, env, config, level).

    ``max_count`` bounds every count (the largest environment) and selects the exact log-sum
    evaluation of the log-gamma differences when it is small.
    """

    def one(cnt, lm):
        def alpha_of(u):
            # alpha_c = softmax(logit_c) / tau_c^2: the invariant limit (alpha -> inf) is tau_c = 0
            pi = jax.nn.softmax(jnp.where(lm, u["logit"], -jnp.inf), axis=-1)
            return pi / (u["tau"][:, None] ** 2 + _TINY)

        def objective(u):
            return _dm_log_marginal(cnt, alpha_of(u), lm, max_count)

        pooled = cnt.sum(0)  # (config, level)
        n_lev = lm.sum()
        freq = (pooled + 0.5) / (pooled.sum(-1, keepdims=True) + 0.5 * n_lev)
        u0 = {"logit": jnp.log(freq), "tau": jnp.full(freq.shape[0], 1.0) / jnp.sqrt(n_lev)}
        u = _adam_maximize(objective, u0, steps, lr)
        logml = objective(u)
        seen = jnp.sum(pooled.sum(-1) > 0)
        return logml, seen * n_lev

    logml, n_hyper = jax.vmap(one)(counts, level_mask)
    return logml - 0.5 * n_hyper * jnp.log(n_envs), logml, n_hyper


# ============================================================================ local scores
class LocalScores(NamedTuple):
    r"""Local scores of a batch of (child, parent set) pairs.

    Attributes
    ----------
    score : array, shape (set,)
        :math:`\log p(x_i \mid x_S, \hat\eta) - \tfrac12 |\eta| \log E`: the EB log marginal
        likelihood over all environments minus the BIC charge for the hyperparameters.
    log_marginal : array, shape (set,)
        :math:`\sum_e \log p(x_{e,\cdot,i} \mid x_{e,\cdot,S}, \hat\eta)` at the EB optimum.
    num_hyper : array, shape (set,), int
        :math:`|\eta|`.
    """

    score: jax.Array
    log_marginal: jax.Array
    num_hyper: jax.Array


class _Prepared(NamedTuple):
    family: str
    n_envs: int
    tstats: jax.Array | None  # linear_gaussian
    codes: jax.Array | None  # discrete
    weights: jax.Array | None
    cards: np.ndarray | None


def _prepare(values, mask, family: str, batch: bool = False) -> _Prepared:
    """Validate and summarise ``values`` (env, sample, var), or (rep, env, sample, var) with
    ``batch=True`` (then every field gains a leading replicate axis and ``n_envs`` is an array)."""
    if family not in ("linear_gaussian", "binary", "categorical"):
        raise ValueError(
            f"unknown family {family!r}; use 'linear_gaussian', 'binary' or 'categorical'"
        )
    values = np.asarray(values, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    lead = "(rep, env, sample, var)" if batch else "(env, sample, var)"
    if values.ndim != 3 + batch:
        raise DataError(f"values has shape {values.shape}; expected {lead}")
    if mask.shape != values.shape[:-1]:
        raise DataError(f"mask has shape {mask.shape}; expected {values.shape[:-1]} {lead[:-5]})")
    real = values[mask]
    if not np.all(np.isfinite(real)):
        raise DataError("values contain NaN or inf in real (unmasked) samples; impute or drop them")
    n_envs = np.sum(mask.any(axis=-1), axis=-1)
    if np.any(n_envs < 2):
        where = f" in data set {int(np.argmax(n_envs < 2))}" if batch else ""
        raise DataError(
            f"{int(n_envs.min())} non-empty environment(s){where}; "
            "the multi-environment score needs at least 2"
        )
    n_envs = n_envs if batch else int(n_envs)
    w = mask[..., None]
    x = np.where(w, values, 0.0)
    if family == "linear_gaussian":
        count = w.sum(axis=(-3, -2), keepdims=True)
        mu = x.sum(axis=(-3, -2), keepdims=True) / count
        sd = np.sqrt(np.where(w, (x - mu) ** 2, 0.0).sum(axis=(-3, -2), keepdims=True) / count)
        if np.any(sd <= 0):
            bad = sorted(set(np.nonzero(sd <= 0)[-1].tolist()))
            raise DataError(f"variables {bad} are constant over all samples; drop them")
        x = np.where(w, (x - mu) / sd, 0.0)
        z = np.concatenate([np.ones(x.shape[:-1] + (1,)), x], axis=-1) * w
        tstats = jnp.asarray(np.einsum("...eni,...enj->...eij", z, z))  # per-env Gram of (1, x)
        return _Prepared(family, n_envs, tstats, None, None, None)
    if np.any(real != np.round(real)) or np.any(real < 0):
        raise DataError(f"family {family!r} needs integer codes 0..L-1 in every real sample")
    top = 1 if family == "binary" else None
    if top is not None and np.any(real > top):
        raise DataError(
            "family 'binary' needs values in {0, 1}; use family='categorical' for more levels"
        )
    # padded entries of x are 0, so the maximum over (env, sample) is that of the real samples
    cards = (
        np.maximum(x.max(axis=(-3, -2)).astype(np.int64) + 1, 2)
        if top is None
        else np.full(x.shape[:-3] + x.shape[-1:], 2)
    )
    codes = jnp.asarray(x.astype(np.int32))
    return _Prepared(family, n_envs, None, codes, jnp.asarray(mask, jnp.float64), cards)


@partial(jax.jit, static_argnames=("steps",))
def _lg_local_scores_batch(tstats, child, parents, n_envs, steps: int, lr: float):
    """:func:`_lg_local_scores` over a leading replicate axis of ``tstats`` and ``n_envs``."""
    return jax.vmap(lambda t, n: _lg_local_scores(t, child, parents, n, steps, lr))(tstats, n_envs)


@partial(jax.jit, static_argnames=("n_configs", "n_levels", "steps", "max_count"))
def _dm_local_scores_batch(
    codes, weights, cards, child, parents, level_mask, n_envs,
    n_configs: int, n_levels: int, steps: int, lr: float, max_count: int | None,
):  # fmt: skip
    """:func:`_dm_counts` then :func:`_dm_local_scores` over a leading replicate axis."""

    def one(c, w, k, lm, n):
        counts = _dm_counts(c, w, k, child, parents, n_configs, n_levels)
        return _dm_local_scores(counts, lm, n, steps, lr, max_count)

    return jax.vmap(one)(codes, weights, cards, level_mask, n_envs)


def _scores(prep: _Prepared, child, parents, eb_steps: int, lr: float) -> LocalScores:
    """Local scores; with a batched ``prep`` (from ``_prepare(..., batch=True)``) every field
    gains a leading replicate axis and all replicates are fitted in one vmapped call."""
    child = jnp.asarray(child, jnp.int32)
    parents = jnp.asarray(parents, jnp.int32)
    n_envs = jnp.asarray(prep.n_envs, jnp.float64)
    batched = n_envs.ndim == 1
    if prep.family == "linear_gaussian":
        fn = _lg_local_scores_batch if batched else _lg_local_scores
        return LocalScores(*fn(prep.tstats, child, parents, n_envs, eb_steps, lr))
    k = parents.shape[1]
    cards = prep.cards.reshape(-1, prep.cards.shape[-1]).max(axis=0)  # common static shapes
    top = np.sort(cards)[::-1][:k]
    n_configs, n_levels = int(np.prod(top)), int(cards.max())
    level_mask = jnp.arange(n_levels) < jnp.asarray(prep.cards)[..., child, None]
    max_count = int(prep.weights.sum(axis=-1).max())
    card_arr = jnp.asarray(prep.cards, jnp.int32)
    if batched:
        return LocalScores(
            *_dm_local_scores_batch(
                prep.codes, prep.weights, card_arr, child, parents, level_mask, n_envs,
                n_configs, n_levels, eb_steps, lr, max_count,
            )  # fmt: skip
        )
    counts = _dm_counts(prep.codes, prep.weights, card_arr, child, parents, n_configs, n_levels)
    return LocalScores(*_dm_local_scores(counts, level_mask, n_envs, eb_steps, lr, max_count))


@float64
def local_scores(
    values,
    mask,
    child,
    parents,
    family: ScoreFamily = "linear_gaussian",
    *,
    eb_steps: int = 500,
    eb_lr: float = 0.1,
) -> LocalScores:
    r"""EB local scores :math:`\log p(x_i \mid x_S, \text{all environments})` for many parent sets.

    Per environment the mechanism parameters are integrated out in closed form (module
    docstring); the hyperparameters, shared across environments, are fitted by type-II
    maximum likelihood with ``eb_steps`` Adam steps, and :math:`\tfrac12|\eta|\log E` is
    subtracted.  All pairs are fitted at once (``vmap`` over pairs and environments).

    Parameters
    ----------
    values : array, shape (env, sample, var)
        Zero-padded observations (integer codes for the discrete families).
    mask : array, shape (env, sample), bool
        Real samples.
    child : array, shape (set,), int
        The node ``i`` of each pair.
    parents : array, shape (set, K), int
        Parent sets padded with ``-1`` to a common width ``K``.
    family : {"linear_gaussian", "binary", "categorical"}
    eb_steps, eb_lr : int, float
        Adam budget and initial learning rate of the EB fit.

    Returns
    -------
    LocalScores
    """
    prep = _prepare(values, mask, family)
    child = np.atleast_1d(np.asarray(child, dtype=np.int64))
    parents = np.asarray(parents, dtype=np.int64).reshape(child.shape[0], -1)
    if parents.shape[1] == 0:
        parents = np.full((child.shape[0], 1), -1, dtype=np.int64)
    return _scores(prep, child, parents, eb_steps, eb_lr)


#: Parent sets scored per compiled call when progress is shown.
_CHUNK = 512


def _chunked(fn, child, parents, progress, desc: str, axis: int = -1):
    """``fn(child, parents)`` over chunks of a fixed size (one compilation; the last chunk is
    padded by repeating its final pair), with a progress bar; outputs concatenated on
    ``axis`` (the pair axis of every output).  Without progress, one call."""
    n = len(child)
    bar = progress_bar(progress, total=n, desc=desc, unit="set") if n > _CHUNK else None
    if bar is None:
        return fn(child, parents)
    outs = []
    for start in range(0, n, _CHUNK):
        idx = np.minimum(np.arange(start, start + _CHUNK), n - 1)
        outs.append(jax.tree.map(np.asarray, fn(child[idx], parents[idx])))
        bar.update(min(_CHUNK, n - start))
    bar.close()
    return jax.tree.map(lambda *a: np.take(np.concatenate(a, axis=axis), np.arange(n), axis=axis), *outs)


#: Above this many variables the candidate parents of each node are pruned by default.
PRUNE_ABOVE = 12
#: Candidate parents kept per node when pruning.
DEFAULT_CANDIDATES = 10


def candidate_parents(values, mask, max_candidates: int) -> np.ndarray:
    r"""The ``max_candidates`` most promising parents of every node (the sparse-candidate
    restriction of Friedman, Nachman & Pe'er 1999, as in published order-MCMC codes).

    Node ``j`` is ranked, as a parent of ``i``, by the gain in closed-form log evidence of the
    single-parent mechanism :math:`j \to i` over the empty one, both shared by every
    environment (per-environment intercepts; :func:`interventional_structure` with no
    changes); the gain is symmetric up to the intercept terms, so it ranks associations.

    Returns
    -------
    ndarray, shape (var, var), bool
        ``out[j, i]``: ``j`` is a candidate parent of ``i``.
    """
    values = np.asarray(values, dtype=np.float64)
    e_, _, d = values.shape
    prep = _prepare(values, mask, "linear_gaussian")
    tstats, counts, _ = env_intercept_stats(prep.tstats, 1.0)
    child = np.repeat(np.arange(d), d)
    parents = np.tile(np.arange(d), d)[:, None]
    parents = np.where(parents == child[:, None], -1, parents)
    hyp = tuple(jnp.asarray(float(h)) for h in InterventionHyper()[:4])
    cfg = jnp.zeros((d, 1, e_), bool)
    score, _ = _iv_local_scores(tstats, counts, jnp.asarray(child, jnp.int32), jnp.asarray(parents, jnp.int32),
                                cfg, jnp.zeros((d, 1)), hyp, False)
    gain = np.asarray(score).reshape(d, d)  # [child, parent]
    gain = gain - np.diag(gain)[:, None]
    np.fill_diagonal(gain, -np.inf)
    keep = np.argsort(-gain, axis=1, kind="stable")[:, : min(max_candidates, d - 1)]
    out = np.zeros((d, d), dtype=bool)
    out[keep.ravel(), np.repeat(np.arange(d), keep.shape[1])] = True
    return out


def _allowed_sets(sets: ParentSets, candidates: np.ndarray | None) -> np.ndarray:
    """(var, P) bool: the sets whose every parent is a candidate (all when None)."""
    if candidates is None:
        return np.ones(sets.size.shape, dtype=bool)
    return ~np.any(sets.member & ~candidates.T[:, None, :], axis=-1)


def _resolve_candidates(values, mask, d: int, max_candidates: int | None):
    if max_candidates is None:
        max_candidates = d - 1 if d <= PRUNE_ABOVE else DEFAULT_CANDIDATES
    if max_candidates < 1:
        raise DataError(f"max_candidates={max_candidates} must be at least 1")
    if max_candidates >= d - 1:
        return None
    return candidate_parents(values, mask, max_candidates)


def _score_table(prep: _Prepared, sets: ParentSets, edge_prior: float, eb_steps: int, lr: float,
                 progress: bool | None = False, allowed: np.ndarray | None = None):
    """Local log posterior table ``(..., var, P)``: local score plus the log prior of the set
    size (a leading replicate axis for a batched ``prep``); sets not ``allowed`` get ``-inf``
    and are not scored."""
    d, p, k = sets.parents.shape
    allowed = np.ones((d, p), bool) if allowed is None else allowed
    flat = np.flatnonzero(allowed.ravel())
    child = np.repeat(np.arange(d), p)[flat]
    local = _chunked(lambda c, pa: _scores(prep, c, pa, eb_steps, lr), child,
                     sets.parents.reshape(d * p, k)[flat], progress, "scoring parent sets (EB)")
    size = sets.size
    log_prior = size * np.log(edge_prior) + (d - 1 - size) * np.log1p(-edge_prior)
    part = np.asarray(local.score)
    score = np.full(part.shape[:-1] + (d * p,), -np.inf)
    score[..., flat] = part
    return score.reshape(score.shape[:-1] + (d, p)) + log_prior


# ============================================================================ interventions
class InterventionHyper(NamedTuple):
    r"""Fixed Normal–Inverse-Gamma prior of the interventional linear-Gaussian score.

    On globally standardised data, every mechanism block (the environments that share a
    mechanism, or one changed environment) has
    :math:`\beta \mid \sigma^2 \sim N(0, \sigma^2\,\mathrm{diag}(v_0, v, \dots, v))`,
    :math:`\sigma^2 \sim \mathrm{IG}(a, b)`.

    With ``v_env`` set, every environment has its own intercept
    :math:`\mu_e \sim N(0, \sigma^2 v_\text{env})` in every mechanism block (the intercept of
    the shared block is then not shared; a shift of level alone is not a mechanism change);
    integrating it out leaves the centred data of the environment plus its mean, down-weighted
    by :math:`n_e / (1 + n_e v_\text{env})`, and a factor :math:`(1 + n_e v_\text{env})^{-1/2}`
    (:func:`env_intercept_stats`).

    With ``mix=True`` (and ``v_env`` set) each mechanism's intercept is, with prior
    probability 1/2 each, shared by its block or drawn per environment, and both are summed out
    in the local score (each mechanism takes the intercept model its data support).

    Attributes
    ----------
    v_intercept, v_weight, a, b : float
    v_env : float or None
    mix : bool
    """

    v_intercept: float = 1.0
    v_weight: float = 1.0
    a: float = 1.0
    b: float = 1.0
    v_env: float | None = None
    mix: bool = False


def env_intercept_stats(tstats, v_env: float):
    """Per-environment Gram matrices of ``(1, x)`` (..., env, p, p) -> those of the
    intercept-free model with a random intercept per environment integrated out, the counts
    (..., env), and the constant log factor (summed over every environment given)."""
    n = tstats[..., 0, 0]
    mean = tstats[..., 0, 1:] / jnp.maximum(n, 1.0)[..., None]
    w = n / (1.0 + n * v_env)
    inner = tstats[..., 1:, 1:] - (n - w)[..., None, None] * mean[..., :, None] * mean[..., None, :]
    out = jnp.zeros_like(tstats).at[..., 1:, 1:].set(inner)
    return out, n, -0.5 * jnp.sum(jnp.log1p(n * v_env))


Intervention = Literal["soft", "perfect"]
_MAX_CONFIGS = 4096


def change_configs(change_prior, max_configs: int = _MAX_CONFIGS):
    r"""Every change pattern of each variable that has prior mass, with its log prior.

    Parameters
    ----------
    change_prior : array, shape (env, var)
        :math:`\pi_{e,i}`, the prior probability that the mechanism of variable ``i`` is
        changed in environment ``e``; 0 and 1 fix the indicator (an observational or a known
        target), values in between leave it free (independent Bernoulli priors).
    max_configs : int
        Largest number of patterns per variable.  With ``f`` free environments all ``2**f``
        patterns are listed when they fit; otherwise only those with at most ``k`` changes
        beyond the fixed ones, ``k`` the largest that fits (a truncated sparse prior; the
        truncation is returned).

    Returns
    -------
    configs : ndarray, shape (var, M, env), bool
        Patterns (padded with copies of the first one).
    log_prior : ndarray, shape (var, M)
        Their log prior probabilities (``-inf`` on padding).
    truncated_at : int or None
        ``k`` when patterns were left out, else None.
    """
    pi = np.asarray(change_prior, dtype=np.float64)
    if pi.ndim != 2 or np.any(~np.isfinite(pi)) or np.any((pi < 0) | (pi > 1)):
        raise DataError("change_prior must be an (env, var) array of probabilities in [0, 1]")
    e_, d = pi.shape
    free = (pi > 0) & (pi < 1)
    n_free = int(free.sum(axis=0).max(initial=0))
    k_max = n_free
    while k_max > 0 and sum(comb(n_free, k) for k in range(k_max + 1)) > max_configs:
        k_max -= 1
    truncated = None if k_max == n_free else k_max
    per_var = []
    for i in range(d):
        idx = np.flatnonzero(free[:, i])
        base = pi[:, i] >= 1
        pats = []
        for k in range(min(k_max, len(idx)) + 1):
            for sub in itertools.combinations(idx, k):
                c = base.copy()
                c[list(sub)] = True
                pats.append(c)
        per_var.append(np.array(pats, dtype=bool))
    m = max(len(p) for p in per_var)
    configs = np.zeros((d, m, e_), dtype=bool)
    log_prior = np.full((d, m), -np.inf)
    with np.errstate(divide="ignore"):
        lp1, lp0 = np.log(np.where(free, pi, 1.0)), np.log(np.where(free, 1.0 - pi, 1.0))
    for i, pats in enumerate(per_var):
        configs[i, : len(pats)] = pats
        configs[i, len(pats):] = pats[0]
        f = free[:, i]
        log_prior[i, : len(pats)] = (pats[:, f] * lp1[f, i] + (~pats[:, f]) * lp0[f, i]).sum(axis=1)
    return configs, log_prior, truncated


@partial(jax.jit, static_argnames=("perfect",))
def _iv_local_scores(tstats, counts, child, parents, configs, log_prior, hyper, perfect: bool):
    r"""Interventional local scores of a batch of (child, parent set).

    For a change pattern :math:`c \in \{0,1\}^E` of the child, the environments with
    :math:`c_e = 0` share one mechanism (their statistics are pooled) and each changed
    environment has its own (soft: same parents, own parameters; perfect: parents cut):

    .. math::

        s(i, S) = \log \sum_c p(c) \Bigl[p(x_{\{e: c_e = 0\}, i} \mid x_S)
        \prod_{e: c_e = 1} p(x_{e,i} \mid x_{e,S'})\Bigr],\quad S' = S \text{ (soft) or }
        \emptyset \text{ (perfect)},

    each factor a closed-form Normal–Inverse-Gamma marginal.  Also returns the posterior
    probability of each :math:`c_e = 1` given the parent set.
    """
    v0, v1, a, b = hyper

    def one(i, pa, cfg, lp):
        pm = pa >= 0
        keep = jnp.concatenate([jnp.ones(1, bool), pm])
        idx = jnp.concatenate([jnp.zeros(1, parents.dtype), jnp.where(pm, pa + 1, 0)])
        k2 = (keep[:, None] & keep[None, :]).astype(jnp.float64)
        gram = tstats[:, idx][:, :, idx] * k2  # (env, p, p)
        zy = tstats[:, idx, i + 1] * keep  # (env, p)
        yy = tstats[:, i + 1, i + 1]
        n = counts
        p = keep.shape[0]
        v = jnp.where(jnp.arange(p) == 0, v0, v1) * keep
        hyp = NIGHyper(jnp.zeros(p), v, a, b)
        if perfect:
            own_keep = (jnp.arange(p) == 0).astype(jnp.float64)
            ml_own = nig_log_marginal_stats(
                gram * own_keep[:, None] * own_keep[None, :], zy * own_keep, yy, n, hyp
            )
        else:
            ml_own = nig_log_marginal_stats(gram, zy, yy, n, hyp)  # (env,)
        w = 1.0 - cfg.astype(jnp.float64)  # (M, env): 1 = in the shared block
        ml_pool = nig_log_marginal_stats(
            jnp.einsum("me,eij->mij", w, gram), w @ zy, w @ yy, w @ n, hyp
        )
        total = ml_pool + cfg.astype(jnp.float64) @ ml_own + lp  # (M,)
        score = logsumexp(total)
        post = jnp.exp(total - score)
        return score, post @ cfg.astype(jnp.float64)

    return jax.lax.map(
        lambda t: one(*t), (child, parents, configs[child], log_prior[child]), batch_size=64
    )


# ============================================================================ structure posterior
class MCMCDiagnostics(NamedTuple):
    """Convergence information of the DAG sampler.

    Attributes
    ----------
    acceptance : ndarray, shape (chain,)
        Fraction of accepted proposals after warm-up.
    edge_probs_chains : ndarray, shape (chain, var, var)
        Edge frequencies of each chain alone.
    top_freq_chains : ndarray, shape (chain, top)
        Frequency of each of the result's ``top_dags`` in each chain.
    max_edge_prob_diff : float
        Largest spread (max minus min over chains) of any edge probability; chains that
        explore the same posterior agree to within Monte Carlo error.
    rhat_log_score : float
        Split-R-hat of the chains' log-score traces (the order score for order MCMC, the DAG
        score for structure MCMC); 1.0 when every trace is constant.
    ess_log_score : float
        Effective sample size of that trace, pooled over chains.
    num_unique_dags : int
        Distinct DAGs among the samples.
    """

    acceptance: np.ndarray
    edge_probs_chains: np.ndarray
    top_freq_chains: np.ndarray
    max_edge_prob_diff: float
    rhat_log_score: float
    ess_log_score: float
    num_unique_dags: int


class BayesStructureResult(NamedTuple):
    r"""Posterior over DAGs from :func:`bayes_structure`.

    Attributes
    ----------
    edge_probs : ndarray, shape (var, var)
        ``edge_probs[i, j]`` = posterior probability of the edge ``i -> j``.
    map_dag : ndarray, shape (var, var), bool
        Highest-posterior DAG (exact for exhaustive enumeration; the best DAG the sampler met
        otherwise).
    top_dags : ndarray, shape (top, var, var), bool
        Best DAGs, by decreasing posterior.
    top_log_post : ndarray, shape (top,)
        Their log posterior probabilities: exact for ``"exhaustive"``; for ``"mcmc"``
        renormalised over the distinct DAGs the chains visited (an over-estimate when the
        visited set misses posterior mass).
    top_log_score : ndarray, shape (top,)
        Their unnormalised log posterior :math:`\log p(D \mid G) + \log p(G)`.
    top_freq : ndarray, shape (top,)
        Their posterior probabilities estimated by sample frequencies (``"mcmc"``; pooled over
        chains), or ``exp(top_log_post)`` (``"exhaustive"``).
    method : {"exhaustive", "mcmc"}
    sampler : {"order", "structure"} or None
        MCMC sampler (None for exhaustive enumeration).
    num_dags : int
        DAGs enumerated (exhaustive) or posterior samples drawn (mcmc).
    diagnostics : MCMCDiagnostics or None
    score_table : ndarray, shape (var, P)
        Local log score plus log prior of every candidate parent set (rows of ``parent_sets``).
    parent_sets : ndarray, shape (var, P, K), int
        The candidate parent sets (``-1`` pads).
    change_probs : ndarray, shape (env, var), optional
        :func:`interventional_structure` only: posterior probability that the mechanism of
        each variable is changed in each environment (averaged over DAGs).
    """

    edge_probs: np.ndarray
    map_dag: np.ndarray
    top_dags: np.ndarray
    top_log_post: np.ndarray
    top_log_score: np.ndarray
    top_freq: np.ndarray
    method: str
    sampler: str | None
    num_dags: int
    diagnostics: MCMCDiagnostics | None
    score_table: np.ndarray
    parent_sets: np.ndarray
    change_probs: np.ndarray | None = None


def _ranks_to_adj(ranks: np.ndarray, sets: ParentSets) -> np.ndarray:
    """(..., var) parent-set ranks -> (..., var, var) adjacency."""
    d = sets.member.shape[0]
    cols = sets.member[np.arange(d), ranks]  # (..., var(child), var(parent))
    return np.swapaxes(cols, -1, -2)


def _exhaustive(table: np.ndarray, sets: ParentSets, top_k: int):
    """Exact posterior from the table of local scores ``(..., var, P)`` by enumerating every DAG.

    Leading (replicate) axes of ``table`` carry through to every output but the DAG count: the
    DAG list and their parent-set ranks are shared, so the log posteriors of all replicates
    are one gather and sum.
    """
    d = table.shape[-2]
    dags = enumerate_dags(d)
    ok = np.all(dags.sum(axis=1) <= sets.max_parents, axis=1)
    dags = dags[ok]
    ranks = dag_ranks(dags, sets)  # (dag, var)
    log_score = table[..., np.arange(d), ranks].sum(axis=-1)  # (..., dag)
    log_post = log_score - np.logaddexp.reduce(log_score, axis=-1, keepdims=True)
    prob = np.exp(log_post)
    edge = np.einsum("...g,gij->...ij", prob, dags.astype(np.float64))
    order = np.argsort(-log_score, axis=-1, kind="stable")[..., :top_k]

    def pick(a):
        return np.take_along_axis(a, order, axis=-1)

    return (
        edge,
        dags[order[..., 0]],
        dags[order],
        pick(log_post),
        pick(log_score),
        pick(prob),
        len(dags),
    )


def _exhaustive_results(table: np.ndarray, sets: ParentSets, top_k: int):
    """:func:`_exhaustive` wrapped as one :class:`BayesStructureResult` per leading index of
    ``table`` ``(rep, var, P)``; a bare ``(var, P)`` table gives a single result."""
    single = table.ndim == 2
    tables = table[None] if single else table
    edge, map_dag, dags, log_post, log_score, prob, n = _exhaustive(tables, sets, top_k)
    out = [
        BayesStructureResult(
            edge[r], map_dag[r], dags[r], log_post[r], log_score[r], prob[r],
            "exhaustive", None, n, None, tables[r], sets.parents,
        )  # fmt: skip
        for r in range(tables.shape[0])
    ]
    return out[0] if single else out


def _chain_randoms(key, d: int, n_steps: int):
    """Per-step random numbers, drawn up front: positions ``i != j`` and ``log u``."""
    k_i, k_j, k_u = jax.random.split(key, 3)
    i = jax.random.randint(k_i, (n_steps,), 0, d)
    j = jax.random.randint(k_j, (n_steps,), 0, d - 1)
    return i, j + (j >= i), jnp.log(jax.random.uniform(k_u, (n_steps,)))


def _run_blocks(step, carry, rand, num_warmup: int, num_samples: int, thin: int, emit):
    """Warm up, then ``num_samples`` blocks of ``thin`` steps, calling ``emit`` after each block."""
    carry, _ = jax.lax.scan(step, carry, jax.tree.map(lambda r: r[:num_warmup], rand))
    blocks = jax.tree.map(lambda r: r[num_warmup:].reshape(num_samples, thin, *r.shape[1:]), rand)

    def block(carry, inp):
        b, k = inp
        carry, acc = jax.lax.scan(step, carry, b)
        return emit(carry, k, acc.mean())

    idx = jnp.arange(num_samples)
    return jax.lax.scan(block, carry, (blocks, idx))


def _order_chain(key, table, member, num_warmup: int, num_samples: int, thin: int):
    """One order-MCMC chain (Friedman & Koller 2003) with a DAG drawn given each kept order.

    State: the position ``pos[i]`` of every node in the order.  Proposal: swap the positions
    of two nodes (symmetric).  Kept samples: a DAG drawn exactly from
    ``p(pa(i) | order) ∝ exp table[i, S]`` over the sets ``S`` that precede ``i``, and the
    best DAG given the order (tracked for the MAP).
    """
    d, p = table.shape

    def consistent(pos):
        pred = pos[None, :] < pos[:, None]  # pred[i, j]: j precedes i
        return ~jnp.any(member & ~pred[:, None, :], axis=-1)  # (d, P)

    def order_score(pos):
        cons = consistent(pos)
        return jnp.sum(logsumexp(jnp.where(cons, table, -jnp.inf), axis=1)), cons

    def step(carry, inp):
        pos, score, cons, best = carry
        i, j, log_u = inp
        new_pos = pos.at[i].set(pos[j]).at[j].set(pos[i])
        new_score, new_cons = order_score(new_pos)
        accept = log_u < new_score - score
        pos, score, cons = jax.tree.map(
            lambda a, b: jnp.where(accept, a, b), (new_pos, new_score, new_cons), (pos, score, cons)
        )
        return (pos, score, cons, best), accept

    k0, k_rand, k_draw = jax.random.split(key, 3)

    def emit(carry, k, acc):
        pos, score, cons, best = carry
        masked = jnp.where(cons, table, -jnp.inf)
        top = jnp.argmax(masked, axis=1)
        val = jnp.sum(jnp.max(masked, axis=1))
        best = jax.tree.map(lambda a, b: jnp.where(val > best[0], a, b), (val, top), best)
        g = jax.random.gumbel(jax.random.fold_in(k_draw, k), (d, p))
        ranks = jnp.argmax(jnp.where(cons, table + g, -jnp.inf), axis=1)
        return (pos, score, cons, best), (ranks, score, acc)

    pos = jax.random.permutation(k0, d)
    score, cons = order_score(pos)
    best0 = (jnp.asarray(-jnp.inf), jnp.zeros(d, jnp.argmax(table, axis=1).dtype))
    rand = _chain_randoms(k_rand, d, num_warmup + num_samples * thin)
    carry, (ranks, trace, acc) = _run_blocks(
        step, (pos, score, cons, best0), rand, num_warmup, num_samples, thin, emit
    )
    return ranks, trace, acc.mean(), carry[3][1]


def _structure_chain(
    key, table, sets_arrays, max_parents: int, num_warmup: int, num_samples: int, thin: int
):
    """One structure-MCMC chain (add / delete / reverse an edge) with Metropolis–Hastings.

    The proposal picks uniformly among the legal neighbours of the current DAG (acyclic, at
    most ``max_parents`` parents), so the Hastings ratio is ``|nbr(G)| / |nbr(G')|``.  A
    reversal ``i -> j`` is legal iff no other path ``i -> k ~> j`` exists; an addition
    ``i -> j`` iff there is no path ``j ~> i``.
    """
    member, others, offsets, binom = sets_arrays
    d, p = table.shape
    sets = ParentSets(None, member, None, others, offsets, binom, max_parents)
    eye = jnp.eye(d, dtype=bool)

    def dag_score(adj):
        return jnp.sum(table[jnp.arange(d), dag_ranks(adj, sets)])

    def legal(adj):
        r = reachability(adj)
        npar = adj.sum(axis=0)
        add = ~adj & ~r.T & ~eye & (npar[None, :] < max_parents)
        via = (adj.astype(jnp.float64) @ r.astype(jnp.float64)) - adj  # paths i -> k ~> j, k != j
        rev = adj & (npar[:, None] < max_parents) & (via < 0.5)
        return jnp.concatenate([add.ravel(), adj.ravel(), rev.ravel()])

    def step(carry, inp):
        adj, score, moves, best = carry
        u_move, log_u = inp
        n_old = moves.sum()
        # the move of rank floor(u * n_old) among the legal ones (uniform)
        idx = jnp.searchsorted(jnp.cumsum(moves), (u_move * n_old).astype(n_old.dtype) + 1)
        idx = jnp.minimum(idx, moves.shape[0] - 1)
        kind, ij = idx // (d * d), idx % (d * d)
        i, j = ij // d, ij % d
        new = adj.at[i, j].set(kind == 0).at[j, i].set(jnp.where(kind == 2, True, adj[j, i]))
        new_score = dag_score(new)
        new_moves = legal(new)
        log_ratio = new_score - score + jnp.log(n_old) - jnp.log(new_moves.sum())
        accept = (n_old > 0) & (log_u < log_ratio)
        adj, score, moves = jax.tree.map(
            lambda a, b: jnp.where(accept, a, b), (new, new_score, new_moves), (adj, score, moves)
        )
        best = jax.tree.map(lambda a, b: jnp.where(score > best[0], a, b), (score, adj), best)
        return (adj, score, moves, best), accept

    def emit(carry, k, acc):
        return carry, (dag_ranks(carry[0], sets), carry[1], acc)

    k0, k1, k_move, k_u = jax.random.split(key, 4)
    # start: a DAG drawn from the local posteriors given a random order (over-dispersed)
    pos = jax.random.permutation(k0, d)
    pred = pos[None, :] < pos[:, None]
    cons = ~jnp.any(member & ~pred[:, None, :], axis=-1)
    ranks0 = jnp.argmax(jnp.where(cons, table + jax.random.gumbel(k1, (d, p)), -jnp.inf), axis=1)
    adj0 = jnp.swapaxes(member[jnp.arange(d), ranks0], 0, 1)
    score0 = dag_score(adj0)
    n_steps = num_warmup + num_samples * thin
    rand = (jax.random.uniform(k_move, (n_steps,)), jnp.log(jax.random.uniform(k_u, (n_steps,))))
    carry = (adj0, score0, legal(adj0), (score0, adj0))
    carry, (ranks, trace, acc) = _run_blocks(step, carry, rand, num_warmup, num_samples, thin, emit)
    return ranks, trace, acc.mean(), dag_ranks(carry[3][1], sets)


@partial(jax.jit, static_argnames=("sampler", "max_parents", "num_warmup", "num_samples", "thin"))
def _run_chains(
    keys, table, member, others, offsets, binom, sampler, max_parents, num_warmup, num_samples, thin
):
    if sampler == "order":
        fn = partial(
            _order_chain,
            table=table,
            member=member,
            num_warmup=num_warmup,
            num_samples=num_samples,
            thin=thin,
        )
    else:
        fn = partial(
            _structure_chain,
            table=table,
            sets_arrays=(member, others, offsets, binom),
            max_parents=max_parents,
            num_warmup=num_warmup,
            num_samples=num_samples,
            thin=thin,
        )
    return jax.vmap(fn)(keys)


def _split_rhat_ess(trace: np.ndarray) -> tuple[float, float]:
    from numpyro.diagnostics import effective_sample_size, split_gelman_rubin

    if np.all(np.ptp(trace, axis=1) == 0):  # every chain constant
        same = np.ptp(trace[:, 0]) == 0
        return (1.0 if same else float("inf")), float(trace.size if same else trace.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        rhat = float(split_gelman_rubin(trace))
        ess = float(effective_sample_size(trace))
    return rhat, ess


def _mcmc(table, sets: ParentSets, sampler, key, num_chains, num_warmup, num_samples, thin, top_k):
    d = table.shape[0]
    keys = jax.random.split(key, num_chains)
    ranks, trace, acc, extra = _run_chains(
        keys,
        jnp.asarray(table),
        jnp.asarray(sets.member),
        jnp.asarray(sets.others),
        jnp.asarray(sets.offsets),
        jnp.asarray(sets.binom),
        sampler,
        sets.max_parents,
        num_warmup,
        num_samples,
        thin,
    )
    ranks, trace, acc, extra = (np.asarray(a) for a in (ranks, trace, acc, extra))
    adj = _ranks_to_adj(ranks, sets)  # (chain, sample, d, d)
    per_chain = adj.mean(axis=1)
    edge = per_chain.mean(axis=0)
    samples = ranks.reshape(-1, d)
    uniq, inverse = np.unique(
        np.concatenate([samples, extra.reshape(-1, d)]), axis=0, return_inverse=True
    )
    sample_id = inverse.ravel()[: len(samples)].reshape(num_chains, -1)
    freq_chains = (
        np.stack([np.bincount(c, minlength=len(uniq)) for c in sample_id]) / sample_id.shape[1]
    )
    freq = freq_chains.mean(axis=0)
    n_unique_samples = int(np.count_nonzero(freq))
    log_score = table[np.arange(d), uniq].sum(axis=1)
    order = np.argsort(-log_score, kind="stable")
    log_post = log_score - np.logaddexp.reduce(log_score)
    top = order[:top_k]
    dags = _ranks_to_adj(uniq[top], sets)
    rhat, ess = _split_rhat_ess(trace)
    spread = float(np.max(np.ptp(per_chain, axis=0))) if num_chains > 1 else float("nan")
    diag = MCMCDiagnostics(acc, per_chain, freq_chains[:, top], spread, rhat, ess, n_unique_samples)
    return edge, dags[0], dags, log_post[top], log_score[top], freq[top], len(samples), diag, samples


def _check_options(d: int, edge_prior: float, max_parents: int | None, default: int) -> int:
    """Validate the structure prior and return the parent limit, clipped to ``0 .. d - 1``."""
    if not 0.0 < edge_prior < 1.0:
        raise DataError(f"edge_prior={edge_prior} must lie strictly between 0 and 1")
    max_parents = default if max_parents is None else max_parents
    return int(min(max(max_parents, 0), max(d - 1, 0)))


def _search_options(d: int, method, sampler, edge_prior, max_parents, key, *, mcmc_parents: int):
    """The checked search settings of both structure engines: the method ('auto' resolved),
    the parent limit (every parent when exhaustive, ``mcmc_parents`` for MCMC by default) and
    the PRNG key."""
    if method == "auto":
        method = "exhaustive" if d <= MAX_EXHAUSTIVE_NODES else "mcmc"
    if method not in ("exhaustive", "mcmc"):
        raise ValueError(f"unknown method {method!r}; use 'auto', 'exhaustive' or 'mcmc'")
    if sampler not in ("order", "structure"):
        raise ValueError(f"unknown sampler {sampler!r}; use 'order' or 'structure'")
    if method == "exhaustive" and d > MAX_EXHAUSTIVE_NODES:
        raise ValueError(
            f"exhaustive enumeration supports at most {MAX_EXHAUSTIVE_NODES} variables, got {d}"
        )
    max_parents = _check_options(d, edge_prior, max_parents,
                                 default=d - 1 if method == "exhaustive" else mcmc_parents)
    if isinstance(key, (int, np.integer)):
        key = jax.random.key(int(key))
    return method, max_parents, key


@float64
def bayes_structure(
    values,
    mask,
    family: ScoreFamily = "linear_gaussian",
    *,
    max_parents: int | None = None,
    edge_prior: float = 0.5,
    method: Method = "auto",
    sampler: Sampler = "order",
    num_chains: int = 4,
    num_warmup: int = 1000,
    num_samples: int = 2000,
    thin: int = 5,
    top_k: int = 10,
    eb_steps: int = 500,
    eb_lr: float = 0.1,
    key: jax.Array | int = 0,
    progress: bool | None = False,
    max_candidates: int | None = None,
) -> BayesStructureResult:
    r"""Posterior over DAGs under the exchangeable (ICM) hierarchical model.

    .. math::

        p(G \mid D) \propto p(G) \prod_i \exp s\bigl(i, \mathrm{pa}_G(i)\bigr),
        \qquad
        \log p(G) = \sum_i |\mathrm{pa}(i)| \log \rho + (d - 1 - |\mathrm{pa}(i)|) \log(1 - \rho),

    with :math:`s` the EB-penalised local score of the family (module docstring) and
    :math:`\rho` = ``edge_prior``; DAGs with more than ``max_parents`` parents at a node have
    prior zero.

    ``method="exhaustive"`` (the ``"auto"`` choice for ``d <= 5``) scores every DAG (25, 543,
    29,281 for d = 3, 4, 5) from the table of local scores and normalises exactly.
    ``method="mcmc"`` runs ``num_chains`` chains in parallel (``vmap``):

    * ``sampler="order"`` — order MCMC (Friedman & Koller 2003): the state is a node order
      :math:`\prec`, scored by :math:`\sum_i \log \sum_{S \subseteq \mathrm{pred}_\prec(i),
      |S| \le K} \exp s(i, S) p(S)`, proposals swap two positions; after each kept step a DAG
      is drawn exactly given the order, and the best DAG given each visited order is tracked
      for ``map_dag``.  Its DAG marginal is :math:`p(G \mid D)` times the number of orders
      consistent with :math:`G` (the known order-prior bias: graphs with many linear
      extensions, e.g. sparse ones, are up-weighted); it mixes far better than structure MCMC.
    * ``sampler="structure"`` — Metropolis–Hastings over DAGs with add / delete / reverse moves
      chosen uniformly among the legal ones (acyclic via a transitive closure, at most
      ``max_parents`` parents); targets :math:`p(G \mid D)` exactly but mixes slowly on peaked
      posteriors.

    Parameters
    ----------
    values : array, shape (env, sample, var)
        Zero-padded observations (integer codes for ``binary`` / ``categorical``).
    mask : array, shape (env, sample), bool
        Real samples; padding has no influence.
    family : {"linear_gaussian", "binary", "categorical"}
    max_parents : int, optional
        ``K``; default ``d - 1`` for exhaustive enumeration and ``min(3, d - 1)`` for MCMC.
    edge_prior : float
        Prior probability :math:`\rho` of each edge (0.5 = uniform over DAGs).
    method : {"auto", "exhaustive", "mcmc"}
    sampler : {"order", "structure"}
    num_chains, num_warmup, num_samples, thin : int
        Chains; warm-up steps; kept samples per chain; steps between kept samples.
    top_k : int
        Number of best DAGs to return.
    eb_steps, eb_lr : int, float
        Empirical-Bayes optimiser budget (see :func:`local_scores`).
    key : jax PRNG key or int
    progress : bool or None
        Show progress of the scoring (see :mod:`causalid._progress`; off by default here).
    max_candidates : int, optional
        Candidate parents per node (:func:`candidate_parents`); parent sets outside them have
        prior zero and are not scored.  Default: no pruning up to ``PRUNE_ABOVE`` = 12
        variables, ``DEFAULT_CANDIDATES`` = 10 beyond (continuous data only).

    Returns
    -------
    BayesStructureResult
        A :class:`~causalid.errors.ConvergenceWarning` is issued when MCMC chains disagree
        (edge-probability spread > 0.2 or split-R-hat > 1.2).

    Examples
    --------
    The cause's mechanism varies across 200 environments, the effect's is invariant; the two
    DAGs ``X -> Y`` and ``Y -> X`` are Markov equivalent, yet the direction is recovered:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> E, N = 200, 4
    >>> scale = rng.uniform(0.5, 2.0, (E, 1, 1))
    >>> x = rng.normal(1.0, 1.0, (E, 1, 1)) + scale * rng.normal(size=(E, N, 1))
    >>> y = 0.8 * x + 0.5 * rng.normal(size=(E, N, 1))
    >>> res = bayes_structure(np.concatenate([x, y], axis=-1), np.ones((E, N), bool))
    >>> res.method, res.map_dag.astype(int).tolist(), round(float(res.edge_probs[0, 1]), 2)
    ('exhaustive', [[0, 1], [0, 0]], 1.0)
    """
    values = np.asarray(values, dtype=np.float64)
    d = values.shape[-1]
    method, max_parents, key = _search_options(d, method, sampler, edge_prior, max_parents, key,
                                               mcmc_parents=min(3, d - 1))
    prep = _prepare(values, mask, family)
    sets = parent_sets(d, max_parents)
    cand = _resolve_candidates(values, mask, d, max_candidates) if family == "linear_gaussian" else None
    table = _score_table(prep, sets, edge_prior, eb_steps, eb_lr, progress, _allowed_sets(sets, cand))
    return _posterior(table, sets, method, sampler, key, num_chains, num_warmup, num_samples, thin,
                      top_k)[0]


def _posterior(table, sets, method, sampler, key, num_chains, num_warmup, num_samples, thin, top_k):
    """DAG posterior from a local-score table; also the parent-set ranks of the posterior
    sample with their weights (every DAG with its probability for exhaustive enumeration)."""
    d = table.shape[0]
    if method == "exhaustive":
        res = _exhaustive_results(table, sets, top_k)
        dags = enumerate_dags(d)
        dags = dags[np.all(dags.sum(axis=1) <= sets.max_parents, axis=1)]
        ranks = dag_ranks(dags, sets)
        log_score = table[np.arange(d), ranks].sum(axis=-1)
        return res, ranks, np.exp(log_score - np.logaddexp.reduce(log_score))
    if d < 2:
        raise ValueError("MCMC needs at least 2 variables; use method='exhaustive'")
    edge, map_dag, dags, log_post, log_score, freq, n, diag, samples = _mcmc(
        table, sets, sampler, key, num_chains, num_warmup, num_samples, thin, top_k
    )
    if num_chains > 1 and (diag.max_edge_prob_diff > 0.2 or diag.rhat_log_score > 1.2):
        warnings.warn(
            f"{sampler} MCMC chains disagree (edge-probability spread "
            f"{diag.max_edge_prob_diff:.2f}, split-R-hat {diag.rhat_log_score:.2f}); "
            "run longer chains (num_warmup, num_samples, thin)",
            ConvergenceWarning,
            stacklevel=3,
        )
    res = BayesStructureResult(
        edge,
        map_dag,
        dags,
        log_post,
        log_score,
        freq,
        "mcmc",
        sampler,
        n,
        diag,
        table,
        sets.parents,
    )
    return res, samples, np.full(len(samples), 1.0 / len(samples))


@float64
def bayes_structure_batch(
    values,
    mask,
    family: ScoreFamily = "linear_gaussian",
    *,
    max_parents: int | None = None,
    edge_prior: float = 0.5,
    eb_steps: int = 500,
    eb_lr: float = 0.1,
    top_k: int = 10,
) -> list[BayesStructureResult]:
    r"""Exact DAG posteriors of ``R`` replicate data sets at once (``d <= 5`` variables).

    The same model and result as ``bayes_structure(values[r], mask[r], family,
    method="exhaustive", ...)`` for each ``r``, but the local-score tables of all replicates are
    fitted in one vmapped, jitted call and the enumeration is one array operation over
    ``(replicate, DAG)``.

    Parameters
    ----------
    values : array, shape (rep, env, sample, var)
        Zero-padded observations (integer codes for ``binary`` / ``categorical``).
    mask : array, shape (rep, env, sample), bool
        Real samples.
    family, max_parents, edge_prior, eb_steps, eb_lr, top_k
        As for :func:`bayes_structure` (``max_parents`` defaults to ``d - 1``).

    Returns
    -------
    list of BayesStructureResult, one per replicate.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 4:
        raise DataError(f"values has shape {values.shape}; expected (rep, env, sample, var)")
    d = values.shape[-1]
    if d > MAX_EXHAUSTIVE_NODES:
        raise DataError(
            f"batch mode supports at most {MAX_EXHAUSTIVE_NODES} variables (exhaustive "
            f"enumeration), got {d}; loop over causalid.discover for MCMC on each data set"
        )
    max_parents = _check_options(d, edge_prior, max_parents, default=d - 1)
    prep = _prepare(values, mask, family, batch=True)
    sets = parent_sets(d, max_parents)
    table = _score_table(prep, sets, edge_prior, eb_steps, eb_lr)  # (rep, var, P)
    return _exhaustive_results(table, sets, top_k)


def _iv_scores(prep, child, parents, configs, log_prior_c, hyper, perfect: bool, progress, desc):
    """Interventional local scores and change probabilities of (child, parent set) pairs under
    ``hyper``'s intercept model (shared, per environment, or the 1/2-1/2 mixture of both)."""
    hyp = tuple(jnp.asarray(float(h)) for h in hyper[:4])
    cfg, lpc = jnp.asarray(configs), jnp.asarray(log_prior_c)
    models = [(prep.tstats, prep.tstats[:, 0, 0], 0.0)] if hyper.v_env is None or hyper.mix else []
    if hyper.v_env is not None:
        models.append(env_intercept_stats(prep.tstats, float(hyper.v_env)))
    out = []
    for tstats, counts, const in models:
        score, change = _chunked(
            lambda c, pa, t=tstats, n=counts: _iv_local_scores(
                t, n, jnp.asarray(c, jnp.int32), jnp.asarray(pa, jnp.int32), cfg, lpc, hyp, perfect),
            child, parents, progress, desc, axis=0,
        )  # fmt: skip
        out.append((np.asarray(score) + float(const), np.asarray(change)))
    if len(out) == 1:
        return out[0]
    (s0, c0), (s1, c1) = out
    total = np.logaddexp(s0, s1)
    w1 = np.exp(s1 - total)[:, None]
    return total - np.log(2.0), (1.0 - w1) * c0 + w1 * c1


#: Largest number of candidate parent sets per node that sets the default parent limit of
#: :func:`interventional_structure` (its closed-form scores are cheap; the sampler's cost grows
#: with the sets per node).
PARENT_SET_BUDGET = 200


def _budget_parents(d: int) -> int:
    """The largest ``K`` with at most ``PARENT_SET_BUDGET`` parent sets of size <= K per node,
    and at least ``min(3, d - 1)``."""
    k, total = 0, 1
    while k < d - 1 and total + comb(d - 1, k + 1) <= PARENT_SET_BUDGET:
        k += 1
        total += comb(d - 1, k)
    return max(k, min(3, d - 1))


@float64
def interventional_structure(
    values,
    mask,
    change_prior,
    *,
    intervention: Intervention = "soft",
    max_parents: int | None = None,
    edge_prior: float = 0.5,
    method: Method = "auto",
    sampler: Sampler = "order",
    num_chains: int = 4,
    num_warmup: int = 1000,
    num_samples: int = 2000,
    thin: int = 5,
    top_k: int = 10,
    hyper: InterventionHyper = InterventionHyper(v_env=1.0, mix=True),
    max_configs: int = _MAX_CONFIGS,
    key: jax.Array | int = 0,
    progress: bool | None = False,
    max_candidates: int | None = None,
) -> BayesStructureResult:
    r"""Posterior over DAGs and mechanism changes from interventional linear-Gaussian data.

    The sparse-mechanism-shift view of the exchangeable model (IEM): in every environment
    ``e`` the mechanism of variable ``i`` is either the baseline one, shared by all
    environments where it is not changed, or changed (indicator :math:`c_{e,i}`).  A soft
    change gives the environment its own parameters with the same parents, a perfect one cuts
    the parents.  Every block's parameters are integrated out in closed form (Normal–Inverse-
    Gamma, :class:`InterventionHyper`, on globally standardised data); the indicators have
    independent Bernoulli priors ``change_prior`` and are summed out exactly per variable and
    parent set (:func:`change_configs`), so

    .. math::

        p(G, c \mid D) \propto p(G) \prod_i p(c_{\cdot,i})\,
        p\bigl(x_{\cdot,i} \mid x_{\cdot,\mathrm{pa}(i)}, c_{\cdot,i}\bigr),

    and the table of local scores :math:`\log \sum_c (\cdot)` feeds the same exhaustive
    enumeration or order MCMC as :func:`bayes_structure`.  Known targets are
    ``change_prior = 1`` (and 0 elsewhere, or a small off-target probability); unknown
    targets a sparse prior everywhere but a reference environment.

    Parameters
    ----------
    values : array, shape (env, sample, var)
    mask : array, shape (env, sample), bool
    change_prior : array, shape (env, var)
        Prior probability of each change indicator (0 and 1 fix it).
    intervention : {"soft", "perfect"}
    max_parents, edge_prior, method, sampler, num_chains, num_warmup, num_samples, thin, top_k, key
        As for :func:`bayes_structure`; ``max_parents`` defaults to ``d - 1`` for exhaustive
        enumeration, and otherwise to the largest limit that keeps at most
        ``PARENT_SET_BUDGET`` = 200 parent sets per node, but at least 3 (all ``d - 1`` up to
        8 variables, 3 from 10).
    hyper : InterventionHyper
        Default: unit prior variances, ``IG(1, 1)`` noise variances, and each mechanism's
        intercept either shared or drawn per environment (``v_env=1, mix=True``): on the
        Sachs data with the nominal targets the per-environment intercepts raised the log
        evidence of the best DAG by 1.7e4 nats over shared ones, on simulations without
        shifts of level the shared ones were preferred; the mixture lets each mechanism's
        evidence decide.
    max_configs : int
        See :func:`change_configs`.
    progress : bool or None
        Show progress of the scoring (off by default here).
    max_candidates : int, optional
        As for :func:`bayes_structure`.

    Returns
    -------
    BayesStructureResult
        With ``change_probs`` (env, var): :math:`p(c_{e,i} = 1 \mid D)`.

    Examples
    --------
    ``X -> Y``; environment 1 widens ``X`` (a soft intervention; a shift of level alone is
    absorbed by the per-environment intercepts), environment 2 sets ``Y`` (perfectly):

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=(3, 300))
    >>> x[1] *= 2.5
    >>> y = 0.8 * x + 0.6 * rng.normal(size=(3, 300))
    >>> y[2] = rng.normal(size=300) - 1.0
    >>> values = np.stack([x, y], axis=-1)
    >>> known = np.array([[0, 0], [1, 0], [0, 1]])
    >>> res = interventional_structure(values, np.ones((3, 300), bool), known)
    >>> res.map_dag.astype(int).tolist(), round(float(res.edge_probs[0, 1]), 2)
    ([[0, 1], [0, 0]], 1.0)
    >>> free = np.array([[0, 0], [0.1, 0.1], [0.1, 0.1]])
    >>> res = interventional_structure(values, np.ones((3, 300), bool), free)
    >>> (res.change_probs > 0.5).astype(int).tolist()
    [[0, 0], [1, 0], [0, 1]]
    """
    values = np.asarray(values, dtype=np.float64)
    d = values.shape[-1]
    if intervention not in ("soft", "perfect"):
        raise DataError(f"unknown intervention {intervention!r}; use 'soft' or 'perfect'")
    method, max_parents, key = _search_options(d, method, sampler, edge_prior, max_parents, key,
                                               mcmc_parents=_budget_parents(d))
    prep = _prepare(values, mask, "linear_gaussian")
    pi = np.asarray(change_prior, dtype=np.float64)
    if pi.shape != (values.shape[0], d):
        raise DataError(f"change_prior has shape {pi.shape}; expected (env, var) = {(values.shape[0], d)}")
    configs, log_prior_c, truncated = change_configs(pi, max_configs)
    if truncated is not None:
        warnings.warn(
            f"{int(((pi > 0) & (pi < 1)).sum(axis=0).max())} environments with unknown changes: "
            f"change patterns truncated to at most {truncated} changes per variable "
            f"(max_configs={max_configs}); raise max_configs for the exact sum",
            stacklevel=2,
        )
    sets = parent_sets(d, max_parents)
    _, p, k = sets.parents.shape
    allowed = _allowed_sets(sets, _resolve_candidates(values, mask, d, max_candidates))
    flat = np.flatnonzero(allowed.ravel())
    child = np.repeat(np.arange(d), p)[flat]
    local, change = _iv_scores(prep, child, sets.parents.reshape(d * p, k)[flat], configs, log_prior_c, hyper,
                               intervention == "perfect", progress,
                               f"scoring parent sets ({configs.shape[1]} change patterns each)")
    size = sets.size
    log_prior = size * np.log(edge_prior) + (d - 1 - size) * np.log1p(-edge_prior)
    table = np.full(d * p, -np.inf)
    table[flat] = np.asarray(local)
    table = table.reshape(d, p) + log_prior
    full = np.zeros((d * p, values.shape[0]))
    full[flat] = np.asarray(change)
    change = full.reshape(d, p, -1)  # (var, P, env)
    res, ranks, weight = _posterior(table, sets, method, sampler, key, num_chains, num_warmup,
                                    num_samples, thin, top_k)
    per_sample = change[np.arange(d), ranks]  # (sample, var, env)
    probs = np.einsum("s,sie->ei", weight, per_sample)
    return res._replace(change_probs=np.clip(probs, 0.0, 1.0))


@float64
def mechanism_change_probs(
    values,
    mask,
    adjacency,
    change_prior,
    *,
    intervention: Intervention = "soft",
    hyper: InterventionHyper = InterventionHyper(v_env=1.0, mix=True),
    max_configs: int = _MAX_CONFIGS,
) -> np.ndarray:
    r"""Posterior probability that each (environment, variable) mechanism changed, given a DAG.

    The model of :func:`interventional_structure` with the parents of every variable fixed by
    ``adjacency``: :math:`p(c_{e,i} = 1 \mid D, G)`, exact (the change patterns of each
    variable are summed out).  Every sample of every environment is used and nothing is
    random, so the verdict is the same for every seed and works with two environments.

    Parameters
    ----------
    values : array, shape (env, sample, var)
    mask : array, shape (env, sample), bool
    adjacency : array, shape (var, var)
        ``adjacency[j, i]`` nonzero for ``j -> i``.
    change_prior : array, shape (env, var)
        As for :func:`interventional_structure` (0 for a reference environment).
    intervention, hyper, max_configs
        As for :func:`interventional_structure`.

    Returns
    -------
    ndarray, shape (env, var)

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2, 500, 1))
    >>> y = 0.5 * x + rng.normal(size=(2, 500, 1))
    >>> y[1] += 0.8 * x[1]                      # the mechanism of y changes in environment 1
    >>> probs = mechanism_change_probs(np.concatenate([x, y], -1), np.ones((2, 500), bool),
    ...                                [[0, 1], [0, 0]], [[0, 0], [0.1, 0.1]])
    >>> (probs > 0.5).astype(int).tolist()
    [[0, 0], [0, 1]]
    """
    values = np.asarray(values, dtype=np.float64)
    e_, _, d = values.shape
    adj = np.asarray(adjacency) != 0
    if adj.shape != (d, d):
        raise DataError(f"adjacency has shape {adj.shape}; expected {(d, d)}")
    pi = np.asarray(change_prior, dtype=np.float64)
    if pi.shape != (e_, d):
        raise DataError(f"change_prior has shape {pi.shape}; expected (env, var) = {(e_, d)}")
    prep = _prepare(values, mask, "linear_gaussian")
    configs, log_prior_c, truncated = change_configs(pi, max_configs)
    if truncated is not None:
        warnings.warn(f"change patterns truncated to at most {truncated} changes per variable "
                      f"(max_configs={max_configs})", stacklevel=2)
    k = max(int(adj.sum(axis=0).max(initial=0)), 1)
    parents = np.full((d, k), -1, dtype=np.int32)
    for i in range(d):
        pa = np.flatnonzero(adj[:, i])
        parents[i, : len(pa)] = pa
    _, change = _iv_scores(prep, np.arange(d), parents, configs, log_prior_c, hyper, intervention == "perfect",
                           False, "")
    return np.clip(np.asarray(change).T, 0.0, 1.0)
