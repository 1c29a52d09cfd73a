"""Hybrid parallelism, Krizhevsky's "one weird trick" (arXiv:1404.5997, 2014): the
convolutional layers are data-parallel, the fully connected layers model-parallel.

The net says which is which: the copies of its ``ModelParallel`` block (Paleo's
``alexnet_owt_Kgpu`` / ``alex_v2_Kgpu`` files put fc6 and fc7 there) are the model-parallel
(MP) layers, copy ``@s`` on worker ``s``; every other layer is data-parallel (DP) and runs on
every worker on its own batch of ``B = workload.batch`` examples. The block is instantiated with
``workers`` splits whatever the file says (those files differ only in ``splits``), so one net
serves every K, and K = 1 is plain single-GPU training. DP layers before the block form the
*conv stage*, DP layers after it (fc8 and the softmax in those files) the *head*; the head
stays data-parallel, as Paleo's hybrid mode treats it.

Krizhevsky describes two ways to run the MP layers on the K*B examples of an iteration (his
Table 1 reports both); ``fc_batch`` picks one:

- ``all``: every worker all-gathers the conv stage's output of all K*B examples and runs its MP
  split on them at once; the head's input, the MP output of the worker's own B examples, comes
  back by an all-to-all. Backward mirrors it: an all-to-all of the head's input gradient, the
  MP backward on K*B examples, a reduce-scatter of the conv-output gradient (each worker keeps
  the sum for its own examples). The MP weights take one step per iteration.
- ``sequential``: the MP layers take the K batches of B one after another. For batch j, worker
  j broadcasts its conv output; every worker runs its split forward; worker j gathers the MP
  outputs, runs the head forward and backward and scatters the gradient back; every worker
  runs its split backward; the conv-output gradient is reduced onto worker j; the MP weights
  take a step (Krizhevsky's "FC batch size 128"). The broadcasts run on their own stream, so
  batch j+1's broadcast overlaps batch j's computation, the overlap his scheme is built for.

In both, the ``@all`` wiring inside the block is an all-gather (backward: a reduce-scatter),
each DP layer's gradients are all-reduced over the K workers as soon as they are ready
(``overlap``, grouped into buckets of ``bucket_bytes``; 0 = one per layer), on their own
stream, and each worker then applies the optimizer to its DP weights (and, for ``all``, to its
MP split). Boundary collectives use the ring (all-gather, reduce-scatter), the pipelined
chain (broadcast, reduce) and direct sends (all-to-all).

Paleo's closed form for this mode (:func:`simulator.paleo.model.hybrid_parallel`) sums the two
parts with a tree all-reduce and a pipelining correction; here every exchange is a flow on the
topology, so the PCIe tree's shared links and the overlap of gradients with computation show.
"""
from __future__ import annotations

from dataclasses import dataclass

from simulator.cluster import Cluster
from simulator.collectives import algorithms
from simulator.costmodel import DTYPE_BYTES
from simulator.errors import SpecError, UnknownNameError
from simulator.specs import WorkloadSpec
from simulator.strategies.common import CostCache, buckets
from simulator.strategies.model_parallel import (ResplitCache, activation_bytes, check_int,
                                                 is_input)
from simulator.memory.breakdown import training_memory
from simulator.memory.table import memory_table
from simulator.strategies.registry import Compiled, register
from simulator.taskgraph import TaskGraph
from workloads.graph import LayerGraph

FC_BATCHES = ("all", "sequential")


@dataclass(frozen=True, kw_only=True)
class HybridSpec:
    """Krizhevsky's hybrid parallelism over ``workers`` (K) workers, ``workload.batch`` (B)
    examples each, K*B per iteration (weak scaling).

    ``fc_batch``: ``all`` (the MP layers take all K*B examples at once) or ``sequential`` (K
    batches of B in turn). ``algorithm`` all-reduces the DP gradients, per bucket of
    ``bucket_bytes`` (0: one per layer) as they become ready when ``overlap`` is true, or all at
    once after the backward pass.
    """

    kind: str = "hybrid"
    workers: int = 1
    fc_batch: str = "all"
    algorithm: str = "ring"
    overlap: bool = True
    bucket_bytes: float = 0.0
    iterations: int = 2

    def __post_init__(self) -> None:
        check_int(self.workers, "strategy.workers")
        if self.fc_batch not in FC_BATCHES:
            raise UnknownNameError("fc_batch", str(self.fc_batch), FC_BATCHES,
                                   field="strategy.fc_batch")
        if self.algorithm not in algorithms("allreduce"):
            raise UnknownNameError("allreduce algorithm", str(self.algorithm),
                                   algorithms("allreduce"), field="strategy.algorithm")
        if not isinstance(self.overlap, bool):
            raise SpecError("must be true or false", field="strategy.overlap", value=self.overlap)
        b = self.bucket_bytes
        if not isinstance(b, (int, float)) or isinstance(b, bool) or not b >= 0:
            raise SpecError("must be a number >= 0", field="strategy.bucket_bytes", value=b)
        check_int(self.iterations, "strategy.iterations")

    @property
    def scaling(self) -> str:
        """Always ``weak``: each worker keeps its batch of B examples."""
        return "weak"


# -- the stages of the net ------------------------------------------------------------------

@dataclass(frozen=True)
class Stages:
    """Which layers are conv stage (``pre``), MP copies (``mp``) or head (``post``), and the
    exchanges between them: ``inputs`` (DP layers the MP layers read), ``groups`` (name
    without ``@s`` -> copy indices, for MP outputs read by other splits or by the head)."""

    pre: tuple[int, ...]
    mp: tuple[int, ...]
    post: tuple[int, ...]
    inputs: tuple[int, ...]
    groups: dict[str, tuple[int, ...]]


def stages(graph: LayerGraph, workers: int) -> Stages:
    """Classify the layers of ``graph`` (already split ``workers`` ways); wiring the hybrid
    scheme cannot run (a copy read by one other split only, the head feeding the MP layers)
    raises ``SpecError``."""
    index = {layer.name: i for i, layer in enumerate(graph.layers)}
    copies: dict[str, list[int]] = {}
    for i, layer in enumerate(graph.layers):
        if layer.split is not None:
            copies.setdefault(layer.name.rsplit("@", 1)[0], []).append(i)
    if not copies:
        raise SpecError("hybrid parallelism needs a net with a ModelParallel block",
                        source=graph.source, field="workload.net", value=graph.name)
    post: set[int] = set()
    inputs: set[int] = set()
    groups: dict[str, tuple[int, ...]] = {}
    for i, layer in enumerate(graph.layers):
        parents = [index[p] for p in layer.parents]
        if layer.split is None:
            if any(graph.layers[p].split is not None or p in post for p in parents):
                post.add(i)
        else:
            for p in parents:
                if p in post:
                    raise SpecError(f"model-parallel layer {layer.name!r} reads "
                                    f"{graph.layers[p].name!r}, which comes after the "
                                    "model-parallel stage; hybrid parallelism runs one "
                                    "data-parallel stage, one model-parallel stage, then the "
                                    "head", source=graph.source, field=f"layers.{layer.name}")
                if graph.layers[p].split is None:
                    inputs.add(p)
        for p in parents:
            other = graph.layers[p]
            if other.split is None or other.split == layer.split:
                continue
            base = other.name.rsplit("@", 1)[0]
            group = copies[base]
            if len(group) != workers or not set(group) <= set(parents):
                raise SpecError(f"layer {layer.name!r} reads copy {other.name!r} but not every "
                                f"copy of {base!r}; hybrid parallelism supports only @self and "
                                "@all wiring", source=graph.source, field=f"layers.{layer.name}")
            groups[base] = tuple(group)
    mp = tuple(i for i, layer in enumerate(graph.layers) if layer.split is not None)
    pre = tuple(i for i, layer in enumerate(graph.layers)
                if layer.split is None and i not in post and not is_input(layer))
    return Stages(pre=pre, mp=mp, post=tuple(sorted(post)), inputs=tuple(sorted(inputs)),
                  groups=groups)


# -- the compiler ---------------------------------------------------------------------------

class _Build:
    """State shared by the two variants while one task graph is emitted."""

    def __init__(self, workload: WorkloadSpec, cluster: Cluster, strategy: HybridSpec,
                 cache: CostCache) -> None:
        k, b = strategy.workers, workload.batch
        self.k, self.b, self.strategy, self.workload = k, b, strategy, workload
        self.nodes = cluster.gpus_for(k)
        cache = ResplitCache(cache, k)
        self.graph = cache.graph(b)
        self.layers = self.graph.layers
        self.index = {layer.name: i for i, layer in enumerate(self.layers)}
        self.st = stages(self.graph, k)
        mp_batch = k * b if strategy.fc_batch == "all" else b
        devices = [cluster.device_of(node) for node in self.nodes]
        self.dp_costs = [cache.costs(b, d) for d in devices]
        self.mp_costs = [cache.costs(mp_batch, d) for d in devices]
        dtype = workload.dtype
        self.dp_bytes = [activation_bytes(layer, dtype) for layer in self.layers]
        self.mp_bytes = [activation_bytes(layer, dtype) for layer in cache.graph(mp_batch).layers]
        size = DTYPE_BYTES[dtype]
        self.grads = [layer.params * size if layer.split is None else 0 for layer in self.layers]
        dp_params = sum(layer.params for layer in self.layers if layer.split is None)
        mp_params = [sum(layer.params for layer in self.layers if layer.split == r)
                     for r in range(k)]

        def update(params: int, r: int) -> float:
            return (cache.model.update_time_s(params, devices[r], dtype=dtype,
                                              optimizer=workload.optimizer) if params else 0.0)

        if strategy.fc_batch == "all":
            self.final_update_s = [update(dp_params + mp_params[r], r) for r in range(k)]
        else:
            self.final_update_s = [update(dp_params, r) for r in range(k)]
            self.mp_update_s = [update(mp_params[r], r) for r in range(k)]
        self.everyone = tuple(range(k))
        self.tg = TaskGraph(ranks=k, meta={"strategy": "hybrid", "fc_batch": strategy.fc_batch})

    # small helpers ---------------------------------------------------------------------
    def ranks(self, i: int) -> tuple[int, ...]:
        split = self.layers[i].split
        return self.everyone if split is None else (split,)

    def parents(self, i: int) -> list[int]:
        return [self.index[p] for p in self.layers[i].parents]

    def children(self, i: int) -> list[int]:
        return [self.index[c] for c in self.graph.children[self.layers[i].name]]

    def base(self, i: int) -> str:
        return self.layers[i].name.rsplit("@", 1)[0]

    def compute(self, r: int, i: int, phase: str, costs, *, deps=(), it: int,
                microbatch: int = 0) -> int:
        layer = self.layers[i]
        seconds = getattr(costs[r], f"{phase}_s")[i]
        return self.tg.compute(r, seconds, deps=deps, name=layer.name, phase=phase,
                               iteration=it, microbatch=microbatch,
                               flops=layer.work[phase].flops)

    def backward(self, r: int, i: int, costs, deps, it: int, microbatch: int = 0
                 ) -> tuple[int, int]:
        """Backward-data then (if it costs anything) backward-filter; returns both ids (the
        same id twice without a filter op)."""
        bd = self.compute(r, i, "backward_data", costs, deps=deps, it=it, microbatch=microbatch)
        bf = bd
        if costs[r].backward_filter_s[i] > 0:
            bf = self.compute(r, i, "backward_filter", costs, it=it, microbatch=microbatch)
        return bd, bf

    def collective(self, kind: str, nbytes: float, deps, *, it: int, name: str, phase: str,
                   root: int = 0, stream: str = "comm", algorithm: str = "ring",
                   microbatch: int = 0) -> int:
        group = tuple((root + q) % self.k for q in range(self.k))  # group[0] is the root
        return self.tg.collective(kind, group, nbytes, algorithm=algorithm, deps=deps,
                                  stream=stream, name=name, phase=phase, iteration=it,
                                  microbatch=microbatch)

    def allreduce_and_update(self, ready: dict[tuple[int, int], int], last: list[int],
                             it: int) -> list[int]:
        """All-reduce the DP gradients (per bucket as they are ready, or at once), then each
        worker's final optimizer step."""
        reductions: list[int] = []
        if self.k > 1 and sum(self.grads):
            s = self.strategy
            if s.overlap:
                for n, group in enumerate(buckets(self.grads, s.bucket_bytes)):
                    deps = [ready[(r, group[-1])] for r in self.everyone]
                    reductions.append(self.tg.collective(
                        "allreduce", self.everyone, sum(self.grads[i] for i in group),
                        algorithm=s.algorithm, deps=deps, stream="grads", name=f"bucket{n}",
                        phase="allreduce", iteration=it))
            else:
                reductions.append(self.tg.collective(
                    "allreduce", self.everyone, sum(self.grads), algorithm=s.algorithm,
                    deps=last, stream="grads", name="gradients", phase="allreduce",
                    iteration=it))
        return [self.tg.compute(r, self.final_update_s[r], deps=reductions, name="optimizer",
                                phase="update", iteration=it) for r in self.everyone]


def _memory(b: "_Build", cluster: Cluster, cache: CostCache):
    """Per worker: the data-parallel layers at B examples, and its own copy of the split block at
    the block's batch (K*B for ``all``, B for ``sequential``)."""
    mp_batch = b.k * b.b if b.strategy.fc_batch == "all" else b.b
    mp_graph = ResplitCache(cache, b.k).graph(mp_batch)
    dp_layers = [layer for layer in b.layers if layer.split is None]
    dtype, optimizer = b.workload.dtype, b.workload.optimizer
    dp = training_memory(dp_layers, dtype=dtype, optimizer=optimizer)
    rows = []
    for r, node in enumerate(b.nodes):
        mine = [layer for layer in mp_graph.layers if layer.split == r]
        mp = training_memory(mine, dtype=dtype, optimizer=optimizer)
        rows.append((r, node, cluster.device_of(node), dp + mp))
    return memory_table(rows)


@register("hybrid", HybridSpec)
def compile_hybrid(workload: WorkloadSpec, cluster: Cluster, strategy: HybridSpec,
                   cache: CostCache) -> Compiled:
    b = _Build(workload, cluster, strategy, cache)
    from simulator.strategies._hybrid_variants import emit_all, emit_sequential
    emit = emit_all if strategy.fc_batch == "all" else emit_sequential
    ends = {it: emit(b, it) for it in range(strategy.iterations)}
    memory = _memory(b, cluster, cache)
    return Compiled(taskgraph=b.tg, rank_nodes=b.nodes, global_batch=b.k * b.b,
                    iteration_ops=ends,
                    extra={"fc_batch": strategy.fc_batch, "stages": b.st, "memory": memory})
