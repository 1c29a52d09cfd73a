"""``run_sweep``: expand a sweep, run the points not yet finished, and assemble the table.

The order of work: validate every point (nothing runs if one is bad); with an output folder,
write the spec there and read the journal to skip finished points; run the rest on the chosen
executor, journaling each task's rows as it finishes; then build the table in grid order and
write ``results.csv`` (and ``results.parquet``) atomically. An interruption (Ctrl-C, a kill)
leaves the journal holding every finished row; the same call again runs only the rest.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from simulator.errors import SpecError
from simulator.sweep.executors import make_executor
from simulator.sweep.grid import Point, SweepPlan, expand
from simulator.sweep.journal import Journal
from simulator.atomic import write_bytes_atomic
from simulator.sweep.results import assemble, write_results
from simulator.sweep.spec import SweepSpec, load_sweep

#: ``progress(done, total)``: points finished (reused from the journal included) of ``total``.
Progress = Callable[[int, int], None]


def run_sweep(spec: SweepSpec | str | os.PathLike, *, out_dir: str | os.PathLike | None = None,
              executor: str = "process", jobs: int | None = None, scheduler: Any = None,
              progress: Progress | None = None, retry_errors: bool = False,
              chunk_size: int | None = None) -> pd.DataFrame:
    """Run every point of a sweep; one row per point, in grid order.

    Parameters
    ----------
    spec : SweepSpec or path
        The sweep, or a YAML/JSON spec file (:func:`simulator.sweep.load_sweep`).
    out_dir : path, optional
        Folder for the journal (``rows.jsonl``), the spec (``spec.resolved.json`` and a copy of
        the spec file) and the results (``results.csv``, ``results.parquet`` when pyarrow or
        fastparquet is installed). Points already in its journal are not run again. Without it
        nothing is written and nothing is resumed.
    executor : {"process", "serial", "dask"}
        Local processes (``jobs`` of them, default ``os.cpu_count()``), this process, or the Dask
        cluster at ``scheduler``.
    scheduler : str or dask Client, optional
        The Dask scheduler's address (``executor="dask"`` only).
    progress : callable, optional
        ``progress(done, total)`` after the journal is read and after each finished task.
    retry_errors : bool
        Run again the journal's points whose status is ``error`` (an unexpected exception),
        e.g. after fixing a bug; ``ok`` and ``infeasible`` rows are always kept.
    chunk_size : int, optional
        Points per task (default: 1 for the simulator; up to 256 estimator points).

    Returns
    -------
    pandas.DataFrame
        Columns as :mod:`simulator.sweep.results` describes. ``frame.attrs["sweep"]`` holds
        ``points``, ``reused`` (from the journal), ``computed``, ``added_baseline``,
        ``out_dir`` and ``files`` (written).

    Raises
    ------
    SpecError
        A bad spec, axis or value (before anything runs), an unknown executor, or the journal
        locked by another sweep.
    KeyboardInterrupt
        Ctrl-C: the finished rows are in the journal.
    """
    if not isinstance(spec, SweepSpec):
        spec = load_sweep(spec)
    plan = expand(spec)
    runner = make_executor(executor, jobs=jobs, scheduler=scheduler)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or chunk_size < 1):
        raise SpecError("must be a positive integer", field="chunk_size", value=chunk_size)
    total = len(plan.points)
    rows: dict[int, dict[str, Any]] = {}
    journal = Journal(out_dir) if out_dir is not None else None
    files: list[Path] = []
    with (journal if journal is not None else _Nothing()):
        if journal is not None:
            files += _write_spec(spec, Path(out_dir))
            finished = journal.read()
            for point in plan.points:
                row = finished.get(point.point_id)
                if row is not None and not (retry_errors and row.get("status") == "error"):
                    rows[point.index] = row
        reused = len(rows)
        pending = [p for p in plan.points if p.index not in rows]
        if progress is not None:
            progress(reused, total)
        if pending:
            with runner:
                tasks = _tasks(spec, pending, chunk_size, runner.jobs)
                for results in runner.map_unordered(tasks):
                    new = [_journal_row(plan.points[i], result) for i, result in results]
                    if journal is not None:
                        journal.append(new)
                    for (i, _), row in zip(results, new):
                        rows[i] = row
                    if progress is not None:
                        progress(len(rows), total)
    frame = assemble(plan, rows)
    if out_dir is not None:
        files += write_results(frame, out_dir)
    frame.attrs["sweep"] = {"name": spec.name, "points": total, "reused": reused,
                            "computed": total - reused, "added_baseline": plan.added_baseline,
                            "out_dir": None if out_dir is None else str(out_dir),
                            "files": [str(f) for f in files]}
    return frame


def plan_sweep(spec: SweepSpec | str | os.PathLike) -> SweepPlan:
    """The validated points of a sweep without running them (a dry run)."""
    return expand(spec if isinstance(spec, SweepSpec) else load_sweep(spec))


class _Nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc) -> None:
        return None


def _journal_row(point: Point, result: dict[str, Any]) -> dict[str, Any]:
    return {"point_id": point.point_id, "inputs": point.inputs, **result}


def _tasks(spec: SweepSpec, pending: list[Point], chunk_size: int | None, jobs: int | None):
    from simulator.sweep.engines import get_engine
    engine = get_engine(spec.engine)
    if chunk_size is None:
        # a few tasks per worker balance the load; the engine caps the size of one
        per_worker = math.ceil(len(pending) / (4 * max(jobs or 1, 1)))
        chunk_size = max(1, min(engine.chunk_hint, per_worker))
    return [(engine.name, spec.seed, [(p.index, p.config) for p in pending[i:i + chunk_size]])
            for i in range(0, len(pending), chunk_size)]


def _write_spec(spec: SweepSpec, folder: Path) -> list[Path]:
    """``spec.resolved.json`` (self-contained) and a copy of the spec file, if there is one."""
    resolved = folder / "spec.resolved.json"
    write_bytes_atomic(resolved, (json.dumps(spec.to_dict(), indent=2, default=str) + "\n")
                       .encode("utf-8"))
    written = [resolved]
    source = Path(spec.source)
    if spec.source != "<sweep>" and source.is_file():
        copy = folder / f"spec{source.suffix or '.yaml'}"
        if source.resolve() != copy.resolve():
            write_bytes_atomic(copy, source.read_bytes())
        written.append(copy)
    return written


__all__ = ["Progress", "plan_sweep", "run_sweep"]
