"""Multi-environment sequence data for hidden Markov models.

Sequences come in environments (conditions, subjects, sessions); an environment holds one or
more sequences of possibly different lengths.  They are stored padded as (env, sequence, time,
channel) float64 arrays with NaN marking missing values, plus each sequence's length, so ragged
data and gaps keep every observed value.  Unlike :class:`causalid.LTIData`, time needs no regular
grid: only the order of the rows matters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from causalid._arrays import check_names, pad_blocks
from causalid.errors import DataError

__all__ = ["SequenceData"]


class SequenceData:
    """Observations ``y`` ``(E, N, T, D)`` (NaN = missing / padding) with ``lengths`` ``(E, N)``.

    Attributes
    ----------
    y : ndarray (E, N, T, D)
    lengths : ndarray of int (E, N)
        Real steps of each sequence; an environment with fewer sequences than the largest has
        zero-length padding sequences.
    inputs : ndarray (E, N, T, m) or None
        Inputs driving the transitions.
    names, input_names, env_names : tuple of str
    """

    def __init__(self, y, lengths, names, env_names, inputs=None, input_names=()):
        self.y = y
        self.lengths = lengths
        self.names = tuple(names)
        self.env_names = tuple(env_names)
        self.inputs = inputs
        self.input_names = tuple(input_names)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(cls, y, *, names=None, env_names=None, inputs=None, input_names=None) -> SequenceData:
        """Build from arrays.

        ``y`` may be a ``(T,)`` or ``(T, D)`` array (one sequence), a list of such arrays (one
        environment with several sequences), a list of lists (environments of sequences), a dict
        ``{environment: list of sequences}``, or a padded ``(E, N, T, D)`` array (NaN padding).
        ``inputs`` follows the same layout with ``m`` channels.
        """
        if isinstance(y, SequenceData):
            return y
        if isinstance(y, dict):
            env_names = list(y) if env_names is None else env_names
            y = [y[k] for k in y]
            if isinstance(inputs, dict):
                inputs = [inputs[k] for k in env_names]
        blocks = _blocks(y, "y")
        D = blocks[0][0].shape[1]
        for e, b in enumerate(blocks):
            for n, a in enumerate(b):
                if a.shape[1] != D:
                    raise DataError(f"y: environment {e}, sequence {n} has {a.shape[1]} channels; the first has {D}")
                if np.isinf(a).any():
                    t = int(np.argwhere(np.isinf(a))[0, 0])
                    raise DataError(f"y: environment {e}, sequence {n} has an infinite value at step {t}; "
                                    "use NaN for a missing value")
        lengths = _lengths(blocks)
        y_arr = pad_blocks(blocks, lengths, D)
        u_arr, m = None, 0
        if inputs is not None:
            ub = _blocks(inputs, "inputs")
            if len(ub) != len(blocks) or any(len(a) != len(b) for a, b in zip(ub, blocks)):
                raise DataError("inputs: need one input sequence per observation sequence")
            for e, (ua, ya) in enumerate(zip(ub, blocks)):
                for n, (u, yy) in enumerate(zip(ua, ya)):
                    if len(u) != len(yy):
                        raise DataError(f"inputs: environment {e}, sequence {n} has {len(u)} steps; y has {len(yy)}")
                    if not np.isfinite(u).all():
                        raise DataError(f"inputs: environment {e}, sequence {n} has NaN/inf; inputs must be "
                                        "complete (impute or cut the sequence)")
            m = ub[0][0].shape[1]
            u_arr = pad_blocks(ub, lengths, m, fill=0.0)
        names = check_names(names, D, "y", "column")
        env_names = check_names(env_names, len(blocks), "", "environment")
        return cls(y_arr, lengths, names, env_names, u_arr, check_names(input_names, m, "u", "input") if m else ())

    @classmethod
    def from_frame(cls, df: pd.DataFrame, env: str | None = None, time: str | None = None,
                   columns: Sequence[str] | None = None, *, sequence: str | None = None,
                   inputs: Sequence[str] | None = None) -> SequenceData:
        """Build from a long table, one row per time step.

        Parameters
        ----------
        df : pandas.DataFrame
        env : str, optional
            Column naming each row's environment (all rows form one environment if omitted).
        time : str, optional
            Column ordering the rows of a sequence (row order if omitted); spacing may be irregular.
        columns : list of str, optional
            Observed columns (NaN = missing); default: every other numeric column.
        sequence : str, optional
            Column naming separate sequences inside an environment.
        inputs : list of str, optional
            Columns of inputs driving the transitions.
        """
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
        if df.shape[0] == 0:
            raise DataError("the table has no rows; nothing to fit")
        dup = df.columns[df.columns.duplicated()].unique().tolist()
        if dup:
            raise DataError(f"duplicated column name(s) {dup}; rename them so every column is unique")
        special = [c for c in (env, time, sequence) if c is not None]
        inputs = list(inputs or [])
        for c in special + inputs + list(columns or []):
            if c not in df.columns:
                raise DataError(f"column '{c}' not found; available columns: {list(map(str, df.columns))}")
        if columns is None:
            columns = [c for c in df.columns if c not in special and c not in inputs
                       and pd.api.types.is_numeric_dtype(df[c])]
        columns = list(columns)
        if not columns:
            raise DataError("no observed columns; name them with columns=[...] (--columns)")
        for c in columns + inputs:
            if c in special:
                raise DataError(f"column '{c}' cannot be observed and also the env/time/sequence column")
            if not pd.api.types.is_numeric_dtype(df[c]):
                raise DataError(f"column '{c}' is not numeric; encode it as numbers or leave it out")
        for c in special:
            if df[c].isna().any():
                raise DataError(f"column '{c}' is empty in {int(df[c].isna().sum())} row(s); fill or remove them")
        env_labels = df[env] if env is not None else pd.Series(["0"] * len(df), index=df.index)
        y_blocks, u_blocks, env_names = [], [], []
        for lab in pd.unique(env_labels):
            sub = df.loc[env_labels == lab]
            seq_labels = sub[sequence] if sequence is not None else pd.Series([0] * len(sub), index=sub.index)
            ys, us = [], []
            for sl in pd.unique(seq_labels):
                part = sub.loc[seq_labels == sl]
                if time is not None:
                    part = part.sort_values(time, kind="stable")
                    if part[time].duplicated().any():
                        where = f"environment '{lab}'" + (f", sequence '{sl}'" if sequence else "")
                        raise DataError(f"time column '{time}' repeats a value in {where}; each step needs one row")
                ys.append(part[columns].to_numpy(dtype=float))
                us.append(part[inputs].to_numpy(dtype=float) if inputs else None)
            y_blocks.append(ys)
            u_blocks.append(us)
            env_names.append(str(lab))
        return cls.from_arrays(y_blocks, names=columns, env_names=env_names,
                               inputs=u_blocks if inputs else None, input_names=inputs or None)

    @classmethod
    def coerce(cls, data) -> SequenceData:
        """A :class:`SequenceData` from anything :func:`causalid.fit_hmm` accepts: itself, an
        :class:`~causalid.LTIData` (its outputs), a long table, or arrays / lists of arrays."""
        if isinstance(data, SequenceData):
            return data
        if all(hasattr(data, a) for a in ("y", "lengths", "output_names", "env_names")):
            # time-series data of the LTI wing (causalid.LTIData): its outputs, sequence by sequence
            blocks = [[data.y[e, n, : data.lengths[e, n]] for n in range(data.y.shape[1])]
                      for e in range(data.y.shape[0])]
            return cls.from_arrays(blocks, names=data.output_names, env_names=data.env_names)
        if isinstance(data, pd.DataFrame):
            return cls.from_frame(data)
        return cls.from_arrays(data)

    # ------------------------------------------------------------------ properties
    @property
    def num_envs(self) -> int:
        return self.y.shape[0]

    @property
    def obs_dim(self) -> int:
        return self.y.shape[3]

    @property
    def num_steps(self) -> int:
        """Padded length ``T``."""
        return self.y.shape[2]

    @property
    def num_observations(self) -> int:
        """Number of observed time steps (rows with at least one observed channel)."""
        return int(np.sum(np.any(~np.isnan(self.y), axis=-1)))

    @property
    def has_missing(self) -> bool:
        valid = np.arange(self.num_steps)[None, None, :] < self.lengths[..., None]
        return bool(np.isnan(self.y[valid]).any())

    def subset_envs(self, envs) -> SequenceData:
        idx = [self.env_names.index(str(e)) if not isinstance(e, (int, np.integer)) else int(e) for e in envs]
        lengths = self.lengths[idx]
        T = max(int(lengths.max()), 1)
        return SequenceData(self.y[idx, :, :T], lengths, self.names, [self.env_names[i] for i in idx],
                            None if self.inputs is None else self.inputs[idx, :, :T], self.input_names)

    def to_frame(self) -> pd.DataFrame:
        """Long table with columns ``env, sequence, step`` and the observed columns."""
        rows = []
        for e in range(self.num_envs):
            for n in range(self.y.shape[1]):
                L = int(self.lengths[e, n])
                if L == 0:
                    continue
                part = pd.DataFrame(self.y[e, n, :L], columns=list(self.names))
                if self.inputs is not None:
                    for j, c in enumerate(self.input_names):
                        part[c] = self.inputs[e, n, :L, j]
                part.insert(0, "step", np.arange(L))
                part.insert(0, "sequence", n)
                part.insert(0, "env", self.env_names[e])
                rows.append(part)
        return pd.concat(rows, ignore_index=True)

    def __repr__(self) -> str:
        n_seq = int(np.sum(self.lengths > 0))
        return (f"SequenceData({self.num_envs} environment(s), {n_seq} sequence(s), "
                f"{int(self.lengths.sum())} steps, columns {list(self.names)})")


def _as_2d(a, what, e, n) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(f"{what}: environment {e}, sequence {n} has shape {a.shape}; expected (T,) or (T, channels)")
    return a


def _blocks(x, what) -> list[list[np.ndarray]]:
    """Environments of (T, channels) sequences from any of the accepted layouts."""
    if isinstance(x, (list, tuple)):
        if not x:
            raise DataError(f"{what}: empty list; give at least one sequence")
        if all(isinstance(b, (list, tuple)) for b in x):
            out = [[_as_2d(a, what, e, n) for n, a in enumerate(b)] for e, b in enumerate(x)]
            for e, b in enumerate(out):
                if not b:
                    raise DataError(f"{what}: environment {e} has no sequences")
            return out
        return [[_as_2d(a, what, 0, n) for n, a in enumerate(x)]]
    a = np.asarray(x, dtype=np.float64)
    if a.ndim in (1, 2):
        return [[_as_2d(a, what, 0, 0)]]
    if a.ndim == 4:
        # padded (E, N, T, D): a sequence ends after its last row with any observed value
        out = []
        for e in range(a.shape[0]):
            seqs = []
            for n in range(a.shape[1]):
                seen = np.flatnonzero(np.any(~np.isnan(a[e, n]), axis=-1))
                if seen.size:
                    seqs.append(a[e, n, : seen[-1] + 1])
            if not seqs:
                raise DataError(f"{what}: environment {e} has no observed value")
            out.append(seqs)
        return out
    raise DataError(f"{what} must be (T,), (T, D), a list of sequences, a list of lists or (E, N, T, D); "
                    f"got an array of shape {a.shape}")


def _lengths(blocks) -> np.ndarray:
    N = max(len(b) for b in blocks)
    lengths = np.zeros((len(blocks), N), dtype=np.int64)
    for e, b in enumerate(blocks):
        lengths[e, : len(b)] = [len(a) for a in b]
    return lengths
