"""Where parameter-server state lives and who pushes it: the layout as data, resolved on a cluster.

Pure functions shared by the parameter-server and BytePS compilers:

- :func:`server_groups`: the workers grouped by the server they sit in (local aggregation sums
  inside a group);
- :func:`shard_nodes`: the nodes of the shards for a placement;
- :func:`split_loads`: the gradient bytes each shard owns for a split of the net's tensors;
- :func:`emit_local_push` / :func:`emit_local_pull`: what a worker server does before its push
  and after its pull (nothing, a sum on its host CPU, a reduce onto one GPU, a reduce-scatter),
  as operations of the task graph, so its bytes cross the server's own PCIe and NVLink.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence

from simulator.errors import SpecError
from simulator.taskgraph import TaskGraph

#: Intra-server collectives run whatever the planner would (NVLink rings, PCIe chains).
LOCAL_ALGORITHM = "auto"


def server_groups(cluster, nodes: Sequence[Hashable]) -> list[list[int]]:
    """Indices into ``nodes`` grouped by server, in order of first appearance."""
    groups: dict = {}
    for i, node in enumerate(nodes):
        groups.setdefault(cluster.server_of(node), []).append(i)
    return list(groups.values())


def shard_nodes(cluster, placement: str, shards: int, worker_nodes: Sequence[Hashable],
                groups: Sequence[Sequence[int]]) -> list[Hashable]:
    """The node of each shard: the topology's CPU-only hosts (``dedicated``), the worker
    servers' host CPUs in turn (``worker_hosts``), or the worker GPUs in turn (``colocated``)."""
    if placement == "dedicated":
        return cluster.cpus_for(shards)
    if placement == "worker_hosts":
        hosts = [cluster.host_cpu(worker_nodes[g[0]]) for g in groups]
        return [hosts[j % len(hosts)] for j in range(shards)]
    if placement == "colocated":
        return [worker_nodes[j % len(worker_nodes)] for j in range(shards)]
    raise SpecError("unknown placement", field="strategy.placement", value=placement)


def split_tensors(tensor_bytes: Sequence[float], shards: int, split: str) -> list[list[float]]:
    """Per tensor, the bytes of it each shard owns: ``even`` slices every tensor over all
    shards; ``round_robin`` deals whole tensors (those with parameters) to the shards in order;
    ``by_size`` gives each tensor, in order, to the shard holding the fewest bytes so far (the
    lowest on a tie)."""
    if split == "even":
        return [[float(size) / shards] * shards for size in tensor_bytes]
    if split not in ("round_robin", "by_size"):
        raise SpecError("unknown split", field="strategy.split", value=split)
    loads = [0.0] * shards
    out = []
    dealt = 0
    for size in tensor_bytes:
        row = [0.0] * shards
        if size > 0:
            j = (dealt % shards if split == "round_robin"
                 else min(range(shards), key=lambda i: (loads[i], i)))
            loads[j] += float(size)
            row[j] = float(size)
            dealt += 1
        out.append(row)
    return out


def split_loads(tensor_bytes: Sequence[float], shards: int, split: str) -> list[float]:
    """Gradient bytes per shard (:func:`split_tensors` summed over the tensors)."""
    rows = split_tensors(tensor_bytes, shards, split)
    if split == "even":
        return [float(sum(tensor_bytes)) / shards] * shards
    return [sum(row[j] for row in rows) for j in range(shards)]


@dataclass(frozen=True)
class Pusher:
    """A rank that pushes ``fraction`` of every shard's bytes once ``deps`` are done."""

    rank: int
    fraction: float
    deps: tuple[int, ...]


def emit_local_push(tg: TaskGraph, aggregation: str, group: Sequence[int], grad_bytes: float,
                    ready: Sequence[int], *, iteration: int, aggregator: int | None = None,
                    sum_s: float = 0.0) -> list[Pusher]:
    """The pushers of one worker server whose worker ranks ``group`` finished their backward
    passes at ops ``ready`` (one per worker); ``aggregator`` is the host-CPU rank for ``cpu``."""
    m = len(group)
    if aggregation == "none" or (m == 1 and aggregation in ("gpu", "reduce_scatter")):
        return [Pusher(w, 1.0, (r,)) for w, r in zip(group, ready)]
    if aggregation == "cpu":
        copies = [tg.transfer(w, aggregator, grad_bytes, deps=(r,), stream="local",
                              name="to_host", phase="local_reduce", iteration=iteration)
                  for w, r in zip(group, ready)]
        total = tg.compute(aggregator, sum_s, deps=copies, stream="sum", name="local_sum",
                           phase="local_reduce", iteration=iteration)
        return [Pusher(aggregator, 1.0, (total,))]
    if aggregation == "gpu":
        op = tg.collective("reduce", group, grad_bytes, algorithm=LOCAL_ALGORITHM, deps=ready,
                           stream="local", name="local_reduce", phase="local_reduce",
                           iteration=iteration)
        return [Pusher(group[0], 1.0, (op,))]
    if aggregation == "reduce_scatter":
        op = tg.collective("reducescatter", group, grad_bytes, algorithm=LOCAL_ALGORITHM,
                           deps=ready, stream="local", name="local_reduce",
                           phase="local_reduce", iteration=iteration)
        return [Pusher(w, 1.0 / m, (op,)) for w in group]
    raise SpecError("unknown aggregation", field="strategy.aggregation", value=aggregation)


def emit_local_pull(tg: TaskGraph, aggregation: str, group: Sequence[int], grad_bytes: float,
                    pulled: dict[int, list[int]], *, iteration: int,
                    aggregator: int | None = None) -> dict[int, list[int]]:
    """Per worker of ``group``, the ops after which it holds the new parameters, given each
    pusher's finished pulls ``pulled`` (pusher rank -> ops)."""
    m = len(group)
    if aggregation == "none" or (m == 1 and aggregation in ("gpu", "reduce_scatter")):
        return {w: list(pulled[w]) for w in group}
    if aggregation == "cpu":
        return {w: [tg.transfer(aggregator, w, grad_bytes, deps=pulled[aggregator],
                                stream=f"to_gpu{w}", name="to_gpu", phase="local_bcast",
                                iteration=iteration)] for w in group}
    if aggregation == "gpu":
        op = tg.collective("broadcast", group, grad_bytes, algorithm=LOCAL_ALGORITHM,
                           deps=pulled[group[0]], stream="local", name="local_bcast",
                           phase="local_bcast", iteration=iteration)
        return {w: [op] for w in group}
    if aggregation == "reduce_scatter":
        op = tg.collective("allgather", group, grad_bytes, algorithm=LOCAL_ALGORITHM,
                           deps=[d for w in group for d in pulled[w]], stream="local",
                           name="local_gather", phase="local_bcast", iteration=iteration)
        return {w: [op] for w in group}
    raise SpecError("unknown aggregation", field="strategy.aggregation", value=aggregation)
