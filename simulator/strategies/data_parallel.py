"""Synchronous data parallelism with all-reduce (Goyal et al. 2017; PyTorch DDP, Li et al.
VLDB 2020): every worker runs the whole net on its share of the batch; gradients are all-reduced
bucket by bucket while the backward pass continues (or all at once after it); then every worker
applies the same optimizer step.

Gradients travel in the spec's ``grad_dtype`` (fp32 under mixed precision, as PyTorch AMP). With
ZeRO (``zero_stage`` 1-3) the strategy is compiled by :mod:`~simulator.strategies.parallel3d`
with ``tp = pp = 1``: the one data-parallel path that reduce-scatters, all-gathers parameters
and prefetches ZeRO-3 units, so both strategies move the same bytes for the same stage."""
from __future__ import annotations

import dataclasses

from simulator.cluster import Cluster
from simulator.costmodel import DTYPE_BYTES
from simulator.memory.plans import data_parallel_memory
from simulator.specs import DataParallelSpec, WorkloadSpec
from simulator.strategies.common import (CostCache, buckets, emit_backward, emit_forward,
                                         split_batch)
from simulator.strategies.registry import Compiled, register
from simulator.taskgraph import TaskGraph


@register("data_parallel", DataParallelSpec)
def compile_data_parallel(workload: WorkloadSpec, cluster: Cluster, strategy: DataParallelSpec,
                          cache: CostCache) -> Compiled:
    w = strategy.workers
    nodes = cluster.gpus_for(w)
    global_batch = workload.batch * w if strategy.scaling == "weak" else workload.batch
    if strategy.zero_stage:
        return _through_parallel3d(workload, cluster, strategy, cache, global_batch)
    if global_batch < w * strategy.accumulation:
        from simulator.errors import SpecError
        raise SpecError(f"a global batch of {global_batch} cannot give {w} workers "
                        f"{strategy.accumulation} microbatch(es) each", field="workload.batch",
                        value=workload.batch)
    per_worker = split_batch(global_batch, w)
    tg = TaskGraph(ranks=w, meta={"strategy": "data_parallel"})
    scale = DTYPE_BYTES[strategy.resolved_grad_dtype(workload.dtype)] / DTYPE_BYTES[workload.dtype]
    grads = [g * scale for g in cache.grad_bytes()]
    groups = buckets(grads, strategy.bucket_bytes) if strategy.overlap else None
    everyone = tuple(range(w))
    updates = [None] * w
    for it in range(strategy.iterations):
        ready_ops: list[dict[int, int]] = []
        last_ops: list[int] = []
        for r in range(w):
            device = cluster.device_of(nodes[r])
            for mb, mb_batch in enumerate(split_batch(per_worker[r], strategy.accumulation)):
                costs = cache.costs(mb_batch, device)
                deps = (updates[r],) if updates[r] is not None and mb == 0 else ()
                emit_forward(tg, r, costs, iteration=it, microbatch=mb, deps=deps)
                bwd, ready = emit_backward(tg, r, costs, iteration=it, microbatch=mb)
            ready_ops.append(ready)
            last_ops.append(bwd[-1])
        reductions = []
        if w > 1:
            if groups is None:
                reductions.append(tg.collective("allreduce", everyone, sum(grads),
                                                algorithm=strategy.algorithm, deps=last_ops,
                                                name="gradients", phase="allreduce",
                                                iteration=it))
            else:
                for b, layers in enumerate(groups):
                    deps = [ready_ops[r][layers[-1]] for r in range(w)]
                    reductions.append(tg.collective(
                        "allreduce", everyone, sum(grads[i] for i in layers),
                        algorithm=strategy.algorithm, deps=deps, name=f"bucket{b}",
                        phase="allreduce", iteration=it))
        for r in range(w):
            device = cluster.device_of(nodes[r])
            update_s = cache.costs(per_worker[r], device).update_s
            updates[r] = tg.compute(r, update_s, deps=reductions or (last_ops[r],),
                                    name="optimizer", phase="update", iteration=it)
    memory = data_parallel_memory(
        workload, cluster, nodes,
        [split_batch(per_worker[r], strategy.accumulation)[0] for r in range(w)], cache.graph,
        zero_stage=strategy.zero_stage)
    # every worker runs the same program: one representative, checked by simulator.replicas
    return Compiled(taskgraph=tg, rank_nodes=nodes, global_batch=global_batch,
                    iteration_ops=_iteration_ends(tg),
                    extra={"memory": memory, "replicas": [0] * w})


def _through_parallel3d(workload: WorkloadSpec, cluster: Cluster, strategy: DataParallelSpec,
                        cache: CostCache, global_batch: int) -> Compiled:
    """ZeRO data parallelism as ``parallel3d`` with ``tp = pp = 1`` (see the module docstring)."""
    from simulator.errors import SpecError
    from simulator.strategies.parallel3d import compile_parallel3d
    from simulator.strategies.parallel3d_spec import Parallel3DSpec
    w, m = strategy.workers, strategy.accumulation
    if global_batch % (w * m):
        raise SpecError(f"with ZeRO, a global batch of {global_batch} must split evenly into "
                        f"{w} workers x {m} microbatches", field="workload.batch",
                        value=workload.batch)
    spec = Parallel3DSpec(workers=w, tp=1, pp=1, dp=w, microbatches=m,
                          overlap_dp=strategy.overlap, bucket_bytes=strategy.bucket_bytes,
                          dp_algorithm=strategy.algorithm, zero_stage=strategy.zero_stage,
                          iterations=strategy.iterations,
                          grad_dtype=strategy.resolved_grad_dtype(workload.dtype))
    compiled = compile_parallel3d(dataclasses.replace(workload, batch=global_batch), cluster,
                                  spec, cache)
    compiled.taskgraph.meta["strategy"] = "data_parallel"
    return compiled


def _iteration_ends(tg: TaskGraph) -> dict[int, list[int]]:
    """The ops whose completion ends each iteration: every rank's optimizer step."""
    ends: dict[int, list[int]] = {}
    for op in tg.ops:
        if op.phase == "update":
            ends.setdefault(op.iteration, []).append(op.id)
    return ends
