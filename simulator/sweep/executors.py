"""Where a sweep's points run: in this process, in local processes, or on a Dask cluster.

The unit of work is a *task*: a few points of one engine, run by :func:`run_task` with caches
(a net's costs, a Paleo profile) that live as long as the task. Every executor yields each task's
rows as soon as the task finishes, in completion order; the runner journals them and restores
the grid's order at the end, so the output never depends on which worker finished first.

Executors are context managers. Leaving one by an exception (Ctrl-C included) cancels what has
not run and stops local worker processes at once; finished rows are already journaled.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any, Callable, Iterable, Iterator

from simulator.errors import InfeasibleError, PaleosimError, SpecError, UnknownNameError
from simulator.sweep._plain import one_line
from simulator.sweep.engines import get_engine

EXECUTORS = ("dask", "process", "serial")
STATUSES = ("ok", "infeasible", "error")

Task = tuple  # (engine name, seed, [(index, config), ...])


def run_task(engine_name: str, seed: int,
             items: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    """Run each ``(index, config)`` of one task; never raises for a point's failure.

    Each result is ``{"status", "reason", "wall_s", "outputs"}``: ``ok``; ``infeasible`` when the
    point raised :class:`InfeasibleError` (valid input that cannot run, e.g. out of memory) or
    :class:`SpecError` (a combination that cannot be built, e.g. more workers than the topology
    has GPUs); ``error`` for anything else, with the exception's type in ``reason``.
    """
    return run_items(get_engine(engine_name), seed, items, state={})


def run_items(engine, seed: int, items: Iterable[tuple[int, dict[str, Any]]],
              state: dict) -> list[tuple[int, dict[str, Any]]]:
    """:func:`run_task` with a given engine object and cache ``state``.

    Points an engine can run together (``group_key``/``run_group``: the Paleo engine's worker
    counts of one configuration) run as one call, each with an equal share of its ``wall_s``;
    if that call fails, its points run one by one so that each gets its own status.
    """
    out = []
    for group in _groups(engine, items):
        if len(group) > 1:
            start = time.perf_counter()
            try:
                outputs = engine.run_group([config for _, config in group], seed=seed,
                                           state=state)
            except Exception:  # noqa: BLE001 - rerun one by one to attribute the failure
                outputs = None
            if outputs is not None:
                share = (time.perf_counter() - start) / len(group)
                out += [(index, {"status": "ok", "reason": "", "wall_s": share,
                                 "outputs": result})
                        for (index, _), result in zip(group, outputs)]
                continue
        out += [_run_point(engine, seed, item, state) for item in group]
    return out


def _groups(engine, items) -> list[list[tuple[int, dict[str, Any]]]]:
    key = getattr(engine, "group_key", None)
    if key is None or not hasattr(engine, "run_group"):
        return [[item] for item in items]
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault(key(item[1]), []).append(item)
    return list(groups.values())


def _run_point(engine, seed: int, item: tuple[int, dict[str, Any]],
               state: dict) -> tuple[int, dict[str, Any]]:
    index, config = item
    start = time.perf_counter()
    outputs: dict[str, Any] = {}
    try:
        outputs = engine.run(config, seed=seed, state=state)
        status, reason = "ok", ""
    except (InfeasibleError, SpecError) as exc:
        status, reason = "infeasible", one_line(str(exc))
    except Exception as exc:  # noqa: BLE001 - a point's bug must not stop the sweep
        status, reason = "error", one_line(f"{type(exc).__name__}: {exc}")
    return index, {"status": status, "reason": reason,
                   "wall_s": time.perf_counter() - start, "outputs": outputs}


class SerialExecutor:
    """Every task in this process, in order (one cache for the whole sweep)."""

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = 1

    def __enter__(self) -> "SerialExecutor":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def map_unordered(self, tasks: Iterable[Task]) -> Iterator[list]:
        state: dict = {}  # one cache for the whole sweep
        engine = None
        for engine_name, seed, items in tasks:
            engine = engine or get_engine(engine_name)
            yield run_items(engine, seed, items, state)


#: In a local worker process: the engine caches of its pool, which serves one sweep only.
_pool_state: dict | None = None


def run_pool_task(engine_name: str, seed: int,
                  items: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    """:func:`run_task` in a local worker, with caches kept across the tasks of one pool (a
    net's costs are computed once per worker, not once per task)."""
    state = _pool_state if _pool_state is not None else {}
    return run_items(get_engine(engine_name), seed, items, state)


def _worker_init() -> None:
    """In each local worker: an empty cache, Ctrl-C left to the parent (which stops the pool),
    and an exit if the parent dies (a SIGKILL gives it no chance to stop its workers)."""
    global _pool_state
    _pool_state = {}
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="paleosim-sweep-orphan-watch", daemon=True).start()


class ProcessExecutor:
    """Tasks on ``jobs`` local processes (:class:`concurrent.futures.ProcessPoolExecutor`)."""

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = jobs or os.cpu_count() or 1
        self._pool = None

    def __enter__(self) -> "ProcessExecutor":
        from concurrent.futures import ProcessPoolExecutor
        self._pool = ProcessPoolExecutor(max_workers=self.jobs, initializer=_worker_init)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if exc_type is None:
            pool.shutdown(wait=True)
            return
        _terminate_workers(pool)

    def map_unordered(self, tasks: Iterable[Task]) -> Iterator[list]:
        from concurrent.futures import as_completed
        from concurrent.futures.process import BrokenProcessPool

        futures = [self._pool.submit(run_pool_task, *task) for task in tasks]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BrokenProcessPool:
            raise PaleosimError(
                "a sweep worker process died (killed by the system, perhaps out of host "
                "memory); finished points are kept in the journal: rerun to go on, with "
                "--jobs 1 to find the point") from None


def _terminate_workers(pool) -> None:
    """Cancel what has not started and stop the worker processes now, rather than after
    their current task."""
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    # before 3.14 only the pool's private process table reaches them (shutdown clears it)
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        try:
            process.terminate()
        except (OSError, AttributeError):
            pass


class DaskExecutor:
    """Tasks on a Dask distributed cluster at ``scheduler`` (an address such as
    ``tcp://host:8786``, or a ``Client`` or cluster object). The workers need paleosim
    installed."""

    def __init__(self, jobs: int | None = None, scheduler: Any = None) -> None:
        if scheduler is None:
            raise SpecError("the dask executor needs the scheduler's address", field="scheduler",
                            value=None)
        self.scheduler = scheduler
        self.jobs = jobs
        self._client = None
        self._own_client = False
        self._futures: list = []

    def __enter__(self) -> "DaskExecutor":
        distributed = import_dask()
        if isinstance(self.scheduler, distributed.Client):
            self._client = self.scheduler
        else:
            try:
                self._client = distributed.Client(self.scheduler)
            except (OSError, TimeoutError) as exc:
                raise PaleosimError(f"cannot reach the Dask scheduler at {self.scheduler!r}: "
                                    f"{one_line(str(exc))}") from None
            self._own_client = True
        if self.jobs is None:
            self.jobs = max(sum(self._client.nthreads().values()), 1)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if exc_type is not None and self._futures:
            client.cancel(self._futures)
        if self._own_client:
            client.close()

    def map_unordered(self, tasks: Iterable[Task]) -> Iterator[list]:
        from dask.distributed import as_completed
        self._futures = [self._client.submit(run_task, *task, pure=False) for task in tasks]
        for future in as_completed(self._futures):
            yield future.result()


def import_dask():
    """``dask.distributed``, or a clear error naming the extra to install."""
    try:
        import dask.distributed as distributed
    except ImportError:
        raise SpecError("the dask executor needs dask.distributed: "
                        "pip install 'paleosim[dask]' (or 'dask[distributed]')",
                        field="executor", value="dask") from None
    return distributed


def make_executor(name: str, *, jobs: int | None = None, scheduler: Any = None):
    """An executor by name; ``UnknownNameError`` lists the valid names."""
    if name not in EXECUTORS:
        raise UnknownNameError("executor", str(name), EXECUTORS, field="executor")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise SpecError("must be a positive integer", field="jobs", value=jobs)
    if scheduler is not None and name != "dask":
        raise SpecError("a scheduler address is for the dask executor", field="scheduler",
                        value=scheduler)
    if name == "serial":
        return SerialExecutor(jobs)
    if name == "process":
        return ProcessExecutor(jobs)
    import_dask()
    return DaskExecutor(jobs, scheduler)


ProgressFn = Callable[[int, int], None]
