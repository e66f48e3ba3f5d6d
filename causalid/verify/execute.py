r"""Running a sweep: in-process, or on Dask distributed, into a resumable store.

:func:`run_sweep` opens (or resumes) the sweep's store, runs every cell that has no result
file yet and writes each one as it finishes.  A cell is computed by :func:`run_cell`: its
random numbers derive from the sweep seed and the cell index only
(:func:`causalid.verify.plugin.cell_keys`), so a cell gives the same rows whatever order,
process or machine it runs in — which is what makes resuming exact and the Dask run equal to
the in-process one.

Execution
---------
in-process (default)
    Cells run one after the other in this process; compiled programs are reused by every cell
    of the same shapes.
``workers=N``
    Starts a :class:`distributed.LocalCluster` of ``N`` single-threaded worker processes bound
    to the loopback interface (127.0.0.1; the scheduler's web server on a free loopback port)
    and runs on it.  As with any ``multiprocessing`` code, a script that calls
    ``run_sweep(..., workers=N)`` must do so under ``if __name__ == "__main__":``.
``scheduler=ADDRESS``
    Connects to a running Dask scheduler (e.g. ``tcp://10.0.0.5:8786``); its workers need the
    same causalid (and JAX) installed.

With Dask the cells go out in chunks of ``chunk_size`` consecutive cells (the sweep's
``[execution] chunk_size``, one task each); the driver writes each chunk's cells to the store
as the chunk returns.  Dask is optional: ``pip install "dask[distributed]"``.

Progress is a :mod:`tqdm` bar over cells (with the estimated time remaining) on stderr.
"""

from __future__ import annotations

import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from causalid._progress import show_progress
from causalid._x64 import float64
from causalid.errors import CausalIDError, DataError
from causalid.verify.plugin import evaluate_cell
from causalid.verify.store import ResultStore, cell_frame, load_results
from causalid.verify.sweep import Sweep

__all__ = ["SweepRun", "run_cell", "run_sweep"]


class SweepRun:
    """What :func:`run_sweep` did.

    Attributes
    ----------
    path : Path
        The store directory.
    sweep : Sweep
    computed : list of int
        Cells computed by this call, in the order they finished.
    skipped : list of int
        Cells already in the store (from an earlier, interrupted run).
    """

    def __init__(self, path: Path, sweep: Sweep, computed: list[int], skipped: list[int]):
        self.path, self.sweep, self.computed, self.skipped = path, sweep, computed, skipped

    def results(self) -> pd.DataFrame:
        """The store's rows (:func:`causalid.verify.load_results`)."""
        return load_results(self.path)

    def __repr__(self) -> str:
        return (
            f"SweepRun('{self.path}', {len(self.computed)} cell(s) computed, "
            f"{len(self.skipped)} already stored, of {len(self.sweep.cells)})"
        )


@float64
def run_cell(sweep: Sweep, index: int) -> pd.DataFrame:
    """Simulate, fit and score cell ``index`` of ``sweep``; its rows in the store's schema."""
    cell = sweep.cells[index]
    try:
        records = evaluate_cell(
            sweep.family_spec,
            cell.settings,
            sweep.engines,
            sweep.metrics,
            sweep.replicates,
            sweep.seed,
            index,
        )
    except Exception as exc:
        where = ", ".join(f"{k} = {cell.settings[k]!r}" for k in sweep.columns) or "the only cell"
        if isinstance(exc, CausalIDError):
            raise type(exc)(f"cell {index} ({where}): {exc}") from exc
        raise RuntimeError(f"cell {index} ({where}) failed: {type(exc).__name__}: {exc}") from exc
    return cell_frame(sweep, cell, records)


def _run_chunk(sweep: Sweep, indices: list[int]) -> list[tuple[int, pd.DataFrame]]:
    """One Dask task: the rows of consecutive cells."""
    return [(i, run_cell(sweep, i)) for i in indices]


def check_execution(sweep: Sweep, workers, scheduler, chunk_size) -> int:
    """Check the execution options before anything touches the store; returns the chunk size."""
    if workers is not None and scheduler is not None:
        raise DataError(
            "give either workers (a local Dask cluster) or scheduler (an existing one), not both"
        )
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise DataError(f"workers = {workers!r}: give a positive number of worker processes")
    chunk = sweep.chunk_size if chunk_size is None else chunk_size
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise DataError(f"chunk_size = {chunk!r}: give a positive number of cells per task")
    if chunk_size is not None and workers is None and scheduler is None:
        raise DataError(
            f"chunk_size = {chunk_size}: cells are sent to Dask in chunks only with workers or a "
            "scheduler; leave it out for an in-process run"
        )
    if workers is not None or scheduler is not None:
        _import_distributed()  # before touching the store: a missing extra changes nothing
    return chunk


@float64
def run_sweep(
    sweep: Sweep,
    out,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool | None = None,
    chunk_size: int | None = None,
) -> SweepRun:
    """Run a sweep into the store ``out``, resuming where an earlier run stopped.

    Parameters
    ----------
    sweep : Sweep
        A validated sweep (:func:`causalid.run_sweep` also takes the path of its TOML file).
    out : str or Path
        Store directory (created if needed).  A store of a different sweep is refused.
    workers : int, optional
        Run on a local Dask cluster of this many worker processes (loopback only).
    scheduler : str, optional
        Run on the Dask cluster of this scheduler address.
    progress : bool or None
        (None, the default: shown when someone watches, see :mod:`causalid._progress`.)
        Show a progress bar with the time remaining.
    chunk_size : int, optional
        Cells per Dask task (default: the sweep's ``[execution] chunk_size``).

    Returns
    -------
    SweepRun

    Examples
    --------
    >>> import tempfile
    >>> from causalid import load_results, parse_sweep
    >>> sweep = parse_sweep('family = "bivariate"\\nreplicates = 3\\n[grid]\\nenvs = [30]')
    >>> run = run_sweep(sweep, tempfile.mkdtemp(), progress=False)
    >>> load_results(run.path)[["engine", "replicate", "metric"]].shape
    (6, 3)
    """
    progress = show_progress(progress)
    chunk = check_execution(sweep, workers, scheduler, chunk_size)
    store = ResultStore.open(out, sweep)
    done = store.verify()
    todo = [c.index for c in sweep.cells if c.index not in done]
    computed: list[int] = []
    bar = _bar(progress, sweep, len(done))
    try:
        while todo:
            if workers is None and scheduler is None:
                for i, frame in _in_process(sweep, todo, store):
                    _store_cell(store, i, frame, computed, bar)
            else:
                claimed = [i for i in todo if store.claim(i)]
                if claimed:
                    with _dask_client(workers, scheduler) as client:
                        for i, frame in _dask_results(client, sweep, claimed, chunk):
                            _store_cell(store, i, frame, computed, bar)
            todo = _wait_for_other_drivers(store, todo, bar)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print(
            f"causalid verify: interrupted; {len(store.finished())} of {len(sweep.cells)} "
            f"cells are stored in '{store.path}': run the same sweep again to resume",
            file=sys.stderr,
        )
        raise
    finally:
        _release_all(store, sweep)
        if bar is not None:
            bar.close()
    return SweepRun(store.path, sweep, computed, sorted(done))


def _store_cell(store: ResultStore, index: int, frame, computed: list[int], bar) -> None:
    store.write_cell(index, frame)
    store.release(index)
    computed.append(index)
    _advance(bar)


def _release_all(store: ResultStore, sweep: Sweep) -> None:
    """Drop every claim this process still holds (an interrupted or failed run)."""
    for c in sweep.cells:
        store.release(c.index)


def _wait_for_other_drivers(store: ResultStore, todo: list[int], bar, poll: float = 0.5) -> list[int]:
    """Wait while other live drivers compute cells of ``todo``; returns the cells left to this
    driver (those of a driver that stopped without writing them), empty when all are stored."""
    while True:
        stored = store.finished()
        missing = [i for i in todo if i not in stored]
        if not missing:
            return []
        orphaned = [i for i in missing if not store.claimed_by_others(i)]
        if orphaned:
            return orphaned
        if bar is not None:
            bar.n = len(stored)
            bar.refresh()
        time.sleep(poll)


def _in_process(sweep: Sweep, todo: list[int], store: ResultStore):
    """(cell index, rows) in order, for the cells of ``todo`` this driver can claim; each next
    cell's generator compiles while this cell fits.

    The compilation runs in one helper thread (XLA releases the GIL, so on two cores it overlaps
    with the engines of the current cell); tracing stays in this thread.  A compilation that
    fails is left to the cell itself, which then reports the error with its settings.
    """
    fam = sweep.family_spec
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="causalid-verify-compile")

    def ahead(index: int):
        try:
            job = fam.precompile(sweep.cells[index].settings, sweep.replicates)
        except Exception:  # noqa: BLE001 - the cell reports it when it runs
            return None
        return None if job is None else pool.submit(float64(job))  # float64 is per thread

    def free(rest: list[int]):
        return next((j for j in rest if not store.claimed_by_others(j)), None)

    try:
        pending = None
        for n, i in enumerate(todo):
            if i in store.finished() or not store.claim(i):
                continue  # another driver stored or holds it
            if pending is not None:
                pending.exception()  # wait; a failure is reported by the cell itself
            nxt = free(todo[n + 1:])
            pending = ahead(nxt) if nxt is not None else None
            yield i, run_cell(sweep, i)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _bar(progress: bool, sweep: Sweep, initial: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=len(sweep.cells),
        initial=initial,
        desc=f"verify {sweep.name}",
        unit="cell",
        file=sys.stderr,
        dynamic_ncols=True,
    )


def _advance(bar) -> None:
    if bar is not None:
        bar.update(1)


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise DataError(
            "running on Dask needs dask[distributed], a dependency of causalid: reinstall causalid or "
            'pip install "dask[distributed]"; leave out --workers/--scheduler to run in-process'
        ) from None
    return distributed


@contextmanager
def _dask_client(workers: int | None, scheduler: str | None):
    distributed = _import_distributed()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout="30s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise DataError(
                f"cannot connect to the Dask scheduler at '{scheduler}': {exc}"
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
    )
    try:
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def _dask_results(client, sweep: Sweep, todo: list[int], chunk: int):
    """(cell index, rows) as chunks finish, in completion order."""
    distributed = _import_distributed()
    remote = client.scatter(sweep, broadcast=True)
    chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]
    futures = [
        client.submit(
            _run_chunk,
            remote,
            c,
            pure=False,
            key=f"causalid-verify-{sweep.hash[:16]}-cells-{c[0]}-{c[-1]}",
        )
        for c in chunks
    ]
    try:
        for future in distributed.as_completed(futures):
            yield from future.result()
    finally:
        for f in futures:
            f.cancel()
