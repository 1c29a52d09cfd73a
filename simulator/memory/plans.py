"""Per-rank memory of the built-in strategies, as the compilers record it.

- Data parallelism: every rank holds the whole model's states (partitioned over the ranks by
  ZeRO stage 1-3) and one microbatch's activations; with gradient accumulation a microbatch's
  backward pass ends before the next one's forward begins, so one microbatch is in flight.
- Parameter servers: a worker holds the weights it pulled, the gradients it pushes and one
  batch's activations, but no optimizer state; a shard holds its ``ceil(params / shards)``
  parameters' weights, the gradient being applied and the optimizer state (fp32 master copy
  included at 16-bit dtypes), as :func:`~simulator.memory.states.model_state_bytes` counts them.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Hashable, Sequence

import pandas as pd

from simulator.memory.breakdown import MemoryBreakdown, training_memory
from simulator.memory.states import model_state_bytes, shard
from simulator.memory.table import memory_table
from workloads.graph import LayerGraph

GraphOf = Callable[[int], LayerGraph]


def data_parallel_memory(workload, cluster, nodes: Sequence[Hashable],
                         microbatches: Sequence[int], graph_of: GraphOf, *,
                         zero_stage: int = 0) -> pd.DataFrame:
    """Memory table of data-parallel ranks on ``nodes``; ``microbatches[r]`` is rank r's
    largest microbatch, ``graph_of(batch)`` the net at that batch."""
    per_batch: dict[int, MemoryBreakdown] = {}
    rows = []
    for rank, (node, batch) in enumerate(zip(nodes, microbatches)):
        if batch not in per_batch:
            per_batch[batch] = training_memory(graph_of(batch), dtype=workload.dtype,
                                               optimizer=workload.optimizer,
                                               zero_stage=zero_stage, dp=len(nodes))
        rows.append((rank, node, cluster.device_of(node), per_batch[batch]))
    return memory_table(rows)


def parameter_server_memory(workload, cluster, worker_nodes: Sequence[Hashable],
                            worker_batches: Sequence[int], shard_nodes: Sequence[Hashable],
                            graph_of: GraphOf, *, shard_params: Sequence[int] | None = None,
                            host_nodes: Sequence[Hashable] = (), host_bytes: float = 0.0
                            ) -> pd.DataFrame:
    """Memory table of parameter-server workers (ranks ``0..n-1``), shards (``n..n+k-1``,
    ``shard_params[j]`` parameters each; default an even split) and the host CPUs that sum a
    server's gradients (after the shards; ``host_bytes`` of gradient buffer each)."""
    per_batch: dict[int, MemoryBreakdown] = {}
    rows = []
    for rank, (node, batch) in enumerate(zip(worker_nodes, worker_batches)):
        if batch not in per_batch:
            full = training_memory(graph_of(batch), dtype=workload.dtype,
                                   optimizer=workload.optimizer)
            per_batch[batch] = dataclasses.replace(full, optimizer=0.0)
        rows.append((rank, node, cluster.device_of(node), per_batch[batch]))
    params = graph_of(worker_batches[0]).total_params if worker_batches else 0
    if shard_params is None:
        shard_params = [shard(params, max(len(shard_nodes), 1))] * len(shard_nodes)
    n = len(worker_nodes)
    for j, (node, count) in enumerate(zip(shard_nodes, shard_params)):
        weights, gradients, optimizer = model_state_bytes(count, dtype=workload.dtype,
                                                          optimizer=workload.optimizer)
        state = MemoryBreakdown(weights=weights, gradients=gradients, optimizer=optimizer,
                                activations=0.0)
        rows.append((n + j, node, cluster.device_of(node), state))
    first = n + len(shard_nodes)
    buffer = MemoryBreakdown(weights=0.0, gradients=float(host_bytes), optimizer=0.0,
                             activations=0.0)
    rows += [(first + i, node, cluster.device_of(node), buffer)
             for i, node in enumerate(host_nodes)]
    return memory_table(rows)
