"""Parameter servers (Li et al., OSDI 2014; Dean et al., NIPS 2012): workers push gradients to k
shards, the shards apply the optimizer, workers pull the new parameters.

Every push and pull is a flow on the network, so a shard's NIC saturating as workers grow, or a
co-located shard sharing its server's NIC with a worker, emerges from contention. A worker pushes
to all its shards at once (one stream per shard) and a shard serves all its workers' pulls at
once (one stream per worker), as gRPC, ps-lite and BytePS keep one connection per peer busy
concurrently; serialising them would charge the sum of the transfers instead of the bottleneck.

- ``sync``: a shard applies one update per iteration, once every worker's push has arrived.
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
from simulator.strategies.common import CostCache, emit_backward, emit_forward, split_batch
from simulator.strategies.ps_layout import (emit_local_pull, emit_local_push, server_groups,
                                           shard_nodes, split_loads)
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
    loads = split_loads(tensors, k, strategy.split)
    size = DTYPE_BYTES[workload.dtype]
    shard_params = [int(-(-load // size)) for load in loads]
    shard_ranks = list(range(n, n + k))
    aggregators = ({g[0]: n + k + i for i, g in enumerate(groups)}
                   if strategy.aggregation == "cpu" else {})
    agg_nodes = [cluster.host_cpu(worker_nodes[g[0]]) for g in groups] if aggregators else []
    tg = TaskGraph(ranks=n + k + len(agg_nodes),
                   meta={"strategy": "parameter_server", "quorum": {}})
    if strategy.mode == "async":
        tg.meta["unordered_streams"] = (PS_STREAM,)
    ps_update_s = [cache.model.update_time_s(p, cluster.device_of(node), dtype=workload.dtype,
                                             optimizer=workload.optimizer)
                   for p, node in zip(shard_params, shard_at)]
    sum_s = [cluster.device_of(node).sum_time_s(grads, len(g))
             for node, g in zip(agg_nodes, groups)]
    pulled: list[list[int]] = [[] for _ in range(n)]
    ends: dict[int, list[int]] = {}
    for it in range(strategy.iterations):
        ready = []
        for w in range(n):
            costs = cache.costs(per_worker[w], cluster.device_of(worker_nodes[w]))
            emit_forward(tg, w, costs, iteration=it, deps=pulled[w])
            bwd, _ = emit_backward(tg, w, costs, iteration=it)
            ready.append(bwd[-1])
        pushers = [emit_local_push(tg, strategy.aggregation, g, grads, [ready[w] for w in g],
                                   iteration=it, aggregator=aggregators.get(g[0]),
                                   sum_s=sum_s[i] if sum_s else 0.0)
                   for i, g in enumerate(groups)]
        flat = [p for ps in pushers for p in ps]
        pushes: list[list[int]] = [[tg.transfer(p.rank, shard_ranks[j], loads[j] * p.fraction,
                                                deps=p.deps, stream=f"push{j}",
                                                name=f"push{j}", phase="push", iteration=it)
                                    for p in flat] for j in range(k)]
        got: dict[int, list[int]] = {p.rank: [] for p in flat}
        for j in range(k):
            rank = shard_ranks[j]
            if strategy.mode == "async":
                for w, p in enumerate(flat):
                    upd = tg.compute(rank, ps_update_s[j], deps=(pushes[j][w],),
                                     stream=PS_STREAM, name=f"apply{j}.w{w}", phase="update",
                                     iteration=it, microbatch=w)
                    ends.setdefault(it, []).append(upd)
                    got[p.rank].append(_pull(tg, rank, p, loads[j], upd, j, it))
                continue
            upd = tg.compute(rank, ps_update_s[j], deps=pushes[j], stream=PS_STREAM,
                             name=f"apply{j}", phase="update", iteration=it)
            if strategy.mode == "backup":
                tg.meta["quorum"][upd] = strategy.workers
            ends.setdefault(it, []).append(upd)
            for p in flat:
                got[p.rank].append(_pull(tg, rank, p, loads[j], upd, j, it))
        pulled = [[] for _ in range(n)]
        for g in groups:
            after = emit_local_pull(tg, strategy.aggregation, g, grads, got, iteration=it,
                                    aggregator=aggregators.get(g[0]))
            for w, ops in after.items():
                pulled[w] = ops
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
