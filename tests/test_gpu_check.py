"""The GPU check script runs end to end on CPU at tiny sizes: every method agrees with the
others (its own assertions), and each timing row is filled."""

import importlib.util
import io
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "benchmarks" / "gpu_check.py"


def test_gpu_check_runs_and_agrees_on_cpu():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    buf = io.StringIO()
    rows = mod.run(steps=(40,), batch=3, repeats=1, out=buf)
    assert [r["T"] for r in rows] == [40]
    assert all(v > 0 for r in rows for k, v in r.items() if k != "T")
    text = buf.getvalue()
    assert "device:" in text and "smoother seq/par" in text and "sweep loop/batched" in text
