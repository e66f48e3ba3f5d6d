"""Multi-environment time-series data for LTI identification.

One environment is one experimental condition (one input law, or one recording with its
own measured inputs); inside an environment there may be several trajectories.  Arrays
are stored padded as (env, trajectory, time, channel) float64 with NaN marking missing
outputs, so ragged lengths and gaps keep every observed value.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from causalid._arrays import check_names, pad_blocks
from causalid._checks import check_channels
from causalid.dynamics.system import InputDesign
from causalid.errors import DataError

__all__ = ["LTIData"]


class LTIData:
    """Outputs ``y`` (E, N, T, p) with NaN = missing, and either measured inputs or input laws.

    Attributes
    ----------
    y : ndarray, shape (E, N, T, p)
        Outputs; NaN marks a missing observation (also the padding after a short trajectory).
    inputs : ndarray, shape (E, N, T, m), or None
        Measured inputs; ``inputs[e, i, t]`` drives the state from step t to t+1.
    input_mean, input_var : ndarray, shape (E, m), or None
        The designed input law u_t ~ N(input_mean[e], diag(input_var[e])) of each environment
        when the inputs themselves are not recorded.  ``input_mean=None`` with ``input_var``
        given means the means are unknown (estimated per environment).
    lengths : ndarray of int, shape (E, N)
        Number of time steps of each trajectory (the rest is padding).
    dt : float or None
        Sampling interval in seconds, when known.
    output_names, input_names, env_names : tuple of str
    """

    def __init__(self, y, inputs, input_mean, input_var, lengths, dt, output_names, input_names, env_names,
                 latent_input_dim: int = 0):
        self.latent_input_dim = int(latent_input_dim)
        self.y = y
        self.inputs = inputs
        self.input_mean = input_mean
        self.input_var = input_var
        self.lengths = lengths
        self.dt = dt
        self.output_names = output_names
        self.input_names = input_names
        self.env_names = env_names

    # ------------------------------------------------------------------ construction
    def observed_inputs(self) -> np.ndarray | None:
        """The measured inputs with the padding after each trajectory as NaN (None without inputs)."""
        return None if self.inputs is None else _observed(self.inputs, self.lengths)

    @classmethod
    def from_arrays(
        cls,
        y,
        inputs=None,
        input_mean=None,
        input_var=None,
        dt: float | None = None,
        *,
        input_dim: int | None = None,
        output_names: Sequence[str] | None = None,
        input_names: Sequence[str] | None = None,
        env_names: Sequence[str] | None = None,
    ) -> "LTIData":
        """Build from arrays.

        Parameters
        ----------
        y : array (E, T, p) or (E, N, T, p), or a list with one (T_e, p) or (N_e, T_e, p)
            array per environment (ragged lengths are padded with NaN).  NaN = missing.
        inputs : array or list shaped like ``y`` with m channels, optional
            Measured inputs (no NaN allowed inside a trajectory).
        input_mean, input_var : array (E, m), optional
            Designed input law of each environment, when the inputs are not recorded.
        dt : float, optional
            Sampling interval in seconds.
        input_dim : int, optional
            Number of unrecorded inputs whose law is unknown (means and variances differ
            by environment but are not given); engines then estimate the law, and B̃ and
            the sources are identified up to permutation and scale.

        Examples
        --------
        >>> import numpy as np, causalid
        >>> y = np.zeros((3, 100, 2)); y[:, 1:] = 1.0
        >>> data = causalid.LTIData.from_arrays(y, input_var=np.ones((3, 2)))
        >>> data.num_envs, data.num_trajectories, data.num_steps, data.obs_dim
        (3, 1, 100, 2)
        """
        yb = _as_blocks(y, "y")
        E = len(yb)
        p = yb[0][0].shape[-1]
        for e, b in enumerate(yb):
            if any(a.shape[-1] != p for a in b):
                raise DataError(f"y: environment {e} has a trajectory whose channel count is not {p} (environment 0)")
        lengths = np.asarray([[len(a) for a in b] for b in yb], dtype=int)
        env_names = check_names(env_names, E, "env", "environment")
        output_names = check_names(output_names, p, "y", "output")
        Y = pad_blocks(yb, lengths, p)
        for e in range(E):
            vals = Y[e]
            if np.isinf(vals).any():
                j = int(np.flatnonzero(np.isinf(vals).any(axis=(0, 1)))[0])
                raise DataError(f"output '{output_names[j]}' has infinite values in environment '{env_names[e]}'")
            if np.isnan(vals).all():
                raise DataError(f"environment '{env_names[e]}' has no observed outputs; remove it or add data")
        check_channels(Y, output_names, "output", constant=False)
        if lengths.min() < 2:
            e, i = np.argwhere(lengths < 2)[0]
            raise DataError(
                f"trajectory {i} of environment '{env_names[e]}' has {lengths[e, i]} time step(s); "
                "identification needs at least 2"
            )

        U = None
        if inputs is not None:
            if input_mean is not None or input_var is not None:
                raise DataError(
                    "give either measured inputs or a designed input law (input_mean/input_var), not both"
                )
            ub = _as_blocks(inputs, "inputs")
            ulen = np.asarray([[len(a) for a in b] for b in ub], dtype=int)
            if ulen.shape != lengths.shape or not np.array_equal(ulen, lengths):
                raise DataError(
                    f"inputs must match y environment by environment and step by step: y has lengths "
                    f"{lengths.tolist()}, inputs {ulen.tolist()}"
                )
            m = ub[0][0].shape[-1]
            input_names = check_names(input_names, m, "u", "input")
            U = pad_blocks(ub, lengths, m, fill=0.0)
            for e in range(E):
                for i in range(U.shape[1]):
                    seg = U[e, i, : lengths[e, i]]
                    if not np.isfinite(seg).all():
                        j = int(np.flatnonzero(~np.isfinite(seg).all(axis=0))[0])
                        raise DataError(
                            f"input '{input_names[j]}' has NaN/inf values in environment '{env_names[e]}'"
                            f" (trajectory {i}); measured inputs must be complete — impute or trim them"
                        )
            check_channels(_observed(U, lengths), input_names, "input", constant=False)
        mean = var = None
        if input_var is not None or input_mean is not None:
            if input_var is None:
                raise DataError("input_mean was given without input_var; the input law needs its variances")
            var = np.asarray(input_var, dtype=np.float64)
            if var.ndim == 1:
                var = var[:, None]
            if var.shape[0] != E:
                raise DataError(f"input_var has {var.shape[0]} rows but y has {E} environments")
            mean_arr = None if input_mean is None else np.asarray(input_mean, float)
            if mean_arr is not None and mean_arr.ndim == 1:
                mean_arr = mean_arr[:, None]
            design = InputDesign(mean_arr, var)
            var = design.var
            mean = None if input_mean is None else design.mean
            input_names = check_names(input_names, var.shape[1], "u", "input")
        latent = 0
        if U is None and var is None:
            if input_dim is not None:
                latent = int(input_dim)
                if latent < 1:
                    raise DataError(f"input_dim must be a positive number of inputs; got {input_dim}")
                input_names = check_names(input_names, latent, "u", "input")
            else:
                input_names = ()
        elif input_dim is not None and input_dim != (U.shape[-1] if U is not None else var.shape[1]):
            raise DataError(f"input_dim={input_dim} disagrees with the {U.shape[-1] if U is not None else var.shape[1]} inputs given")
        if dt is not None and not (float(dt) > 0):
            raise DataError(f"dt must be a positive number of seconds; got {dt}")
        return cls(Y, U, mean, var, lengths, None if dt is None else float(dt), output_names,
                   input_names, env_names, latent)

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        env: str | None = None,
        time: str | None = None,
        outputs: Sequence[str] | None = None,
        inputs: Sequence[str] | None = None,
        *,
        trajectory: str | None = None,
        dt: float | None = None,
    ) -> "LTIData":
        """Build from a long table: one row per time step; one recording is one environment.

        Parameters
        ----------
        df : pandas.DataFrame
        env : str, optional
            Column naming the environment (recording) of each row; all rows form one
            environment when omitted.
        time : str, optional
            Column with the time of each row.  Rows are sorted by it inside each recording;
            the spacing must be regular (it sets ``dt`` in seconds unless given; datetime
            columns are converted to seconds).  Without it, row
            order is time order.
        outputs : list of str, optional
            Output columns (NaN = missing).  By default every column that is not the
            environment, time, trajectory or an input column (all must be numeric).
        inputs : list of str, optional
            Measured input columns.
        trajectory : str, optional
            Column naming separate trajectories inside an environment.
        """
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
        if df.shape[0] == 0:
            raise DataError("the table has no rows; nothing to identify")
        dup = df.columns[df.columns.duplicated()].unique().tolist()
        if dup:
            raise DataError(f"duplicated column name(s) {dup}; rename them so every column is unique")
        special = [c for c in (env, time, trajectory) if c is not None]
        for c in special:
            if c not in df.columns:
                raise DataError(f"column '{c}' not found; available columns: {list(map(str, df.columns))}")
        inputs = list(inputs or [])
        for c in inputs:
            if c not in df.columns:
                raise DataError(f"input column '{c}' not found; available columns: {list(map(str, df.columns))}")
        if outputs is None:
            outputs = [c for c in df.columns if c not in special and c not in inputs]
        outputs = list(outputs)
        for c in outputs:
            if c not in df.columns:
                raise DataError(f"output column '{c}' not found; available columns: {list(map(str, df.columns))}")
            if c in special or c in inputs:
                raise DataError(f"column '{c}' cannot be an output and also the env/time/trajectory/input column")
        if not outputs:
            raise DataError("no output columns; name them with outputs=[...] (--outputs)")
        for c in outputs + inputs:
            if not pd.api.types.is_numeric_dtype(df[c]):
                raise DataError(f"column '{c}' is not numeric; encode it as numbers or leave it out")
        for c in special:
            if df[c].isna().any():
                raise DataError(f"column '{c}' is empty in {int(df[c].isna().sum())} row(s); fill or remove them")

        env_labels = df[env] if env is not None else pd.Series(["0"] * len(df), index=df.index)
        y_blocks, u_blocks, env_names, steps = [], [], [], []
        for lab in pd.unique(env_labels):
            sub = df.loc[env_labels == lab]
            traj_labels = sub[trajectory] if trajectory is not None else pd.Series([0] * len(sub), index=sub.index)
            ys, us = [], []
            for tl in pd.unique(traj_labels):
                part = sub.loc[traj_labels == tl]
                where = f"environment '{lab}'" + (f", trajectory '{tl}'" if trajectory is not None else "")
                if time is not None:
                    part = part.sort_values(time, kind="stable")
                    if pd.api.types.is_datetime64_any_dtype(part[time]):
                        t = (part[time] - part[time].iloc[0]).dt.total_seconds().to_numpy()
                    else:
                        t = part[time].to_numpy(dtype=float)
                    d = np.diff(t)
                    if (d == 0).any():
                        raise DataError(f"time column '{time}' repeats a value in {where}; each step needs one row")
                    if d.size:
                        if not np.allclose(d, d[0], rtol=1e-6, atol=0):
                            raise DataError(
                                f"time column '{time}' is not regularly spaced in {where} (steps from "
                                f"{d.min():g} to {d.max():g}); resample to a regular grid first"
                            )
                        steps.append(d[0])
                ys.append(part[outputs].to_numpy(dtype=float))
                us.append(part[inputs].to_numpy(dtype=float) if inputs else None)
            y_blocks.append(ys)
            u_blocks.append(us)
            env_names.append(str(lab))
        if steps and not np.allclose(steps, steps[0], rtol=1e-6, atol=0):
            raise DataError(f"time step differs between recordings ({min(steps):g} vs {max(steps):g}); resample first")
        if dt is None and steps:
            dt = float(steps[0])
        return cls.from_arrays(
            y_blocks, inputs=u_blocks if inputs else None, dt=dt,
            output_names=outputs, input_names=inputs or None, env_names=env_names,
        )

    # ------------------------------------------------------------------ properties
    @property
    def num_envs(self) -> int:
        return self.y.shape[0]

    @property
    def num_trajectories(self) -> int:
        return self.y.shape[1]

    @property
    def num_steps(self) -> int:
        """Longest trajectory length (arrays are padded to it)."""
        return self.y.shape[2]

    @property
    def obs_dim(self) -> int:
        return self.y.shape[3]

    @property
    def input_dim(self) -> int:
        if self.inputs is not None:
            return self.inputs.shape[3]
        if self.input_var is not None:
            return self.input_var.shape[1]
        return self.latent_input_dim

    @property
    def has_measured_inputs(self) -> bool:
        return self.inputs is not None

    @property
    def has_missing(self) -> bool:
        """True when some output inside a trajectory is missing (padding does not count)."""
        return bool(np.isnan(self.y[self.step_mask]).any())

    @property
    def step_mask(self) -> np.ndarray:
        """(E, N, T) boolean: True on real time steps, False on padding."""
        return np.arange(self.num_steps)[None, None, :] < self.lengths[:, :, None]

    @property
    def design(self) -> InputDesign | None:
        """The designed input law, when the data carry one (means zero when unknown)."""
        if self.input_var is None:
            return None
        return InputDesign(self.input_mean, self.input_var)

    @property
    def known_means(self) -> bool:
        return self.input_mean is not None

    # ------------------------------------------------------------------ views
    def subset_envs(self, envs: Sequence[int | str]) -> "LTIData":
        """A new data object with the chosen environments (by index or name)."""
        idx = []
        for e in envs:
            if isinstance(e, str):
                if e not in self.env_names:
                    raise DataError(f"environment '{e}' not found; available: {list(self.env_names)}")
                idx.append(self.env_names.index(e))
            else:
                if not -self.num_envs <= int(e) < self.num_envs:
                    raise DataError(f"environment index {e} is out of range: there are {self.num_envs} environments")
                idx.append(int(e))
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return LTIData(self.y[idx], pick(self.inputs), pick(self.input_mean), pick(self.input_var),
                       self.lengths[idx], self.dt, self.output_names, self.input_names,
                       tuple(self.env_names[i] for i in idx), self.latent_input_dim)

    def split_time(self, fraction: float) -> tuple["LTIData", "LTIData"]:
        """Split every trajectory at ``fraction`` of the common length: (earlier part, later part).

        Used to hold out the end of each recording for validation.
        """
        if not 0 < fraction < 1:
            raise DataError(f"fraction must lie strictly between 0 and 1; got {fraction}")
        cut = int(round(self.num_steps * fraction))
        if cut < 2 or self.num_steps - cut < 2:
            raise DataError(f"splitting {self.num_steps} steps at {fraction} leaves a part shorter than 2 steps")
        if (self.lengths < self.num_steps).any():
            raise DataError("split_time needs trajectories of equal length; trim the recordings first")

        def part(sl, L):
            return LTIData(self.y[:, :, sl], None if self.inputs is None else self.inputs[:, :, sl],
                           self.input_mean, self.input_var, np.full_like(self.lengths, L), self.dt,
                           self.output_names, self.input_names, self.env_names, self.latent_input_dim)

        return part(slice(0, cut), cut), part(slice(cut, None), self.num_steps - cut)

    def to_frame(self) -> pd.DataFrame:
        """Long table: env, trajectory, step, outputs, inputs (padding rows left out)."""
        rows = []
        for e in range(self.num_envs):
            for i in range(self.num_trajectories):
                L = int(self.lengths[e, i])
                block = {"env": [self.env_names[e]] * L, "trajectory": [i] * L, "step": np.arange(L)}
                for j, name in enumerate(self.output_names):
                    block[name] = self.y[e, i, :L, j]
                if self.inputs is not None:
                    for j, name in enumerate(self.input_names):
                        block[name] = self.inputs[e, i, :L, j]
                rows.append(pd.DataFrame(block))
        return pd.concat(rows, ignore_index=True)

    def __repr__(self) -> str:
        kind = ("measured inputs " + str(list(self.input_names)) if self.has_measured_inputs
                else f"designed input law over {self.input_dim} input(s)" if self.input_var is not None
                else f"{self.latent_input_dim} input(s) with unknown law" if self.latent_input_dim
                else "no inputs")
        return (f"LTIData({self.num_envs} environment(s) x {self.num_trajectories} trajectory(ies) x "
                f"{self.num_steps} steps, {self.obs_dim} output(s), {kind}"
                + (f", dt={self.dt:g}s" if self.dt else "") + ")")


# ---------------------------------------------------------------------- helpers
def _as_blocks(x, what) -> list[list[np.ndarray]]:
    """Per-environment lists of (T, channels) trajectories from an array or a ragged list."""
    if isinstance(x, (list, tuple)):
        if not x:
            raise DataError(f"{what}: empty list; give one array per environment")
        out = []
        for e, b in enumerate(x):
            if isinstance(b, (list, tuple)):
                trajs = [np.asarray(a, dtype=np.float64) for a in b]
            else:
                b = np.asarray(b, dtype=np.float64)
                if b.ndim not in (2, 3):
                    raise DataError(f"{what}: environment {e} must be (T, channels) or (N, T, channels); got {b.shape}")
                trajs = list(b) if b.ndim == 3 else [b]
            for a in trajs:
                if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
                    raise DataError(f"{what}: environment {e} has a trajectory of shape {a.shape}; expected (T, channels)")
            out.append(trajs)
        if len({len(b) for b in out}) != 1:
            raise DataError(f"{what}: every environment needs the same number of trajectories")
        return out
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise DataError(f"{what} must be shaped (E, T, channels) or (E, N, T, channels); got {a.shape}")
    if 0 in a.shape:
        raise DataError(f"{what} is empty (shape {a.shape})")
    return [list(b) for b in a]


def _observed(inputs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Measured inputs (E, N, T, m) with the zero padding after each trajectory set to NaN."""
    real = np.arange(inputs.shape[2]) < lengths[..., None]
    return np.where(real[..., None], inputs, np.nan)
