"""Suite-wide configuration."""

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Benchmarks time themselves and print ratios, so ``-m benchmark`` runs in one process
    (the default suite runs on ``-n auto`` workers; see pyproject.toml)."""
    markexpr = config.getoption("markexpr", "") or ""
    if "benchmark" in markexpr and "not benchmark" not in markexpr and hasattr(config.option, "numprocesses"):
        config.option.numprocesses = 0
        config.option.dist = "no"
