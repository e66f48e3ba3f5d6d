"""The examples run, with small settings, and report sensible numbers."""

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bivariate_reference_example():
    rows = load("bivariate_reference").main(["--replicates", "30", "--envs", "300"])
    assert rows[0][1] > 0.6


def test_multivariate_binary_reference_example():
    rows = load("multivariate_binary_reference").main(["--replicates", "10", "--envs", "4000"])
    assert rows[0][1] < 0.4


def test_sachs_example(tmp_path):
    # the Bayesian engine on Sachs is exercised by the README command test (tests/test_cli.py)
    summary = load("sachs").main(["--out", str(tmp_path), "--methods", "cdf",
                                  "--variables", "Raf", "Mek", "Erk", "PKA"])
    assert set(summary["cdf"]) == {"bnlearn17", "tetrad20"}
    assert (tmp_path / "sachs_cdf.png").exists() and (tmp_path / "sachs_cdf.json").exists()
