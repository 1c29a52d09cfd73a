"""The layer-type registry: shape inference, parameter counts and work per training phase.

Each layer type is one function ``infer(ctx) -> Inferred`` registered under its type string. The
work of a layer is counted per phase (``forward``, ``backward_data``, ``backward_filter``) as FLOPs
(2 per multiply-add) and elements read and written; a cost model turns elements into bytes at the
training dtype and the whole into seconds on a device. Counting is a property of the model, not of
the device, so it lives here; converting to time lives in ``simulator.costmodel``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from simulator.errors import SpecError, UnknownNameError

PHASES = ("forward", "backward_data", "backward_filter")
# FLOPs per element of each activation function (conventional estimates: compare, clamp,
# exp/tanh-based forms), shared by Activation layers and a convolution's fused activation_fn.
ACTIVATION_FLOPS = {"relu": 1, "relu6": 2, "leaky_relu": 2, "elu": 3, "sigmoid": 4, "tanh": 4,
                    "gelu": 8, "silu": 5, "swish": 5, "softplus": 4, "identity": 0}
OP_CLASSES = ("conv", "matmul", "elementwise", "reduction", "data", "none")

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Work:
    """What one phase of a layer does: FLOPs and elements moved to and from device memory."""

    flops: float = 0.0
    read_elems: float = 0.0
    write_elems: float = 0.0

    def __add__(self, other: "Work") -> "Work":
        return Work(self.flops + other.flops, self.read_elems + other.read_elems,
                    self.write_elems + other.write_elems)

    @property
    def elems(self) -> float:
        return self.read_elems + self.write_elems


ZERO = Work()


@dataclass(frozen=True)
class Inferred:
    """What inference says about one layer at one batch size."""

    output_shape: Shape
    params: int
    op_class: str
    macs: int = 0  # forward multiply-accumulates (conv, FC, matmul, attention); 0 elsewhere
    attrs: Mapping[str, Any] = field(default_factory=dict)
    work: Mapping[str, Work] = field(default_factory=dict)


class OpContext:
    """What an ``infer`` function sees: the layer's fields, its inputs' shapes, and error helpers."""

    def __init__(self, *, name: str, type: str, fields: Mapping[str, Any],
                 inputs: Sequence[Shape], source: str, batch: int,
                 split: int | None, splits: int | None, input_parents: Sequence[bool]) -> None:
        self.name = name
        self.type = type
        self.fields = fields
        self.inputs = list(inputs)
        self.source = source
        self.batch = batch
        self.split = split
        self.splits = splits
        self.fed_by_input = bool(input_parents) and all(input_parents)

    def error(self, problem: str, key: str | None = None, value: Any = SpecError._NO_VALUE):
        where = f"layers.{self.name}" + (f".{key}" if key else "")
        return SpecError(problem, source=self.source, field=where, value=value)

    def get(self, key: str, default: Any = SpecError._NO_VALUE) -> Any:
        if key in self.fields:
            return self.fields[key]
        if default is SpecError._NO_VALUE:
            raise self.error(f"missing field '{key}' for a {self.type} layer", key)
        return default

    def int_field(self, key: str, default: Any = SpecError._NO_VALUE, *, minimum: int = 1) -> int:
        value = self.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.error(f"'{key}' must be an integer >= {minimum}", key, value)
        return value

    def int_list(self, key: str, length: int, default: Any = SpecError._NO_VALUE,
                 *, minimum: int = 1) -> list[int]:
        value = self.get(key, default)
        if (not isinstance(value, (list, tuple)) or len(value) != length
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                or any(v < minimum for v in value)):
            raise self.error(f"'{key}' must be a list of {length} integers >= {minimum}", key,
                             value)
        return list(value)

    def one_input(self) -> Shape:
        if len(self.inputs) != 1:
            raise self.error(f"a {self.type} layer takes exactly one parent", "parents",
                             len(self.inputs))
        return self.inputs[0]

    def input_rank(self, *ranks: int) -> Shape:
        shape = self.one_input()
        if len(shape) not in ranks:
            want = " or ".join(str(r) for r in ranks)
            raise self.error(f"a {self.type} layer needs a rank-{want} input", "parents",
                             list(shape))
        return shape


InferFn = Callable[[OpContext], Inferred]
_REGISTRY: dict[str, InferFn] = {}


def register(*type_names: str) -> Callable[[InferFn], InferFn]:
    """Register ``fn`` as the inference function of each of ``type_names``."""
    def deco(fn: InferFn) -> InferFn:
        for t in type_names:
            if t in _REGISTRY:
                raise RuntimeError(f"layer type {t!r} registered twice")
            _REGISTRY[t] = fn
        return fn
    return deco


def layer_types() -> tuple[str, ...]:
    """Every layer type paleosim reads, sorted."""
    _load_builtin_ops()
    return tuple(sorted(_REGISTRY))


def lookup(type_name: str, *, source: str, layer: str, unknown_layers: str) -> InferFn:
    """The inference function of ``type_name``; unknown types raise unless ``unknown_layers='free'``."""
    _load_builtin_ops()
    fn = _REGISTRY.get(type_name)
    if fn is not None:
        return fn
    if unknown_layers == "free":
        return infer_free
    raise UnknownNameError("layer type", type_name, list(_REGISTRY), source=source,
                           field=f"layers.{layer}.type")


def infer_free(ctx: OpContext) -> Inferred:
    """Paleo's behaviour for unknown types: copy the (first) input shape, cost nothing."""
    shape = ctx.inputs[0] if ctx.inputs else (ctx.batch,)
    return Inferred(output_shape=shape, params=0, op_class="none",
                    attrs={"unknown_type": ctx.type}, work=_phases())


def _load_builtin_ops() -> None:
    """Import the modules that register the built-in layer types (once; importing one of them
    directly first must not leave the others out)."""
    from workloads import ops_conv, ops_dense, ops_misc, ops_rnn  # noqa: F401


# ---------------------------------------------------------------------------------------------
# Helpers shared by the op modules.

def numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _phases(forward: Work = ZERO, backward_data: Work = ZERO,
            backward_filter: Work = ZERO) -> dict[str, Work]:
    return {"forward": forward, "backward_data": backward_data,
            "backward_filter": backward_filter}


phases = _phases


def elementwise(elems: float, flops_per_elem: float, *, reads: float = 1.0,
                writes: float = 1.0) -> Work:
    """An elementwise pass over ``elems`` elements: ``reads`` inputs read, ``writes`` written."""
    return Work(flops=elems * flops_per_elem, read_elems=elems * reads, write_elems=elems * writes)


def elementwise_layer(elems: float, fwd_flops_per_elem: float, bwd_flops_per_elem: float,
                      *, fwd_reads: float = 1.0, bwd_reads: float = 2.0,
                      fed_by_input: bool = False) -> dict[str, Work]:
    """Forward reads X writes Y; backward-data reads dY (and X or Y), writes dX."""
    return _phases(
        forward=elementwise(elems, fwd_flops_per_elem, reads=fwd_reads),
        backward_data=ZERO if fed_by_input else elementwise(elems, bwd_flops_per_elem,
                                                            reads=bwd_reads),
    )


def matmul_work(macs: float, in_elems: float, weight_elems: float, out_elems: float,
                *, has_data_grad: bool, has_weight: bool = True) -> dict[str, Work]:
    """A product Y = X·W: forward, dX = dY·Wᵀ, and dW = Xᵀ·dY each cost ``macs`` multiply-adds.

    When W is an activation rather than a weight (``has_weight=False``), its gradient is part of
    backward-data instead of backward-filter.
    """
    fwd = Work(2.0 * macs, in_elems + weight_elems, out_elems)
    dx = Work(2.0 * macs, out_elems + weight_elems, in_elems)
    dw = Work(2.0 * macs, in_elems + out_elems, weight_elems)
    if not has_weight:
        return _phases(forward=fwd, backward_data=(dx if has_data_grad else ZERO) + dw)
    return _phases(forward=fwd, backward_data=dx if has_data_grad else ZERO, backward_filter=dw)
