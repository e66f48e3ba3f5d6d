"""LTIData: construction from arrays and tables, validation messages, views and round trips."""

import numpy as np
import pandas as pd
import pytest

from causalid import DataError, LTIData


def _y(E=3, T=20, p=2, seed=0, N=None):
    rng = np.random.default_rng(seed)
    shape = (E, T, p) if N is None else (E, N, T, p)
    return rng.normal(size=shape)


def _frame(lengths=(6, 8), p=2, m=1, seed=0, dt=0.5, shuffle=True):
    """A long table with columns env, t, y0.., u0..; rows shuffled inside the table."""
    rng = np.random.default_rng(seed)
    rows = []
    for e, L in enumerate(lengths):
        for t in range(L):
            row = {"env": f"run{e}", "t": 10.0 + dt * t}
            row.update({f"y{j}": rng.normal() for j in range(p)})
            row.update({f"u{j}": rng.normal() for j in range(m)})
            rows.append(row)
    df = pd.DataFrame(rows)
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True) if shuffle else df


# ---------------------------------------------------------------------- from_arrays: shapes
def test_three_dimensional_array_is_one_trajectory_per_environment():
    y = _y(E=3, T=20, p=2)
    data = LTIData.from_arrays(y, input_var=np.ones((3, 2)))
    assert data.y.shape == (3, 1, 20, 2)
    assert (data.num_envs, data.num_trajectories, data.num_steps, data.obs_dim) == (3, 1, 20, 2)
    np.testing.assert_array_equal(data.y[:, 0], y)
    assert data.lengths.tolist() == [[20], [20], [20]]
    assert data.step_mask.all() and not data.has_missing
    assert data.output_names == ("y0", "y1") and data.env_names == ("env0", "env1", "env2")
    assert data.input_names == ("u0", "u1") and data.input_dim == 2
    assert data.input_mean is None and not data.known_means
    assert data.design is not None and np.all(data.design.mean == 0)


def test_four_dimensional_array_keeps_trajectories():
    y = _y(E=2, N=4, T=15, p=3)
    data = LTIData.from_arrays(y, input_mean=np.zeros((2, 1)), input_var=np.ones((2, 1)), dt=0.1)
    assert data.y.shape == (2, 4, 15, 3)
    assert data.num_trajectories == 4 and data.dt == 0.1
    assert data.y.dtype == np.float64
    np.testing.assert_array_equal(data.y, y)
    assert data.known_means and data.input_dim == 1


def test_one_dimensional_input_var_is_one_input():
    data = LTIData.from_arrays(_y(E=3), input_var=np.array([1.0, 2.0, 3.0]))
    assert data.input_var.shape == (3, 1) and data.input_dim == 1


@pytest.mark.parametrize("bad", [np.zeros((20, 2)), np.zeros((1, 1, 1, 20, 2))])
def test_array_of_wrong_rank_is_rejected(bad):
    with pytest.raises(DataError, match="shaped"):
        LTIData.from_arrays(bad)


def test_channel_names_and_counts_are_checked():
    y = _y()
    data = LTIData.from_arrays(y, input_var=np.ones((3, 1)), output_names=["pos", "vel"],
                               input_names=["force"], env_names=["a", "b", "c"])
    assert data.output_names == ("pos", "vel") and data.input_names == ("force",)
    with pytest.raises(DataError, match="3 output names for 2 outputs"):
        LTIData.from_arrays(y, output_names=["a", "b", "c"])
    with pytest.raises(DataError, match=r"duplicated environment name\(s\) \['a'\]"):
        LTIData.from_arrays(y, env_names=["a", "a", "b"])


# ---------------------------------------------------------------------- ragged input
def test_ragged_list_pads_with_nan_and_records_lengths():
    rng = np.random.default_rng(1)
    blocks = [rng.normal(size=(10, 2)), rng.normal(size=(7, 2)), rng.normal(size=(12, 2))]
    data = LTIData.from_arrays(blocks, input_var=np.ones((3, 2)))
    assert data.y.shape == (3, 1, 12, 2)
    assert data.lengths.tolist() == [[10], [7], [12]]
    for e, b in enumerate(blocks):
        np.testing.assert_array_equal(data.y[e, 0, : len(b)], b)
        assert np.isnan(data.y[e, 0, len(b):]).all()
    mask = data.step_mask
    assert mask.shape == (3, 1, 12)
    assert mask.sum(axis=-1).tolist() == [[10], [7], [12]]
    assert mask[1, 0, 6] and not mask[1, 0, 7]
    assert not data.has_missing                       # padding is not "missing"
    gappy = [b.copy() for b in blocks]
    gappy[0][3, 1] = np.nan
    assert LTIData.from_arrays(gappy).has_missing


def test_ragged_trajectories_inside_environments_and_ragged_inputs():
    rng = np.random.default_rng(2)
    y = [[rng.normal(size=(5, 1)), rng.normal(size=(9, 1))],
         [rng.normal(size=(8, 1)), rng.normal(size=(4, 1))]]
    u = [[rng.normal(size=(len(a), 2)) for a in env] for env in y]
    data = LTIData.from_arrays(y, inputs=u)
    assert data.y.shape == (2, 2, 9, 1) and data.inputs.shape == (2, 2, 9, 2)
    assert data.lengths.tolist() == [[5, 9], [8, 4]]
    np.testing.assert_array_equal(data.inputs[1, 1, :4], u[1][1])
    assert np.all(data.inputs[1, 1, 4:] == 0)          # input padding is zeros, not NaN
    assert data.has_measured_inputs and data.input_dim == 2
    # a (N, T, p) array per environment is accepted too
    stacked = LTIData.from_arrays([rng.normal(size=(3, 6, 1)), rng.normal(size=(3, 4, 1))])
    assert stacked.lengths.tolist() == [[6, 6, 6], [4, 4, 4]]


def test_ragged_validation_messages():
    with pytest.raises(DataError, match="same number of trajectories"):
        LTIData.from_arrays([[np.ones((5, 1))], [np.ones((5, 1)), np.ones((5, 1))]])
    with pytest.raises(DataError, match="environment 1 has a trajectory whose channel count is not 2"):
        LTIData.from_arrays([np.ones((5, 2)), np.ones((5, 3))])
    with pytest.raises(DataError, match="empty list"):
        LTIData.from_arrays([])
    with pytest.raises(DataError, match="inputs must match y"):
        LTIData.from_arrays([np.ones((5, 1)), np.ones((6, 1))], inputs=[np.ones((5, 1)), np.ones((5, 1))])
    y = np.random.default_rng(0).normal(size=(2, 50, 2))
    from causalid import identify_lti

    with pytest.raises(DataError, match="output 'y1' is constant"):
        identify_lti(LTIData.from_arrays(np.concatenate([y[..., :1], np.full((2, 50, 1), 3.0)], axis=-1),
                                         input_dim=1))
    with pytest.raises(DataError, match="input 'u0' is constant"):
        identify_lti(LTIData.from_arrays(y, inputs=np.ones((2, 50, 1))))
    with pytest.raises(DataError, match=r"output 'y0' reaches 1e\+308.*divide the column by 1e308"):
        LTIData.from_arrays(np.where(np.arange(2)[None, None] == 0, 1e308, y))
    with pytest.raises(DataError, match="output 'y1' has no observed values"):
        LTIData.from_arrays(np.where(np.arange(2)[None, None] == 1, np.nan, y))


# ---------------------------------------------------------------------- validation
def test_measured_input_nan_names_input_and_environment():
    y = _y(E=3, T=20, p=2)
    u = np.ones((3, 20, 2))
    u[2, 7, 1] = np.nan
    with pytest.raises(DataError, match=r"input 'thrust'.*environment 'c'.*trajectory 0"):
        LTIData.from_arrays(y, inputs=u, input_names=["volt", "thrust"], env_names=["a", "b", "c"])
    u4 = np.ones((3, 2, 20, 1))
    u4[0, 1, 3] = np.inf
    with pytest.raises(DataError, match=r"input 'u0' has NaN/inf values in environment 'env0' "
                                        r"\(trajectory 1\)"):
        LTIData.from_arrays(np.stack([y, y], axis=1), inputs=u4)


def test_infinite_output_names_output_and_environment():
    y = _y()
    y[1, 4, 1] = np.inf
    with pytest.raises(DataError, match="output 'y1' has infinite values in environment 'env1'"):
        LTIData.from_arrays(y)


def test_input_law_with_wrong_number_of_environments():
    with pytest.raises(DataError, match="input_var has 2 rows but y has 3 environments"):
        LTIData.from_arrays(_y(E=3), input_var=np.ones((2, 2)))


def test_input_law_means_and_variances_must_have_equal_size():
    with pytest.raises(ValueError):      # DataError is a ValueError; see the strict check below
        LTIData.from_arrays(_y(E=3), input_mean=np.zeros((3, 1)), input_var=np.ones((3, 2)))


def test_input_law_shape_mismatch_is_a_data_error():
    with pytest.raises(DataError):
        LTIData.from_arrays(_y(E=3), input_mean=np.zeros((3, 1)), input_var=np.ones((3, 2)))
    with pytest.raises(DataError):       # transposed means: same size, wrong shape
        LTIData.from_arrays(_y(E=3), input_mean=np.zeros((2, 3)), input_var=np.ones((3, 2)))


def test_nonpositive_input_variance_is_rejected():
    with pytest.raises(DataError, match="variances must be > 0"):
        LTIData.from_arrays(_y(E=3), input_var=np.array([[1.0], [0.0], [1.0]]))


def test_input_mean_without_input_var():
    with pytest.raises(DataError, match="input_mean was given without input_var"):
        LTIData.from_arrays(_y(), input_mean=np.zeros((3, 2)))


def test_measured_inputs_and_input_law_together():
    y = _y()
    with pytest.raises(DataError, match="not both"):
        LTIData.from_arrays(y, inputs=np.ones((3, 20, 1)), input_var=np.ones((3, 1)))
    with pytest.raises(DataError, match="not both"):
        LTIData.from_arrays(y, inputs=np.ones((3, 20, 1)), input_mean=np.zeros((3, 1)))


def test_input_dim_for_inputs_of_unknown_law():
    data = LTIData.from_arrays(_y(), input_dim=2)
    assert data.input_dim == 2 and data.latent_input_dim == 2 and data.design is None
    assert LTIData.from_arrays(_y()).input_dim == 0
    with pytest.raises(DataError, match="positive number of inputs"):
        LTIData.from_arrays(_y(), input_dim=0)
    with pytest.raises(DataError, match="disagrees"):
        LTIData.from_arrays(_y(), input_var=np.ones((3, 2)), input_dim=3)


def test_all_nan_environment_is_named():
    y = _y()
    y[1] = np.nan
    with pytest.raises(DataError, match="environment 'mid' has no observed outputs"):
        LTIData.from_arrays(y, env_names=["lo", "mid", "hi"])


def test_trajectory_shorter_than_two_steps():
    with pytest.raises(DataError, match=r"trajectory 1 of environment 'env0' has 1 time step\(s\)"):
        LTIData.from_arrays([[np.ones((5, 1)), np.ones((1, 1))], [np.ones((5, 1)), np.ones((5, 1))]])
    with pytest.raises(DataError, match="at least 2"):
        LTIData.from_arrays(np.ones((2, 1, 1)))


def test_dt_must_be_positive():
    with pytest.raises(DataError, match="dt must be a positive"):
        LTIData.from_arrays(_y(), dt=0.0)


# ---------------------------------------------------------------------- from_frame
def test_from_frame_env_and_time_columns_sort_and_infer_dt():
    df = _frame(lengths=(6, 8), dt=0.5)
    data = LTIData.from_frame(df, env="env", time="t", outputs=["y0", "y1"], inputs=["u0"])
    assert set(data.env_names) == {"run0", "run1"}          # order of first appearance
    assert data.dt == pytest.approx(0.5)
    assert data.output_names == ("y0", "y1") and data.input_names == ("u0",)
    for e, name in enumerate(data.env_names):
        sub = df[df.env == name].sort_values("t")
        L = len(sub)
        assert data.lengths[e, 0] == L
        np.testing.assert_array_equal(data.y[e, 0, :L], sub[["y0", "y1"]].to_numpy())
        np.testing.assert_array_equal(data.inputs[e, 0, :L], sub[["u0"]].to_numpy())


def test_from_frame_default_outputs_and_explicit_dt():
    df = _frame(m=0, shuffle=False)
    data = LTIData.from_frame(df, env="env", time="t", dt=2.0)
    assert data.output_names == ("y0", "y1") and data.dt == 2.0
    assert not data.has_measured_inputs
    one = LTIData.from_frame(df[["y0", "y1"]])           # no env, no time: one environment, row order
    assert one.num_envs == 1 and one.num_steps == len(df) and one.dt is None
    np.testing.assert_array_equal(one.y[0, 0], df[["y0", "y1"]].to_numpy())


def test_from_frame_trajectory_column():
    df = _frame(lengths=(10,), m=0, shuffle=False)
    df["rep"] = [0] * 4 + [1] * 6
    df.loc[df.rep == 1, "t"] = 10.0 + 0.5 * np.arange(6)     # each trajectory restarts its clock
    data = LTIData.from_frame(df, env="env", time="t", trajectory="rep")
    assert data.num_trajectories == 2 and data.lengths.tolist() == [[4, 6]]
    assert data.output_names == ("y0", "y1")
    np.testing.assert_array_equal(data.y[0, 1, :6], df[df.rep == 1][["y0", "y1"]].to_numpy())


def test_from_frame_irregular_spacing_names_environment():
    df = _frame(lengths=(6, 6), m=0, shuffle=False)
    df.loc[9, "t"] += 0.2                                     # in run1
    with pytest.raises(DataError, match=r"not regularly spaced in environment 'run1'"):
        LTIData.from_frame(df, env="env", time="t")


def test_from_frame_repeated_time_value():
    df = _frame(lengths=(6, 6), m=0, shuffle=False)
    df.loc[3, "t"] = df.loc[2, "t"]
    with pytest.raises(DataError, match=r"repeats a value in environment 'run0'"):
        LTIData.from_frame(df, env="env", time="t")


def test_from_frame_step_differs_between_recordings():
    df = _frame(lengths=(6, 6), m=0, shuffle=False)
    df.loc[df.env == "run1", "t"] = np.arange(6) * 0.7
    with pytest.raises(DataError, match="time step differs between recordings"):
        LTIData.from_frame(df, env="env", time="t")


def test_from_frame_missing_columns_are_named():
    df = _frame(m=1)
    with pytest.raises(DataError, match="output column 'y9' not found"):
        LTIData.from_frame(df, env="env", time="t", outputs=["y0", "y9"])
    with pytest.raises(DataError, match="input column 'u7' not found"):
        LTIData.from_frame(df, env="env", time="t", inputs=["u7"])
    with pytest.raises(DataError, match="column 'when' not found"):
        LTIData.from_frame(df, env="env", time="when")
    with pytest.raises(DataError, match="cannot be an output"):
        LTIData.from_frame(df, env="env", time="t", outputs=["y0", "u0"], inputs=["u0"])


def test_from_frame_non_numeric_column():
    df = _frame(m=0)
    df["label"] = "x"
    with pytest.raises(DataError, match="column 'label' is not numeric"):
        LTIData.from_frame(df, env="env", time="t", outputs=["y0", "label"])


def test_from_frame_duplicated_column_names():
    df = _frame(m=0, shuffle=False)
    df = pd.concat([df, df[["y0"]]], axis=1)
    with pytest.raises(DataError, match=r"duplicated column name\(s\) \['y0'\]"):
        LTIData.from_frame(df, env="env", time="t")


def test_from_frame_other_input_errors():
    with pytest.raises(DataError, match="DataFrame"):
        LTIData.from_frame(np.zeros((4, 2)))
    with pytest.raises(DataError, match="no rows"):
        LTIData.from_frame(pd.DataFrame({"y": []}))
    df = _frame(m=0, shuffle=False)
    df.loc[2, "env"] = None
    with pytest.raises(DataError, match="column 'env' is empty in 1 row"):
        LTIData.from_frame(df, env="env", time="t")


# ---------------------------------------------------------------------- to_frame, views, repr
def test_to_frame_round_trip_with_ragged_trajectories_and_missing_values():
    rng = np.random.default_rng(3)
    y = [[rng.normal(size=(7, 2)), rng.normal(size=(5, 2))],
         [rng.normal(size=(4, 2)), rng.normal(size=(6, 2))]]
    y[0][0][2, 1] = np.nan
    u = [[rng.normal(size=(len(a), 1)) for a in env] for env in y]
    data = LTIData.from_arrays(y, inputs=u, output_names=["p", "v"], input_names=["f"], env_names=["A", "B"])
    df = data.to_frame()
    assert list(df.columns) == ["env", "trajectory", "step", "p", "v", "f"]
    assert len(df) == data.lengths.sum()
    back = LTIData.from_frame(df, env="env", time="step", trajectory="trajectory", inputs=["f"])
    assert back.env_names == data.env_names and back.output_names == data.output_names
    assert back.input_names == data.input_names
    np.testing.assert_array_equal(back.lengths, data.lengths)
    np.testing.assert_array_equal(back.y, data.y)                 # NaN in the same places
    np.testing.assert_array_equal(back.inputs, data.inputs)
    assert back.dt == 1.0                                          # from the step column


def test_to_frame_without_inputs_round_trip():
    data = LTIData.from_arrays(_y(E=2, T=9, p=3), input_var=np.ones((2, 1)))
    df = data.to_frame()
    assert "u0" not in df.columns                                  # designed laws have no columns
    back = LTIData.from_frame(df, env="env", time="step", trajectory="trajectory")
    np.testing.assert_array_equal(back.y, data.y)


def test_split_time():
    y = _y(E=2, N=3, T=50, p=2)
    u = np.random.default_rng(4).normal(size=(2, 3, 50, 1))
    data = LTIData.from_arrays(y, inputs=u, dt=0.1)
    train, test = data.split_time(0.8)
    assert train.num_steps == 40 and test.num_steps == 10
    assert train.lengths.tolist() == [[40] * 3] * 2 and test.lengths.tolist() == [[10] * 3] * 2
    np.testing.assert_array_equal(np.concatenate([train.y, test.y], axis=2), data.y)
    np.testing.assert_array_equal(np.concatenate([train.inputs, test.inputs], axis=2), data.inputs)
    assert train.dt == test.dt == 0.1 and test.env_names == data.env_names
    law = LTIData.from_arrays(y, input_mean=np.zeros((2, 1)), input_var=np.ones((2, 1)))
    a, b = law.split_time(0.5)
    assert a.input_var is law.input_var and b.num_steps == 25
    with pytest.raises(DataError, match="strictly between 0 and 1"):
        data.split_time(1.0)
    with pytest.raises(DataError, match="shorter than 2 steps"):
        data.split_time(0.99)
    ragged = LTIData.from_arrays([np.ones((10, 1)), np.ones((8, 1))])
    with pytest.raises(DataError, match="equal length"):
        ragged.split_time(0.5)


def test_subset_envs_by_name_and_index():
    y = _y(E=4)
    var = np.arange(1.0, 9.0).reshape(4, 2)
    mean = -var
    data = LTIData.from_arrays(y, input_mean=mean, input_var=var, env_names=["a", "b", "c", "d"])
    sub = data.subset_envs(["c", 0])
    assert sub.env_names == ("c", "a") and sub.num_envs == 2
    np.testing.assert_array_equal(sub.y[:, 0], y[[2, 0]])
    np.testing.assert_array_equal(sub.input_var, var[[2, 0]])
    np.testing.assert_array_equal(sub.input_mean, mean[[2, 0]])
    assert sub.lengths.tolist() == [[20], [20]]
    with pytest.raises(DataError, match="environment 'z' not found"):
        data.subset_envs(["z"])
    u = LTIData.from_arrays(y, inputs=np.ones((4, 20, 1))).subset_envs([3])
    assert u.inputs.shape == (1, 1, 20, 1) and u.env_names == ("env3",)


def test_repr_describes_the_data():
    law = LTIData.from_arrays(_y(E=3, T=20, p=2), input_var=np.ones((3, 1)), dt=0.01)
    assert repr(law) == ("LTIData(3 environment(s) x 1 trajectory(ies) x 20 steps, 2 output(s), "
                         "designed input law over 1 input(s), dt=0.01s)")
    measured = LTIData.from_arrays(_y(E=2, T=5, p=1), inputs=np.ones((2, 5, 1)), input_names=["volt"])
    assert "measured inputs ['volt']" in repr(measured) and "dt=" not in repr(measured)
    assert "2 input(s) with unknown law" in repr(LTIData.from_arrays(_y(), input_dim=2))
    assert "no inputs" in repr(LTIData.from_arrays(_y()))
