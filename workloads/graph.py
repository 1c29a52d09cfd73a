"""The model graph: layers with inferred shapes, parameters and per-phase work, in topological order.

A :class:`LayerGraph` is immutable and tied to one batch size; :meth:`LayerGraph.with_batch`
re-infers it for another. Everything downstream (cost models, the Paleo-compatible estimator, the
strategies that compile task graphs per layer, phase and microbatch) reads this structure.

>>> from workloads import load_net
>>> g = load_net("vgg16", batch=1)                              # doctest: +SKIP
>>> g.total_params, g.forward_macs                              # doctest: +SKIP
(138357544, 15470264320)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterator, Mapping

from simulator.errors import SpecError
from workloads.ops import PHASES, ZERO, OpContext, Work, lookup
from workloads.spec import LayerSpec, NetSpec, parse_net

UNKNOWN_LAYER_POLICIES = ("error", "free")


@dataclass(frozen=True)
class Layer:
    """One layer at one batch size.

    ``work`` maps each phase in ``PHASES`` to a :class:`~workloads.ops.Work`; ``macs`` is the
    forward multiply-accumulate count of conv/FC/matmul layers; ``split``/``splits`` place the
    copies of a ``ModelParallel`` block (copy ``split`` of ``splits``), ``None`` elsewhere.
    """

    name: str
    type: str
    parents: tuple[str, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    params: int
    macs: int
    op_class: str
    attrs: Mapping[str, Any]
    work: Mapping[str, Work]
    fields: Mapping[str, Any] = field(repr=False)
    block: str | None = None
    split: int | None = None
    splits: int | None = None
    fed_by_input: bool = False

    @property
    def forward_flops(self) -> float:
        return self.work["forward"].flops

    @property
    def output_elems(self) -> int:
        n = 1
        for d in self.output_shape:
            n *= d
        return n


@dataclass(frozen=True)
class LayerGraph:
    """A net at one batch size: ``layers`` in topological order, looked up by name with ``[]``."""

    name: str
    source: str
    batch: int
    layers: tuple[Layer, ...]
    spec: NetSpec = field(repr=False, compare=False)
    unknown_layers: str = "error"

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, name: str) -> Layer:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.name}: no layer named {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @cached_property
    def _by_name(self) -> dict[str, Layer]:
        return {layer.name: layer for layer in self.layers}

    @cached_property
    def children(self) -> Mapping[str, tuple[str, ...]]:
        """Each layer's consumers, in topological order."""
        out: dict[str, list[str]] = {layer.name: [] for layer in self.layers}
        for layer in self.layers:
            for parent in dict.fromkeys(layer.parents):
                out[parent].append(layer.name)
        return {k: tuple(v) for k, v in out.items()}

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def forward_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def phase_work(self, phase: str) -> Work:
        """The sum over layers of one phase's work."""
        total = ZERO
        for layer in self.layers:
            total = total + layer.work[phase]
        return total

    @property
    def activation_elems(self) -> int:
        """Elements of every layer's output: what a training step keeps for the backward pass."""
        return sum(layer.output_elems for layer in self.layers if layer.op_class != "data")

    def with_batch(self, batch: int) -> "LayerGraph":
        """The same net re-inferred at another batch size."""
        if batch == self.batch:
            return self
        return build_graph(self.spec, batch=batch, unknown_layers=self.unknown_layers)


def build_graph(spec: NetSpec | Mapping[str, Any], *, batch: int | None = None,
                source: str = "<net>", unknown_layers: str = "error") -> LayerGraph:
    """Infer shapes, parameters and work for every layer of ``spec`` at ``batch``.

    ``batch=None`` keeps the batch written in the (first) Input layer's ``tensor``.
    ``unknown_layers='free'`` treats unknown layer types as Paleo does (shape copied, no cost).
    """
    if unknown_layers not in UNKNOWN_LAYER_POLICIES:
        raise ValueError(f"unknown_layers must be one of {UNKNOWN_LAYER_POLICIES}")
    if not isinstance(spec, NetSpec):
        spec = parse_net(spec, source=source)
    source = spec.source
    batch = _resolve_batch(spec, batch)
    shapes: dict[str, tuple[int, ...]] = {}
    is_input: dict[str, bool] = {}
    layers: list[Layer] = []
    for ls in spec.layers:
        infer = lookup(ls.type, source=source, layer=ls.name, unknown_layers=unknown_layers)
        ctx = OpContext(name=ls.name, type=ls.type, fields=ls.fields,
                        inputs=[shapes[p] for p in ls.parents], source=source, batch=batch,
                        split=ls.split, splits=ls.splits,
                        input_parents=[is_input[p] for p in ls.parents])
        inferred = infer(ctx)
        missing = set(PHASES) - set(inferred.work)
        work = {**inferred.work, **{p: ZERO for p in missing}}
        shapes[ls.name] = inferred.output_shape
        is_input[ls.name] = inferred.op_class == "data"
        layers.append(Layer(name=ls.name, type=ls.type, parents=ls.parents,
                            input_shapes=tuple(ctx.inputs), output_shape=inferred.output_shape,
                            params=inferred.params, macs=inferred.macs,
                            op_class=inferred.op_class, attrs=dict(inferred.attrs), work=work,
                            fields=ls.fields, block=ls.block, split=ls.split, splits=ls.splits,
                            fed_by_input=ctx.fed_by_input))
    if not any(layer.op_class == "data" for layer in layers):
        raise SpecError("the net has no Input layer", source=source, field="layers")
    return LayerGraph(name=spec.name, source=source, batch=batch, layers=tuple(layers), spec=spec,
                      unknown_layers=unknown_layers)


def _resolve_batch(spec: NetSpec, batch: int | None) -> int:
    if batch is not None:
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise SpecError("the batch size must be a positive integer", source=spec.source,
                            field="batch", value=batch)
        return batch
    for ls in spec.layers:
        if ls.type == "Input":
            tensor = ls.fields.get("tensor")
            if isinstance(tensor, list) and tensor and isinstance(tensor[0], int) \
                    and not isinstance(tensor[0], bool) and tensor[0] > 0:
                return tensor[0]
            raise SpecError("'tensor' must be a non-empty list of positive sizes [N, ...]",
                            source=spec.source, field=f"layers.{ls.name}.tensor", value=tensor)
    raise SpecError("the net has no Input layer", source=spec.source, field="layers")


__all__ = ["Layer", "LayerGraph", "LayerSpec", "build_graph"]
