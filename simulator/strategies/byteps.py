"""BytePS (Jiang et al., "A unified architecture for accelerating distributed DNN training in
heterogeneous GPU/CPU clusters", OSDI 2020): summation servers that only sum, GPUs that reduce
inside their machine and run the optimizer themselves.

One iteration, as the paper's section 4 describes it:

1. each machine's GPUs reduce their gradients onto one GPU (``intra: reduce``, NCCL over
   NVLink or PCIe) or reduce-scatter them (``intra: reduce_scatter``, each GPU then pushes its
   slice);
2. the gradients are cut into partitions of ``partition_bytes`` (BytePS's
   ``BYTEPS_PARTITION_BYTES``, default 4,096,000) and each partition is pushed to one summation
   server: the ``servers`` CPU-only machines and, with ``colocated``, a summation service on
   every GPU machine's own CPU;
3. a server sums a partition once every machine's push of it is in (CPU sum time from the
   catalog, :meth:`~simulator.catalog.Device.sum_time_s`) and each machine pulls it back, each
   partition on its own, so pushes, sums and pulls of different partitions overlap;
4. each machine broadcasts (or all-gathers) the summed gradients to its GPUs, which apply the
   optimizer to all parameters.

Partitions go to servers in the shares of the paper's optimum (section 4.1): with n GPU
machines and k CPU machines, a fraction x = 2k(n-1) / (n^2 + kn - 2k) of the bytes to the CPU
machines (x/k each) and the rest to the GPU machines' own services ((1-x)/n each), which
equalises the busiest NIC's traffic at 2n(n-1)M / (n^2 + kn - 2k) for M gradient bytes
(``split: optimal``; BytePS's "mixed mode" assigns keys in these shares). ``split: even`` gives
every server the same share. Each partition goes, in order, to the server furthest below its
share (the lowest index on a tie). Transfers leave from GPU memory; where the GPU has no
GPUDirect RDMA the network stages them through the host, which is what BytePS's copy to
pinned host memory before the push does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from simulator.cluster import Cluster
from simulator.errors import SpecError
from simulator.memory.breakdown import MemoryBreakdown
from simulator.memory.plans import data_parallel_memory
from simulator.memory.table import memory_table
from simulator.specs import SCALINGS, WorkloadSpec, _check_int, _choice, _check_number
from simulator.strategies.common import CostCache, emit_backward, emit_forward, split_batch
from simulator.strategies.ps_layout import emit_local_pull, emit_local_push, server_groups
from simulator.strategies.registry import Compiled, register
from simulator.taskgraph import TaskGraph

#: BytePS's default partition size (``BYTEPS_PARTITION_BYTES``), bytes.
PARTITION_BYTES = 4_096_000


@dataclass(frozen=True, kw_only=True)
class BytePSSpec:
    """BytePS: ``workers`` GPUs, ``servers`` CPU-only summation machines (the topology's CPU
    hosts), a summation service on every GPU machine's CPU when ``colocated``; see the module
    docstring."""

    kind: str = "byteps"
    workers: int = 1
    scaling: str = "weak"
    servers: int = 0
    colocated: bool = True
    split: str = "optimal"
    intra: str = "reduce"
    partition_bytes: float = PARTITION_BYTES
    iterations: int = 3

    def __post_init__(self) -> None:
        _check_int(self.workers, "strategy.workers")
        _choice(self.scaling, "strategy.scaling", SCALINGS)
        _check_int(self.servers, "strategy.servers", 0)
        if not isinstance(self.colocated, bool):
            raise SpecError("must be true or false", field="strategy.colocated",
                            value=self.colocated)
        if self.servers == 0 and not self.colocated:
            raise SpecError("no summation server: give servers >= 1 or colocated: true",
                            field="strategy.servers", value=self.servers)
        _choice(self.split, "strategy.split", ("optimal", "even"))
        _choice(self.intra, "strategy.intra", ("reduce", "reduce_scatter"))
        _check_number(self.partition_bytes, "strategy.partition_bytes", 1.0)
        _check_int(self.iterations, "strategy.iterations")


def optimal_cpu_share(machines: int, cpu_servers: int) -> float:
    """The paper's x: the fraction of the gradient bytes the k CPU machines should sum when the
    n GPU machines also run summation services (Jiang et al. 2020, section 4.1)."""
    n, k = machines, cpu_servers
    if k == 0:
        return 0.0
    if n == 1:
        return 1.0  # one GPU machine: nothing to exchange among GPU machines
    return 2 * k * (n - 1) / (n * n + k * n - 2 * k)


def server_shares(machines: int, cpu_servers: int, colocated: bool, split: str) -> list[float]:
    """The share of the gradient bytes of each summation server: the CPU machines first, then
    the GPU machines' services."""
    n, k = machines, cpu_servers
    if not colocated:
        return [1.0 / k] * k
    if split == "even":
        return [1.0 / (k + n)] * (k + n)
    x = optimal_cpu_share(n, k)
    return ([x / k] * k if k else []) + [(1 - x) / n] * n


def partitions(tensor_bytes, partition_bytes: float) -> list[float]:
    """Every tensor cut into pieces of at most ``partition_bytes``, in order."""
    out = []
    for size in tensor_bytes:
        if size <= 0:
            continue
        pieces = math.ceil(size / partition_bytes)
        out += [size / pieces] * pieces
    return out


def assign(parts: list[float], shares: list[float]) -> list[int]:
    """Server of each partition: the one furthest below its share of the bytes so far (the
    lowest index on a tie); servers with no share get none."""
    loads = [0.0] * len(shares)
    total = 0.0
    out = []
    for size in parts:
        total += size
        j = min((i for i, s in enumerate(shares) if s > 0),
                key=lambda i: (loads[i] - shares[i] * total, i))
        loads[j] += size
        out.append(j)
    return out


@register("byteps", BytePSSpec)
def compile_byteps(workload: WorkloadSpec, cluster: Cluster, strategy: BytePSSpec,
                   cache: CostCache) -> Compiled:
    n = strategy.workers
    worker_nodes = cluster.gpus_for(n)
    groups = server_groups(cluster, worker_nodes)
    server_nodes = list(cluster.cpus_for(strategy.servers)) if strategy.servers else []
    if strategy.colocated:
        server_nodes += [cluster.host_cpu(worker_nodes[g[0]]) for g in groups]
    shares = server_shares(len(groups), strategy.servers, strategy.colocated, strategy.split)
    global_batch = workload.batch * n if strategy.scaling == "weak" else workload.batch
    per_worker = split_batch(global_batch, n)
    tensors = cache.grad_bytes()
    grads = float(sum(tensors))
    parts = partitions(tensors, strategy.partition_bytes)
    owner = assign(parts, shares)
    server_ranks = list(range(n, n + len(server_nodes)))
    tg = TaskGraph(ranks=n + len(server_nodes), meta={"strategy": "byteps"})
    aggregation = "gpu" if strategy.intra == "reduce" else "reduce_scatter"
    updated: list[list[int]] = [[] for _ in range(n)]
    ends: dict[int, list[int]] = {}
    for it in range(strategy.iterations):
        ready = []
        for w in range(n):
            costs = cache.costs(per_worker[w], cluster.device_of(worker_nodes[w]))
            emit_forward(tg, w, costs, iteration=it, deps=updated[w])
            bwd, _ = emit_backward(tg, w, costs, iteration=it)
            ready.append(bwd[-1])
        pushers = [p for g in groups
                   for p in emit_local_push(tg, aggregation, g, grads, [ready[w] for w in g],
                                            iteration=it)]
        got: dict[int, list[int]] = {p.rank: [] for p in pushers}
        for i, (size, j) in enumerate(zip(parts, owner)):
            rank = server_ranks[j]
            pushes = [tg.transfer(p.rank, rank, size * p.fraction, deps=p.deps,
                                  stream=f"push{j}", name=f"push.p{i}", phase="push",
                                  iteration=it) for p in pushers]
            device = cluster.device_of(server_nodes[j])
            total = tg.compute(rank, device.sum_time_s(size, len(pushers)), deps=pushes,
                               stream="sum", name=f"sum.p{i}", phase="sum", iteration=it)
            for p in pushers:
                got[p.rank].append(tg.transfer(rank, p.rank, size * p.fraction, deps=(total,),
                                               stream=f"pull{p.rank}", name=f"pull.p{i}",
                                               phase="pull", iteration=it))
        updated = [[] for _ in range(n)]
        for g in groups:
            after = emit_local_pull(tg, aggregation, g, grads, got, iteration=it)
            for w, ops in after.items():
                costs = cache.costs(per_worker[w], cluster.device_of(worker_nodes[w]))
                upd = tg.compute(w, costs.update_s, deps=ops, name="update", phase="update",
                                 iteration=it)
                updated[w] = [upd]
                ends.setdefault(it, []).append(upd)
    loads = [0.0] * len(server_nodes)
    for size, j in zip(parts, owner):
        loads[j] += size
    workers_memory = data_parallel_memory(workload, cluster, worker_nodes, per_worker,
                                          cache.graph)
    rows = [(n + j, node, cluster.device_of(node),
             MemoryBreakdown(weights=0.0, gradients=load, optimizer=0.0, activations=0.0))
            for j, (node, load) in enumerate(zip(server_nodes, loads))]
    memory = memory_table(rows)
    return Compiled(taskgraph=tg, rank_nodes=list(worker_nodes) + server_nodes,
                    global_batch=global_batch, iteration_ops=ends,
                    worker_ranks=tuple(range(n)),
                    extra={"server_ranks": tuple(server_ranks), "server_bytes": tuple(loads),
                           "memory": pd.concat([workers_memory, memory], ignore_index=True)})
