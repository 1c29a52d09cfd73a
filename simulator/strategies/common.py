"""Pieces every strategy compiler uses: per-layer durations, and emitting a worker's forward and
backward passes as compute operations."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

from simulator.catalog import Device
from simulator.costmodel import DTYPE_BYTES, CostModel, get_cost_model
from simulator.specs import WorkloadSpec
from simulator.taskgraph import TaskGraph
from workloads import LayerGraph, load_net


@dataclass(frozen=True, eq=False)
class LayerCosts:
    """Seconds per layer and phase for one net at one batch on one device, and the optimizer
    step of all its parameters."""

    graph: LayerGraph
    forward_s: tuple[float, ...]
    backward_data_s: tuple[float, ...]
    backward_filter_s: tuple[float, ...]
    update_s: float

    @property
    def compute_s(self) -> float:
        return sum(self.forward_s) + sum(self.backward_data_s) + sum(self.backward_filter_s)

    @cached_property
    def forward_template(self):
        return forward_template(self)

    @cached_property
    def backward_template(self):
        return backward_template(self)


def split_batch(total: int, parts: int) -> list[int]:
    """``total`` samples over ``parts`` workers as evenly as possible (the first get one more)."""
    q, r = divmod(total, parts)
    return [q + 1 if i < r else q for i in range(parts)]


class CostCache:
    """Layer costs per (batch, device), computed once per simulation."""

    def __init__(self, workload: WorkloadSpec, cost_model: str | CostModel) -> None:
        self.workload = workload
        self.model = get_cost_model(cost_model) if isinstance(cost_model, str) else cost_model
        self._graph = lru_cache(maxsize=None)(self._load)
        self._costs: dict[tuple[int, str], LayerCosts] = {}

    def _load(self, batch: int) -> LayerGraph:
        return load_net(self.workload.net, batch=batch,
                        unknown_layers=self.workload.unknown_layers)

    def graph(self, batch: int) -> LayerGraph:
        return self._graph(batch)

    def costs(self, batch: int, device: Device) -> LayerCosts:
        key = (batch, device.name)
        hit = self._costs.get(key)
        if hit is None:
            g = self.graph(batch)
            dtype, m, opt = self.workload.dtype, self.model, self.workload.optimizer
            if hasattr(m, "graph_costs"):  # models that price a whole net at once (Paleo)
                f, bd, bf, up = m.graph_costs(g, device, dtype=dtype, optimizer=opt)
            else:
                f = tuple(m.phase_time_s(l, "forward", device, dtype=dtype) for l in g.layers)
                bd = tuple(m.phase_time_s(l, "backward_data", device, dtype=dtype)
                           for l in g.layers)
                bf = tuple(m.phase_time_s(l, "backward_filter", device, dtype=dtype)
                           for l in g.layers)
                up = m.update_time_s(g.total_params, device, dtype=dtype, optimizer=opt)
            hit = self._costs[key] = LayerCosts(g, f, bd, bf, up)
        return hit

    def grad_bytes(self, batch: int = 1) -> list[int]:
        """Gradient bytes per layer (parameters x dtype size)."""
        size = DTYPE_BYTES[self.workload.dtype]
        return [layer.params * size for layer in self.graph(batch).layers]


def forward_template(costs: LayerCosts) -> list[tuple[float, str, str, float]]:
    """``(seconds, layer, phase, flops)`` of a forward pass in topological order; layers that
    cost nothing are left out, but the pass keeps at least one op."""
    out = [(t, layer.name, "forward", layer.work["forward"].flops)
           for layer, t in zip(costs.graph.layers, costs.forward_s) if t > 0]
    return out or [(0.0, costs.graph.layers[0].name, "forward", 0.0)]


def backward_template(costs: LayerCosts) -> tuple[list[tuple[float, str, str, float]],
                                                  dict[int, int]]:
    """The backward pass in reverse topological order (backward-data then backward-filter of
    each layer), and per layer index with parameters the position in it after which that
    layer's gradient is ready."""
    out: list[tuple[float, str, str, float]] = []
    ready: dict[int, int] = {}
    layers = costs.graph.layers
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        for phase, t in (("backward_data", costs.backward_data_s[i]),
                         ("backward_filter", costs.backward_filter_s[i])):
            if t > 0:
                out.append((t, layer.name, phase, layer.work[phase].flops))
        if layer.params and out:
            ready[i] = len(out) - 1
    if not out:
        out.append((0.0, "backward", "backward_data", 0.0))
    for i, layer in enumerate(layers):
        if layer.params and i not in ready:
            ready[i] = len(out) - 1
    return out, ready


def emit_forward(tg: TaskGraph, rank: int, costs: LayerCosts, *, iteration: int,
                 microbatch: int = 0, deps=()) -> list[int]:
    """Forward compute ops in topological order; the first waits for ``deps``."""
    return list(tg.compute_sequence(rank, costs.forward_template, iteration=iteration,
                                    microbatch=microbatch, deps=deps))


def emit_backward(tg: TaskGraph, rank: int, costs: LayerCosts, *, iteration: int,
                  microbatch: int = 0) -> tuple[list[int], dict[int, int]]:
    """Backward ops; returns their ids and, per layer with parameters, the op after which its
    gradient is ready."""
    template, ready = costs.backward_template
    ids = tg.compute_sequence(rank, template, iteration=iteration, microbatch=microbatch)
    return list(ids), {i: ids[pos] for i, pos in ready.items()}


def buckets(grad_bytes: list[int], bucket_bytes: float) -> list[list[int]]:
    """Layers with parameters grouped in backward order (last layer first) into buckets of at
    least ``bucket_bytes`` (the last bucket may be smaller), as PyTorch DDP groups gradients."""
    out: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i in range(len(grad_bytes) - 1, -1, -1):
        if grad_bytes[i] == 0:
            continue
        current.append(i)
        size += grad_bytes[i]
        if size >= bucket_bytes:
            out.append(current)
            current, size = [], 0
    if current:
        out.append(current)
    return out
