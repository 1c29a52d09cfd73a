"""The pieces an ONNX import is made of: tensors, layer records, and what a converter sees.

The walk keeps every tensor in ONNX's own layout (NCHW for rank 4) at the import batch: an
*activation* (:class:`Act`, produced by a layer or a graph input) or a *constant*
(:class:`Const`: an initializer, a ``Constant`` node, or a shape computation folded at import
time). A converter gets a :class:`NodeCtx` and returns a layer (:class:`Emit`), an alias of one
of its inputs (:class:`Alias`) or, for a folder, a :class:`Const`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from simulator.errors import SpecError

Shape = tuple[int, ...]
DEFAULT_DOMAINS = ("", "ai.onnx")
_NO = SpecError._NO_VALUE

Converter = Callable[["NodeCtx"], Any]
#: op type -> the converter that turns the node into a layer or an alias
CONVERTERS: dict[str, Converter] = {}
#: op type -> the folder that evaluates it when all its inputs are constants
FOLDERS: dict[str, Converter] = {}


def converter(*ops: str) -> Callable[[Converter], Converter]:
    def deco(fn: Converter) -> Converter:
        for op in ops:
            CONVERTERS[op] = fn
        return fn
    return deco


def folder(*ops: str) -> Callable[[Converter], Converter]:
    def deco(fn: Converter) -> Converter:
        for op in ops:
            FOLDERS[op] = fn
        return fn
    return deco


def require_onnx(source: str | None) -> Any:
    """The ``onnx`` module, imported on first use; without it a SpecError says what to install."""
    try:
        import onnx
        import onnx.numpy_helper  # noqa: F401  (a submodule the walk uses)
        import onnx.shape_inference  # noqa: F401
    except ImportError:
        raise SpecError("reading ONNX models needs the onnx package; install the onnx extra: "
                        "pip install paleosim[onnx]", source=source) from None
    return onnx


def to_nhwc(shape: Shape) -> Shape:
    """An ONNX shape in the net format's layout: rank 4 is NCHW -> NHWC, other ranks unchanged."""
    return (shape[0], shape[2], shape[3], shape[1]) if len(shape) == 4 else tuple(shape)


@dataclass
class Act:
    """An activation: the net layer that produces it, its ONNX shape and the node that made it."""

    layer: str
    shape: Shape
    node: str
    op: str


@dataclass
class Const:
    """A constant: its shape and, read on demand, its value (a numpy array)."""

    shape: Shape
    value: Any = None
    proto: Any = None  # an initializer's TensorProto, converted when its value is needed


@dataclass
class Emit:
    """A converter's layer: net type and fields, parent tensors, ONNX output shape, parameters.

    ``onnx_shape`` is what ``onnx.shape_inference`` computes where it knowingly differs (pooling
    in ceil mode before opset 22 keeps a window that starts in the right padding; the operator
    text and opset 22 drop it, as paleosim does).
    """

    type: str
    fields: dict
    inputs: list[str]
    shape: Shape
    params: int = 0
    onnx_shape: Shape | None = None


@dataclass(frozen=True)
class Alias:
    """A node whose output is one of its inputs (Identity, a bias fused into its MatMul)."""

    tensor: str


@dataclass
class LayerRec:
    name: str
    type: str
    parents: list[str]
    fields: dict
    params: int
    node: str
    op: str
    output: str
    shape: Shape
    onnx_shape: Shape | None = None


class NodeCtx:
    """What a converter sees: the node, its attributes, typed access to inputs, error helpers."""

    def __init__(self, builder: Any, node: Any, name: str) -> None:
        self.b = builder
        self.node = node
        self.op = node.op_type
        self.name = name
        self.inputs = list(node.input)
        self.opset = builder.opset
        get = builder.onnx.helper.get_attribute_value
        self.attrs = {a.name: get(a) for a in node.attribute}

    def error(self, problem: str, detail: str | None = None, value: Any = _NO) -> SpecError:
        where = f"node {self.name!r} ({self.op})" + (f", {detail}" if detail else "")
        return SpecError(problem, source=self.b.source, field=where, value=value)

    # attributes -------------------------------------------------------------------------------
    def attr(self, key: str, default: Any = _NO) -> Any:
        if key not in self.attrs:
            if default is _NO:
                raise self.error(f"missing attribute '{key}'")
            return default
        value = self.attrs[key]
        return value.decode() if isinstance(value, bytes) else value

    def int_attr(self, key: str, default: Any = _NO, *, choices: tuple[int, ...] | None = None,
                 minimum: int | None = None) -> int:
        value = self.attr(key, default)
        if (not isinstance(value, int) or isinstance(value, bool)
                or (choices is not None and value not in choices)
                or (minimum is not None and value < minimum)):
            raise self.error("bad attribute value", key, value)
        return value

    def ints(self, key: str, length: int, default: Any = _NO, *, minimum: int = 1) -> list[int]:
        value = self.attr(key, default)
        if (not isinstance(value, (list, tuple)) or len(value) != length
                or any(not isinstance(v, int) or v < minimum for v in value)):
            raise self.error(f"expected {length} integers >= {minimum} (only 2-D windows are "
                             "supported)" if length in (2, 4) else
                             f"expected {length} integers >= {minimum}", key, value)
        return value

    # inputs -----------------------------------------------------------------------------------
    def has(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] != ""

    def arity(self, low: int, high: int) -> None:
        n = len([t for t in self.inputs if t])
        if not low <= n <= high:
            want = str(low) if low == high else f"{low} to {high}"
            raise self.error(f"expected {want} inputs", "inputs", list(self.inputs))

    def is_const(self, i: int) -> bool:
        return self.has(i) and self.inputs[i] in self.b.consts

    def act(self, i: int, *ranks: int) -> Act:
        name = self.inputs[i] if self.has(i) else ""
        if name in self.b.consts:
            raise self.error(f"input {i} is a constant where an activation is expected", "inputs",
                             name)
        act = self.b.acts.get(name)
        if act is None:
            raise self.error(f"input {i} is produced by no earlier node or graph input",
                             "inputs", name)
        if ranks and len(act.shape) not in ranks:
            want = " or ".join(str(r) for r in ranks)
            raise self.error(f"expects a rank-{want} input", f"input {name!r}", list(act.shape))
        return act

    def const(self, i: int, what: str) -> Const:
        name = self.inputs[i] if self.has(i) else ""
        if name not in self.b.consts:
            raise self.error(f"the {what} must be a constant (an initializer or a Constant node)",
                             "inputs", name or None)
        return self.b.consts[name]

    def value(self, i: int, what: str) -> Any:
        """The numpy value of constant input ``i``."""
        return self.b.const_value(self.const(i, what), self.inputs[i], self)

    def ints_input(self, i: int, what: str) -> list[int]:
        return [int(v) for v in self.value(i, what).reshape(-1)]


def numel(shape) -> int:
    return math.prod(shape)


def f32(value: Any) -> float:
    """A float32 from the file (an attribute or a tensor) as the shortest decimal that is the same
    float32: ``epsilon=1e-3`` reads back as 0.001, not 0.0010000000474974513."""
    return float(str(np.float32(value)))


def norm_axis(n: NodeCtx, axis: int, rank: int, key: str = "axis") -> int:
    """``axis`` in ``[0, rank)``; negative axes count from the end, as in ONNX."""
    if not -rank <= axis < rank:
        raise n.error(f"axis out of range for a rank-{rank} tensor", key, axis)
    return axis % rank
