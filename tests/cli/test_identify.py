"""`causalid simulate lti` and `causalid identify`, run in-process through causalid.cli.main."""

import json

import numpy as np
import pandas as pd
import pytest

import causalid
from causalid.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A small designed-law data set written by `causalid simulate lti` (n=2, 3 envs, 2000 steps)."""
    folder = tmp_path_factory.mktemp("sim")
    data = folder / "data.csv"
    assert main(["simulate", "lti", "--system", "random", "--states", "2", "--envs", "3", "--steps", "2000",
                 "--seed", "1", "--out", str(data)]) == 0
    return data


def test_simulate_lti_writes_data_law_and_truth(simulated):
    table = pd.read_csv(simulated)
    assert list(table.columns) == ["env", "time", "y0", "y1"] and len(table) == 3 * 2000
    law = pd.read_csv(str(simulated) + ".law.csv")
    assert list(law.columns) == ["env", "mean_u0", "mean_u1", "var_u0", "var_u1"] and len(law) == 3
    assert (law[["var_u0", "var_u1"]] > 0).all().all()
    truth = causalid.LTISystem.from_dict(json.loads((simulated.parent / "data.csv.truth.json").read_text()))
    assert truth.A.shape == (2, 2) and np.abs(np.linalg.eigvals(truth.A)).max() == pytest.approx(0.9)


def test_simulate_then_identify_roundtrip(simulated, tmp_path, capsys):
    capsys.readouterr()
    out, fig = tmp_path / "result.json", tmp_path / "fig.png"
    rc = main(["identify", str(simulated), "--env-col", "env", "--time-col", "time", "--outputs", "y0", "y1",
               "--input-law", str(simulated) + ".law.csv", "--method", "moment",
               "--truth", str(simulated) + ".truth.json", "--out", str(out), "--plot", str(fig)])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "identified by 'moment'" in printed and "against the true system" in printed
    result = causalid.LTIResult.load(out)
    assert result.method == "moment" and result.A.shape == (2, 2) and result.B.shape == (2, 2)
    assert result.env_names == ("0", "1", "2") and result.input_names == ("u0", "u1")
    assert result.sources.shape == (3, 1, 1999, 2)
    comparison = result.info["comparison"]
    assert comparison["eigenvalue_error"] < 0.05 and comparison["B_tilde_relative_error"] < 0.1
    assert fig.read_bytes()[:8] == PNG and fig.stat().st_size > 10_000


def test_quiet_prints_nothing(simulated, tmp_path, capsys):
    capsys.readouterr()
    rc = main(["identify", str(simulated), "--env-col", "env", "--time-col", "time",
               "--input-law", str(simulated) + ".law.csv", "--quiet", "--out", str(tmp_path / "r.json")])
    captured = capsys.readouterr()
    assert rc == 0 and captured.out == "" and captured.err == ""
    assert causalid.LTIResult.load(tmp_path / "r.json").output_names == ("y0", "y1")  # default outputs


def test_dc_motor_example(tmp_path, capsys):
    out = tmp_path / "motor.json"
    assert main(["identify", "--example", "dc-motor", "--method", "moment", "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out == ""                       # --quiet prints nothing
    result = causalid.LTIResult.load(out)
    assert result.output_names == ("current", "speed") and result.input_names == ("voltage",)
    assert result.info["comparison"]["eigenvalue_error"] < 0.05
    from causalid.models import lti

    motor = lti.dc_motor()
    np.testing.assert_allclose(result.B, motor.B, rtol=0.05)  # sign fixed by the designed means


def _error(capsys, argv):
    capsys.readouterr()
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert "Traceback" not in err
    last = err.splitlines()[-1]  # after at most the 'data: ...' line
    assert len(err.splitlines()) <= 2 and last.startswith("causalid: error: ")
    return last


def test_missing_output_column_is_named(simulated, capsys):
    err = _error(capsys, ["identify", str(simulated), "--env-col", "env", "--time-col", "time",
                          "--outputs", "y0", "speed", "--input-law", str(simulated) + ".law.csv"])
    assert "'speed'" in err and "not found" in err


def test_one_environment_is_not_identifiable(simulated, tmp_path, capsys):
    one = tmp_path / "one.csv"
    table = pd.read_csv(simulated)
    table[table.env == 0].to_csv(one, index=False)
    err = _error(capsys, ["identify", str(one), "--env-col", "env", "--time-col", "time", "--outputs", "y0", "y1",
                          "--input-law", str(simulated) + ".law.csv", "--method", "moment"])
    assert "not identifiable" in err and "1 environment" in err


@pytest.mark.parametrize("extra, message", [
    (["--input-law", "LAW1"], "no row for environment(s) ['1', '2']"),
    ([], "--inputs, or a table of designed input laws"),
    (["--input-law", "LAW", "--obs-noise", "lots"], "--obs-noise 'lots'"),
    (["--input-law", "LAW", "--inputs", "y1"], "not both"),
])
def test_input_law_errors(simulated, tmp_path, capsys, extra, message):
    law1 = tmp_path / "law1.csv"
    pd.read_csv(str(simulated) + ".law.csv").head(1).to_csv(law1, index=False)
    paths = {"LAW": str(simulated) + ".law.csv", "LAW1": str(law1)}
    err = _error(capsys, ["identify", str(simulated), "--env-col", "env", "--time-col", "time",
                          "--outputs", "y0"] + [paths.get(a, a) for a in extra])
    assert message in err


def test_measured_inputs_roundtrip(tmp_path, capsys):
    rng = np.random.default_rng(0)
    A = np.array([[0.8, 0.2], [-0.1, 0.7]])
    B = np.array([[1.0], [0.5]])
    rows = []
    for e, scale in enumerate([1.0, 2.0]):
        u = scale * rng.normal(size=300)
        x = np.zeros(2)
        for t in range(300):
            y = x + 0.01 * rng.normal(size=2)
            rows.append({"run": f"r{e}", "t": round(0.1 * t, 6), "y_a": y[0], "y_b": y[1], "volt": u[t]})
            x = A @ x + B[:, 0] * u[t] + 0.01 * rng.normal(size=2)
    data = tmp_path / "measured.csv"
    pd.DataFrame(rows).to_csv(data, index=False)
    out = tmp_path / "m.json"
    rc = main(["identify", str(data), "--env-col", "run", "--time-col", "t", "--outputs", "y_a", "y_b",
               "--inputs", "volt", "--method", "mle", "--state-dim", "2", "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    result = causalid.LTIResult.load(out)
    assert result.method == "mle" and result.dt == pytest.approx(0.1)
    np.testing.assert_allclose(np.sort_complex(result.eigenvalues), np.sort_complex(np.linalg.eigvals(A)), atol=0.02)
    # the Markov parameters C A^k B are similarity invariant
    for k in range(3):
        est = result.C @ np.linalg.matrix_power(result.A, k) @ result.B
        np.testing.assert_allclose(est, np.linalg.matrix_power(A, k) @ B, atol=0.03)


@pytest.fixture(scope="module")
def measured_csv(tmp_path_factory):
    """A raw (uncentred) single recording with a time column, one input and one output."""
    rng = np.random.default_rng(3)
    T = 900
    u = rng.normal(size=T) + 4.0
    x, y = np.zeros(2), np.zeros(T)
    for t in range(T):
        e = 0.2 * rng.normal()
        y[t] = x[0] + 0.5 * x[1] + e + 20.0
        x = np.array([[1.5, -0.7], [1.0, 0.0]]) @ x + np.array([1.0, 0.0]) * u[t] + np.array([0.6, 0.2]) * e
    folder = tmp_path_factory.mktemp("measured")
    path = folder / "rec.csv"
    pd.DataFrame({"t": 0.5 * np.arange(T), "u1": u, "y1": y}).to_csv(path, index=False)
    pd.DataFrame({"t": 0.5 * np.arange(300), "u1": u[:300], "y1": y[:300]}).to_csv(folder / "val.csv", index=False)
    return path


def test_measured_inputs_default_to_pem_with_split_validation(measured_csv, tmp_path, capsys):
    capsys.readouterr()
    out, fig = tmp_path / "pem.json", tmp_path / "compare.png"
    rc = main(["identify", str(measured_csv), "--time-col", "t", "--inputs", "u1", "--outputs", "y1",
               "--split", "0.7", "--compare-plot", str(fig), "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "prediction-error identification" in printed and "validation: fit of the free-run simulation" in printed
    result = causalid.LTIResult.load(out)
    assert result.method == "pem" and result.A.shape[0] in (2, 3) and result.dt == pytest.approx(0.5)
    assert result.info["validation"]["fit_percent"][0] > 70
    assert fig.read_bytes()[:8] == PNG


def test_validate_file_and_option_errors(measured_csv, tmp_path, capsys):
    capsys.readouterr()
    rc = main(["identify", str(measured_csv), "--time-col", "t", "--inputs", "u1", "--outputs", "y1",
               "--state-dim", "2", "--validate", str(measured_csv.parent / "val.csv"), "--out", str(tmp_path / "r.json")])
    assert rc == 0 and "validation: fit" in capsys.readouterr().out
    err = _error(capsys, ["identify", str(measured_csv), "--time-col", "t", "--inputs", "u1", "--outputs", "y1",
                          "--split", "1.5"])
    assert "--split 1.5" in err
    err = _error(capsys, ["identify", str(measured_csv), "--time-col", "t", "--inputs", "u1", "--outputs", "y1",
                          "--compare-plot", str(tmp_path / "c.png")])
    assert "--compare-plot needs" in err
