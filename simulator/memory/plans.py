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
                            graph_of: GraphOf) -> pd.DataFrame:
    """Memory table of parameter-server workers (ranks ``0..n-1``) and shards (``n..n+k-1``)."""
    per_batch: dict[int, MemoryBreakdown] = {}
    rows = []
    for rank, (node, batch) in enumerate(zip(worker_nodes, worker_batches)):
        if batch not in per_batch:
            full = training_memory(graph_of(batch), dtype=workload.dtype,
                                   optimizer=workload.optimizer)
            per_batch[batch] = dataclasses.replace(full, optimizer=0.0)
        rows.append((rank, node, cluster.device_of(node), per_batch[batch]))
    params = graph_of(worker_batches[0]).total_params if worker_batches else 0
    weights, gradients, optimizer = model_state_bytes(
        shard(params, max(len(shard_nodes), 1)), dtype=workload.dtype,
        optimizer=workload.optimizer)
    state = MemoryBreakdown(weights=weights, gradients=gradients, optimizer=optimizer,
                            activations=0.0)
    n = len(worker_nodes)
    rows += [(n + j, node, cluster.device_of(node), state) for j, node in enumerate(shard_nodes)]
    return memory_table(rows)
