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
from typing import Any

from simulator.cluster import Cluster
from simulator.collectives import algorithms
from simulator.costmodel import DTYPE_BYTES
from simulator.errors import SpecError, UnknownNameError
from simulator.specs import WorkloadSpec
from simulator.strategies.common import CostCache, buckets
from simulator.strategies.model_parallel import (ResplitCache, activation_bytes, check_int,
                                                 is_input)
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


@register("hybrid", HybridSpec)
def compile_hybrid(workload: WorkloadSpec, cluster: Cluster, strategy: HybridSpec,
                   cache: CostCache) -> Compiled:
    b = _Build(workload, cluster, strategy, cache)
    emit = _emit_all if strategy.fc_batch == "all" else _emit_sequential
    ends = {it: emit(b, it) for it in range(strategy.iterations)}
    return Compiled(taskgraph=b.tg, rank_nodes=b.nodes, global_batch=b.k * b.b,
                    iteration_ops=ends,
                    extra={"fc_batch": strategy.fc_batch, "stages": b.st})


def _emit_all(b: _Build, it: int) -> list[int]:
    """One iteration with the MP layers on all K*B examples at once."""
    fwd: dict[tuple[int, int], int] = {}
    exch: dict[tuple[str, Any], int] = {}
    mp_or_post = set(b.st.mp) | set(b.st.post)
    for i in [i for i in range(len(b.layers)) if not is_input(b.layers[i])]:
        layer = b.layers[i]
        costs = b.dp_costs if layer.split is None else b.mp_costs
        deps = []
        if b.k > 1 and i in mp_or_post:
            for p in b.parents(i):
                key = _forward_exchange(b, i, p)
                if key is None:
                    continue
                if key not in exch:
                    exch[key] = _emit_forward_exchange(b, key, p, fwd, it)
                if exch[key] not in deps:
                    deps.append(exch[key])
        for r in b.ranks(i):
            fwd[(r, i)] = b.compute(r, i, "forward", costs, deps=deps, it=it)
    bd: dict[tuple[int, int], int] = {}
    ready: dict[tuple[int, int], int] = {}
    back: dict[tuple[str, Any], int] = {}
    for i in [i for i in range(len(b.layers) - 1, -1, -1) if not is_input(b.layers[i])]:
        layer = b.layers[i]
        costs = b.dp_costs if layer.split is None else b.mp_costs
        deps = []
        if b.k > 1:
            for c in b.children(i):
                key = _forward_exchange(b, c, i)
                if key is None:
                    continue
                if key not in back:
                    back[key] = _emit_backward_exchange(b, key, i, bd, it)
                if back[key] not in deps:
                    deps.append(back[key])
        for r in b.ranks(i):
            bd[(r, i)], ready[(r, i)] = b.backward(r, i, costs, deps, it)
    last = [max(op for (q, _), op in ready.items() if q == r) for r in b.everyone]
    return b.allreduce_and_update(ready, last, it)


def _forward_exchange(b: _Build, i: int, p: int) -> tuple[str, Any] | None:
    """The exchange layer ``i`` needs to read parent ``p`` ("all" variant), or None if local."""
    layer, parent = b.layers[i], b.layers[p]
    if layer.split is not None and parent.split is None:
        return ("in", p)                        # conv output -> every MP split
    if parent.split is not None and parent.split != layer.split:
        if layer.split is None:
            return ("out", b.base(p))           # MP outputs -> the head on every worker
        return ("mp", b.base(p))                # @all inside the block
    return None


def _emit_forward_exchange(b: _Build, key, p: int, fwd, it: int) -> int:
    kind, what = key
    if kind == "in":
        deps = [fwd[(r, p)] for r in b.everyone if (r, p) in fwd]
        return b.collective("allgather", b.k * b.dp_bytes[p], deps, it=it,
                            name=b.layers[p].name, phase="boundary")
    group = b.st.groups[what]
    deps = [fwd[(b.layers[g].split, g)] for g in group]
    if kind == "mp":
        return b.collective("allgather", b.k * b.mp_bytes[p], deps, it=it, name=what,
                            phase="exchange")
    return b.collective("alltoall", b.mp_bytes[p], deps, it=it, name=what, phase="boundary",
                        algorithm="direct")


def _emit_backward_exchange(b: _Build, key, i: int, bd, it: int) -> int:
    """The reverse of a forward exchange: gradients back to the producer(s) of ``i``."""
    kind, what = key
    producers = [i] if kind == "in" else list(b.st.groups[what])
    deps = []
    for g in producers:
        for c in b.children(g):
            if _forward_exchange(b, c, g) == key or (kind == "mp" and c in b.st.mp):
                deps += [bd[(r, c)] for r in b.ranks(c)]
    name = b.layers[i].name if kind == "in" else what
    if kind == "in":
        return b.collective("reducescatter", b.k * b.dp_bytes[i], deps, it=it, name=name,
                            phase="boundary_grad")
    if kind == "mp":
        return b.collective("reducescatter", b.k * b.mp_bytes[i], deps, it=it, name=name,
                            phase="exchange_grad")
    return b.collective("alltoall", b.mp_bytes[i], deps, it=it, name=name,
                        phase="boundary_grad", algorithm="direct")


def _emit_sequential(b: _Build, it: int) -> list[int]:
    """One iteration with the MP layers taking the K batches of B one after another."""
    fwd: dict[tuple[int, int], int] = {}
    for i in b.st.pre:
        for r in b.everyone:
            fwd[(r, i)] = b.compute(r, i, "forward", b.dp_costs, it=it)
    ready: dict[tuple[int, int], int] = {}
    reduced: dict[tuple[int, int], int] = {}     # (owner j, conv-stage layer) -> reduce op
    for j in range(b.k):
        _sequential_batch(b, j, fwd, ready, reduced, it)
    for i in reversed(b.st.pre):
        for r in b.everyone:
            deps = (reduced[(r, i)],) if (r, i) in reduced else ()
            _, ready[(r, i)] = b.backward(r, i, b.dp_costs, deps, it)
    last = [max(op for (q, _), op in ready.items() if q == r) for r in b.everyone]
    return b.allreduce_and_update(ready, last, it)


def _sequential_batch(b: _Build, j: int, fwd, ready, reduced, it: int) -> None:
    """Batch j (owned by worker j) through the MP layers and the head, forward and backward."""
    k, mb = b.k, j
    sent: dict[int, int] = {}
    for p in b.st.inputs:
        if k > 1:
            deps = (fwd[(j, p)],) if (j, p) in fwd else ()
            sent[p] = b.collective("broadcast", b.dp_bytes[p], deps, it=it, root=j,
                                   name=b.layers[p].name, phase="boundary", stream="boundary",
                                   algorithm="chain")
    out: dict[tuple[int, int], int] = {}
    gathered: dict[str, int] = {}
    for i in b.st.mp:
        r = b.layers[i].split
        deps = []
        for p in b.parents(i):
            if p in sent and r != j:
                deps.append(sent[p])
            key = _forward_exchange(b, i, p)
            if k > 1 and key is not None and key[0] == "mp":
                if key[1] not in gathered:
                    group = b.st.groups[key[1]]
                    gathered[key[1]] = b.collective(
                        "allgather", k * b.mp_bytes[p],
                        [out[(b.layers[g].split, g)] for g in group], it=it, name=key[1],
                        phase="exchange")
                if gathered[key[1]] not in deps:
                    deps.append(gathered[key[1]])
        out[(r, i)] = b.compute(r, i, "forward", b.mp_costs, deps=deps, it=it, microbatch=mb)
    # the head on worker j: gather the MP outputs of batch j, forward, backward, scatter back
    moved: dict[int, int] = {}
    for i in b.st.post:
        deps = []
        for p in b.parents(i):
            if b.layers[p].split is not None and b.layers[p].split != j:
                if p not in moved:
                    moved[p] = b.tg.transfer(b.layers[p].split, j, b.mp_bytes[p],
                                             deps=(out[(b.layers[p].split, p)],),
                                             stream=f"to{j}", name=b.layers[p].name,
                                             phase="boundary", iteration=it, microbatch=mb)
                deps.append(moved[p])
        out[(j, i)] = b.compute(j, i, "forward", b.dp_costs, deps=deps, it=it, microbatch=mb)
    bd: dict[tuple[int, int], int] = {}
    for i in reversed(b.st.post):
        bd[(j, i)], ready[(j, i)] = b.backward(j, i, b.dp_costs, (), it, mb)
    scattered: dict[int, int] = {}
    reduced_mp: dict[str, int] = {}
    for i in reversed(b.st.mp):
        r = b.layers[i].split
        deps = []
        for c in b.children(i):
            if c in b.st.post and r != j:
                if i not in scattered:
                    heads = [bd[(j, h)] for h in b.children(i) if h in b.st.post]
                    scattered[i] = b.tg.transfer(j, r, b.mp_bytes[i], deps=heads,
                                                 stream=f"to{r}", name=b.layers[i].name,
                                                 phase="boundary_grad", iteration=it,
                                                 microbatch=mb)
                deps.append(scattered[i])
            elif k > 1 and _forward_exchange(b, c, i) is not None and c not in b.st.post:
                base = b.base(i)
                if base not in reduced_mp:
                    users = [bd[(b.layers[c2].split, c2)] for g in b.st.groups[base]
                             for c2 in b.children(g) if c2 in b.st.mp]
                    reduced_mp[base] = b.collective("reducescatter", k * b.mp_bytes[i], users,
                                                    it=it, name=base, phase="exchange_grad")
                if reduced_mp[base] not in deps:
                    deps.append(reduced_mp[base])
        bd[(r, i)], _ = b.backward(r, i, b.mp_costs, deps, it, mb)
    if k > 1:
        for p in b.st.inputs:
            if is_input(b.layers[p]):
                continue
            users = [bd[(b.layers[c].split, c)] for c in b.children(p) if c in b.st.mp]
            reduced[(j, p)] = b.collective("reduce", b.dp_bytes[p], users, it=it, root=j,
                                           name=b.layers[p].name, phase="boundary_grad",
                                           algorithm="chain")
    for r in b.everyone:
        b.tg.compute(r, b.mp_update_s[r], name="optimizer_mp", phase="update_mp",
                     iteration=it, microbatch=mb)
