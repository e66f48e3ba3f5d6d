from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items):
    # benchmarks run on demand only: `pytest -m benchmark -s tests/benchmarks`
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.benchmark)


@pytest.fixture
def peers():
    """The peer pipelines of ``_peers.py`` (needs causal-learn: pip install '.[bench]')."""
    pytest.importorskip("causallearn", reason="benchmarks need causal-learn: pip install '.[bench]'")
    import importlib.util

    spec = importlib.util.spec_from_file_location("causalid_bench_peers", HERE / "_peers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
