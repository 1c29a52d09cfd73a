"""Cutting a net into pipeline stages: partition units, and balanced, uniform or explicit splits.

A pipeline cuts the net's layers, in topological order, into contiguous *virtual stages*. Cuts
fall between *partition units*, never inside one:

- In a net with top-level ``Block`` (or ``ModelParallel``) blocks, each block is one unit (a
  transformer layer ``layer{i}``, a ResNet unit). Layers outside blocks join a neighbouring
  unit: the ones before the first block join the first unit (embeddings go with the first
  transformer layer, as in Megatron-LM), the others join the unit before them (the final norm,
  output layer and loss go with the last transformer layer).
- In a net without blocks every layer that is not an ``Input`` is its own unit, and ``Input``
  layers join the unit after them.

Splits of ``n`` units into ``S`` stages (every stage gets at least one unit):

- ``balanced``: contiguous units minimising the largest stage cost (the cost of a unit is its
  per-microbatch compute time on one rank, from the cost model). Solved exactly up to floating
  point by bisection on the bottleneck value with a greedy feasibility test, the textbook
  algorithm for the linear partition problem (e.g. Pinar and Aykanat, "Fast optimal load
  balancing algorithms for 1D partitioning", JPDC 2004, section 3.1).
- ``uniform``: ``n / S`` units per stage (Megatron-LM's rule), the first ``n mod S`` stages
  taking one more when ``S`` does not divide ``n``.
- ``explicit``: the caller gives the number of units of every stage.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from simulator.errors import SpecError
from workloads.graph import LayerGraph

PARTITIONS = ("balanced", "explicit", "uniform")
_BISECTIONS = 200


@dataclass(frozen=True)
class Unit:
    """A run of consecutive layers (indices into ``graph.layers``) that stays on one stage."""

    name: str
    layers: tuple[int, ...]


def partition_units(graph: LayerGraph) -> list[Unit]:
    """The net's partition units, in order (see the module docstring)."""
    layers = graph.layers
    has_blocks = any(layer.block for layer in layers)
    units: list[list] = []       # [name, [layer indices]]
    leading: list[int] = []      # layers seen before the first unit opens
    current_block = None
    for i, layer in enumerate(layers):
        top = layer.block.split("/")[0] if layer.block else None
        if has_blocks:
            if top is None:
                (units[-1][1] if units else leading).append(i)
                current_block = None
                continue
            if top != current_block:
                units.append([top, []])
                current_block = top
            units[-1][1].append(i)
        elif layer.op_class == "data":
            leading.append(i)
        else:
            units.append([layer.name, leading + [i]])
            leading = []
    if not units:
        raise SpecError("the net has no layer to place on a pipeline stage", source=graph.source,
                        field="layers")
    if leading:  # Input layers after the last unit, or layers before the first block
        if has_blocks:
            units[0][1][:0] = leading
        else:
            units[-1][1].extend(leading)
    return [Unit(name, tuple(sorted(idx))) for name, idx in units]


def split_units(costs: Sequence[float], stages: int, how: str,
                explicit: Sequence[int] | None = None) -> list[int]:
    """Units per stage (a list of ``stages`` positive counts summing to ``len(costs)``)."""
    n = len(costs)
    if stages > n:
        raise SpecError(f"{stages} pipeline stages (pp x chunks) but the net has only {n} "
                        "partition units (blocks, or layers when it has no blocks)",
                        field="strategy.pp", value=stages)
    if how == "explicit":
        counts = list(explicit or ())
        if len(counts) != stages or sum(counts) != n or min(counts, default=0) < 1:
            raise SpecError(f"must list {stages} positive unit counts (one per virtual stage) "
                            f"summing to the net's {n} partition units",
                            field="strategy.stage_layers", value=explicit)
        return counts
    if how == "uniform":
        q, r = divmod(n, stages)
        return [q + 1 if s < r else q for s in range(stages)]
    if how == "balanced":
        return balanced(costs, stages)
    raise SpecError(f"unknown partition; valid: {', '.join(PARTITIONS)}",
                    field="strategy.partition", value=how)


def balanced(costs: Sequence[float], stages: int) -> list[int]:
    """Contiguous split of ``costs`` into ``stages`` non-empty parts with the smallest possible
    largest part sum (ties: earlier stages take as much as the bound allows)."""
    costs = [float(c) for c in costs]
    if any(c < 0 for c in costs):
        raise ValueError("unit costs must be >= 0")
    lo, hi = max(costs), sum(costs)
    if _parts(costs, hi) > stages:  # pragma: no cover - one part always fits the total
        raise AssertionError("bisection bounds")
    for _ in range(_BISECTIONS):
        if hi - lo <= 1e-12 * hi:
            break
        mid = (lo + hi) / 2
        if _parts(costs, mid) <= stages:
            hi = mid
        else:
            lo = mid
    counts = _greedy(costs, hi)
    while len(counts) < stages:  # split the part with the most units; parts only shrink
        i = max(range(len(counts)), key=lambda s: (counts[s], -s))
        first = counts[i] // 2
        counts[i:i + 1] = [counts[i] - first, first]
    return counts


def _parts(costs: list[float], bound: float) -> int:
    return len(_greedy(costs, bound))


def _greedy(costs: list[float], bound: float) -> list[int]:
    counts: list[int] = []
    total = 0.0
    for c in costs:
        if counts and total + c <= bound:
            counts[-1] += 1
            total += c
        else:
            counts.append(1)
            total = c
    return counts


def stage_of_units(counts: Sequence[int]) -> list[int]:
    """The stage of every unit, from units-per-stage counts."""
    return [s for s, c in enumerate(counts) for _ in range(c)]
