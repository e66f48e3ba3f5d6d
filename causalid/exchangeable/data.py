"""The multi-environment data container.

Data come in environments (conditions, batches, labs).  Inside an environment the
samples are exchangeable; across environments the mechanisms' parameters change.
:class:`MultiEnvData` stores them as a padded array of shape ``(env, sample, var)``
together with a boolean mask of the real samples, so that environments of different
sizes (ragged data) are handled without dropping anything and every engine can be
written for fixed shapes and batched with :func:`jax.vmap`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import numpy as np
import pandas as pd

from causalid._arrays import check_names
from causalid._checks import check_channels
from causalid._io import read_table
from causalid.errors import DataError

Transform = Literal["log", "log1p", "standardize"] | Callable[[np.ndarray], np.ndarray] | None

_MAX_DISCRETE_LEVELS = 10


@dataclass(frozen=True)
class MultiEnvData:
    """Samples of ``d`` variables observed in ``E`` environments.

    Attributes
    ----------
    values : ndarray, shape (env, sample, var), float64
        Observations, padded with zeros after the last real sample of each environment.
    mask : ndarray, shape (env, sample), bool
        ``True`` for real samples, ``False`` for padding.
    names : tuple of str
        Variable names, one per column of ``values``.
    envs : tuple of str
        Environment labels, one per row of ``values``.
    transform : str or None
        The transform that was applied when the data were built (for provenance).
    """

    values: np.ndarray
    mask: np.ndarray
    names: tuple[str, ...]
    envs: tuple[str, ...]
    transform: str | None = None
    meta: dict = field(default_factory=dict, compare=False)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(
        cls,
        x,
        names: Sequence[str] | None = None,
        envs: Sequence[str] | None = None,
        transform: Transform = None,
    ) -> "MultiEnvData":
        """Build from an array ``x`` of shape ``(E, N, d)`` or a list of ``(N_e, d)`` arrays.

        A list gives ragged environments (different ``N_e``); nothing is dropped.
        """
        if isinstance(x, (list, tuple)):
            blocks = [np.asarray(b, dtype=float) for b in x]
            if not blocks:
                raise DataError("no environments given: pass a non-empty list of (N_e, d) arrays")
            for e, b in enumerate(blocks):
                if b.ndim != 2:
                    raise DataError(
                        f"environment {e} has shape {b.shape}; each block must be (samples, variables)"
                    )
            widths = {b.shape[1] for b in blocks}
            if len(widths) != 1:
                raise DataError(
                    f"environments have different numbers of variables {sorted(widths)}; "
                    "every block needs the same columns"
                )
        else:
            arr = np.asarray(x)
            if arr.dtype.kind not in "biuf":
                raise DataError(f"array of dtype {arr.dtype} is not numeric; convert it to float first")
            arr = arr.astype(float)
            if arr.ndim != 3:
                raise DataError(
                    f"x has shape {arr.shape}; expected (env, sample, variable), e.g. (E, N, d)"
                )
            blocks = list(arr)
        if not blocks:
            raise DataError("the data have no environments; give at least one (env, sample, variable) block")
        d = blocks[0].shape[1]
        if d == 0:
            raise DataError("the data have no variables (d = 0)")
        names = check_names(names, d, "X", "variable")
        envs = tuple(str(e) for e in (envs if envs is not None else range(len(blocks))))
        if len(envs) != len(blocks):
            raise DataError(f"got {len(envs)} environment labels for {len(blocks)} environments")
        if len(set(envs)) != len(envs):
            raise DataError("environment labels are duplicated; every environment needs its own label")
        for label, b in zip(envs, blocks):
            if b.shape[0] == 0:
                raise DataError(f"environment '{label}' has no samples; remove it or add data")
        blocks, tname = _apply_transform(blocks, names, envs, transform)
        _check_finite(blocks, names, envs)
        _check_not_constant(blocks, names)
        return cls._pack(blocks, names, envs, tname)

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        env: str = "condition",
        variables: Sequence[str] | None = None,
        transform: Transform = None,
    ) -> "MultiEnvData":
        """Build from a long table with one row per sample and an environment column.

        Parameters
        ----------
        df : pandas.DataFrame
        env : str
            Name of the column holding the environment label.
        variables : list of str, optional
            Columns to use as variables.  By default every other column; a column that is
            a relabelling of the environment (an id, constant inside each environment) is
            excluded with a warning.
        transform : {"log", "log1p", "standardize"} or callable, optional
        """
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
        if df.shape[0] == 0:
            raise DataError("the table has no rows; nothing to analyse")
        dup = df.columns[df.columns.duplicated()].unique().tolist()
        if dup:
            raise DataError(f"duplicated column name(s) {dup}; rename them so every column is unique")
        if env not in df.columns:
            raise DataError(
                f"environment column '{env}' not found; available columns: {list(map(str, df.columns))}"
                " (choose one with env=... / --env-col)"
            )
        labels = df[env]
        if labels.isna().any():
            rows = np.flatnonzero(labels.isna().to_numpy())[:5].tolist()
            raise DataError(
                f"environment column '{env}' is empty in {int(labels.isna().sum())} row(s) "
                f"(first rows {rows}); fill or remove them"
            )
        if variables is None:
            candidates = [c for c in df.columns if c != env]
            bad = [c for c in candidates if not pd.api.types.is_numeric_dtype(df[c])]
            if bad:
                raise DataError(
                    f"non-numeric column(s) {bad}; pass variables=[...] (--variables) to choose "
                    "numeric columns, or encode them as numbers"
                )
            variables = []
            for c in candidates:
                if _is_env_relabel(df[c], labels):
                    import warnings

                    warnings.warn(
                        f"column '{c}' is constant inside every environment and relabels '{env}'; "
                        "it is not used as a variable (pass variables=[...] to choose explicitly)",
                        UserWarning,
                        stacklevel=2,
                    )
                else:
                    variables.append(c)
        else:
            variables = list(variables)
            missing = [v for v in variables if v not in df.columns]
            if missing:
                raise DataError(
                    f"variable column(s) {missing} not found; available: {list(map(str, df.columns))}"
                )
            if env in variables:
                raise DataError(f"'{env}' is the environment column and cannot also be a variable")
            if len(set(variables)) != len(variables):
                raise DataError(f"variables {variables} lists a column twice")
            bad = [c for c in variables if not pd.api.types.is_numeric_dtype(df[c])]
            if bad:
                raise DataError(f"non-numeric column(s) {bad}; encode them as numbers first")
        if not variables:
            raise DataError("no variable columns left besides the environment column")
        order = pd.unique(labels)
        blocks, envs = [], []
        for lab in order:
            sub = df.loc[labels == lab, variables]
            blocks.append(sub.to_numpy(dtype=float))
            envs.append(str(lab))
        return cls.from_arrays(blocks, names=[str(v) for v in variables], envs=envs, transform=transform)

    @classmethod
    def _pack(cls, blocks, names, envs, tname) -> "MultiEnvData":
        counts = [b.shape[0] for b in blocks]
        nmax = max(counts)
        d = blocks[0].shape[1]
        values = np.zeros((len(blocks), nmax, d))
        mask = np.zeros((len(blocks), nmax), dtype=bool)
        for e, b in enumerate(blocks):
            values[e, : b.shape[0]] = b
            mask[e, : b.shape[0]] = True
        values.setflags(write=False)
        mask.setflags(write=False)
        return cls(values=values, mask=mask, names=tuple(names), envs=tuple(envs), transform=tname)

    # ------------------------------------------------------------------ views
    @property
    def num_envs(self) -> int:
        return self.values.shape[0]

    @property
    def num_vars(self) -> int:
        return self.values.shape[2]

    @property
    def counts(self) -> np.ndarray:
        """Number of real samples in each environment, shape (env,)."""
        return self.mask.sum(axis=1)

    @property
    def is_ragged(self) -> bool:
        return bool(np.any(self.counts != self.counts[0]))

    def blocks(self) -> list[np.ndarray]:
        """The environments as a list of ``(N_e, d)`` arrays (no padding)."""
        return [self.values[e, : n] for e, n in enumerate(self.counts)]

    def kind(self) -> Literal["binary", "categorical", "continuous"]:
        """See :func:`data_kind`."""
        return data_kind(self.values[self.mask])

    def require_samples(self, minimum: int, why: str) -> None:
        """Raise :class:`DataError` naming every environment with fewer than ``minimum`` samples."""
        small = [(lab, int(n)) for lab, n in zip(self.envs, self.counts) if n < minimum]
        if small:
            listed = ", ".join(f"'{lab}' ({n})" for lab, n in small[:5])
            more = f" and {len(small) - 5} more" if len(small) > 5 else ""
            raise DataError(
                f"{why} needs at least {minimum} samples per environment; environment(s) {listed}{more} "
                "have fewer: merge or remove them"
            )

    def subset(self, variables: Sequence[str]) -> "MultiEnvData":
        """The same environments restricted to ``variables`` (in that order)."""
        missing = [v for v in variables if v not in self.names]
        if missing:
            raise DataError(f"variable(s) {missing} not in the data; available: {list(self.names)}")
        idx = [self.names.index(v) for v in variables]
        return MultiEnvData._pack(
            [b[:, idx] for b in self.blocks()], list(variables), list(self.envs), self.transform
        )

    def to_frame(self, env: str = "env") -> pd.DataFrame:
        """Long table: one row per sample, an environment column and one column per variable."""
        frames = []
        for lab, b in zip(self.envs, self.blocks()):
            f = pd.DataFrame(b, columns=list(self.names))
            f.insert(0, env, lab)
            frames.append(f)
        return pd.concat(frames, ignore_index=True)

    def to_xarray(self):
        """``xarray.DataArray`` with dims (env, sample, var); padding is NaN."""
        import xarray as xr

        vals = np.where(self.mask[..., None], self.values, np.nan)
        return xr.DataArray(
            vals,
            dims=("env", "sample", "var"),
            coords={"env": list(self.envs), "var": list(self.names)},
            name="x",
        )

    def __repr__(self) -> str:
        c = self.counts
        size = f"{c.min()}..{c.max()}" if self.is_ragged else f"{c[0]}"
        return (
            f"MultiEnvData(envs={self.num_envs}, samples/env={size}, vars={list(self.names)}, "
            f"kind={self.kind()}, transform={self.transform})"
        )


# ---------------------------------------------------------------------- helpers
def data_kind(x: np.ndarray) -> Literal["binary", "categorical", "continuous"]:
    """``binary`` for 0/1 data, ``categorical`` for integer codes ``0..L-1`` with at most
    10 levels per variable, ``continuous`` otherwise.  ``x`` has variables on its last axis."""
    x = np.asarray(x, dtype=float).reshape(-1, np.shape(x)[-1])
    if np.all(np.isin(x, (0.0, 1.0))):
        return "binary"
    if np.all(x == np.round(x)) and x.min() >= 0 and x.max() < _MAX_DISCRETE_LEVELS:
        return "categorical"
    return "continuous"


def _is_env_relabel(col: pd.Series, labels: pd.Series) -> bool:
    if not pd.api.types.is_numeric_dtype(col):
        return False
    per_env = col.groupby(labels.to_numpy()).nunique(dropna=False)
    return bool((per_env == 1).all() and col.nunique() == labels.nunique() and labels.nunique() > 1)


def _apply_transform(blocks, names, envs, transform):
    if transform is None:
        return blocks, None
    if callable(transform):
        out = [np.asarray(transform(b), dtype=float) for b in blocks]
        for lab, b, o in zip(envs, blocks, out):
            if o.shape != b.shape:
                raise DataError(f"transform changed the shape of environment '{lab}' from {b.shape} to {o.shape}")
        return out, getattr(transform, "__name__", "callable")
    if transform == "log":
        for lab, b in zip(envs, blocks):
            bad = np.flatnonzero((b <= 0).any(axis=0))
            if bad.size:
                raise DataError(
                    f"transform 'log' needs positive values; column '{names[bad[0]]}' has values <= 0 "
                    f"in environment '{lab}' (use 'log1p' or shift the data)"
                )
        return [np.log(b) for b in blocks], "log"
    if transform == "log1p":
        for lab, b in zip(envs, blocks):
            bad = np.flatnonzero((b <= -1).any(axis=0))
            if bad.size:
                raise DataError(
                    f"transform 'log1p' needs values > -1; column '{names[bad[0]]}' violates it "
                    f"in environment '{lab}'"
                )
        return [np.log1p(b) for b in blocks], "log1p"
    if transform == "standardize":
        pooled = np.concatenate(blocks, axis=0)
        mu, sd = pooled.mean(axis=0), pooled.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        return [(b - mu) / sd for b in blocks], "standardize"
    raise DataError(f"unknown transform {transform!r}; use 'log', 'log1p', 'standardize' or a function")


def _check_finite(blocks, names, envs) -> None:
    for lab, b in zip(envs, blocks):
        bad = ~np.isfinite(b)
        if bad.any():
            j = int(np.flatnonzero(bad.any(axis=0))[0])
            kind = "NaN" if np.isnan(b[:, j]).any() else "infinite"
            raise DataError(
                f"column '{names[j]}' has {int(bad[:, j].sum())} {kind} value(s) in environment '{lab}'; "
                "causalid never drops rows silently: remove or impute them first"
            )


def _check_not_constant(blocks, names) -> None:
    pooled = np.concatenate(blocks, axis=0)
    check_channels(pooled, names, "column", constant=False)
    if pooled.shape[0] < 2:
        return
    const = np.flatnonzero(np.ptp(pooled, axis=0) == 0)
    if const.size:
        cols = [names[j] for j in const]
        raise DataError(f"column(s) {cols} are constant in every environment; remove them")


def load(
    path,
    env: str = "condition",
    variables: Sequence[str] | None = None,
    transform: Transform = None,
) -> MultiEnvData:
    """Load a CSV/Parquet table with one row per sample and an environment column.

    Parameters
    ----------
    path : str or Path
    env : str
        Column holding the environment label (default ``"condition"``).
    variables : list of str, optional
        Columns to use; by default every numeric column besides ``env``.
    transform : {"log", "log1p", "standardize"} or callable, optional

    Examples
    --------
    >>> import causalid
    >>> from causalid.datasets import sachs_path
    >>> data = causalid.load(sachs_path(), env="condition", transform="log")  # doctest: +SKIP
    """
    return MultiEnvData.from_frame(read_table(path), env=env, variables=variables, transform=transform)
