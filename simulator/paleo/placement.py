"""Where Paleo puts layers, what it charges for moving tensors between them, and the critical
path it sums for model parallelism (``PALEO_COST_MODEL.md`` sections 1.3, 1.4 and 2.7).

Device ids. A copy ``block/x@s`` of a ``ModelParallel`` block lives on device ``"s"`` (Paleo
keeps the suffix as a *string*); every other layer lives on device ``0`` (an *int*). Paleo
compares them with ``!=``, so ``"0" != 0`` and split 0 is remote from the unsplit layers too
(bug B3): every split pays to fetch its out-of-block parent, and a layer after the block pays to
fetch from all K splits.

Remote fetch (``_estimate_remote_fetch``). A layer with one parent on another device fetches its
whole input; a layer with several parents fetches each remote parent's tensor, and each remote
parent in another "group of 4" devices (``int(cur)//4 != int(parent)//4``) first halves the
bandwidth, *cumulatively* (bug B4): the variable is reassigned, so later parents, even
same-group ones, keep the halved value. Each fetch is a memory term with ``ppp_comm``:
``max(1 cycle, bytes/2^30/bw*1e3/ppp_comm)`` ms. The bandwidth is the network's "GB/s"
(Gbit/s / 8) in hybrid mode and the device memory bandwidth otherwise; there Paleo halves
``None`` and crashes (bug B4b), which :func:`fetch_ms` reports as :class:`PaleoCrashError`.

Critical path. Paleo's ``_sum_with_parallel`` walks the graph as a nested list of fork/join
branches and sums it, taking the maximum over parallel branches: the longest path through a
series-parallel graph, which :func:`critical_path` computes on any DAG. Paleo handles only one
level of branches and crashes on Inception's nested ones (bug B11); this longest path gives the
answer Paleo's rule means there instead of crashing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from simulator.errors import InfeasibleError
from simulator.paleo.conv import FLOAT_BYTES
from simulator.paleo.timing import mem_ms
from workloads.graph import Layer, LayerGraph


class PaleoCrashError(InfeasibleError):
    """A configuration on which Paleo itself crashes, so no Paleo-compatible answer exists."""


def device_id(layer: Layer) -> str | int:
    """Paleo's device id: the split index as a string inside a ModelParallel block, else int 0."""
    return str(layer.split) if layer.split is not None else 0


@dataclass(frozen=True)
class FetchTerm:
    """One remote fetch: ``layer`` (index ``index``) reads ``nbytes`` from ``parent``, at the
    base bandwidth halved ``halvings`` times (bug B4)."""

    index: int
    layer: str
    parent: str
    nbytes: float
    halvings: int


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def fetch_terms(graph: LayerGraph) -> tuple[FetchTerm, ...]:
    """Every remote fetch Paleo charges in ``graph`` (none when no layer is in a block copy)."""
    if all(layer.split is None for layer in graph.layers):
        return ()
    out: list[FetchTerm] = []
    for i, layer in enumerate(graph.layers):
        cur = device_id(layer)
        devices = [device_id(graph[p]) for p in layer.parents]
        if len(layer.parents) == 1:
            if devices[0] != cur:
                out.append(FetchTerm(i, layer.name, layer.parents[0],
                                     _numel(layer.input_shapes[0]) * FLOAT_BYTES, 0))
            continue
        halvings = 0
        for parent, dev, shape in zip(layer.parents, devices, layer.input_shapes):
            if dev == cur:
                continue
            if int(cur) // 4 != int(dev) // 4:
                halvings += 1
            out.append(FetchTerm(i, layer.name, parent, _numel(shape) * FLOAT_BYTES, halvings))
    return tuple(out)


def fetch_ms(terms: Sequence[FetchTerm], n_layers: int, *, device, ppp_comm: float,
             network_gbit_per_s: float | None = None, source: str = "<net>") -> np.ndarray:
    """Remote-fetch ms per layer (an array of ``n_layers``).

    ``network_gbit_per_s`` given (hybrid mode): the bandwidth is its "GB/s" (``/8``), still
    divided against 2^30 (bug B1). ``None`` (data and model modes): the device memory bandwidth;
    a cross-group fetch then makes Paleo halve ``None`` and crash (bug B4b).
    """
    out = np.zeros(n_layers)
    if network_gbit_per_s is None:
        base = device.mem_bandwidth_gbps_label
        crashing = next((t for t in terms if t.halvings), None)
        if crashing is not None:
            raise PaleoCrashError(
                f"{source}: layer {crashing.layer!r} fetches {crashing.parent!r} from another "
                "group of 4 devices; Paleo halves the cross-device bandwidth there, which is "
                "None outside hybrid mode, and crashes with a TypeError (bug B4b), so Paleo "
                "has no answer for this net in data or model mode; use --parallel hybrid or a "
                "net with at most 4 splits")
    else:
        base = network_gbit_per_s / 8.0
    for t in terms:
        out[t.index] += mem_ms(t.nbytes, bandwidth_label=base / 2.0 ** t.halvings,
                               clock_mhz=device.clock_mhz, ppp=ppp_comm)
    return out


def critical_path(graph: LayerGraph, weights: Mapping[str, float],
                  ) -> tuple[float, tuple[str, ...]]:
    """Longest path (sum of ``weights``) through the layers named in ``weights``, and its layers.

    Edges are the graph's edges between those layers; a layer whose parents are all outside the
    set starts a path. Ties go to the earlier layer in topological order (deterministic).
    """
    best: dict[str, float] = {}
    prev: dict[str, str | None] = {}
    end: str | None = None
    for layer in graph.layers:
        if layer.name not in weights:
            continue
        start, via = 0.0, None
        for p in layer.parents:
            if p in best and (via is None or best[p] > start):
                start, via = best[p], p
        best[layer.name] = start + weights[layer.name]
        prev[layer.name] = via
        if end is None or best[layer.name] > best[end]:
            end = layer.name
    if end is None:
        return 0.0, ()
    path = [end]
    while prev[path[-1]] is not None:
        path.append(prev[path[-1]])
    return best[end], tuple(reversed(path))
