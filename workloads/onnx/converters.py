"""Converters from ONNX operators to net-format layers, with ONNX's shape arithmetic.

Shapes here are ONNX's (NCHW for rank 4); the builder writes them in the net format's layout.
Output sizes follow the operator texts of the ONNX specification (https://onnx.ai/onnx/operators/,
Conv, MaxPool, AveragePool): ``floor`` or, in ceil mode, ``ceil`` of
``(H + pad_begin + pad_end - ((k - 1) * d + 1)) / s``, plus one; in ceil mode a window that would
start in the right padding is dropped; ``auto_pad`` SAME gives ``ceil(H / s)``, VALID
``floor((H - ((k - 1) * d + 1)) / s) + 1``. Reshapes and constant folding are in
:mod:`workloads.onnx.shapes`.
"""
from __future__ import annotations

import math
from typing import Any

from workloads.onnx.nodes import Alias, Emit, NodeCtx, Shape, converter, f32, norm_axis, numel


def _nhwc_axis(axis: int, rank: int) -> int:
    """An ONNX axis (NCHW for rank 4) as the net format's axis of the same dimension."""
    return (0, 3, 1, 2)[axis] if rank == 4 else axis


# ---------------------------------------------------------------------------------------------
# windows: padding and output sizes
def _window(n: NodeCtx, hw: Shape, k: list[int], s: list[int], d: list[int], *,
            ceil_mode: bool = False) -> tuple[Any, bool, Shape, Shape]:
    """The net-format padding and ceil flag of a 2-D window, ONNX's output (h, w), and the size
    ``onnx.shape_inference`` gives before opset 22 (which keeps a window starting in the right
    padding)."""
    auto = n.attr("auto_pad", "NOTSET")
    keff = [(k[i] - 1) * d[i] + 1 for i in range(2)]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = tuple(-(-hw[i] // s[i]) for i in range(2))
        return "SAME", False, out, out
    if auto == "VALID":
        out = tuple((hw[i] - keff[i]) // s[i] + 1 for i in range(2))
        if min(out) < 1:
            raise n.error(f"the window {k} does not fit the input {list(hw)}", "kernel_shape", k)
        return "VALID", False, out, out
    if auto != "NOTSET":
        raise n.error("expected NOTSET, SAME_UPPER, SAME_LOWER or VALID", "auto_pad", auto)
    pads = n.ints("pads", 4, [0, 0, 0, 0], minimum=0)
    begin, end = pads[:2], pads[2:]
    out, kept, floor_ = [], [], []
    for i in range(2):
        span = hw[i] + begin[i] + end[i] - keff[i]
        if span < 0:
            raise n.error(f"the window {k} does not fit the padded input {list(hw)}", "pads", pads)
        f = span // s[i] + 1
        c = -(-span // s[i]) + 1 if ceil_mode else f
        kept.append(c)
        if ceil_mode and (c - 1) * s[i] >= hw[i] + begin[i]:
            c -= 1  # the last window would start in the right padding
        out.append(c)
        floor_.append(f)
    if begin == end:
        padding: Any = [begin[0], begin[1]]
    elif all(out[i] == -(-hw[i] // s[i])
             and begin[i] == max((out[i] - 1) * s[i] + keff[i] - hw[i], 0) // 2 for i in range(2)):
        # asymmetric pads that are exactly TensorFlow's SAME (the extra pad at the end)
        padding = "SAME"
    else:
        raise n.error("asymmetric pads are not expressible: the net format pads symmetrically "
                      "or as TensorFlow's SAME", "pads", pads)
    ceil_flag = ceil_mode and out != floor_ and padding != "SAME"
    return padding, ceil_flag, tuple(out), tuple(kept)


def _spatial_attrs(n: NodeCtx, k: list[int], *, dilations: bool) -> tuple[list, list, list]:
    ks = n.ints("kernel_shape", 2, k)
    if ks != k:
        raise n.error(f"kernel_shape disagrees with the weight's {k}", "kernel_shape", ks)
    s = n.ints("strides", 2, [1, 1])
    d = n.ints("dilations", 2, [1, 1]) if dilations else [1, 1]
    return ks, s, d


# ---------------------------------------------------------------------------------------------
# convolution, pooling
@converter("Conv")
def _conv(n: NodeCtx) -> Emit:
    n.arity(2, 3)
    x = n.act(0, 4)
    w = n.const(1, "weight")
    if len(w.shape) != 4:
        raise n.error("only 2-D convolutions (a rank-4 weight) are supported", "weight",
                      list(w.shape))
    batch, cin, h, wd = x.shape
    cout, cg, kh, kw = w.shape
    groups = n.int_attr("group", 1, minimum=1)
    if cg * groups != cin or cout % groups:
        raise n.error(f"the weight {list(w.shape)} with group={groups} does not fit {cin} input "
                      "channels", "group", groups)
    _, s, d = _spatial_attrs(n, [kh, kw], dilations=True)
    padding, _, out, _ = _window(n, (h, wd), [kh, kw], s, d)
    fields: dict[str, Any] = {"filter": [kh, kw, cin, cout], "strides": [1, *s, 1],
                              "padding": padding}
    if groups != 1:
        fields["groups"] = groups
    if d != [1, 1]:
        fields["dilations"] = [1, *d, 1]
    params = numel(w.shape)
    if n.has(2):
        params += _bias(n, 2, cout)
    else:
        fields["bias"] = False
    return Emit("Convolution", fields, [n.inputs[0]], (batch, cout, *out), params)


def _bias(n: NodeCtx, i: int, k: int) -> int:
    """Elements of a bias input, which must hold ``k`` values along its last axis."""
    b = n.const(i, "bias")
    if numel(b.shape) != k or (b.shape and b.shape[-1] != k):
        raise n.error(f"expected a bias of {k} values", "bias", list(b.shape))
    return k


@converter("MaxPool", "AveragePool")
def _pool(n: NodeCtx) -> Emit:
    n.arity(1, 1)
    x = n.act(0, 4)
    k = n.ints("kernel_shape", 2)
    _, s, d = _spatial_attrs(n, k, dilations=True)
    if d != [1, 1]:
        raise n.error("dilated pooling is not supported", "dilations", d)
    ceil_mode = bool(n.int_attr("ceil_mode", 0, choices=(0, 1)))
    padding, ceil_flag, out, kept = _window(n, x.shape[2:], k, s, d, ceil_mode=ceil_mode)
    fields: dict[str, Any] = {"ksize": [1, *k, 1], "strides": [1, *s, 1], "padding": padding}
    if ceil_flag:
        fields["ceil_mode"] = True
    shape = (*x.shape[:2], *out)
    old = (*x.shape[:2], *kept) if n.opset < 22 and kept != out else None
    return Emit("Pooling" if n.op == "MaxPool" else "AvgPool", fields, [n.inputs[0]], shape,
                onnx_shape=old)


@converter("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(n: NodeCtx) -> Emit:
    n.arity(1, 1)
    x = n.act(0, 4)
    shape = (*x.shape[:2], 1, 1)
    if n.op == "GlobalAveragePool":
        return Emit("GlobalAvgPool", {}, [n.inputs[0]], shape)
    h, w = x.shape[2:]
    return Emit("Pooling", {"ksize": [1, h, w, 1], "strides": [1, 1, 1, 1], "padding": [0, 0]},
                [n.inputs[0]], shape)


# ---------------------------------------------------------------------------------------------
# matrix products
@converter("Gemm")
def _gemm(n: NodeCtx) -> Emit:
    n.arity(2, 3)
    a = n.act(0, 2)
    if n.int_attr("transA", 0, choices=(0, 1)):
        raise n.error("transA=1 (the batch on the second axis) is not supported", "transA", 1)
    trans_b = bool(n.int_attr("transB", 0, choices=(0, 1)))
    has_c = n.has(2) and n.attr("beta", 1.0) != 0
    if not n.is_const(1):  # a product of two activations
        b = n.act(1, 2)
        if has_c:
            raise n.error("a Gemm of two activations with a C term is not supported", "inputs")
        return _matmul_acts(n, a.shape, b.shape, trans_b)
    w = n.const(1, "weight")
    if len(w.shape) != 2:
        raise n.error("expected a rank-2 weight", "weight", list(w.shape))
    k_in, k_out = (w.shape[1], w.shape[0]) if trans_b else w.shape
    if a.shape[1] != k_in:
        raise n.error(f"the weight {list(w.shape)} does not fit the input {list(a.shape)}",
                      "weight", list(w.shape))
    fields: dict[str, Any] = {"num_outputs": k_out}
    params = numel(w.shape)
    if has_c:
        params += _bias(n, 2, k_out)
    else:
        fields["bias"] = False
    return Emit("InnerProduct", fields, [n.inputs[0]], (a.shape[0], k_out), params)


@converter("MatMul")
def _matmul(n: NodeCtx) -> Emit:
    n.arity(2, 2)
    a = n.act(0)
    if not n.is_const(1):
        b = n.act(1)
        return _matmul_acts(n, a.shape, b.shape, False)
    w = n.const(1, "weight")
    if len(w.shape) != 2 or len(a.shape) not in (2, 3):
        raise n.error("a MatMul by a weight needs a rank-2 or rank-3 input and a rank-2 weight",
                      "inputs", [list(a.shape), list(w.shape)])
    if a.shape[-1] != w.shape[0]:
        raise n.error(f"the weight {list(w.shape)} does not fit the input {list(a.shape)}",
                      "weight", list(w.shape))
    return Emit("InnerProduct", {"num_outputs": w.shape[1], "bias": False}, [n.inputs[0]],
                (*a.shape[:-1], w.shape[1]), numel(w.shape))


def _matmul_acts(n: NodeCtx, a: Shape, b: Shape, transpose_b: bool) -> Emit:
    """A product of two activations: the net format's MatMul (no broadcasting; rank-4 tensors
    are NHWC there, so their last two axes are not ONNX's)."""
    if len(a) != len(b) or len(a) not in (2, 3) or a[:-2] != b[:-2]:
        raise n.error("a MatMul of two activations needs operands of rank 2 or 3 with equal "
                      "leading dimensions", "inputs", [list(a), list(b)])
    bk, bp = (b[-1], b[-2]) if transpose_b else (b[-2], b[-1])
    if a[-1] != bk:
        raise n.error("the operands' inner dimensions differ", "inputs", [list(a), list(b)])
    fields = {"transpose_b": True} if transpose_b else {}
    return Emit("MatMul", fields, n.inputs[:2], (*a[:-1], bp))


# ---------------------------------------------------------------------------------------------
# normalisation, activations, elementwise
@converter("BatchNormalization")
def _batch_norm(n: NodeCtx) -> Emit:
    n.arity(5, 5)
    x = n.act(0, 2, 4)  # channels on axis 1: the last axis in the net format for ranks 2 and 4
    c = x.shape[1]
    for i, what in enumerate(("scale", "bias", "mean", "variance"), start=1):
        if n.const(i, what).shape != (c,):
            raise n.error(f"expected a {what} of {c} values", what, list(n.const(i, what).shape))
    if n.attr("spatial", 1) != 1:
        raise n.error("spatial=0 (per-position statistics) is not supported", "spatial", 0)
    eps = f32(n.attr("epsilon", 1e-5))
    return Emit("BatchNorm", {"epsilon": eps}, [n.inputs[0]], x.shape, 2 * c)


_ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Gelu": "gelu"}


@converter(*_ACTIVATIONS)
def _activation(n: NodeCtx) -> Emit:
    n.arity(1, 1)
    x = n.act(0)
    return Emit("Activation", {"function": _ACTIVATIONS[n.op]}, [n.inputs[0]], x.shape)


@converter("Clip")
def _clip(n: NodeCtx) -> Emit:
    """Clip to [0, 6] is ReLU6 and to [0, inf) ReLU; other bounds are not an activation of the
    net format."""
    x = n.act(0)
    if n.opset < 11:
        low, high = n.attr("min", -math.inf), n.attr("max", math.inf)
    else:
        low = float(n.value(1, "min").reshape(-1)[0]) if n.has(1) else -math.inf
        high = float(n.value(2, "max").reshape(-1)[0]) if n.has(2) else math.inf
    function = {(0.0, 6.0): "relu6", (0.0, math.inf): "relu"}.get((low, high))
    if function is None:
        raise n.error("only Clip(0, 6) (ReLU6) and Clip(0, inf) (ReLU) are supported",
                      "min, max", [low, high])
    return Emit("Activation", {"function": function}, [n.inputs[0]], x.shape)


@converter("Add", "Sum", "Mul")
def _elementwise(n: NodeCtx) -> Emit | Alias:
    data = [t for t in n.inputs if t]
    if n.op == "Add" and len(data) == 2 and n.is_const(0) != n.is_const(1):
        return _fuse_bias(n, 1 if n.is_const(0) else 0, 0 if n.is_const(0) else 1)
    if n.op == "Sum" and len(data) == 1:
        n.act(0)
        return Alias(data[0])
    if n.op != "Sum":
        n.arity(2, 2)
    shapes = [n.act(i).shape for i in range(len(data))]
    if any(s != shapes[0] for s in shapes):
        raise n.error("inputs of different shapes (broadcasting) are not supported", "inputs",
                      [list(s) for s in shapes])
    return Emit("Elementwise", {"operation": "prod" if n.op == "Mul" else "sum"}, data,
                shapes[0])


def _fuse_bias(n: NodeCtx, act_i: int, const_i: int) -> Alias:
    """``MatMul(x, W) + b``, as PyTorch writes a Linear on a rank-3 input: the bias joins the
    InnerProduct when the Add is the product's only reader."""
    x = n.act(act_i)
    rec = n.b.producer.get(n.inputs[act_i])
    k = rec.fields.get("num_outputs") if rec is not None else None
    if (rec is None or rec.type != "InnerProduct" or rec.fields.get("bias") is not False
            or n.b.consumers.get(n.inputs[act_i]) != 1):
        raise n.error("an Add of a constant is supported only as the bias of a MatMul by a "
                      "weight that nothing else reads", "inputs", list(n.inputs))
    rec.params += _bias(n, const_i, k)
    del rec.fields["bias"]
    assert x.shape[-1] == k
    return Alias(n.inputs[act_i])


@converter("Softmax")
def _softmax(n: NodeCtx) -> Emit:
    n.arity(1, 1)
    x = n.act(0, 2, 3)
    axis = norm_axis(n, n.int_attr("axis", -1 if n.opset >= 13 else 1), len(x.shape))
    if axis != len(x.shape) - 1:
        raise n.error("only a softmax over the last axis is supported", "axis", n.attr("axis"))
    return Emit("Softmax", {}, [n.inputs[0]], x.shape)


@converter("Dropout")
def _dropout(n: NodeCtx) -> Emit:
    x = n.act(0)
    if n.opset < 12:
        ratio = f32(n.attr("ratio", 0.5))
    else:
        ratio = f32(n.value(1, "ratio").reshape(-1)[0]) if n.has(1) else 0.5
    if not 0 <= ratio < 1:
        raise n.error("the ratio must be in [0, 1)", "ratio", ratio)
    return Emit("Dropout", {"dropout_keep_prob": round(1.0 - ratio, 12)}, [n.inputs[0]], x.shape)


@converter("Identity", "Cast")
def _identity(n: NodeCtx) -> Alias:
    """No layer: Identity passes its input on, and the dtype of a Cast is a simulation choice."""
    n.arity(1, 1)
    n.act(0)
    return Alias(n.inputs[0])


@converter("Concat")
def _concat(n: NodeCtx) -> Emit:
    data = [t for t in n.inputs if t]
    shapes = [n.act(i).shape for i in range(len(data))]
    rank = len(shapes[0])
    axis = norm_axis(n, n.int_attr("axis"), rank)
    rest = [s[:axis] + s[axis + 1:] for s in shapes]
    if any(len(s) != rank for s in shapes) or any(r != rest[0] for r in rest):
        raise n.error("inputs differ off the concatenation axis", "inputs",
                      [list(s) for s in shapes])
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return Emit("Concatenate", {"dim": _nhwc_axis(axis, rank)}, data, tuple(out))
