"""The ``parallel3d`` compiler: tensor x pipeline x data parallelism into a task graph.

The spec and the rank layout are in :mod:`~simulator.strategies.parallel3d_spec`; this module
turns them into per-rank work: the microbatch size, the tensor-parallel plan
(:mod:`~simulator.strategies.tensor_parallel`), the cut into virtual stages
(:mod:`~simulator.strategies.partition`), per-layer times on each rank, the stage programs
(:mod:`~simulator.strategies.programs`), the bytes crossing each stage boundary, and then lets
:class:`~simulator.strategies.pipeline_emit.Emitter` emit every iteration. See
``docs/PARALLELISM.md`` for the model and its limits.

Per-rank compute: each layer's phase time at the microbatch size. A tensor-parallel layer does
``1/tp`` of its work (FLOPs and bytes). A cost model with ``work_time_s`` (the roofline) prices
that reduced work itself, so a model that is not linear in the work would time the smaller
product as such; the roofline is linear (``max(F/P, B/W)`` scales with the work), so there it is
exactly ``1/tp`` of the layer's time. Cost models that only know whole layers (measured or
learned per-layer times, Paleo's) get ``1/tp`` of the layer's time.
"""
from __future__ import annotations

from simulator.cluster import Cluster
from simulator.costmodel import DTYPE_BYTES
from simulator.errors import SpecError
from simulator.specs import WorkloadSpec
from simulator.strategies.common import CostCache
from simulator.strategies.parallel3d_spec import Parallel3DSpec
from simulator.strategies.partition import partition_units, split_units
from simulator.strategies.pipeline_emit import Emitter, Plan
from simulator.strategies.programs import LayerTimes, build_program
from simulator.strategies.registry import Compiled, register
from simulator.strategies.schedules import emission_order, schedule
from simulator.memory.states import local_layer_params
from simulator.strategies.tensor_parallel import tensor_parallel_plan
from simulator.replicas import translations
from simulator.taskgraph import TaskGraph
from workloads.ops import PHASES, Work


@register("parallel3d", Parallel3DSpec)
def compile_parallel3d(workload: WorkloadSpec, cluster: Cluster, strategy: Parallel3DSpec,
                       cache: CostCache) -> Compiled:
    s = strategy
    nodes = cluster.gpus_for(s.workers)
    _check_tp_groups(cluster, nodes, s)
    m, b = microbatching(workload.batch, s)
    graph = cache.graph(b)
    dtype_bytes = DTYPE_BYTES[workload.dtype]
    plan = tensor_parallel_plan(graph, s.tp, sequence_parallel=s.sequence_parallel,
                                dtype=workload.dtype)
    units = partition_units(graph)
    again = recomputed(graph, s.recompute)
    devices = [cluster.device_of(node) for node in nodes]
    times = {}

    def times_on(device) -> LayerTimes:
        hit = times.get(device.name)
        if hit is None:
            hit = times[device.name] = layer_times(cache, b, device, plan, workload.dtype)
        return hit

    t0 = times_on(devices[0])
    unit_costs = [sum(t0.forward_s[i] * (2 if again[i] else 1) + t0.backward_data_s[i]
                      + t0.backward_filter_s[i] for i in unit.layers) for unit in units]
    V = s.virtual_stages
    counts = split_units(unit_costs, V, s.partition, s.stage_layers)
    stage_units: list[list[int]] = []
    start = 0
    for c in counts:
        stage_units.append(list(range(start, start + c)))
        start += c
    stage_of = [0] * len(graph.layers)
    for j, ids in enumerate(stage_units):
        for u in ids:
            for i in units[u].layers:
                stage_of[i] = j
    # parameters held by one tensor-parallel rank (the memory model's count: split layers hold
    # 1/tp, row-parallel biases and unsplit layers whole)
    grad_bytes = [local_layer_params(layer, s.tp) * dtype_bytes for layer in graph.layers]
    tied = _tied(graph, stage_of, grad_bytes, s.pp)
    for owner, user, nbytes in tied:  # the last stage keeps its own copy of tied weights
        if owner % s.pp != user % s.pp:
            grad_bytes[_user_layer(graph, owner, user, stage_of)] += nbytes
    marks = s.zero_stage == 3 and s.dp > 1
    programs_by = {}
    for device in devices:
        if device.name not in programs_by:
            lt = times_on(device)
            programs_by[device.name] = [
                build_program(graph, [units[u].layers for u in stage_units[j]], stage_units[j],
                              plan, lt, recompute=again, recompute_comm=s.recompute == "full",
                              grad_bytes=grad_bytes, granularity=s.granularity, unit_marks=marks)
                for j in range(V)]
    programs = []
    for r, device in enumerate(devices):
        k = r // (s.dp * s.tp)
        progs = programs_by[device.name]
        programs.append([progs[c * s.pp + k] for c in range(s.chunks)])
    send, gather = boundary_bytes(graph, stage_of, plan, V, s, dtype_bytes)
    rank_grads = [sum(sum(g for _, _, g in p.grad_ready) for p in programs[r])
                  for r in range(s.workers)]
    update_s = []
    for r, device in enumerate(devices):
        params = rank_grads[r] / dtype_bytes
        if s.zero_stage >= 1:
            params = -(-params // s.dp)
        update_s.append(cache.model.update_time_s(int(params), device, dtype=workload.dtype,
                                                  optimizer=workload.optimizer))
    unit_bytes = {u: sum(grad_bytes[i] for i in unit.layers) for u, unit in enumerate(units)}
    grad_scale = DTYPE_BYTES[s.resolved_grad_dtype(workload.dtype)] / dtype_bytes
    emit_plan = Plan(spec=s, microbatches=m, programs=programs, send_bytes=send,
                     gather_bytes=gather, grad_bytes=rank_grads, update_s=update_s,
                     unit_bytes=unit_bytes, unit_names=[u.name for u in units], tied=tied,
                     grad_scale=grad_scale)
    if s.tp_comm == "isolated" and s.tp > 1:
        from simulator.strategies.isolated import price_tp_collectives
        emit_plan.prices = price_tp_collectives(cluster, nodes, s, programs, gather)
    rep_of_rank = translations((s.pp, s.dp, s.tp), (1, 2))
    refusal = representative_refusal(cluster, s, emit_plan, [d.name for d in devices],
                                     rep_of_rank)
    emit_plan.reps = refusal is None
    actions = schedule(s.schedule, s.pp, m, s.chunks)
    order = emission_order(actions, s.pp, s.chunks)
    hyper = graph.spec.raw.get("transformer") if graph.spec.raw else None
    tg = TaskGraph(ranks=s.workers, meta={
        "strategy": "parallel3d", "tp": s.tp, "pp": s.pp, "dp": s.dp, "chunks": s.chunks,
        "microbatches": m, "micro_batch": b, "schedule": s.schedule, "recompute": s.recompute,
        "grad_dtype": s.resolved_grad_dtype(workload.dtype),
        "stage_units": [[units[u].name for u in ids] for ids in stage_units],
        "transformer": dict(hyper) if isinstance(hyper, dict) else None})
    emitter = Emitter(tg, emit_plan)
    for it in range(s.iterations):
        emitter.iteration(it, actions, order)
    extra = {"metrics": pipeline_metrics_hook}
    if emit_plan.reps:
        emitter.normalise()
        extra["folded"] = folded_emission(tg, rep_of_rank, emitter.mirrors)
    elif refusal:
        extra["replicas_refused"] = refusal
    from simulator.strategies.parallel3d_memory import memory_table_3d
    table = memory_table_3d(workload, cluster, nodes, s, graph, units, stage_units, programs,
                            m, extra_params=_extra_params(tied, s, dtype_bytes))
    extra["memory"] = table  # simulate() checks it fits before the engine runs
    # candidate representatives: one rank per stage (data- and tensor-parallel coordinates 0);
    # simulator.replicas proves or refuses it
    extra["replicas"] = rep_of_rank.tolist()
    return Compiled(taskgraph=tg, rank_nodes=nodes, global_batch=workload.batch,
                    iteration_ops=emitter.iteration_ends, extra=extra)


def representative_refusal(cluster: Cluster, s: Parallel3DSpec, plan: Plan, devices,
                           rep_of_rank) -> str | None:
    """Why the stages' ranks cannot be emitted as one representative each, or ``None``.

    Emitting representatives alone (:class:`~simulator.strategies.pipeline_emit.Emitter` with
    ``reps``) skips the full task graph, so the symmetry :func:`simulator.replicas.fold` would
    prove on it is proved here on what the emitter replays: every rank of a stage has the same
    device, the very same stage programs, optimizer step, gradient bytes and (``tp_comm:
    isolated``) the same price of every tensor-parallel collective, to the last bit; the
    emitter treats every position alike given these (a test compares it with the fold of the
    full emission). ``None`` also needs the system's fidelity to ask for representatives.
    """
    from simulator.replicas import AUTO_MIN_RANKS
    fidelity = cluster.spec.fidelity
    if fidelity == "full" or (fidelity == "auto" and s.workers < AUTO_MIN_RANKS):
        return ""  # not asked for: not a refusal
    if s.zero_stage == 3:
        return "ZeRO-3's parameter prefetch is emitted for every rank"
    if s.workers == s.pp:
        return ""  # one rank per stage already
    for r in range(s.workers):
        o = int(rep_of_rank[r])
        if r == o:
            continue
        if devices[r] != devices[o]:
            return f"not symmetric: rank {r} runs on a {devices[r]}, its representative {o} on " \
                   f"a {devices[o]}"
        if any(a is not b for a, b in zip(plan.programs[r], plan.programs[o])):
            return f"not symmetric: rank {r} replays other stage programs than rank {o}"
        if plan.update_s[r] != plan.update_s[o] or plan.grad_bytes[r] != plan.grad_bytes[o]:
            return f"not symmetric: rank {r}'s optimizer step differs from rank {o}'s"
    if plan.prices:
        tp = s.tp
        first = {}
        for (collective, nbytes, group), seconds in plan.prices.items():
            k = group[0] // (s.dp * tp)
            rep_group = tuple(s.rank(k, 0, t) for t in range(tp))
            want = plan.prices.get((collective, nbytes, rep_group))
            if want != seconds:
                return (f"not symmetric: the {collective} of {nbytes:.0f} bytes takes {seconds!r} "
                        f"s over ranks {group[0]}..{group[-1]}, {want!r} s over "
                        f"{rep_group[0]}..{rep_group[-1]}")
    return None


def folded_emission(tg: TaskGraph, rep_of_rank, mirrors) -> "Folded":
    """The :class:`~simulator.replicas.Folded` form of a representative emission: the graph
    is already folded (each op its own representative)."""
    import numpy as np
    from simulator.replicas import Folded
    rep = np.asarray(rep_of_rank, dtype=np.int64)
    arrivals = {op.id: sum(1 for r in op.group if rep[r] == r) for op in tg.ops
                if op.kind == "collective"}
    n = len(tg.ops)
    return Folded(taskgraph=tg, original=range(n), rep_of_op=np.arange(n, dtype=np.int64),
                  rep_of_rank=rep, mirrors=mirrors, arrivals=arrivals, emitted=True)


def pipeline_metrics_hook(ops, iterations, metrics, meta):
    from simulator.strategies.parallel3d_metrics import pipeline_metrics
    return pipeline_metrics(ops, iterations, metrics, meta)


def microbatching(batch: int, s: Parallel3DSpec) -> tuple[int, int]:
    """``(microbatches per pipeline, samples per microbatch)`` from the global ``batch``."""
    per_pipeline, rest = divmod(batch, s.dp)
    if rest or not per_pipeline:
        raise SpecError(f"the global batch must be a positive multiple of dp={s.dp}",
                        field="workload.batch", value=batch)
    m, b = s.microbatches, s.micro_batch
    if m is None and b is None:
        m = 1
    if m is None:
        m, rest = divmod(per_pipeline, b)
        if rest or not m:
            raise SpecError(f"a global batch of {batch} over dp={s.dp} pipelines is not a "
                            f"multiple of micro_batch={b}", field="workload.batch", value=batch)
    elif b is None:
        b, rest = divmod(per_pipeline, m)
        if rest or not b:
            raise SpecError(f"a global batch of {batch} over dp={s.dp} pipelines does not split "
                            f"into {m} microbatches", field="workload.batch", value=batch)
    elif m * b != per_pipeline:
        raise SpecError(f"dp x microbatches x micro_batch = {s.dp * m * b} must equal the global "
                        "batch", field="workload.batch", value=batch)
    if s.schedule == "interleaved" and m % s.pp:
        raise SpecError(f"the interleaved schedule takes microbatches in groups of pp={s.pp}",
                        field="strategy.microbatches", value=m)
    return m, b


def recomputed(graph, policy: str) -> list[bool]:
    """Per layer, whether its forward runs again before its backward: ``full`` every layer
    inside a Block (every non-input layer in a net without blocks), ``selective`` the attention
    cores."""
    layers = graph.layers
    if policy == "none":
        return [False] * len(layers)
    if policy == "selective":
        return [layer.type == "Attention" for layer in layers]
    has_blocks = any(layer.block for layer in layers)
    return [bool(layer.block) if has_blocks else layer.op_class != "data" for layer in layers]


def layer_times(cache: CostCache, batch: int, device, plan, dtype: str) -> LayerTimes:
    """Seconds per layer and phase on one rank, and its FLOPs, with the tensor-parallel share."""
    base = cache.costs(batch, device)
    model = cache.model
    rescost = hasattr(model, "work_time_s")
    phase_times = {"forward": list(base.forward_s), "backward_data": list(base.backward_data_s),
                   "backward_filter": list(base.backward_filter_s)}
    flops = []
    for i, (layer, entry) in enumerate(zip(base.graph.layers, plan)):
        k = entry.factor
        flops.append({p: layer.work[p].flops * k for p in PHASES})
        if k == 1:
            continue
        for p in PHASES:
            if rescost:
                w = layer.work[p]
                phase_times[p][i] = model.work_time_s(
                    Work(w.flops * k, w.read_elems * k, w.write_elems * k), layer.op_class,
                    device, dtype=dtype)
            else:
                phase_times[p][i] *= k
    return LayerTimes(forward_s=phase_times["forward"],
                      backward_data_s=phase_times["backward_data"],
                      backward_filter_s=phase_times["backward_filter"], flops=flops)


def boundary_bytes(graph, stage_of, plan, stages: int, s: Parallel3DSpec, dtype_bytes: int
                   ) -> tuple[list[float], list[float]]:
    """Per boundary ``j -> j+1``: bytes each rank sends, and bytes its receiving group
    all-gathers (scatter/gather of whole tensors; 0 if none).

    A tensor crosses every boundary between its producer's stage and its last consumer's stage
    (relayed stage by stage); ``Input`` layers are read by every stage locally.
    """
    send = [0.0] * max(stages - 1, 0)
    gather = [0.0] * max(stages - 1, 0)
    index = {layer.name: i for i, layer in enumerate(graph.layers)}
    for i, layer in enumerate(graph.layers):
        if layer.op_class == "data":
            continue
        consumers = [stage_of[index[c]] for c in graph.children[layer.name]]
        far = max(consumers, default=stage_of[i])
        nbytes = layer.output_elems * dtype_bytes
        for j in range(stage_of[i], far):
            if plan[i].split or s.sequence_parallel:
                send[j] += nbytes / s.tp
            elif s.scatter_gather and s.tp > 1:
                send[j] += nbytes / s.tp
                gather[j] += nbytes
            else:
                send[j] += nbytes
    return send, gather


def _tied(graph, stage_of, grad_bytes, pp) -> list[tuple[int, int, float]]:
    """``(owner stage, user stage, bytes)`` of weights shared between layers (``tied_to``)."""
    index = {layer.name: i for i, layer in enumerate(graph.layers)}
    out = []
    for i, layer in enumerate(graph.layers):
        owner = layer.attrs.get("tied_to")
        if owner and owner in index:
            out.append((stage_of[index[owner]], stage_of[i], grad_bytes[index[owner]]))
    return out


def _user_layer(graph, owner_stage, user_stage, stage_of) -> int:
    for i, layer in enumerate(graph.layers):
        if stage_of[i] == user_stage and layer.attrs.get("tied_to"):
            return i
    raise AssertionError("tied layer not found")  # pragma: no cover


def _extra_params(tied, s, dtype_bytes) -> dict[int, float]:
    """Parameters a pipeline device holds beyond its layers' own: tied-weight copies."""
    out: dict[int, float] = {}
    for owner, user, nbytes in tied:
        if owner % s.pp != user % s.pp:
            out[user % s.pp] = out.get(user % s.pp, 0.0) + nbytes / dtype_bytes
    return out


def _check_tp_groups(cluster: Cluster, nodes, s: Parallel3DSpec) -> None:
    if s.tp == 1 or not s.tp_inside_server:
        return
    for start in range(0, len(nodes), s.tp):
        servers = {cluster.server_of(n) for n in nodes[start:start + s.tp]}
        if len(servers) > 1:
            raise SpecError(f"tensor-parallel group of ranks {start}..{start + s.tp - 1} spans "
                            f"{len(servers)} servers; tp must fit in a server (or set "
                            "tp_inside_server: false)", source=cluster.topology,
                            field="strategy.tp", value=s.tp)


__all__ = ["Parallel3DSpec", "compile_parallel3d", "microbatching", "layer_times",
           "recomputed", "boundary_bytes"]
