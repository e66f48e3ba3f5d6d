"""Sweep definitions: the TOML schema, the grid of cells, the hash and the one-line errors."""

from pathlib import Path

import jax
import numpy as np
import pytest

import causalid  # noqa: F401  (64-bit JAX)
from causalid import load_sweep, parse_sweep
from causalid.families import FAMILIES
from causalid.verify import Sweep, SweepError
from causalid.verify.plugin import cell_keys, evaluate_cell

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sweeps"

BASE = """
family = "bivariate"
seed = 3
replicates = 5
[generator]
samples = 2
[grid]
envs = [50, 100]
regime = ["both", "cause"]
"""


def test_grid_is_the_product_of_its_axes_in_order():
    s = parse_sweep(BASE)
    assert [(c.settings["envs"], c.settings["regime"]) for c in s.cells] == [
        (50, "both"),
        (50, "cause"),
        (100, "both"),
        (100, "cause"),
    ]
    assert [c.index for c in s.cells] == [0, 1, 2, 3]
    assert s.columns == ("envs", "regime")
    assert s.cells[0].settings == {"envs": 50, "samples": 2, "regime": "both"}
    assert s.engines == {
        "cdf": {
            "method": "cdf",
            "alpha": 0.05,
            "ci_test": None,
            "rule": "ordered",
            "correction": None,
            "max_pairs": 64,
        }
    }
    assert s.metrics == ("accuracy", "shd")  # the family's defaults
    assert s.name == "bivariate"


def test_grid_blocks_are_concatenated_and_derived_settings_become_columns():
    s = parse_sweep("""
family = "lti"
replicates = 1
[[grid]]
states = [2, 3]
[[grid]]
states = [2]
design = ["max-variability"]
""")
    assert [(c.settings["states"], c.settings["envs"], c.settings["design"]) for c in s.cells] == [
        (2, 3, "random"),
        (3, 4, "random"),
        (2, 3, "max-variability"),
    ]
    # envs is not an axis, but it differs between cells (states + 1), so the store keeps it
    assert s.columns == ("states", "envs", "design")


def test_hash_ignores_formatting_and_presentation_but_not_content():
    s = parse_sweep(BASE)
    same = parse_sweep(
        '# a comment\nname = "other"\ndescription = "words"\n'
        + BASE.replace("seed = 3", "seed    = 3")
        + "[execution]\nchunk_size = 4\n"
    )
    assert same.hash == s.hash and same.chunk_size == 4
    assert parse_sweep(BASE.replace("seed = 3", "seed = 4")).hash != s.hash
    assert parse_sweep(BASE.replace("replicates = 5", "replicates = 6")).hash != s.hash
    assert parse_sweep(BASE + "[engines.cdf]\nalpha = 0.01\n").hash != s.hash
    # the TOML-shaped dict rebuilds the same sweep
    again = Sweep.from_config(s.to_config(), FAMILIES)
    assert again.hash == s.hash and again.columns == s.columns


def test_every_example_sweep_validates():
    files = sorted(EXAMPLES.glob("*.toml"))
    assert {f.stem for f in files} >= {
        "bivariate",
        "multivariate_binary",
        "lti_table",
        "hmm_recovery",
    }
    for f in files:
        s = load_sweep(f)
        assert s.cells and s.text is not None
    biv = load_sweep(EXAMPLES / "bivariate.toml")
    assert [c.settings["envs"] for c in biv.cells] == [100, 200, 300, 400, 500]
    assert biv.replicates == 100 and biv.seed == 42
    assert biv.references[0]["values"] == [0.70, 0.82, 0.87, 0.90, 0.91]


def test_cell_randomness_depends_on_seed_and_index_only():
    a_sim, a_fit = cell_keys(3, 7)
    b_sim, b_fit = cell_keys(3, 7)
    assert np.array_equal(jax.random.key_data(a_sim), jax.random.key_data(b_sim))
    assert np.array_equal(jax.random.key_data(a_fit), jax.random.key_data(b_fit))
    others = [cell_keys(3, 8)[0], cell_keys(4, 7)[0], a_fit]
    for k in others:
        assert not np.array_equal(jax.random.key_data(a_sim), jax.random.key_data(k))


B = "family = 'bivariate'\nreplicates = 2\n"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            B + "replicate = 3",
            "replicate: unknown key; did you mean 'replicates'?",
        ),
        ("replicates = 2", "family: required"),
        ("family = 'bivarite'\nreplicates = 2", "family = 'bivarite': choose one of"),
        ("family = 'bivariate'\n[grid]\nenvs = [10]", "replicates: required"),
        (
            "family = 'bivariate'\nreplicates = 0\n[grid]\nenvs = [10]",
            "replicates = 0: must be at least 1",
        ),
        ("family = 'bivariate'\nreplicates = 2", "generator.envs: required by family 'bivariate'"),
        (
            B + "[grid]\nenvs = 10",
            "grid.envs: give a non-empty list",
        ),
        (
            B + "[grid]\nenv = [10]",
            "grid.env: unknown key; did you mean 'envs'?",
        ),
        (
            B + "[grid]\nenvs = [10, 'x']",
            "grid.envs[1] = 'x': give an integer",
        ),
        (
            B + "[grid]\nenvs = [true]",
            "grid.envs[0] = True: give an integer",
        ),
        (
            B + "[grid]\nenvs = [10, 10]",
            "grid.envs: repeated values",
        ),
        (
            B + "[generator]\nenvs = 10\n[grid]\nenvs = [20]",
            "grid.envs: also fixed under [generator]",
        ),
        (
            B + "[generator]\nenvs = [10, 20]",
            "generator.envs: one fixed value",
        ),
        (
            B + "[generator]\nregime = 'all'\nenvs = 10",
            "generator.regime = 'all': choose one of",
        ),
        (
            B + "[generator]\nenvs = 10\n[engines.x]\nmethod = 'pc'",
            "engines.x.method = 'pc': family 'bivariate' has engines",
        ),
        (
            B + "[generator]\nenvs = 10\n[engines.x]\nmethod = ['cdf']",
            "engines.x.method",
        ),
        (
            B + "[generator]\nenvs = 10\n[engines.cdf]\nalpah = 0.1",
            "engines.cdf.alpah: unknown key; did you mean 'alpha'?",
        ),
        (
            B + "[generator]\nenvs = 10\n[engines.cdf]\nalpha = 2.0",
            "engines.cdf: alpha = 2.0: give a level in (0, 1) (cell 0)",
        ),
        (
            B + "[generator]\nenvs = 10\nsamples = 1",
            "engines.cdf: engine 'cdf' needs samples >= 2",
        ),
        (
            B + "metrics = ['acuracy']\n[generator]\nenvs = 10",
            "metrics: unknown metric 'acuracy'; did you mean 'accuracy'?",
        ),
        (
            B + "[[grid]]\nenvs = [10, 20]\n[[grid]]\nenvs = [20]",
            "grid: cells 1 and 2 have the same settings",
        ),
        (
            (
                "family = 'lti'\nreplicates = 2\n[generator]\nstates = 2\nenvs = 5\n"
                "design = 'max-variability'"
            ),
            "cell 0 (the generator): design = 'max-variability' has states + 1 = 3 environments",
        ),
        (
            (
                B + "[generator]\nenvs = 10\n[[reference]]\nmetric = 'accuracy'\n"
                "envs = [10, 20]\nvalue = [0.5]"
            ),
            "reference[0].envs: give a list as long as value",
        ),
        (
            "family = 'hmm'\nreplicates = 2\n[generator]\nself_prob = 1.5",
            "generator.self_prob = 1.5: must be at most 1",
        ),
        (
            B + "[execution]\nworkers = 2",
            "execution.workers: unknown key",
        ),
        ("family = 'bivariate'\nreplicates = [", "not valid TOML"),
    ],
)
def test_mistakes_raise_one_line_naming_the_key(text, message):
    with pytest.raises(SweepError) as info:
        parse_sweep(text, source="s.toml")
    text = str(info.value)
    assert text.startswith("s.toml: ")
    assert message in text
    assert "\n" not in text


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SweepError, match="does not exist"):
        load_sweep(tmp_path / "nope.toml")
    with pytest.raises(SweepError, match="is a directory; give the sweep's TOML file"):
        load_sweep(tmp_path)
    latin = tmp_path / "latin.toml"
    latin.write_bytes("family = 'bivariate'\nreplicates = 2\nname = 'café'\n".encode("latin-1"))
    with pytest.raises(SweepError, match="is not UTF-8 text"):
        load_sweep(latin)


def test_an_unstable_lti_estimate_counts_as_a_missing_h2_error(monkeypatch):
    # a stand-in engine returns an unstable A: h2_error is then a failure (missing, with the
    # reason), not a metric that does not apply, so summaries cannot hide it
    from types import SimpleNamespace

    import causalid.lti.sweep as lti_engine
    from causalid.verify.plugin import NOT_APPLICABLE

    sweep = parse_sweep("family = 'lti'\nreplicates = 1\nmetrics = ['h2_error', 'mcc']\n"
                        "[generator]\nstates = 2\nsteps = 50\n")
    cell = sweep.cells[0]

    def unstable(data, method, **kw):
        return SimpleNamespace(A=1.5 * np.eye(2), B=np.eye(2), C=np.eye(2), sources=None,
                               coordinates="observed")

    monkeypatch.setattr(lti_engine, "identify_lti", unstable)
    (record,) = evaluate_cell(FAMILIES["lti"], cell.settings, sweep.engines, sweep.metrics, 1, 0, 0)
    assert np.isnan(record["values"]["h2_error"][0])
    assert record["errors"]["h2_error"][0] == "estimate unstable (spectral radius 1.5 >= 1)"
    assert record["errors"]["mcc"][0].startswith(NOT_APPLICABLE)     # no sources: does not apply
