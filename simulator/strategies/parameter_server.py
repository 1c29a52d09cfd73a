"""Parameter servers (Li et al., OSDI 2014; Dean et al., NIPS 2012): workers push gradients to k
shards, the shards apply the optimizer, workers pull the new parameters.

Every push and pull is a flow on the network, so a shard's NIC saturating as workers grow, or a
co-located shard sharing its server's NIC with a worker, emerges from contention. A worker pushes
to all its shards at once (one stream per shard) and a shard serves all its workers' pulls at
once (one stream per worker), as gRPC, ps-lite and BytePS keep one connection per peer busy
concurrently; serialising them would charge the sum of the transfers instead of the bottleneck.

- ``sync``: a shard applies one update per iteration, once every worker's push has arrived,
  after summing the pushes (:meth:`~simulator.catalog.Device.sum_time_s` on the shard's
  device, as TensorFlow's accumulators and ps-lite's servers sum before they apply).
- ``backup``: as sync, but the update takes the first ``workers`` of ``workers + backup_workers``
  pushes (Chen et al., "Revisiting distributed synchronous SGD", 2016); late pushes still cost
  bandwidth, and their workers continue from the new parameters.
- ``async``: each push is applied on arrival, one at a time per shard, with no barrier (Dean et
  al. 2012); the staleness of every applied gradient is recorded.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.cluster import Cluster
from simulator.costmodel import DTYPE_BYTES
from simulator.memory.plans import parameter_server_memory
from simulator.specs import ParameterServerSpec, WorkloadSpec
from simulator.strategies.common import (CostCache, buckets, emit_backward, emit_forward,
                                         split_batch)
from simulator.strategies.ps_layout import (emit_local_pull, emit_local_push, server_groups,
                                           shard_nodes, split_loads, split_tensors)
from simulator.strategies.registry import Compiled, register
from simulator.taskgraph import TaskGraph

PS_STREAM = "ps"


@register("parameter_server", ParameterServerSpec)
def compile_parameter_server(workload: WorkloadSpec, cluster: Cluster,
                             strategy: ParameterServerSpec, cache: CostCache) -> Compiled:
    n = strategy.total_workers
    k = strategy.shards
    worker_nodes = cluster.gpus_for(n)
    groups = server_groups(cluster, worker_nodes)
    shard_at = shard_nodes(cluster, strategy.placement, k, worker_nodes, groups)
    global_batch = (workload.batch * strategy.workers if strategy.scaling == "weak"
                    else workload.batch)
    per_worker = split_batch(global_batch, strategy.workers)
    per_worker += [per_worker[-1]] * strategy.backup_workers  # backups do a worker's share
    tensors = cache.grad_bytes()
    grads = float(sum(tensors))
    owned = split_tensors(tensors, k, strategy.split)
    loads = split_loads(tensors, k, strategy.split)
    size = DTYPE_BYTES[workload.dtype]
    # chunks of layers pushed together: every gradient at once after the backward pass, or
    # (overlap) bucket by bucket in backward order as the backward pass produces them
    chunks = (buckets(tensors, strategy.bucket_bytes) if strategy.overlap
              else [[i for i in range(len(tensors)) if tensors[i] > 0] or [0]])
    chunk_bytes = [float(sum(tensors[i] for i in c)) for c in chunks]
    chunk_loads = [[sum(owned[i][j] for i in c) for j in range(k)] for c in chunks]
    shard_ranks = list(range(n, n + k))
    aggregators = ({g[0]: n + k + i for i, g in enumerate(groups)}
                   if strategy.aggregation == "cpu" else {})
    agg_nodes = [cluster.host_cpu(worker_nodes[g[0]]) for g in groups] if aggregators else []
    tg = TaskGraph(ranks=n + k + len(agg_nodes),
                   meta={"strategy": "parameter_server", "quorum": {}})
    if strategy.mode == "async":
        tg.meta["unordered_streams"] = (PS_STREAM,)
    shard_device = [cluster.device_of(node) for node in shard_at]
    # pushes a shard sums per chunk: the quorum's workers, or one per worker server
    inputs = n - strategy.backup_workers if strategy.aggregation == "none" else len(groups)
    update_s = [[_apply_s(cache, workload, shard_device[j], loads_c[j], size,
                          inputs if strategy.mode != "async" else 1)
                 for j in range(k)] for loads_c in chunk_loads]
    pulled: list[dict[int, list[int]]] = [{} for _ in range(n)]
    ends: dict[int, list[int]] = {}
    for it in range(strategy.iterations):
        ready: list[list[int]] = []  # per worker, per chunk: the op its gradients follow
        for w in range(n):
            costs = cache.costs(per_worker[w], cluster.device_of(worker_nodes[w]))
            emit_gated_forward(tg, w, costs, it, pulled[w], chunks)
            bwd, layer_ready = emit_backward(tg, w, costs, iteration=it)
            ready.append([layer_ready.get(min(c), bwd[-1]) if strategy.overlap else bwd[-1]
                          for c in chunks])
        pulled = [{} for _ in range(n)]
        for c, chunk in enumerate(chunks):
            pushers = [emit_local_push(tg, strategy.aggregation, g, chunk_bytes[c],
                                       [ready[w][c] for w in g], iteration=it,
                                       aggregator=aggregators.get(g[0]),
                                       sum_s=(cluster.device_of(agg_nodes[i]).sum_time_s(
                                           chunk_bytes[c], len(g)) if agg_nodes else 0.0))
                       for i, g in enumerate(groups)]
            flat = [p for ps in pushers for p in ps]
            got: dict[int, list[int]] = {p.rank: [] for p in flat}
            for j in range(k):
                load = chunk_loads[c][j]
                if load <= 0 and len(chunks) > 1:
                    continue
                rank = shard_ranks[j]
                pushes = [tg.transfer(p.rank, rank, load * p.fraction, deps=p.deps,
                                      stream=f"push{j}", name=f"push{j}", phase="push",
                                      iteration=it) for p in flat]
                if strategy.mode == "async":
                    for w, p in enumerate(flat):
                        upd = tg.compute(rank, update_s[c][j], deps=(pushes[w],),
                                         stream=PS_STREAM, name=f"apply{j}.w{w}",
                                         phase="update", iteration=it, microbatch=w)
                        ends.setdefault(it, []).append(upd)
                        got[p.rank].append(_pull(tg, rank, p, load, upd, j, it))
                    continue
                upd = tg.compute(rank, update_s[c][j], deps=pushes, stream=PS_STREAM,
                                 name=f"apply{j}", phase="update", iteration=it)
                if strategy.mode == "backup":
                    tg.meta["quorum"][upd] = strategy.workers
                ends.setdefault(it, []).append(upd)
                for p in flat:
                    got[p.rank].append(_pull(tg, rank, p, load, upd, j, it))
            for g in groups:
                after = emit_local_pull(tg, strategy.aggregation, g, chunk_bytes[c], got,
                                        iteration=it, aggregator=aggregators.get(g[0]))
                for w, ops in after.items():
                    pulled[w][c] = ops
    shard_params = [int(-(-load // size)) for load in loads]
    return Compiled(taskgraph=tg, rank_nodes=list(worker_nodes) + list(shard_at) + agg_nodes,
                    global_batch=global_batch, iteration_ops=ends,
                    worker_ranks=tuple(range(n)),
                    extra={"shard_ranks": tuple(shard_ranks), "mode": strategy.mode,
                           "shard_bytes": tuple(loads),
                           "memory": parameter_server_memory(workload, cluster, worker_nodes,
                                                             per_worker, shard_at, cache.graph,
                                                             shard_params=shard_params,
                                                             host_nodes=agg_nodes,
                                                             host_bytes=grads)})


def _apply_s(cache: CostCache, workload: WorkloadSpec, device, load: float, size: int,
             inputs: int) -> float:
    """A shard's step on ``load`` gradient bytes: sum the ``inputs`` pushes (none for one),
    then the optimizer update of their parameters."""
    params = int(-(-load // size))
    summed = device.sum_time_s(load, inputs) if inputs > 1 else 0.0
    return summed + cache.model.update_time_s(params, device, dtype=workload.dtype,
                                              optimizer=workload.optimizer)


def emit_gated_forward(tg: TaskGraph, rank: int, costs, iteration: int,
                       gates: dict[int, list[int]], chunks: list[list[int]]) -> None:
    """The forward pass, each layer waiting for the pull of the chunk that holds its
    parameters (``gates``: chunk -> ops; none in the first iteration), as a framework reads
    each variable when the op that uses it runs."""
    if len(chunks) == 1:
        emit_forward(tg, rank, costs, iteration=iteration, deps=gates.get(0, ()))
        return
    chunk_of = {i: c for c, chunk in enumerate(chunks) for i in chunk}
    index = {layer.name: i for i, layer in enumerate(costs.graph.layers)}
    opened = -1
    previous: tuple[int, ...] = ()
    for duration, name, phase, flops in costs.forward_template:
        at = index.get(name, opened)
        deps = list(previous)
        for i in range(opened + 1, at + 1):
            deps += gates.get(chunk_of.get(i, -1), ())
        opened = max(opened, at)
        previous = (tg.compute(rank, duration, deps=sorted(set(deps)), name=name, phase=phase,
                               iteration=iteration, flops=flops),)


def _pull(tg: TaskGraph, shard: int, pusher, load: float, upd: int, j: int, it: int) -> int:
    return tg.transfer(shard, pusher.rank, load * pusher.fraction, deps=(upd,),
                       stream=f"pull{pusher.rank}", name=f"pull{j}", phase="pull",
                       iteration=it)


def staleness_table(ops: pd.DataFrame, shard_ranks: tuple[int, ...]) -> pd.DataFrame:
    """For asynchronous training: per applied gradient (shard, worker, iteration), the version of
    the shard's parameters it was applied to, the version the worker had read, and their
    difference, the staleness (the number of other updates applied in between)."""
    updates = ops[(ops["phase"] == "update") & ops["rank"].isin(shard_ranks)]
    pulls = ops[(ops["phase"] == "pull") & ops["rank"].isin(shard_ranks)]
    rows = []
    for shard in shard_ranks:
        mine = updates[updates["rank"] == shard].sort_values(["start_s", "op"], kind="stable")
        ends = np.sort(mine["end_s"].to_numpy())
        pull_start = {(int(p.peer), int(p.iteration)): float(p.start_s)
                      for p in pulls[pulls["rank"] == shard].itertuples(index=False)}
        for version, u in enumerate(mine.itertuples(index=False)):
            worker, it = int(u.microbatch), int(u.iteration)
            read = 0 if it == 0 else int(np.searchsorted(ends, pull_start[(worker, it - 1)],
                                                         side="right"))
            rows.append({"shard": shard, "worker": worker, "iteration": it,
                         "applied_to_version": version, "read_version": read,
                         "staleness": version - read})
    return pd.DataFrame(rows, columns=["shard", "worker", "iteration", "applied_to_version",
                                       "read_version", "staleness"])
