"""The strategy registry: a strategy kind compiles (workload, cluster, strategy) into a task graph."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from simulator.errors import UnknownNameError
from simulator.taskgraph import TaskGraph


@dataclass
class Compiled:
    """A compiled strategy: the task graph, the topology node of every rank, the global batch of
    one iteration, and per iteration the ops whose completion ends it."""

    taskgraph: TaskGraph
    rank_nodes: list[Hashable]
    global_batch: int
    iteration_ops: dict[int, list[int]]
    worker_ranks: tuple[int, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_COMPILERS: dict[str, Callable[..., Compiled]] = {}
_SPECS: dict[str, type] = {}


def register(kind: str, spec: type | None = None):
    """Register a compiler ``fn(workload, cluster, strategy, cost_cache) -> Compiled`` for
    strategies of ``kind``, and the frozen dataclass that ``kind``'s config section loads into
    (``spec``; the built-in ones live in :mod:`simulator.specs`)."""
    def deco(fn):
        _COMPILERS[kind] = fn
        if spec is not None:
            _SPECS[kind] = spec
        return fn
    return deco


def compiler(kind: str) -> Callable[..., Compiled]:
    _load()
    try:
        return _COMPILERS[kind]
    except KeyError:
        raise UnknownNameError("strategy kind", kind, list(_COMPILERS),
                               field="strategy.kind") from None


def spec_classes() -> dict[str, type]:
    """Strategy kind -> spec dataclass, for every registered strategy."""
    _load()
    return dict(_SPECS)


def _load() -> None:
    """Import every module of this package once: each registers its strategies."""
    import importlib
    import pkgutil

    import simulator.strategies as package
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_") and info.name not in ("common", "registry"):
            importlib.import_module(f"{package.__name__}.{info.name}")
