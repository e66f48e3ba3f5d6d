r"""Data-driven EM starting points, and the checks for degenerate fits.

EM for an HMM climbs to the nearest local maximum, so where it starts decides what it finds.
:func:`initial_params` draws ``R`` starts from the data, each one different:

* Gaussian — start 0 splits the rows into ``K`` equal groups along their first principal
  direction (quantile split); the others seed ``K`` centres by k-means++ (each next centre drawn
  with probability proportional to its squared distance from the centres so far, in standardised
  units), refine them by one Lloyd step and take each cluster's mean and covariance (shrunk half
  way to the pooled covariance, so that a cluster of repeated values does not start as a spike).
* Poisson — start 0 puts the rates at the ``K`` quantile-group means; the others spread the
  rates by k-means++ on the counts, jittered by ±25 %.
* Categorical — start 0 mixes the pooled symbol frequencies with one favoured symbol per
  state; the others draw each state's profile from a Dirichlet centred on the pooled frequencies
  (concentration ``2 C``), so states start apart but plausible.

Transitions start sticky: start 0 keeps each state with probability 0.9, the others draw each
state's self-probability from U(0.5, 0.95) and spread the rest by a flat Dirichlet.

:func:`degeneracy` lists what is wrong with a fitted model in words: an (almost) empty state,
two states with (almost) the same emission parameters (a duplicated state: the model has fewer
states than asked), a Gaussian state whose variance sits at the variance floor (a spike on a
repeated or coded value, where the likelihood is unbounded without the floor).
"""

from __future__ import annotations

import jax
import numpy as np

from causalid.models.hmm import CategoricalEmissions, GaussianEmissions, HMMConfig, HMMParams, PoissonEmissions

__all__ = ["DegenerateFitWarning", "degeneracy", "initial_params", "pooled_rows"]


class DegenerateFitWarning(UserWarning):
    """A fitted HMM has an empty state, duplicated states, or a state whose variance sits at the
    variance floor; the message says which and what to do (``result.degenerate`` keeps it)."""


def pooled_rows(data) -> np.ndarray:
    """Every valid time step of ``data`` (a :class:`SequenceData`) as rows ``(n, D)``, NaN kept."""
    valid = np.arange(data.num_steps)[None, None, :] < data.lengths[..., None]
    return data.y[valid]


def _rng(key) -> np.random.Generator:
    # the key's own words seed NumPy (drawing an integer from it would compile a JAX program)
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


def _kmeans_pp(z: np.ndarray, K: int, rng, lloyd: int = 1) -> np.ndarray:
    """Cluster labels ``(n,)`` of the rows ``z`` by k-means++ seeding and ``lloyd`` Lloyd steps."""
    n = len(z)
    centres = [z[rng.integers(n)]]
    d2 = np.sum((z - centres[0]) ** 2, axis=1)
    for _ in range(1, K):
        total = d2.sum()
        pick = rng.integers(n) if total <= 0 else rng.choice(n, p=d2 / total)
        centres.append(z[pick])
        d2 = np.minimum(d2, np.sum((z - z[pick]) ** 2, axis=1))
    c = np.stack(centres)
    for _ in range(lloyd):
        labels = np.argmin(((z[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        for k in range(K):
            if np.any(labels == k):
                c[k] = z[labels == k].mean(axis=0)
    return np.argmin(((z[:, None, :] - c[None]) ** 2).sum(-1), axis=1)


def _quantile_labels(score: np.ndarray, K: int) -> np.ndarray:
    """Labels splitting the rows into ``K`` equal groups by ``score``."""
    order = np.argsort(score, kind="stable")
    labels = np.empty(len(score), dtype=int)
    labels[order] = np.minimum((np.arange(len(score)) * K) // max(len(score), 1), K - 1)
    return labels


def _transitions(rng, R: int, K: int) -> np.ndarray:
    if K == 1:
        return np.ones((R, 1, 1))
    trans = np.empty((R, K, K))
    for r in range(R):
        stay = np.full(K, 0.9) if r == 0 else rng.uniform(0.5, 0.95, size=K)
        for i in range(K):
            rest = np.full(K - 1, 1.0 / (K - 1)) if r == 0 else rng.dirichlet(np.ones(K - 1))
            trans[r, i] = np.insert(rest * (1.0 - stay[i]), i, stay[i])
    return trans


def initial_params(key, data, config: HMMConfig, R: int, rows: np.ndarray | None = None) -> HMMParams:
    """``R`` data-driven starting points, NumPy arrays shaped ``(R, E, ...)`` (see the module
    docstring).  ``rows`` are the pooled rows to start from (default: :func:`pooled_rows`)."""
    K, D, E = config.num_states, config.obs_dim, config.num_envs
    rng = _rng(key)
    rows = pooled_rows(data) if rows is None else rows
    col_mean = np.nanmean(rows, axis=0)
    filled = np.where(np.isnan(rows), col_mean, rows)
    n = len(filled)
    init = np.full((R, K), 1.0 / K)
    trans = _transitions(rng, R, K)
    if config.emission == "categorical":
        C = config.num_categories
        freq = np.stack([np.bincount(filled[:, d].astype(int), minlength=C)[:C] for d in range(D)]) + 0.5
        freq = freq / freq.sum(-1, keepdims=True)  # (D, C)
        probs = rng.dirichlet(np.ones(C), size=(R, K, D))  # replaced below, row by row
        for r in range(R):
            for k in range(K):
                for d in range(D):
                    probs[r, k, d] = rng.dirichlet(2.0 * C * freq[d] + 0.1) if r else (
                        0.5 * freq[d] + 0.5 * np.eye(C)[k % C])
        probs = np.maximum(probs, 1e-6)
        emissions = CategoricalEmissions(probs / probs.sum(-1, keepdims=True))
    else:
        sd = np.nanstd(rows, axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        z = (filled - col_mean) / sd
        if D > 1:
            _, _, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
            score = z @ vt[0]
            score = score if np.corrcoef(score, z[:, 0])[0, 1] >= 0 else -score
        else:
            score = z[:, 0]
        labels = [_quantile_labels(score, K)] + [_kmeans_pp(z, K, rng) for _ in range(R - 1)]
        means = np.empty((R, K, D))
        pooled_cov = np.atleast_2d(np.cov(filled.T)) if n > 1 else np.eye(D)
        if config.covariance == "diag":
            pooled_cov = np.diag(np.diag(pooled_cov))
        covs = np.empty((R, K, D, D))
        for r, lab in enumerate(labels):
            for k in range(K):
                members = filled[lab == k]
                means[r, k] = members.mean(0) if len(members) else filled[rng.integers(n)]
                if config.emission == "gaussian":
                    own = np.atleast_2d(np.cov(members.T)) if len(members) > D + 1 else pooled_cov
                    if config.covariance == "diag":
                        own = np.diag(np.diag(own))
                    covs[r, k] = 0.5 * own + 0.5 * pooled_cov + 1e-3 * np.diag(sd**2)
        if config.emission == "gaussian":
            emissions = GaussianEmissions(means, covs)
        else:
            jitter = np.ones((R, K, D))
            jitter[1:] = rng.uniform(0.75, 1.25, size=(R - 1, K, D))
            emissions = PoissonEmissions(np.maximum(means, 0.05 + 0.05 * np.abs(col_mean)) * jitter)
    return jax.tree.map(lambda v: np.broadcast_to(v[:, None], (R, E) + v.shape[1:]),
                        HMMParams(init, trans, emissions))


def degeneracy(params: HMMParams, config: HMMConfig, occupancy: np.ndarray, floor=None) -> list[str]:
    """What makes a fit degenerate, in words (empty when nothing does).

    Parameters
    ----------
    params : HMMParams
        Per-environment parameters (NumPy arrays, leading axis ``E``).
    occupancy : (E, K) array
        Expected number of steps spent in each state (sum of the smoothed posteriors).
    floor : (D,) array, optional
        The variance floor that the M-step added (Gaussian).

    Checks: a state expected to hold fewer than ``D + 1`` steps (empty); two states whose
    emission parameters agree to within 0.1 standard deviation in every mean and 10 % in every
    standard deviation (Gaussian), 2 % in every rate (Poisson) or 0.02 in every symbol
    probability (categorical) — a duplicated state; a Gaussian state with some channel's
    variance below twice the floor (or below 1e-8 of the states' mean variance) — a spike (a
    state of repeated or coded values).
    """
    K, D = config.num_states, config.obs_dim
    occupancy = np.asarray(occupancy, dtype=float)
    occupancy = np.where(np.isfinite(occupancy), occupancy, np.inf)  # (a singular fit's are NaN)
    envs = range(occupancy.shape[0]) if (config.emis_vary or config.trans_vary) else [0]
    found = []
    label = (lambda e: f" in environment {e}") if len(envs) > 1 else (lambda e: "")
    em = params.emissions
    for e in envs:
        for k in np.flatnonzero(occupancy[e] < D + 1):
            found.append(f"state {k} is empty{label(e)} (expected {occupancy[e, k]:.2g} steps)")
        if config.emission == "gaussian":
            var = np.diagonal(np.asarray(em.covs[e]), axis1=-2, axis2=-1)  # (K, D)
            unit = np.sqrt(np.mean(np.abs(var), axis=0))
            var = np.maximum(var, 1e-300)
            sd = np.sqrt(var)
            feats = [np.asarray(em.means[e]) / unit, np.log(sd)]
            close = lambda i, j: (np.all(np.abs(feats[0][i] - feats[0][j]) < 0.1)
                                  and np.all(np.abs(feats[1][i] - feats[1][j]) < np.log(1.1)))
            f = np.zeros(D) if floor is None else np.asarray(floor)
            for k in range(K):
                low = np.flatnonzero((var[k] < 2.0 * f) | (var[k] < 1e-8 * unit**2))
                if low.size and occupancy[e, k] >= D + 1:
                    found.append(f"state {k}{label(e)} has the variance floor's variance in channel "
                                 f"{int(low[0])} (sd {sd[k, low[0]]:.3g}, {occupancy[e, k]:.0f} steps): a spike "
                                 "on repeated or coded values" if np.any(f > 0) else
                                 f"state {k}{label(e)} has a vanishing variance in channel {int(low[0])} (sd "
                                 f"{sd[k, low[0]]:.3g}, {occupancy[e, k]:.0f} steps): a spike on repeated or coded "
                                 "values")
        elif config.emission == "poisson":
            lr = np.log(np.asarray(em.rates[e]))
            close = lambda i, j: np.all(np.abs(lr[i] - lr[j]) < 0.02)
        else:
            p = np.asarray(em.probs[e]).reshape(K, -1)
            close = lambda i, j: np.all(np.abs(p[i] - p[j]) < 0.02)
        for i in range(K):
            for j in range(i + 1, K):
                if close(i, j):
                    found.append(f"states {i} and {j} have the same emission parameters{label(e)} (a duplicated "
                                 "state)")
    return found
