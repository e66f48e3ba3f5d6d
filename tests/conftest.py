"""Suite-wide configuration."""

import os

import jax
import pytest

# XLA compilation, not execution, is most of the suite's time (one test, one program).  On CPU
# the classic emitters compile causalid's programs in about two thirds of the CPU time of the
# MLIR fusion emitters and compute the same numbers (measured on tests/infer/test_hmm_fit.py and
# tests/infer/test_lti.py: 250 s -> 166 s of CPU), so the tests, their workers and the command
# lines they start use them (causalid._compile does the same for the causal de Finetti tests,
# the designers and the sweep generators in every process).  Benchmarks keep XLA's defaults, so
# their timings are the ones users get.  Set before JAX starts its backend.
_FLAG = "--xla_cpu_use_fusion_emitters=false"


def pytest_configure(config):
    markexpr = config.getoption("markexpr", "") or ""
    benchmark = "benchmark" in markexpr and "not benchmark" not in markexpr
    flags = os.environ.get("XLA_FLAGS", "")
    if not benchmark and "xla_cpu_use_fusion_emitters" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}".strip()


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Benchmarks time themselves and print ratios, so ``-m benchmark`` runs in one process
    (the default suite runs on ``-n auto`` workers; see pyproject.toml)."""
    markexpr = config.getoption("markexpr", "") or ""
    if "benchmark" in markexpr and "not benchmark" not in markexpr and hasattr(config.option, "numprocesses"):
        config.option.numprocesses = 0
        config.option.dist = "no"


@pytest.fixture(scope="module", autouse=True)
def _jax_x64_where_the_module_asks(request):
    """Modules that drive causalid's JAX kernels from JAX code of their own (gradients, vmaps,
    jnp inputs and arithmetic on the kernels' float64 outputs) set ``JAX_X64 = True`` and run
    inside ``jax.enable_x64(True)``, as a JAX user of those kernels does.  Every other module
    runs with JAX's default 32-bit configuration, which causalid's front doors leave untouched
    (they switch to float64 inside each call)."""
    if getattr(request.module, "JAX_X64", False):
        with jax.enable_x64(True):
            yield
    else:
        yield
