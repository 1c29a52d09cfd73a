"""Model parallelism: every layer of the net runs on one device, and every activation that
crosses devices is moved over the topology.

Placement. By default the copies of a ``ModelParallel`` block go where Paleo put them (copy
``block/x@s`` on device ``s``) and every other layer on device 0 (Paleo's convention,
``PALEO_COST_MODEL.md`` section 1.4). A user ``placement`` mapping overrides it for any net:
``{key: device}`` where a key is a layer's name (a ModelParallel copy also answers to its name
without ``@s``), a Block or ModelParallel block name (all its layers), a glob pattern
(``fnmatch``: ``conv4*``) or a range ``first..last`` of the net's topological order (both ends
included, either may be left out: ``conv4_1..`` is conv4_1 and everything after it; an end may
be a block). A layer
matched by several keys takes the most specific one (name, then block, then pattern or range);
two keys of the same kind that disagree are an error, as is a key that matches nothing or a
device index outside ``0..workers-1``. ``workers: 1`` is the
single-device baseline (what ``scaling_table`` divides by): everything runs on device 0 and the
placement is only checked against the net.

Task graph of one iteration (``workload.batch`` is the batch the whole model processes):

- forward: each device runs its layers in topological order on its compute stream; a layer
  whose parent sits on another device waits for a ``transfer`` of the parent's output (sent
  once per destination device, on the sender's stream ``to<dst>``, so sends to different peers
  share the sender's links by max-min fairness rather than queueing). Layers on different
  devices with no path between them run concurrently: that is what model parallelism buys.
- backward: in reverse topological order; a layer's output gradient from consumers on another
  device is summed there and sent back as one transfer of the same size, after those
  consumers' backward-data. Backward-filter follows backward-data, so it overlaps the
  gradient's transfer.
- update: each device applies the optimizer to its own parameters.

Input layers are free and host-fed: every device that consumes an input reads it from the data
loader, so no input tensor crosses the network (as in data parallelism).

Compared with Paleo's ``--parallel model`` (:func:`simulator.paleo.model.model_parallel`):
Paleo prices a cross-device edge as a fetch at the device's *memory* bandwidth charged to the
consumer, charges split 0 for fetching from device 0 (bug B3), and sums a critical path with no
contention, no overlap and no update. Here transfers are flows on the topology's links.
"""
from __future__ import annotations

import copy
import difflib
import fnmatch
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from simulator.cluster import Cluster
from simulator.costmodel import DTYPE_BYTES
from simulator.errors import SpecError, UnknownNameError
from simulator.specs import WorkloadSpec
from simulator.strategies.common import CostCache
from simulator.memory.breakdown import training_memory
from simulator.memory.table import memory_table
from simulator.strategies.registry import Compiled, register
from simulator.taskgraph import TaskGraph
from workloads.graph import Layer, LayerGraph, build_graph
from workloads.spec import parse_net

GLOB_CHARS = "*?["
MAX_LISTED_NAMES = 40  # an unknown layer of a larger net gets the closest names, not all


def check_int(value: Any, fieldname: str, minimum: int = 1) -> None:
    """``SpecError`` unless ``value`` is an integer (not a bool) >= ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SpecError(f"must be an integer >= {minimum}", field=fieldname, value=value)


def _normalise_placement(value: Any, workers: int) -> tuple[tuple[str, int], ...]:
    """A placement mapping (or a sequence of ``[key, device]`` pairs, as a saved config
    writes it) as a tuple of pairs in the order given, each checked."""
    if value is None:
        return ()
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, (list, tuple)) and all(
            isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        pairs = [tuple(p) for p in value]
    else:
        raise SpecError("must map layer names, block names or glob patterns to device indices",
                        field="strategy.placement", value=value)
    seen: set[str] = set()
    for key, device in pairs:
        if not isinstance(key, str) or not key:
            raise SpecError("keys must be layer names, block names or glob patterns",
                            field="strategy.placement", value=key)
        if key in seen:
            raise SpecError("appears twice", field=f"strategy.placement.{key}", value=key)
        seen.add(key)
        check_int(device, f"strategy.placement.{key}", 0)
        if workers > 1 and device >= workers:
            raise SpecError(f"device index must be below strategy.workers = {workers}",
                            field=f"strategy.placement.{key}", value=device)
    return tuple((str(k), int(d)) for k, d in pairs)


@dataclass(frozen=True, kw_only=True)
class ModelParallelSpec:
    """Model parallelism over ``workers`` devices with a per-layer placement.

    ``placement`` maps layer names, block names or glob patterns to device indices (see the
    module docstring for the rules and the default); it is stored as a tuple of
    ``(key, device)`` pairs in the order given. ``workload.batch`` is the batch of one iteration
    (strong scaling: more devices split the model, not the data).
    """

    kind: str = "model_parallel"
    workers: int = 1
    placement: Any = None
    iterations: int = 2

    def __post_init__(self) -> None:
        check_int(self.workers, "strategy.workers")
        check_int(self.iterations, "strategy.iterations")
        object.__setattr__(self, "placement",
                           _normalise_placement(self.placement, self.workers))

    @property
    def scaling(self) -> str:
        """Always ``strong``: the batch is the whole model's, whatever the device count."""
        return "strong"


def _base_name(name: str) -> str:
    """``block/x@3`` -> ``block/x`` (a ModelParallel copy without its split suffix)."""
    return name.rsplit("@", 1)[0] if "@" in name else name


def _in_block(layer: Layer, key: str) -> bool:
    block = layer.block
    return block is not None and (block == key or block.startswith(key + "/"))


def _span(graph: LayerGraph, key: str) -> tuple[int, int]:
    """Topological indices (inclusive) of the range ``first..last``; an end may name a layer or
    a block (its first layer starts a range, its last one ends it)."""
    ends = []
    for n, end in enumerate(key.split("..", 1)):
        end = end.strip()
        if not end:
            ends.append(0 if n == 0 else len(graph.layers) - 1)
            continue
        found = [i for i, layer in enumerate(graph.layers)
                 if layer.name == end or _in_block(layer, end)]
        if not found:
            raise _unknown("layer or block", end, graph, f"strategy.placement.{key}")
        ends.append(found[0] if n == 0 else found[-1])
    return ends[0], ends[1]


def _unknown(what: str, name: str, graph: LayerGraph, fieldname: str) -> SpecError:
    """An unknown layer or block: the sorted valid names for a small net, the closest few and
    where to find the rest for a large one."""
    names = sorted({layer.name for layer in graph.layers}
                   | {layer.block for layer in graph.layers if layer.block})
    if len(names) <= MAX_LISTED_NAMES:
        return UnknownNameError(what, name, names, source=graph.source, field=fieldname)
    close = difflib.get_close_matches(name, names, n=5)
    hint = f"; closest: {', '.join(close)}" if close else ""
    return SpecError(f"unknown {what} {name!r}{hint} ({len(names)} layers and blocks; "
                     f"`paleosim summary {graph.source}` lists the layers)",
                     source=graph.source, field=fieldname)


def resolve_placement(graph: LayerGraph, strategy: ModelParallelSpec) -> dict[str, int]:
    """The device of every layer of ``graph`` under ``strategy`` (see the module docstring).

    Raises
    ------
    SpecError
        For a placement key that matches no layer or block (field ``strategy.placement.KEY``;
        an ``UnknownNameError`` listing every name when the net has at most 40 of them).
        For keys of the same kind that put one layer on two devices, or a default placement
        (a ModelParallel copy ``@s``) beyond the devices (field ``strategy.workers``).
    """
    workers = strategy.workers
    pairs = strategy.placement
    hits = {key: 0 for key, _ in pairs}
    spans = {key: _span(graph, key) for key, _ in pairs if ".." in key}
    out: dict[str, int] = {}
    for i, layer in enumerate(graph.layers):
        matches: list[list[tuple[str, int]]] = [[], [], []]  # name, block, pattern or range
        for key, device in pairs:
            if key == layer.name or key == _base_name(layer.name):
                matches[0].append((key, device))
            elif _in_block(layer, key):
                matches[1].append((key, device))
            elif key in spans:
                if spans[key][0] <= i <= spans[key][1]:
                    matches[2].append((key, device))
            elif any(c in key for c in GLOB_CHARS) and fnmatch.fnmatchcase(layer.name, key):
                matches[2].append((key, device))
        for key, _ in (m for level in matches for m in level):
            hits[key] += 1
        chosen = next((level for level in matches if level), None)
        if chosen is not None:
            devices = {d for _, d in chosen}
            if len(devices) > 1:
                keys = ", ".join(f"{k!r} -> {d}" for k, d in chosen)
                raise SpecError(f"layer {layer.name!r} is put on several devices by {keys}",
                                source=graph.source, field=f"strategy.placement.{chosen[1][0]}",
                                value=chosen[1][1])
            device = chosen[0][1]
        elif layer.split is not None:
            device = layer.split
            if device >= workers and workers > 1:
                raise SpecError(
                    f"copy {layer.name!r} of ModelParallel block {layer.block!r} goes on device "
                    f"{device} by default, but there are {workers} devices; use as many devices "
                    "as splits or place the copies with strategy.placement",
                    source=graph.source, field="strategy.workers", value=workers)
        else:
            device = 0
        out[layer.name] = 0 if workers == 1 else device
    for key, count in hits.items():
        if count == 0:
            raise _unknown("layer, block or pattern", key, graph, f"strategy.placement.{key}")
    return out


def placement_table(graph: LayerGraph, strategy: ModelParallelSpec, *, dtype: str = "fp32"):
    """A table of every layer's device, parameters and output bytes per sample at ``dtype``."""
    import pandas as pd
    placed = resolve_placement(graph, strategy)
    size = DTYPE_BYTES[dtype]
    rows = [{"layer": layer.name, "device": placed[layer.name], "params": layer.params,
             "output_bytes_per_sample": size * layer.output_elems // graph.batch}
            for layer in graph.layers]
    return pd.DataFrame(rows, columns=["layer", "device", "params", "output_bytes_per_sample"])


def is_input(layer: Layer) -> bool:
    """An input layer: free, and fed by the host on every device that reads it."""
    return layer.type == "Input" or not layer.parents


def activation_bytes(layer: Layer, dtype: str) -> int:
    """Bytes of ``layer``'s output at its graph's batch."""
    return layer.output_elems * DTYPE_BYTES[dtype]


def _set_splits(layers: dict, splits: int) -> int:
    """Set ``splits`` of every ModelParallel block (nested ones too); returns how many."""
    found = 0
    for params in layers.values():
        if not isinstance(params, dict):
            continue
        if params.get("type") == "ModelParallel":
            params["splits"] = splits
            found += 1
        if isinstance(params.get("layers"), dict):
            found += _set_splits(params["layers"], splits)
    return found


def resplit(graph: LayerGraph, splits: int, *, unknown_layers: str = "error") -> LayerGraph:
    """``graph`` with its ModelParallel blocks instantiated ``splits`` times (``graph`` itself
    when they already are)."""
    current = {layer.splits for layer in graph.layers if layer.split is not None}
    if current == {splits}:
        return graph
    raw = copy.deepcopy(dict(graph.spec.raw))
    if not isinstance(raw.get("layers"), dict) or not _set_splits(raw["layers"], splits):
        raise SpecError("hybrid parallelism needs a net with a ModelParallel block (its copies "
                        "are the model-parallel layers), e.g. alexnet_owt_4gpu",
                        source=graph.source, field="workload.net", value=graph.name)
    return build_graph(parse_net(raw, source=graph.source), batch=graph.batch,
                       unknown_layers=unknown_layers)


class ResplitCache(CostCache):
    """Layer costs of the workload's net with its ModelParallel blocks re-split ``splits``
    ways (:func:`resplit`), per batch and device."""

    def __init__(self, base: CostCache, splits: int) -> None:
        self.base = base
        self.splits = splits
        super().__init__(base.workload, base.model)

    def _load(self, batch: int) -> LayerGraph:
        return resplit(self.base.graph(batch), self.splits,
                       unknown_layers=self.base.workload.unknown_layers)


@register("model_parallel", ModelParallelSpec)
def compile_model_parallel(workload: WorkloadSpec, cluster: Cluster,
                           strategy: ModelParallelSpec, cache: CostCache) -> Compiled:
    w = strategy.workers
    nodes = cluster.gpus_for(w)
    graph = cache.graph(workload.batch)
    placed = resolve_placement(graph, strategy)
    layers = graph.layers
    device = [placed[layer.name] for layer in layers]
    index = {layer.name: i for i, layer in enumerate(layers)}
    costs = [cache.costs(workload.batch, cluster.device_of(nodes[r])) for r in range(w)]
    nbytes = [activation_bytes(layer, workload.dtype) for layer in layers]
    params = [0] * w
    for i, layer in enumerate(layers):
        params[device[i]] += layer.params
    update_s = [cache.model.update_time_s(params[r], cluster.device_of(nodes[r]),
                                          dtype=workload.dtype, optimizer=workload.optimizer)
                if params[r] else 0.0 for r in range(w)]
    used = sorted({device[i] for i, layer in enumerate(layers) if not is_input(layer)})
    tg = TaskGraph(ranks=w, meta={"strategy": "model_parallel"})
    ends: dict[int, list[int]] = {}
    for it in range(strategy.iterations):
        _emit_forward(tg, layers, device, index, costs, nbytes, it)
        _emit_backward(tg, graph, device, index, costs, nbytes, it)
        ends[it] = [tg.compute(r, update_s[r], name="optimizer", phase="update", iteration=it)
                    for r in used]
    memory = memory_table(
        (r, nodes[r], cluster.device_of(nodes[r]),
         training_memory([layer for i, layer in enumerate(layers) if device[i] == r],
                         dtype=workload.dtype, optimizer=workload.optimizer))
        for r in range(w))
    return Compiled(taskgraph=tg, rank_nodes=nodes, global_batch=workload.batch,
                    iteration_ops=ends, extra={"placement": placed, "memory": memory})


def _emit_forward(tg: TaskGraph, layers: Sequence[Layer], device: list[int],
                  index: dict[str, int], costs, nbytes: list[int], it: int) -> dict[int, int]:
    """Forward ops in topological order, with one transfer per (parent, other device)."""
    fwd: dict[int, int] = {}
    sent: dict[tuple[int, int], int] = {}
    for i, layer in enumerate(layers):
        if is_input(layer):
            continue
        d = device[i]
        deps = []
        for parent in layer.parents:
            p = index[parent]
            if is_input(layers[p]) or device[p] == d:
                continue  # host-fed, or earlier on the same stream
            if (p, d) not in sent:
                sent[(p, d)] = tg.transfer(device[p], d, nbytes[p], deps=(fwd[p],),
                                           stream=f"to{d}", name=parent, phase="activation",
                                           iteration=it)
            deps.append(sent[(p, d)])
        fwd[i] = tg.compute(d, costs[d].forward_s[i], deps=deps, name=layer.name,
                            phase="forward", iteration=it, flops=layer.work["forward"].flops)
    return fwd


def _emit_backward(tg: TaskGraph, graph: LayerGraph, device: list[int], index: dict[str, int],
                   costs, nbytes: list[int], it: int) -> None:
    """Backward ops in reverse topological order; a gradient from consumers on another device
    is one transfer per (layer, consumer device)."""
    layers = graph.layers
    bd: dict[int, int] = {}
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if is_input(layer):
            continue
        d = device[i]
        remote: dict[int, list[int]] = {}
        for child in graph.children[layer.name]:
            c = index[child]
            if device[c] != d:
                remote.setdefault(device[c], []).append(bd[c])
        deps = [tg.transfer(e, d, nbytes[i], deps=ops, stream=f"to{d}", name=layer.name,
                            phase="gradient", iteration=it)
                for e, ops in sorted(remote.items())]
        c = costs[d]
        bd[i] = tg.compute(d, c.backward_data_s[i], deps=deps, name=layer.name,
                           phase="backward_data", iteration=it,
                           flops=layer.work["backward_data"].flops)
        if c.backward_filter_s[i] > 0:
            tg.compute(d, c.backward_filter_s[i], name=layer.name, phase="backward_filter",
                       iteration=it, flops=layer.work["backward_filter"].flops)
