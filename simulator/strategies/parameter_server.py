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
from simulator.memory.plans import parameter_server_memory
from simulator.specs import ParameterServerSpec, WorkloadSpec
from simulator.strategies.common import CostCache, emit_backward, emit_forward, split_batch
from simulator.strategies.registry import Compiled, register
from simulator.taskgraph import TaskGraph

PS_STREAM = "ps"


@register("parameter_server", ParameterServerSpec)
def compile_parameter_server(workload: WorkloadSpec, cluster: Cluster,
                             strategy: ParameterServerSpec, cache: CostCache) -> Compiled:
    n = strategy.total_workers
    k = strategy.shards
    worker_nodes = cluster.gpus_for(n)
    if strategy.placement == "dedicated":
        shard_nodes = cluster.cpus_for(k)
    else:
        shard_nodes = [worker_nodes[j % n] for j in range(k)]
    global_batch = (workload.batch * strategy.workers if strategy.scaling == "weak"
                    else workload.batch)
    per_worker = split_batch(global_batch, strategy.workers)
    per_worker += [per_worker[-1]] * strategy.backup_workers  # backups do a worker's share
    grads = sum(cache.grad_bytes())
    shard_bytes = grads / k
    params = cache.graph(per_worker[0]).total_params
    shard_params = -(-params // k)
    shard_ranks = list(range(n, n + k))
    tg = TaskGraph(ranks=n + k, meta={"strategy": "parameter_server", "quorum": {}})
    if strategy.mode == "async":
        tg.meta["unordered_streams"] = (PS_STREAM,)
    ps_update_s = [cache.model.update_time_s(shard_params, cluster.device_of(node),
                                             dtype=workload.dtype,
                                             optimizer=workload.optimizer)
                   for node in shard_nodes]
    pulled: list[list[int]] = [[] for _ in range(n)]
    ends: dict[int, list[int]] = {}
    for it in range(strategy.iterations):
        pushes: list[list[int]] = [[] for _ in range(k)]
        for w in range(n):
            costs = cache.costs(per_worker[w], cluster.device_of(worker_nodes[w]))
            emit_forward(tg, w, costs, iteration=it, deps=pulled[w])
            bwd, _ = emit_backward(tg, w, costs, iteration=it)
            for j in range(k):
                pushes[j].append(tg.transfer(w, shard_ranks[j], shard_bytes, deps=(bwd[-1],),
                                             stream=f"push{j}", name=f"push{j}", phase="push",
                                             iteration=it))
        new_pulls: list[list[int]] = [[] for _ in range(n)]
        for j in range(k):
            rank = shard_ranks[j]
            if strategy.mode == "async":
                for w in range(n):
                    upd = tg.compute(rank, ps_update_s[j], deps=(pushes[j][w],),
                                     stream=PS_STREAM, name=f"apply{j}.w{w}", phase="update",
                                     iteration=it, microbatch=w)
                    ends.setdefault(it, []).append(upd)
                    new_pulls[w].append(tg.transfer(rank, w, shard_bytes, deps=(upd,),
                                                    stream=f"pull{w}", name=f"pull{j}",
                                                    phase="pull", iteration=it))
                continue
            upd = tg.compute(rank, ps_update_s[j], deps=pushes[j], stream=PS_STREAM,
                             name=f"apply{j}", phase="update", iteration=it)
            if strategy.mode == "backup":
                tg.meta["quorum"][upd] = strategy.workers
            ends.setdefault(it, []).append(upd)
            for w in range(n):
                new_pulls[w].append(tg.transfer(rank, w, shard_bytes, deps=(upd,),
                                                stream=f"pull{w}", name=f"pull{j}",
                                                phase="pull", iteration=it))
        pulled = new_pulls
    return Compiled(taskgraph=tg, rank_nodes=list(worker_nodes) + list(shard_nodes),
                    global_batch=global_batch, iteration_ops=ends,
                    worker_ranks=tuple(range(n)),
                    extra={"shard_ranks": tuple(shard_ranks), "mode": strategy.mode,
                           "memory": parameter_server_memory(workload, cluster, worker_nodes,
                                                             per_worker, shard_nodes,
                                                             cache.graph)})


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
