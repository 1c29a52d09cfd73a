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


def register(kind: str):
    def deco(fn):
        _COMPILERS[kind] = fn
        return fn
    return deco


def compiler(kind: str) -> Callable[..., Compiled]:
    _load()
    try:
        return _COMPILERS[kind]
    except KeyError:
        raise UnknownNameError("strategy kind", kind, list(_COMPILERS),
                               field="strategy.kind") from None


def _load() -> None:
    from simulator.strategies import data_parallel, parameter_server  # noqa: F401
