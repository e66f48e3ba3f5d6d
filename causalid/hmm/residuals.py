r"""Pseudo-residuals of a fitted HMM (Zucchini & MacDonald 2009, ch. 6): the model check.

For a step :math:`t` and channel :math:`d` the *uniform pseudo-residual* is the fitted
distribution function at the observation, :math:`u_t = F(y_t)`, under either

* ``kind="ordinary"`` — the distribution of :math:`y_t` given every other observation,
  :math:`P(z_t = k \mid y_{-t}) \propto p(z_t = k \mid y) / p(y_t \mid z_t = k)`, or
* ``kind="forecast"`` — the one-step forecast distribution given the past,
  :math:`P(z_t = k \mid y_{0:t-1})`,

mixed over the states: :math:`u_t = \sum_k w_{t,k} F_k(y_{t,d})` with :math:`F_k` the state's
marginal distribution function of channel ``d``.  Under the model the :math:`u_t` are uniform
and the *normal pseudo-residuals* :math:`z_t = \Phi^{-1}(u_t)` standard normal; forecast
residuals are moreover independent over time.  For discrete emissions (Poisson, categorical in
symbol order) the residual is randomised, :math:`u_t = F(y_t - 1) + V (F(y_t) - F(y_t - 1))`
with :math:`V \sim U(0, 1)`, which makes it exactly uniform.

:class:`ResidualCheck` holds the residuals and two tests per channel: Kolmogorov-Smirnov of
:math:`z` against :math:`\mathcal N(0, 1)` and Ljung-Box on the autocorrelations of :math:`z`
within sequences; ``.plot()`` draws the normal QQ plot and the autocorrelation function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from causalid._plotting import figure_grid
from causalid._results import Result

__all__ = ["ResidualCheck", "ljung_box", "pseudo_residuals_from_weights"]


def _state_cdfs(params, env: int, y: np.ndarray, emission: str):
    """Per-state distribution functions at ``y`` and just below it: ``(T, K, D)`` each."""
    em = params.emissions
    if emission == "gaussian":
        mu = np.asarray(em.means)[env]  # (K, D)
        sd = np.sqrt(np.maximum(np.diagonal(np.asarray(em.covs)[env], axis1=-2, axis2=-1), 1e-300))
        upper = stats.norm.cdf((y[:, None, :] - mu[None]) / sd[None])
        return upper, upper
    yy = np.where(np.isnan(y), 0.0, y)
    if emission == "poisson":
        lam = np.asarray(em.rates)[env][None]  # (1, K, D)
        return stats.poisson.cdf(yy[:, None, :], lam), stats.poisson.cdf(yy[:, None, :] - 1, lam)
    probs = np.asarray(em.probs)[env]  # (K, D, C)
    cum = np.cumsum(probs, axis=-1)
    idx = yy.astype(int)  # (T, D)
    D = y.shape[1]
    upper = np.stack([cum[:, d, :][:, idx[:, d]].T for d in range(D)], axis=-1)  # (T, K, D)
    lower = np.stack([np.where(idx[:, d] > 0, cum[:, d, :][:, np.maximum(idx[:, d] - 1, 0)], 0.0).T
                      for d in range(D)], axis=-1)
    return upper, lower


def pseudo_residuals_from_weights(params, env: int, y: np.ndarray, weights: np.ndarray, emission: str, rng):
    """Uniform pseudo-residuals ``(T, D)`` of one sequence ``y`` ``(T, D)`` given the state weights
    ``(T, K)`` (NaN where ``y`` is missing); randomised for discrete emissions."""
    upper, lower = _state_cdfs(params, env, y, emission)
    hi = np.einsum("tk,tkd->td", weights, upper)
    lo = np.einsum("tk,tkd->td", weights, lower)
    u = hi if emission == "gaussian" else lo + rng.uniform(size=hi.shape) * (hi - lo)
    return np.where(np.isnan(y), np.nan, np.clip(u, 1e-15, 1 - 1e-15))


def ljung_box(series: list, lags: int) -> tuple[float, float]:
    """Ljung-Box statistic and p-value (chi-square, ``lags`` df) of the sequences in ``series``
    (autocorrelations pooled over sequences, pairs never crossing from one sequence to the next;
    missing values skipped)."""
    allv = np.concatenate([s[np.isfinite(s)] for s in series])
    n = allv.size
    mean = allv.mean()
    denom = np.sum((allv - mean) ** 2)
    q = 0.0
    for h in range(1, lags + 1):
        num = 0.0
        for s in series:
            c = s - mean
            prod = c[h:] * c[:-h]
            num += np.nansum(prod)
        q += (num / denom) ** 2 / (n - h)
    q *= n * (n + 2)
    return float(q), float(stats.chi2.sf(q, lags))


@dataclass
class ResidualCheck(Result):
    """Pseudo-residuals of an HMM fit and their tests (:meth:`causalid.HMMResult.pseudo_residuals`).

    Attributes
    ----------
    kind : {"ordinary", "forecast"}
    residuals : pandas.DataFrame
        One row per observed value: ``env``, ``sequence``, ``step``, ``channel``, ``u`` (uniform
        pseudo-residual) and ``z`` (normal pseudo-residual).
    tests : pandas.DataFrame
        One row per channel: ``n``, the Kolmogorov-Smirnov statistic and p-value of ``z``
        against N(0, 1), the Ljung-Box statistic, its lags and p-value, ``consistent`` (the
        p-values at least ``alpha``: Kolmogorov-Smirnov, and for forecast residuals Ljung-Box;
        ordinary residuals condition on both neighbours and are not independent over time).
    alpha : float
    """

    kind: str
    residuals: pd.DataFrame
    tests: pd.DataFrame
    alpha: float = 0.01

    REQUIRED = ("kind", "residuals", "tests", "alpha")

    @property
    def consistent(self) -> bool:
        """Whether no test rejects the model at ``alpha`` in any channel."""
        return bool(self.tests["consistent"].all())

    def summary(self) -> str:
        head = (f"{self.kind} pseudo-residuals: "
                + ("consistent with the model" if self.consistent else "the model does NOT fit")
                + f" (Kolmogorov-Smirnov against N(0, 1) and Ljung-Box, alpha = {self.alpha:g})")
        return head + "\n" + self.tests.to_string(index=False)

    def to_frame(self) -> pd.DataFrame:
        return self.tests

    def _to_payload(self) -> dict:
        return {"kind": self.kind, "alpha": self.alpha, "residuals": self.residuals.to_dict(orient="list"),
                "tests": self.tests.to_dict(orient="list")}

    @classmethod
    def _from_payload(cls, d: dict) -> ResidualCheck:
        return cls(str(d["kind"]), pd.DataFrame(d["residuals"]), pd.DataFrame(d["tests"]), float(d["alpha"]))

    def _plot(self, ax=None):
        """Per channel (at most 3): the normal QQ plot of ``z`` and its autocorrelation function
        with the ±1.96/√n band."""
        channels = list(self.tests["channel"])[:3]
        fig, grid = figure_grid(ax, 2, len(channels), (3.6 * len(channels), 6.0), layout="constrained")
        for col, ch in enumerate(channels):
            part = self.residuals[self.residuals["channel"] == ch]
            z = np.sort(part["z"].to_numpy())
            q = stats.norm.ppf((np.arange(1, z.size + 1) - 0.5) / z.size)
            a = fig.add_subplot(grid[0, col])
            a.scatter(q, z, s=6, color="C0")
            lim = [min(q.min(), z.min()), max(q.max(), z.max())]
            a.plot(lim, lim, color="0.4", lw=1)
            a.set_title(f"{ch}: normal QQ ({self.kind})", fontsize=9)
            a.set_xlabel("N(0, 1) quantile", fontsize=8)
            a.set_ylabel("pseudo-residual", fontsize=8)
            b = fig.add_subplot(grid[1, col])
            lags = int(self.tests.loc[self.tests["channel"] == ch, "lags"].iloc[0])
            series = [g.sort_values("step")["z"].to_numpy() for _, g in part.groupby(["env", "sequence"])]
            allv = np.concatenate(series)
            c0 = np.sum((allv - allv.mean()) ** 2)
            acf = [sum(np.sum((s[h:] - allv.mean()) * (s[:-h] - allv.mean())) for s in series) / c0
                   for h in range(1, lags + 1)]
            b.bar(np.arange(1, lags + 1), acf, color="C0", width=0.6)
            band = 1.96 / np.sqrt(allv.size)
            b.axhline(band, color="C3", ls="--", lw=1)
            b.axhline(-band, color="C3", ls="--", lw=1)
            b.axhline(0, color="0.3", lw=0.8)
            b.set_title(f"{ch}: autocorrelation", fontsize=9)
            b.set_xlabel("lag", fontsize=8)
        return fig


def residual_check(result, data, kind: str, weights: list, key: int, alpha: float) -> ResidualCheck:
    """Assemble a :class:`ResidualCheck` from per-sequence state weights (``(e, n, weights)``)."""
    rng = np.random.default_rng(key)
    names = list(result.names) if len(result.names) == result.config.obs_dim else [
        f"y{j}" for j in range(result.config.obs_dim)]
    rows = []
    for e, n, w in weights:
        L = w.shape[0]
        y = data.y[e, n, :L]
        u = pseudo_residuals_from_weights(result.params, min(e, result.config.num_envs - 1), y, w,
                                          result.config.emission, rng)
        for d in range(y.shape[1]):
            ok = np.isfinite(u[:, d])
            steps = np.flatnonzero(ok)
            rows.append(pd.DataFrame({"env": e, "sequence": n, "step": steps, "channel": names[d],
                                      "u": u[ok, d], "z": stats.norm.ppf(u[ok, d])}))
    table = pd.concat(rows, ignore_index=True)
    tests = []
    for ch in names:
        part = table[table["channel"] == ch]
        z = part["z"].to_numpy()
        ks = stats.kstest(z, "norm")
        lags = int(max(1, min(10, z.size // 5)))
        series = [g.sort_values("step")["z"].to_numpy() for _, g in part.groupby(["env", "sequence"])]
        q, p_lb = ljung_box(series, lags)
        tests.append({"channel": ch, "n": int(z.size), "ks_statistic": float(ks.statistic),
                      "ks_p_value": float(ks.pvalue), "ljung_box": q, "lags": lags, "ljung_box_p_value": p_lb,
                      # ordinary residuals condition on both neighbours, so only forecast ones are
                      # independent over time under the model
                      "consistent": bool(ks.pvalue >= alpha and (kind == "ordinary" or p_lb >= alpha))})
    return ResidualCheck(kind, table, pd.DataFrame(tests), float(alpha))
