import numpy as np
import pandas as pd
import pytest

import causalid
from causalid import DataError, MultiEnvData
from causalid.datasets import SACHS_VARIABLES, load_sachs, sachs_conditions, sachs_graph, verify_sachs


def _frame(seed=0, sizes=(5, 7, 3)):
    rng = np.random.default_rng(seed)
    rows = []
    for e, n in enumerate(sizes):
        for _ in range(n):
            rows.append({"condition": f"c{e}", "a": rng.normal(), "b": rng.normal() + e})
    return pd.DataFrame(rows)


def test_from_frame_keeps_every_row_and_order():
    df = _frame()
    data = MultiEnvData.from_frame(df, env="condition")
    assert data.envs == ("c0", "c1", "c2")
    assert data.names == ("a", "b")
    assert data.counts.tolist() == [5, 7, 3]
    assert data.is_ragged
    assert data.values.shape == (3, 7, 2)
    # nothing dropped, padding is masked out
    back = data.to_frame(env="condition")
    pd.testing.assert_frame_equal(back, df.reset_index(drop=True), check_dtype=False)
    assert np.all(data.values[~data.mask] == 0)


def test_from_arrays_regular_and_ragged():
    x = np.arange(2 * 3 * 2, dtype=float).reshape(2, 3, 2)
    data = MultiEnvData.from_arrays(x, names=["u", "v"])
    assert data.values.shape == (2, 3, 2) and data.mask.all()
    ragged = MultiEnvData.from_arrays([x[0], x[1, :2]])
    assert ragged.counts.tolist() == [3, 2]
    np.testing.assert_array_equal(ragged.blocks()[1], x[1, :2])


def test_to_xarray_dims():
    data = MultiEnvData.from_frame(_frame(), env="condition")
    da = data.to_xarray()
    assert da.dims == ("env", "sample", "var")
    assert int(da.isnull().any("var").sum()) == int((~data.mask).sum())


def test_load_csv_and_parquet(tmp_path):
    df = _frame()
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_parquet(tmp_path / "d.parquet")
    a = causalid.load(tmp_path / "d.csv", env="condition")
    b = causalid.load(tmp_path / "d.parquet", env="condition")
    np.testing.assert_allclose(a.values, b.values)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda df: df.rename(columns={"condition": "group"}), "environment column 'condition' not found"),
        (lambda df: df.assign(a=np.where(np.arange(len(df)) == 3, np.nan, df.a)), r"column 'a' has 1 NaN value\(s\) in environment 'c0'"),
        (lambda df: df.assign(b=np.where(np.arange(len(df)) == 8, np.inf, df.b)), r"column 'b' has 1 infinite value\(s\) in environment 'c1'"),
        (lambda df: df.assign(label="x"), r"non-numeric column\(s\) \['label'\]"),
        (lambda df: df.assign(k=1.0), r"column\(s\) \['k'\] are constant"),
        (lambda df: pd.concat([df, df[["a"]]], axis=1), r"duplicated column name\(s\) \['a'\]"),
        (lambda df: df.iloc[:0], "no rows"),
    ],
)
def test_bad_frames_get_clear_errors(make, match):
    with pytest.raises(DataError, match=match):
        MultiEnvData.from_frame(make(_frame()), env="condition")


def test_bad_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty"):
        causalid.load(empty)
    header = tmp_path / "header.csv"
    header.write_text("condition,a,b\n")
    with pytest.raises(DataError, match="no rows"):
        causalid.load(header)
    with pytest.raises(DataError, match="does not exist"):
        causalid.load(tmp_path / "missing.csv")
    odd = tmp_path / "d.xlsx"
    odd.write_text("x")
    with pytest.raises(DataError, match="unknown format"):
        causalid.load(odd)


def test_too_few_samples_named():
    data = MultiEnvData.from_frame(_frame(sizes=(5, 1, 4)), env="condition")
    with pytest.raises(DataError, match=r"environment\(s\) 'c1' \(1\)"):
        data.require_samples(2, "the test")
    with pytest.raises(DataError, match="environment 'c1' has 1"):
        causalid.discover(data)


def test_variables_and_transforms():
    df = _frame().assign(a=lambda d: np.exp(d.a))
    data = MultiEnvData.from_frame(df, env="condition", variables=["a"], transform="log")
    np.testing.assert_allclose(data.blocks()[0][:, 0], np.log(df.a[:5]))
    with pytest.raises(DataError, match="transform 'log' needs positive values; column 'a' has values <= 0 in environment 'c0'"):
        MultiEnvData.from_frame(_frame(), env="condition", transform="log")
    with pytest.raises(DataError, match=r"variable column\(s\) \['zz'\] not found"):
        MultiEnvData.from_frame(df, env="condition", variables=["zz"])
    with pytest.raises(DataError, match="unknown transform"):
        MultiEnvData.from_frame(df, env="condition", transform="sqrt")


def test_environment_id_column_is_reported_not_silently_used():
    df = _frame()
    df["condition_id"] = df["condition"].str[1:].astype(int)
    with pytest.warns(UserWarning, match="'condition_id' is constant inside every environment"):
        data = MultiEnvData.from_frame(df, env="condition")
    assert data.names == ("a", "b")


def test_array_errors():
    with pytest.raises(DataError, match=r"expected \(env, sample, variable\)"):
        MultiEnvData.from_arrays(np.zeros((3, 4)))
    with pytest.raises(DataError, match="different numbers of variables"):
        MultiEnvData.from_arrays([np.zeros((3, 2)), np.zeros((3, 3))])
    with pytest.raises(DataError, match="duplicated variable name"):
        MultiEnvData.from_arrays(np.random.default_rng(0).normal(size=(2, 3, 2)), names=["a", "a"])


def test_sachs_shipped_and_intact():
    verify_sachs()
    data = load_sachs()
    assert data.num_envs == 9 and data.names == SACHS_VARIABLES
    assert int(data.counts.sum()) == 7466
    cond = sachs_conditions()
    main9 = cond[cond.in_main_9_conditions]
    assert dict(zip(main9.condition, main9.n_cells)) == dict(zip(data.envs, data.counts.tolist()))
    assert sachs_graph("bnlearn17").number_of_edges() == 17
    assert sachs_graph("tetrad20").number_of_edges() == 20
    with pytest.raises(DataError, match="unknown Sachs graph"):
        sachs_graph("nope")


def test_data_kind_rules():
    from causalid.exchangeable.data import data_kind

    assert data_kind(np.array([[0, 1], [1, 0]])) == "binary"
    assert data_kind(np.array([[0, 2], [1, 0]])) == "categorical"
    assert data_kind(np.array([[-1, 0], [1, 0]])) == "continuous"  # not codes 0..L-1
    assert data_kind(np.array([[0.5, 0], [1, 0]])) == "continuous"
    assert data_kind(np.arange(24.0).reshape(12, 2)) == "continuous"  # too many levels
