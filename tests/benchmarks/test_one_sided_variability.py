"""Direction accuracy under one-sided variability (IEM, Reizinger et al. 2025).

The reference bivariate program of Guo et al. (2023) with its coefficients replaced by
continuous draws and without the squared term, so that only the cause's law
(``regime="cause"``) or only the mechanism (``regime="mechanism"``) changes across
environments: E = 500 environments of 2 samples, 100 data sets per case, the causal de
Finetti tests (``cdf``) against the Bayesian engine (``bayes``) on the same data, and the
reference program itself (integer weights, both mechanisms varying) as the control.

    pytest -m benchmark -s tests/benchmarks/test_one_sided_variability.py
"""

import jax
import numpy as np
from numpyro import handlers

import causalid
from causalid.models.exchangeable import bivariate_continuous_model

E, R = 500, 100
CASES = [  # (regime, coefficient range or None for the reference integers, squared term)
    ("both", None, True),
    ("cause", (0.5, 3.0), False),
    ("cause", (1.0, 9.0), False),
    ("mechanism", (0.5, 3.0), False),
    ("mechanism", (1.0, 9.0), False),
]


def _data(regime, weights, squared):
    def one(key):
        k_model, k_coef = jax.random.split(key)
        model = handlers.seed(bivariate_continuous_model, k_model)
        if weights is not None:
            coef = jax.random.uniform(k_coef, (5,), minval=weights[0], maxval=weights[1])
            model = handlers.substitute(model, data={"coef": coef if squared else coef.at[4].set(0.0)})
        tr = handlers.trace(model).get_trace(E, 2, regime)
        return tr["x"]["value"], tr["label"]["value"]

    with jax.enable_x64(True):
        x, label = jax.vmap(one)(jax.random.split(jax.random.PRNGKey(42), R))
    return np.asarray(x), np.asarray(label)


def _direction_accuracy(results, labels):
    """Share of data sets with an edge whose found edge points the true way (no edge = wrong)."""
    truth = {0: (0, 1), 1: (1, 0)}
    hits = [tuple(map(tuple, np.argwhere(r.adjacency()))) == (truth[int(lab)],)
            for r, lab in zip(results, labels) if lab != 2]
    return float(np.mean(hits))


def test_direction_accuracy_under_one_sided_variability():
    print(f"\n{'regime':<10} {'weights':<12} {'cdf':>5} {'bayes':>6}")
    rows = {}
    for regime, weights, squared in CASES:
        x, label = _data(regime, weights, squared)
        cdf = _direction_accuracy(causalid.discover_batch(x, diagnose=False), label)
        bayes = _direction_accuracy(causalid.discover_batch(x, method="bayes"), label)
        rows[(regime, weights)] = (cdf, bayes)
        print(f"{regime:<10} {str(weights or 'reference'):<12} {cdf:>5.2f} {bayes:>6.2f}")
    # the reference program: both engines orient nearly every edge
    assert min(rows[("both", None)]) >= 0.9
    # one-sided variability: the likelihood-based engine identifies the direction
    assert all(b >= 0.9 for (regime, _), (_, b) in rows.items() if regime != "both")
