"""Reshapes of activations, and constant folding of shape computations.

A reshape keeps the batch on axis 0 (the net format's rule) and becomes a ``Flatten`` (rank-2
target) or a ``Reshape`` whose ``output_shape`` is the target in the net's layout (rank 4 is NHWC).
Folders evaluate shape computations on constants (``Shape``, ``Gather``, ``Concat``...) with numpy
at the import batch, so a ``Reshape`` whose target is computed (PyTorch's
``x.view(x.size(0), -1)``) still has a known target.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from workloads.onnx.nodes import (Const, Emit, NodeCtx, Shape, converter, folder, norm_axis,
                                  numel, to_nhwc)


# ---------------------------------------------------------------------------------------------
# reshapes
def _reshaped(n: NodeCtx, x: Shape, target: list[int]) -> Emit:
    """A reshape of the activation ``x`` to ``target`` (ONNX layout), keeping the batch axis:
    ``Flatten`` for a rank-2 target, else ``Reshape`` with the target in the net's layout."""
    if numel(target) != numel(x):
        raise n.error(f"{list(x)} has {numel(x)} elements, the target {target} "
                      f"{numel(target)}", "shape", target)
    if not target or target[0] != x[0]:
        raise n.error(f"reshaping {list(x)} to {target} changes the batch (axis 0); only "
                      "per-sample reshapes are supported", "shape", target)
    if len(target) == 2:
        return Emit("Flatten", {}, [n.inputs[0]], tuple(target))
    net = list(to_nhwc(tuple(target)))
    return Emit("Reshape", {"output_shape": [n.b.out_batch, *net[1:]]}, [n.inputs[0]],
                tuple(target))


def _reshape_target(n: NodeCtx, x: Shape, spec: list[int]) -> list[int]:
    """ONNX Reshape: 0 copies the input's size (unless ``allowzero``), one -1 is inferred."""
    allow_zero = n.opset >= 14 and n.int_attr("allowzero", 0, choices=(0, 1)) == 1
    dims = [x[i] if v == 0 and not allow_zero and i < len(x) else v for i, v in enumerate(spec)]
    if dims.count(-1) > 1 or any(d < -1 for d in dims):
        raise n.error("bad target shape", "shape", spec)
    if -1 in dims:
        known = numel([d for d in dims if d != -1])
        if known == 0 or numel(x) % known:
            raise n.error(f"{list(x)} cannot be reshaped to {spec}", "shape", spec)
        dims[dims.index(-1)] = numel(x) // known
    return dims


@converter("Reshape")
def _reshape(n: NodeCtx) -> Emit:
    n.arity(2, 2)
    x = n.act(0)
    return _reshaped(n, x.shape, _reshape_target(n, x.shape, n.ints_input(1, "target shape")))


@converter("Flatten")
def _flatten(n: NodeCtx) -> Emit:
    n.arity(1, 1)
    x = n.act(0)
    rank = len(x.shape)
    axis = n.int_attr("axis", 1)
    if not -rank <= axis <= rank:
        raise n.error(f"axis out of range for a rank-{rank} input", "axis", axis)
    if axis < 0:
        axis += rank
    if axis == 0:  # [1, N*...]: the batch folded into the features, at every batch but 1
        raise n.error("Flatten with axis 0 folds the batch into the features", "axis", 0)
    return _reshaped(n, x.shape, [numel(x.shape[:axis]), numel(x.shape[axis:])])


def _squeeze_axes(n: NodeCtx, rank: int) -> list[int] | None:
    raw = (n.ints_input(1, "axes") if n.has(1) else None) if n.opset >= 13 \
        else n.attr("axes", None)
    return None if raw is None else sorted(norm_axis(n, a, rank, "axes") for a in raw)


def _unsqueezed(n: NodeCtx, dims: list[int]) -> list[int]:
    raw = n.ints_input(1, "axes") if n.opset >= 13 else list(n.attr("axes"))
    rank = len(dims) + len(raw)
    for a in sorted(norm_axis(n, a, rank, "axes") for a in raw):
        dims.insert(a, 1)
    return dims


@converter("Squeeze")
def _squeeze(n: NodeCtx) -> Emit:
    x = n.act(0).shape
    axes = _squeeze_axes(n, len(x))
    if axes is None:  # every size-1 axis but the batch
        axes = [i for i, d in enumerate(x) if d == 1 and i > 0]
    if any(x[a] != 1 for a in axes):
        raise n.error("only axes of size 1 can be squeezed", "axes", axes)
    return _reshaped(n, x, [d for i, d in enumerate(x) if i not in axes])


@converter("Unsqueeze")
def _unsqueeze(n: NodeCtx) -> Emit:
    x = n.act(0).shape
    return _reshaped(n, x, _unsqueezed(n, list(x)))


# ---------------------------------------------------------------------------------------------
# constants and shape computations, folded with numpy
@folder("Constant")
def _constant(n: NodeCtx) -> Const:
    attrs = n.attrs
    if "value" in attrs:
        value = n.b.onnx.numpy_helper.to_array(attrs["value"])
    elif "value_int" in attrs or "value_float" in attrs:
        value = np.array(attrs.get("value_int", attrs.get("value_float")))
    elif "value_ints" in attrs or "value_floats" in attrs:
        value = np.array(attrs.get("value_ints", attrs.get("value_floats")))
    else:
        raise n.error("only tensor, int and float constants are supported", "attributes",
                      sorted(attrs))
    return Const(tuple(value.shape), value)


def _fold(value: Any) -> Const:
    value = np.asarray(value)
    return Const(tuple(value.shape), value)


@folder("Shape")
def _shape(n: NodeCtx) -> Const:
    source = n.b.acts.get(n.inputs[0]) or n.b.consts.get(n.inputs[0])
    if source is None:
        raise n.error("input 0 is produced by no earlier node or graph input", "inputs",
                      n.inputs[0])
    dims = list(source.shape)
    start, end = n.int_attr("start", 0), n.int_attr("end", len(dims))
    return _fold(np.array(dims[start:end], dtype=np.int64))


@folder("Gather")
def _gather(n: NodeCtx) -> Const:
    data = n.value(0, "data")
    return _fold(np.take(data, n.value(1, "indices"), axis=n.int_attr("axis", 0)))


@folder("Unsqueeze")
def _unsqueeze_const(n: NodeCtx) -> Const:
    data = n.value(0, "data")
    return _fold(np.reshape(data, _unsqueezed(n, list(data.shape))))


@folder("Squeeze")
def _squeeze_const(n: NodeCtx) -> Const:
    data = n.value(0, "data")
    axes = _squeeze_axes(n, data.ndim)
    return _fold(np.squeeze(data) if axes is None else np.squeeze(data, axis=tuple(axes)))


@folder("Concat")
def _concat_const(n: NodeCtx) -> Const:
    parts = [n.value(i, "operand") for i, t in enumerate(n.inputs) if t]
    return _fold(np.concatenate(parts, axis=n.int_attr("axis")))


@folder("Identity", "Cast")
def _identity_const(n: NodeCtx) -> Const:
    return n.const(0, "operand")


@folder("Reshape")
def _reshape_const(n: NodeCtx) -> Const:
    data = n.value(0, "data")
    return _fold(np.reshape(data, _reshape_target(n, data.shape, n.ints_input(1, "shape"))))


_ARITHMETIC = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}


@folder(*_ARITHMETIC, "Div")
def _arithmetic(n: NodeCtx) -> Const:
    a, b = n.value(0, "operand"), n.value(1, "operand")
    if n.op == "Div":  # integer division truncates in ONNX, as C does
        both_int = np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)
        return _fold(np.trunc(a / b).astype(a.dtype) if both_int else a / b)
    return _fold(_ARITHMETIC[n.op](a, b))
