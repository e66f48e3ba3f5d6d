"""`causalid fit-hmm`, run in-process through causalid.cli.main."""

import numpy as np
import pandas as pd
import pytest

import causalid
from causalid.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
# one jitted EM block (25 iterations) keeps the compile cost down
FAST = ["--restarts", "2", "--max-iters", "25"]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """Two environments of a 2-state HMM with two Poisson count channels, two sessions each, in
    long format: rows shuffled (the time column orders them; it restarts in every session), one
    missing cell, and the true state of every row."""
    rng = np.random.default_rng(3)
    rates = np.array([[1.0, 8.0], [9.0, 2.0]])
    stay = {"lab": 0.9, "field": 0.7}                       # the transitions differ
    rows = []
    for env, p in stay.items():
        for session in ("am", "pm"):
            z = 0
            for t in range(75):
                if t and rng.uniform() > p:
                    z = 1 - z
                y = rng.poisson(rates[z])
                rows.append({"site": env, "session": session, "t": round(0.5 * t, 3), "licks": y[0],
                             "presses": y[1], "true_state": z})
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)
    frame["presses"] = frame["presses"].astype(float)
    frame.loc[frame.index[5], "presses"] = np.nan
    path = tmp_path_factory.mktemp("hmm") / "counts.csv"
    frame.to_csv(path, index=False)
    return path


def test_fit_file_with_environments_and_missing_value(table, tmp_path, capsys):
    capsys.readouterr()
    out, states = tmp_path / "fit.json", tmp_path / "states.csv"
    rc = main(["fit-hmm", str(table), "--env-col", "site", "--time-col", "t", "--sequence-col", "session",
               "--columns", "licks", "presses",
               "--states", "2", "--emission", "poisson", "--shared", "emissions", "--seed", "1", *FAST,
               "--out", str(out), "--states-out", str(states)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "HMM fit (em): 2 states, poisson emissions" in captured.out and f"wrote {out}" in captured.out
    assert "varying across environments: transitions" in captured.out

    result = causalid.HMMResult.load(out)
    assert result.names == ("licks", "presses") and set(result.env_names) == {"lab", "field"}
    assert result.config.vary == ("transitions",) and result.num_observations == 300
    np.testing.assert_allclose(result.params.emissions.rates[0], [[1.0, 8.0], [9.0, 2.0]], rtol=0.15)
    # transitions vary: the stickier environment keeps its state longer
    stay = {e: np.diag(result.params.trans[i]).mean() for i, e in enumerate(result.env_names)}
    assert stay["lab"] > stay["field"] + 0.1

    decoded = pd.read_csv(states)
    original = pd.read_csv(table)
    assert len(decoded) == len(original)
    pd.testing.assert_frame_equal(decoded[original.columns], original)   # rows in file order
    assert (decoded["state"] == decoded["true_state"]).mean() > 0.97
    probs = decoded[["p_state_0", "p_state_1"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    missing = decoded["presses"].isna()
    assert missing.sum() == 1 and np.isfinite(probs[missing.to_numpy()]).all()


def test_earthquakes_example(tmp_path, capsys):
    capsys.readouterr()
    out, fig = tmp_path / "quakes.json", tmp_path / "quakes.png"
    rc = main(["fit-hmm", "--example", "earthquakes", *FAST, "--out", str(out), "--plot", str(fig), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.out == "" and captured.err == ""
    result = causalid.HMMResult.load(out)
    assert result.config.emission == "poisson" and result.config.num_states == 2
    # Zucchini & MacDonald (2009), Table 4.1: the EM fit (free initial distribution)
    assert -result.log_likelihood == pytest.approx(341.8787, abs=1e-3)
    np.testing.assert_allclose(result.params.emissions.rates[0, :, 0], [15.421, 26.018], atol=1e-2)
    assert fig.read_bytes()[:8] == PNG and fig.stat().st_size > 10_000


def test_earthquakes_stationary_start(tmp_path, capsys):
    """--initial stationary: Zucchini & MacDonald's stationary 2-state fit, -log L 342.3183."""
    out = tmp_path / "quakes.json"
    rc = main(["fit-hmm", "--example", "earthquakes", "--initial", "stationary", "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    result = causalid.HMMResult.load(out)
    assert result.config.initial == "stationary" and result.settings["initial"] == "stationary"
    assert -result.log_likelihood == pytest.approx(342.3183, abs=1e-3)


def _error(capsys, argv):
    capsys.readouterr()
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.startswith("causalid: error: ")
    return err


def test_unknown_column_is_named(table, capsys):
    err = _error(capsys, ["fit-hmm", str(table), "--env-col", "site", "--time-col", "t",
                          "--columns", "licks", "clicks", "--states", "2", "--quiet"])
    assert "'clicks'" in err and "not found" in err


@pytest.mark.parametrize("argv, message", [
    (["--env-col", "place", "--states", "2"], "'place' not found"),
    (["--env-col", "site", "--time-col", "t"], "--states K"),
    (["--env-col", "site", "--states", "0"], "--states 0"),
    (["--env-col", "site", "--states", "2", "--restarts", "0"], "--restarts 0"),
    (["--env-col", "site", "--states", "2", "--example", "earthquakes"], "not both"),
    (["--env-col", "site", "--time-col", "t", "--columns", "t", "--states", "2"], "cannot be observed"),
    (["--env-col", "site", "--time-col", "t", "--columns", "licks", "--states", "2"], "repeats a value"),
])
def test_user_errors(table, capsys, argv, message):
    err = _error(capsys, ["fit-hmm", str(table), "--quiet", *argv])
    assert message in err


def test_example_rejects_data_options(capsys):
    err = _error(capsys, ["fit-hmm", "--example", "earthquakes", "--columns", "count"])
    assert "--columns" in err and "own data" in err


def test_needs_file_or_example(capsys):
    err = _error(capsys, ["fit-hmm", "--states", "2"])
    assert "FILE" in err and "--example earthquakes" in err
