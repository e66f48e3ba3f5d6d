"""Bad input and damaged files: every case is one clear error or a correct answer.

The table rows go through the CLI as a user types them (exit status 2, one line on stderr that
names the problem, no traceback, no output file) and through the API (the exception type and
its message).  The fuzz tests feed random bytes, shapes and values to the loaders, which may
only ever succeed or raise causalid's own errors.
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import causalid
from causalid import LTIData, MultiEnvData
from causalid._io import read_table
from causalid.cli.main import main
from causalid.errors import CausalIDError, DataError
from causalid.exchangeable.result import StructureResult

RNG = np.random.default_rng(0)


def _table(n_env=3, n=40) -> pd.DataFrame:
    x = RNG.normal(size=(n_env * n, 2))
    x[:, 1] += x[:, 0]
    return pd.DataFrame({"env": np.repeat(np.arange(n_env), n), "X": x[:, 0], "Y": x[:, 1]})


def _cli_fails(capsys, argv, match: str, *, not_written=()):
    """``causalid argv`` exits 2 with one error line naming the problem (after at most what it
    announced it was reading) and writes none of ``not_written``."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, f"exit {code}, stderr {err}"
    errors = [line for line in err if line.startswith("causalid: error: ")]
    assert len(errors) == 1 and err[-1] == errors[0] and not any("Traceback" in line for line in err), err
    assert match in errors[0], errors[0]
    for path in not_written:
        assert not path.exists(), f"{path} was written"


# ---------------------------------------------------------------------- files
@pytest.fixture
def files(tmp_path):
    good = _table()
    paths = {}
    paths["dup"] = tmp_path / "dup.csv"
    paths["dup"].write_text("env,X,X\n" + "\n".join(f"{e},{a},{b}" for e, a, b in good.to_numpy()))
    paths["empty_name"] = tmp_path / "noname.csv"
    paths["empty_name"].write_text("env,,Y\n1,2,3\n")
    paths["bom"] = tmp_path / "bom.csv"
    paths["bom"].write_bytes(b"\xef\xbb\xbf" + good.to_csv(index=False).encode())
    paths["binary"] = tmp_path / "garbage.csv"
    paths["binary"].write_bytes(bytes(RNG.integers(0, 256, 4096, dtype=np.uint8)))
    paths["latin1"] = tmp_path / "latin1.csv"
    paths["latin1"].write_bytes("env,Température\n1,2\n".encode("latin-1"))
    paths["parquet"] = tmp_path / "broken.parquet"
    paths["parquet"].write_bytes(b"PAR1" + b"\x00\x13" * 50)
    paths["semicolon"] = tmp_path / "european.csv"
    paths["semicolon"].write_text(good.to_csv(index=False, sep=";", decimal=","))
    paths["folder"] = tmp_path / "recordings"
    paths["folder"].mkdir()
    paths["missing"] = tmp_path / "nothere.csv"
    paths["empty"] = tmp_path / "empty.csv"
    paths["empty"].write_text("")
    paths["header_only"] = tmp_path / "header.csv"
    paths["header_only"].write_text("env,X,Y\n")
    paths["ragged"] = tmp_path / "ragged.csv"
    paths["ragged"].write_text("env,X,Y\n1,2,3\n1,2,3,4,5\n")
    paths["gz"] = tmp_path / "data.csv.gz"
    paths["gz"].write_bytes(gzip.compress(good.to_csv(index=False).encode()))
    paths["good"] = tmp_path / "good.csv"
    good.to_csv(paths["good"], index=False)
    return paths, good


FILE_ERRORS = [
    ("dup", "duplicated column name(s) ['X']"),
    ("empty_name", "column 2 of the header has no name"),
    ("binary", "not a text table"),
    ("latin1", "is not UTF-8 text"),
    ("parquet", "is not a readable Parquet file"),
    ("folder", "is a folder, not a table"),
    ("missing", "does not exist"),
    ("empty", "is empty"),
    ("header_only", "has a header but no rows"),
    ("ragged", "is not a regular table"),
]


@pytest.mark.parametrize("name, message", FILE_ERRORS)
def test_read_table_refuses_in_one_line(files, name, message):
    paths, _ = files
    with pytest.raises(DataError, match=None) as info:
        read_table(paths[name])
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(paths[name].name) in str(info.value) or name == "missing"


@pytest.mark.parametrize("name, message", [r for r in FILE_ERRORS if r[0] in ("dup", "binary", "parquet", "folder")])
@pytest.mark.parametrize("command", ["discover", "identify", "fit-hmm"])
def test_every_command_refuses_bad_files(files, capsys, tmp_path, name, message, command):
    paths, _ = files
    out = tmp_path / "result.json"
    extra = {"discover": ["--env-col", "env"], "identify": ["--env-col", "env", "--inputs", "X", "--outputs", "Y"],
             "fit-hmm": ["--env-col", "env", "--columns", "X", "--states", "2", "--emission", "gaussian"]}[command]
    _cli_fails(capsys, [command, paths[name], *extra, "--out", out], message, not_written=[out])


@pytest.mark.parametrize("name", ["bom", "semicolon", "gz"])
def test_spreadsheet_conventions_read_as_the_plain_csv(files, name):
    paths, good = files
    pd.testing.assert_frame_equal(read_table(paths[name]), good, check_dtype=False, atol=1e-12)


def test_a_bom_file_gives_the_same_discovery_as_the_plain_one(files):
    paths, _ = files
    a = causalid.discover(causalid.load(paths["bom"], env="env"), method="bayes", progress=False)
    b = causalid.discover(causalid.load(paths["good"], env="env"), method="bayes", progress=False)
    assert sorted(a.graph.edges) == sorted(b.graph.edges)


# ---------------------------------------------------------------------- outputs first
@pytest.mark.parametrize("argv, message", [
    (["discover", "{good}", "--env-col", "env", "--plot", "{tmp}/g.xyz"], "unknown format '.xyz'"),
    (["discover", "{good}", "--env-col", "env", "--out", "{tmp}/r.json", "--plot", "{tmp}/missing_dir/x.png"],
     "the folder '{tmp}/missing_dir' does not exist"),
    (["simulate", "bivariate", "--envs", "10", "--samples", "2", "--out", "{tmp}/missing_dir/z.csv"],
     "the folder '{tmp}/missing_dir' does not exist"),
    (["discover", "{good}", "--env-col", "env", "--out", "{tmp}"], "is a folder; give a file name"),
])
def test_outputs_are_checked_before_any_work(files, capsys, tmp_path, argv, message):
    paths, _ = files
    fill = {"good": paths["good"], "tmp": tmp_path}
    _cli_fails(capsys, [a.format(**fill) for a in argv], message.format(**fill),
               not_written=[tmp_path / "r.json", tmp_path / "g.xyz"])


# ---------------------------------------------------------------------- values and engines
def test_one_environment_is_refused_by_the_de_finetti_tests(capsys, tmp_path):
    one = _table(n_env=1, n=300)
    with pytest.raises(DataError, match="only one"):
        causalid.discover(MultiEnvData.from_frame(one, env="env"), method="cdf", progress=False)
    path = tmp_path / "one.csv"
    one.to_csv(path, index=False)
    _cli_fails(capsys, ["discover", path, "--env-col", "env", "--method", "cdf"], "only one")


def test_too_few_environments_for_the_cluster_test_is_refused_not_guessed():
    # three environments: the GCM cluster test has no p-value; an edge used to be drawn anyway
    with pytest.raises(DataError, match="3 environments are too few"):
        causalid.discover(MultiEnvData.from_frame(_table(n_env=3, n=40), env="env"), method="cdf", progress=False)


@pytest.mark.parametrize("scale", [1e200, 1e308])
def test_values_whose_squares_overflow_are_refused_with_the_unit_to_divide_by(scale):
    t = _table()
    t["X"] = np.tanh(t["X"]) * scale
    with pytest.raises(DataError, match=r"column 'X' reaches .* divide the column by 1e"):
        causalid.discover(MultiEnvData.from_frame(t, env="env"), method="bayes", progress=False)
    y = RNG.normal(size=(2, 100, 2))
    y[..., 0] = np.tanh(y[..., 0]) * scale
    with pytest.raises(DataError, match=r"output 'y0' reaches .* divide the column by 1e"):
        LTIData.from_arrays(y, input_dim=1)


def test_identify_on_1e308_values_is_one_line(capsys, tmp_path):
    t = _table()
    t["Y"] = np.sign(t["Y"]) * 1e308
    path = tmp_path / "huge.csv"
    t.to_csv(path, index=False)
    _cli_fails(capsys, ["identify", path, "--env-col", "env", "--inputs", "X", "--outputs", "Y"], "reaches")


# ---------------------------------------------------------------------- results on load
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("res") / "r.json"
    causalid.discover(MultiEnvData.from_frame(_table(), env="env"), method="bayes", progress=False).save(path)
    return json.loads(path.read_text())


def _edit(d, how):
    d = json.loads(json.dumps(d))
    if how == "list":
        return [d]
    if how == "no names":
        d.pop("names")
    elif how == "string probability":
        d["edges_found"] = [["X", "Y", "0.5"]]
    elif how == "probability 7.5":
        d["edges_found"] = [["X", "Y", 7.5]]
    elif how == "2-cycle":
        d["edges_found"] = [["X", "Y", 0.9], ["Y", "X", 0.8]]
    elif how == "unknown node":
        d["edges_found"] = [["X", "Z", 0.9]]
    elif how == "record probability":
        d["edges"][0]["probability"] = -0.2
    return d


@pytest.mark.parametrize("how, message", [
    ("list", "holds a JSON list, not an object"),
    ("no names", "lacks field(s) ['names']"),
    ("string probability", "is not a number"),
    ("probability 7.5", "is not a probability in [0, 1]"),
    ("2-cycle", "is not acyclic"),
    ("unknown node", "'Z', which is not one of the variables"),
    ("record probability", "is not a probability in [0, 1]"),
])
def test_damaged_results_are_refused_on_load(saved, tmp_path, how, message):
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(_edit(saved, how)))
    with pytest.raises(DataError) as info:
        StructureResult.load(path)
    assert message in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------------- fuzzing the loaders
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.binary(max_size=600), suffix=st.sampled_from([".csv", ".tsv", ".parquet", ".csv.gz", ".txt"]))
def test_random_bytes_never_escape_as_a_traceback(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("fuzz") / f"f{suffix}"
    path.write_bytes(data)
    try:
        read_table(path)
    except CausalIDError as exc:
        assert "\n" not in str(exc)


_cell = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), st.integers(-10**6, 10**6),
                  st.sampled_from(["", "a", "1,5", "NaN", "inf", "1e400", " ", '"', "x;y"]))


@FUZZ
@given(rows=st.lists(st.lists(_cell, min_size=3, max_size=3), min_size=0, max_size=12),
       sep=st.sampled_from([",", ";", "\t"]))
@pytest.mark.filterwarnings("ignore")  # warnings (a column that relabels env, ...) are allowed
def test_random_tables_load_or_raise_our_errors(tmp_path_factory, rows, sep):
    path = tmp_path_factory.mktemp("fuzz") / "t.csv"
    body = "\n".join(sep.join(str(c) for c in r) for r in rows)
    path.write_text(f"env{sep}X{sep}Y\n{body}\n")
    for load in (lambda: causalid.load(path, env="env"),
                 lambda: LTIData.from_frame(read_table(path), env="env", outputs=["Y"], inputs=["X"]),
                 lambda: causalid.SequenceData.from_frame(read_table(path), env="env", columns=["X", "Y"])):
        try:
            load()
        except CausalIDError as exc:
            assert "\n" not in str(exc)


@FUZZ
@given(shape=st.tuples(st.integers(0, 3), st.integers(0, 5), st.integers(0, 3)),
       fill=st.sampled_from([0.0, 1.0, np.nan, np.inf, 1e300, -1e-320]))
@pytest.mark.filterwarnings("ignore")
def test_random_arrays_load_or_raise_our_errors(shape, fill):
    x = np.full(shape, fill)
    if x.size:
        x.flat[0] = 0.5
    for load in (lambda: MultiEnvData.from_arrays(x), lambda: LTIData.from_arrays(x, input_dim=1),
                 lambda: causalid.SequenceData.from_arrays(x)):
        try:
            load()
        except CausalIDError as exc:
            assert "\n" not in str(exc)


# ---------------------------------------------------------------------- true graphs given to the CLI
@pytest.mark.parametrize("edges, message", [
    ("cause,effect\nX,Z\n", "names ['Z'], which are not variables of the data"),
    ("cause,effect\nX,Y\nY,X\n", "is not acyclic (cycle"),
    ("from,to\nX,Y\n", "needs columns 'cause' and 'effect'"),
])
def test_bad_true_graphs_are_refused(files, capsys, tmp_path, edges, message):
    paths, _ = files
    truth = tmp_path / "truth.csv"
    truth.write_text(edges)
    _cli_fails(capsys, ["discover", paths["good"], "--env-col", "env", "--truth", truth], message)


def test_a_saved_result_serves_as_the_true_graph(files, capsys, tmp_path):
    paths, _ = files
    first = tmp_path / "first.json"
    common = ["discover", str(paths["good"]), "--env-col", "env", "--method", "bayes", "--quiet"]
    assert main([*common, "--out", str(first)]) == 0
    assert main([*common, "--truth", str(first)]) == 0
    assert "shd 0," in capsys.readouterr().out


# ---------------------------------------------------------------------- HMM values and sizes
def _hmm_table(column) -> pd.DataFrame:
    y = RNG.normal(size=60)
    return pd.DataFrame({"t": np.arange(60), "X": y, "Z": column})


@pytest.mark.parametrize("column, message", [
    (np.full(60, np.nan), "column 'Z' has no observed values"),
    (np.full(60, 3.0), "column 'Z' is constant (3)"),
    (np.full(60, 1e308) * np.sign(RNG.normal(size=60)), "column 'Z' reaches 1e+308"),
])
def test_fit_hmm_refuses_channels_no_fit_can_use(capsys, tmp_path, column, message):
    """An all-missing, a constant or an overflowing column once ran to exit 0 with a log-likelihood
    of 0, +2580 or -inf."""
    path = tmp_path / "rec.csv"
    _hmm_table(column).to_csv(path, index=False)
    out = tmp_path / "hmm.json"
    _cli_fails(capsys, ["fit-hmm", path, "--time-col", "t", "--columns", "X", "Z", "--states", "2", "--quiet",
                        "--out", out], message, not_written=[out])
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        causalid.fit_hmm(_hmm_table(column)[["X", "Z"]], 2, progress=False)


@pytest.mark.parametrize("states, steps, message", [
    (2.5, 50, "num_states must be a positive integer; got 2.5"),
    (0, 50, "num_states must be a positive integer; got 0"),
    (40, 18, "num_states=40 but the data have only 18 observed step(s)"),
    (1000, 600, "num_states=1000 but the data have only 600 observed step(s)"),
    (5, 10, "a 5-state gaussian HMM has 34 free parameters but the data have only 10"),
])
def test_fit_hmm_refuses_state_counts_the_data_cannot_carry(states, steps, message):
    """2.5 states once fitted 2 silently; 40 states on 18 steps were accepted; 1000 on 600 ran
    with a one-hour ETA."""
    y = RNG.normal(size=steps)
    with pytest.raises(DataError) as info:
        causalid.fit_hmm(y, states, progress=False)
    assert message in str(info.value)


def test_fit_hmm_cli_refuses_too_many_states(capsys, tmp_path):
    path = tmp_path / "rec.csv"
    pd.DataFrame({"t": np.arange(18), "X": RNG.normal(size=18)}).to_csv(path, index=False)
    out = tmp_path / "hmm.json"
    _cli_fails(capsys, ["fit-hmm", path, "--time-col", "t", "--columns", "X", "--states", "40", "--quiet",
                        "--out", out], "num_states=40 but the data have only 18 observed step(s)", not_written=[out])


def test_bayes_scoring_shows_its_progress(capsys):
    """The Bayesian engine scores every parent set before its search starts; with progress on,
    a bar counts the sets (it used to print nothing for minutes on 20 variables)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 40, 9))
    x[..., 1] += x[..., 0]
    causalid.discover(MultiEnvData.from_arrays(x), method="bayes", progress=True)
    err = capsys.readouterr().err
    assert "scoring parent sets" in err and "837/837" in err
