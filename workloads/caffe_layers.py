"""Caffe layers, one converter each: a Caffe layer message to a paleosim net-format layer and
its output shape by Caffe's own arithmetic (``conv_layer.cpp``, ``pooling_layer.cpp``).

Used by :mod:`workloads.caffe`, which reads the prototxt, orders the layers and assembles the net;
see that module for the choices made where the formats differ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from simulator.errors import SpecError
from workloads.prototxt import Message

Shape = tuple[int, ...]

_DATA_SOURCES = ("Data", "ImageData", "HDF5Data", "MemoryData", "WindowData", "AnnotatedData",
                 "VideoData", "DummyData", "Input")
_SKIPPED = ("Accuracy", "Silence")

@dataclass(frozen=True)
class _Layer:
    """One Caffe layer as written, with what error messages need to point at it."""

    name: str
    type: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    msg: Message
    source: str

    def where(self, detail: str | None = None) -> str:
        text = f"line {self.msg.line}, layer {self.name!r}"
        return f"{text}, {detail}" if detail else text

    def error(self, problem: str, detail: str | None = None, value: Any = SpecError._NO_VALUE):
        return SpecError(problem, source=self.source, field=self.where(detail), value=value)

    def param(self, key: str) -> Message:
        value = self.msg.get(key)
        return value if isinstance(value, Message) else Message((), self.msg.line)


@dataclass
class _Node:
    """A layer of the output graph: its unique name, Caffe layer and parent node names."""

    name: str
    layer: _Layer | None          # None for a root ``input:``
    parents: list[str]
    tensor: Shape | None = None    # NCHW (or [N, D]) for inputs
    scale: _Layer | None = None    # the Scale folded into a BatchNorm


# ---------------------------------------------------------------------------------------------
# typed field access
def _checked(layer: _Layer, value: Any, what: str, *, integer: bool = True,
             minimum: float | None = None) -> Any:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or isinstance(value, str):
        raise layer.error("expected " + ("an integer" if integer else "a number"), what, value)
    if minimum is not None and value < minimum:
        raise layer.error(f"must be >= {minimum}", what, value)
    return value


def _num(layer: _Layer, p: Message, pname: str, key: str, default: Any, *, integer: bool = True,
         minimum: float | None = None) -> Any:
    """Field ``key`` of parameter message ``p`` (``pname``), type- and range-checked."""
    value = p.get(key, default)
    if value is None:
        raise layer.error(f"missing {key}", pname)
    return _checked(layer, value, f"{pname}.{key}", integer=integer, minimum=minimum)


def _flag(layer: _Layer, p: Message, pname: str, key: str, default: bool) -> bool:
    value = p.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "t", "false", "f"):
        return value.lower() in ("true", "t")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise layer.error("expected true or false", f"{pname}.{key}", value)


def _enum(layer: _Layer, p: Message, pname: str, key: str, names: Sequence[str],
          default: str) -> str:
    """An enum field written by name or by number (``pool: AVE`` or ``pool: 1``)."""
    value = p.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    if isinstance(value, str) and value in names:
        return value
    raise layer.error(f"expected one of {', '.join(names)}", f"{pname}.{key}", value)


def _pair(layer: _Layer, p: Message, pname: str, key: str, default: int | None, minimum: int, *,
          single: bool = False) -> tuple[int, int]:
    """A spatial (h, w) pair from ``key`` (one value, or two for a repeated field) or
    ``key_h``/``key_w``, as Caffe's ``base_conv_layer.cpp`` and ``pooling_layer.cpp`` read them."""
    kh, kw = (f"{key.replace('_size', '')}_{axis}" for axis in "hw")  # kernel_size -> kernel_h
    if p.has(kh) or p.has(kw):
        if not (p.has(kh) and p.has(kw)) or p.has(key):
            raise layer.error(f"give either {key} or both {kh} and {kw}", pname)
        return (_num(layer, p, pname, kh, None, minimum=minimum),
                _num(layer, p, pname, kw, None, minimum=minimum))
    values = [_checked(layer, v, f"{pname}.{key}", minimum=minimum) for v in p.get_all(key)]
    if not values:
        if default is None:
            raise layer.error(f"missing {key}", pname)
        return default, default
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2 and not single:
        return values[0], values[1]
    raise layer.error("only 2-D windows are supported", f"{pname}.{key}", values)


def _nchw_to_nhwc(dims: Sequence[int]) -> Shape:
    return (dims[0], dims[2], dims[3], dims[1]) if len(dims) == 4 else tuple(dims)


def _nhwc_axis(layer: _Layer, axis: int, rank: int, what: str) -> int:
    """Map a Caffe (NCHW) axis to the NHWC axis of the same dimension."""
    if not -rank <= axis < rank:
        raise layer.error(f"axis out of range for a rank-{rank} input", what, axis)
    axis %= rank
    return (0, 3, 1, 2)[axis] if rank == 4 else axis


def _shape_dims(where: Callable[..., SpecError], dims: Sequence[Any]) -> Shape:
    if (len(dims) not in (2, 4)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims)):
        raise where("an input shape must be 4 (N, C, H, W) or 2 (N, D) positive integers",
                    list(dims))
    return tuple(dims)


# ---------------------------------------------------------------------------------------------

def _bad_arity(layer: _Layer, low: int, high: int | None) -> Any:
    expected = f"{low}" if low == high else f"at least {low}"
    raise layer.error(f"expected {expected} bottom blob(s)", "bottom", list(layer.bottoms))


# ---------------------------------------------------------------------------------------------
# pass 2: nodes -> net-format layers, with Caffe's shape arithmetic
Converter = Callable[[_Layer, list[Shape], _Node], tuple[dict, Shape]]
_CONVERTERS: dict[str, Converter] = {}


def _converter(*caffe_types: str) -> Callable[[Converter], Converter]:
    def deco(fn: Converter) -> Converter:
        for t in caffe_types:
            _CONVERTERS[t] = fn
        return fn
    return deco


def _one(layer: _Layer, shapes: list[Shape], rank: int | None = None) -> Shape:
    if len(shapes) != 1:
        _bad_arity(layer, 1, 1)
    if rank is not None and len(shapes[0]) != rank:
        raise layer.error(f"expects a rank-{rank} input", "bottom", list(shapes[0]))
    return shapes[0]


def _bias_fields(layer: _Layer, p: Message, pname: str) -> dict:
    return {} if _flag(layer, p, pname, "bias_term", True) else {"bias": False}


@_converter("Convolution")
def _convolution(layer, shapes, node):
    n, h, w, cin = _one(layer, shapes, 4)
    p, pn = layer.param("convolution_param"), "convolution_param"
    cout = _num(layer, p, pn, "num_output", None, minimum=1)
    kh, kw = _pair(layer, p, pn, "kernel_size", None, 1)
    sh, sw = _pair(layer, p, pn, "stride", 1, 1)
    ph, pw = _pair(layer, p, pn, "pad", 0, 0)
    dh, dw = _pair(layer, p, pn, "dilation", 1, 1)
    groups = _num(layer, p, pn, "group", 1, minimum=1)
    if _num(layer, p, pn, "axis", 1) != 1:
        raise layer.error("only the channel axis (1) is supported", f"{pn}.axis", p.get("axis"))
    if cin % groups or cout % groups:
        raise layer.error(f"group must divide the input channels ({cin}) and num_output "
                          f"({cout})", f"{pn}.group", groups)
    # conv_layer.cpp compute_output_shape: floor((H + 2p - (d(k-1)+1)) / s) + 1
    ho = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    wo = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    if ho < 1 or wo < 1:
        raise layer.error(f"the {kh}x{kw} kernel does not fit the {h}x{w} input", pn)
    fields = {"filter": [kh, kw, cin, cout], "strides": [1, sh, sw, 1], "padding": [ph, pw]}
    if groups != 1:
        fields["groups"] = groups
    if (dh, dw) != (1, 1):
        fields["dilations"] = [1, dh, dw, 1]
    return {**fields, **_bias_fields(layer, p, pn)}, (n, ho, wo, cout)


@_converter("Deconvolution")
def _deconvolution(layer, shapes, node):
    n, h, w, cin = _one(layer, shapes, 4)
    p, pn = layer.param("convolution_param"), "convolution_param"
    cout = _num(layer, p, pn, "num_output", None, minimum=1)
    kh, kw = _pair(layer, p, pn, "kernel_size", None, 1)
    sh, sw = _pair(layer, p, pn, "stride", 1, 1)
    ph, pw = _pair(layer, p, pn, "pad", 0, 0)
    if _pair(layer, p, pn, "dilation", 1, 1) != (1, 1) or _num(layer, p, pn, "group", 1) != 1:
        raise layer.error("a dilated or grouped Deconvolution is not supported", pn)
    # deconv_layer.cpp compute_output_shape: s(H - 1) + k - 2p
    ho, wo = sh * (h - 1) + kh - 2 * ph, sw * (w - 1) + kw - 2 * pw
    if ho < 1 or wo < 1:
        raise layer.error("the padding exceeds the output", pn, [ph, pw])
    fields = {"filter": [kh, kw, cout, cin], "strides": [1, sh, sw, 1], "padding": [ph, pw],
              "output_shape": [n, ho, wo, cout]}
    return {**fields, **_bias_fields(layer, p, pn)}, (n, ho, wo, cout)


@_converter("Pooling")
def _pooling(layer, shapes, node):
    n, h, w, c = _one(layer, shapes, 4)
    p, pn = layer.param("pooling_param"), "pooling_param"
    pool = _enum(layer, p, pn, "pool", ("MAX", "AVE", "STOCHASTIC"), "MAX")
    if pool == "STOCHASTIC":
        raise layer.error("STOCHASTIC pooling is not supported", f"{pn}.pool", pool)
    ceil_mode = _enum(layer, p, pn, "round_mode", ("CEIL", "FLOOR"), "CEIL") == "CEIL"
    if _flag(layer, p, pn, "global_pooling", False):
        if p.has("kernel_size") or p.has("kernel_h") or p.has("kernel_w"):
            raise layer.error("global pooling takes no kernel size", pn)
        if _pair(layer, p, pn, "pad", 0, 0, single=True) != (0, 0) or \
                _pair(layer, p, pn, "stride", 1, 1, single=True) != (1, 1):
            raise layer.error("global pooling needs pad 0 and stride 1", pn)
        if pool == "AVE":
            return {}, (n, 1, 1, c)
        return ({"ksize": [1, h, w, 1], "strides": [1, 1, 1, 1], "padding": [0, 0]},
                (n, 1, 1, c))
    kh, kw = _pair(layer, p, pn, "kernel_size", None, 1, single=True)
    sh, sw = _pair(layer, p, pn, "stride", 1, 1, single=True)
    ph, pw = _pair(layer, p, pn, "pad", 0, 0, single=True)
    if ph >= kh or pw >= kw:
        raise layer.error("the pad must be smaller than the kernel", f"{pn}.pad", [ph, pw])
    # pooling_layer.cpp Reshape: round (H + 2p - k)/s up (or down) and add one; with padding,
    # drop the last window if it would start in the padding past the input's end.
    rnd = math.ceil if ceil_mode else math.floor
    ho = int(rnd((h + 2 * ph - kh) / sh)) + 1
    wo = int(rnd((w + 2 * pw - kw) / sw)) + 1
    if ph or pw:
        ho -= (ho - 1) * sh >= h + ph
        wo -= (wo - 1) * sw >= w + pw
    if ho < 1 or wo < 1:
        raise layer.error(f"the {kh}x{kw} window does not fit the {h}x{w} input", pn)
    fields = {"ksize": [1, kh, kw, 1], "strides": [1, sh, sw, 1], "padding": [ph, pw]}
    if ceil_mode:
        fields["ceil_mode"] = True
    return fields, (n, ho, wo, c)


@_converter("InnerProduct")
def _inner_product(layer, shapes, node):
    shape = _one(layer, shapes)
    p, pn = layer.param("inner_product_param"), "inner_product_param"
    k = _num(layer, p, pn, "num_output", None, minimum=1)
    if _nhwc_axis(layer, _num(layer, p, pn, "axis", 1), len(shape), f"{pn}.axis") != \
            _nhwc_axis(layer, 1, len(shape), f"{pn}.axis"):
        raise layer.error("only axis 1 (flatten all but the batch) is supported", f"{pn}.axis")
    return {"num_outputs": k, **_bias_fields(layer, p, pn)}, (shape[0], k)


@_converter("ReLU", "Sigmoid", "TanH")
def _activation(layer, shapes, node):
    shape = _one(layer, shapes)
    slope = _num(layer, layer.param("relu_param"), "relu_param", "negative_slope", 0,
                 integer=False)
    if slope != 0:
        raise layer.error("leaky ReLU is not an Activation function of the net format",
                          "relu_param.negative_slope", slope)
    return {"function": {"ReLU": "relu", "Sigmoid": "sigmoid", "TanH": "tanh"}[layer.type]}, shape


@_converter("LRN")
def _lrn(layer, shapes, node):
    shape = _one(layer, shapes, 4)
    p, pn = layer.param("lrn_param"), "lrn_param"
    region = _enum(layer, p, pn, "norm_region", ("ACROSS_CHANNELS", "WITHIN_CHANNEL"),
                   "ACROSS_CHANNELS")
    if region != "ACROSS_CHANNELS":
        raise layer.error("only ACROSS_CHANNELS LRN is supported", f"{pn}.norm_region", region)
    return ({"size": _num(layer, p, pn, "local_size", 5, minimum=1),
             "alpha": float(_num(layer, p, pn, "alpha", 1.0, integer=False)),
             "beta": float(_num(layer, p, pn, "beta", 0.75, integer=False)),
             "k": float(_num(layer, p, pn, "k", 1.0, integer=False))}, shape)


@_converter("Dropout")
def _dropout(layer, shapes, node):
    ratio = _num(layer, layer.param("dropout_param"), "dropout_param", "dropout_ratio", 0.5,
                 integer=False, minimum=0)
    if ratio >= 1:
        raise layer.error("dropout_ratio must be below 1", "dropout_param.dropout_ratio", ratio)
    return {"dropout_keep_prob": 1.0 - ratio}, _one(layer, shapes)


@_converter("Eltwise")
def _eltwise(layer, shapes, node):
    if len(shapes) < 2:
        _bad_arity(layer, 2, None)
    op = _enum(layer, layer.param("eltwise_param"), "eltwise_param", "operation",
               ("PROD", "SUM", "MAX"), "SUM")
    if op == "MAX":
        raise layer.error("Eltwise MAX has no Elementwise operation (sum or prod only)",
                          "eltwise_param.operation", op)
    if any(s != shapes[0] for s in shapes):
        raise layer.error("inputs differ in shape", "bottom", [list(s) for s in shapes])
    return {"operation": op.lower()}, shapes[0]


@_converter("Concat")
def _concat(layer, shapes, node):
    if not shapes:
        _bad_arity(layer, 1, None)
    p, pn = layer.param("concat_param"), "concat_param"
    axis = _num(layer, p, pn, "concat_dim" if p.has("concat_dim") else "axis", 1)
    rank = len(shapes[0])
    dim = _nhwc_axis(layer, axis, rank, f"{pn}.axis")
    rest = [s[:dim] + s[dim + 1:] for s in shapes]
    if any(len(s) != rank for s in shapes) or any(r != rest[0] for r in rest):
        raise layer.error("inputs differ off the concatenation axis", "bottom",
                          [list(s) for s in shapes])
    out = list(shapes[0])
    out[dim] = sum(s[dim] for s in shapes)
    return {"dim": dim}, tuple(out)


@_converter("Softmax", "SoftmaxWithLoss")
def _softmax(layer, shapes, node):
    return {}, _one(layer, shapes)


@_converter("Flatten")
def _flatten(layer, shapes, node):
    shape = _one(layer, shapes)
    p = layer.param("flatten_param")
    if (_num(layer, p, "flatten_param", "axis", 1), _num(layer, p, "flatten_param", "end_axis",
                                                         -1)) != (1, -1):
        raise layer.error("only the default Flatten (axis 1 to the end) is supported",
                          "flatten_param")
    return {}, (shape[0], math.prod(shape[1:]))


@_converter("BatchNorm")
def _batch_norm(layer, shapes, node):
    eps = _num(layer, layer.param("batch_norm_param"), "batch_norm_param", "eps", 1e-5,
               integer=False)
    fields: dict[str, Any] = {"affine": node.scale is not None, "epsilon": float(eps)}
    if node.scale is not None and not _flag(node.scale, node.scale.param("scale_param"),
                                            "scale_param", "bias_term", False):
        fields["bias"] = False
    return fields, _one(layer, shapes)


@_converter("Scale")
def _lone_scale(layer, shapes, node):
    raise layer.error("a Scale must directly follow a BatchNorm whose output nothing else reads; "
                      "a standalone Scale is not supported", "type", layer.type)


_NET_TYPES = {"Convolution": "Convolution", "Deconvolution": "Deconvolution",
              "InnerProduct": "InnerProduct", "ReLU": "Activation", "Sigmoid": "Activation",
              "TanH": "Activation", "LRN": "LRN", "Dropout": "Dropout", "Eltwise": "Elementwise",
              "Concat": "Concatenate", "Softmax": "Softmax", "SoftmaxWithLoss": "Softmax",
              "Flatten": "Flatten", "BatchNorm": "BatchNorm"}

#: Caffe layer types the importer understands (skipped and aliasing types included).
SUPPORTED_TYPES = tuple(sorted({*_CONVERTERS, *_DATA_SOURCES, *_SKIPPED, "Split"}))


def _net_type(layer: _Layer, fields: dict) -> str:
    if layer.type == "Pooling":
        if "ksize" not in fields:
            return "GlobalAvgPool"
        pool = _enum(layer, layer.param("pooling_param"), "pooling_param", "pool",
                     ("MAX", "AVE", "STOCHASTIC"), "MAX")
        return "AvgPool" if pool == "AVE" else "Pooling"
    return _NET_TYPES[layer.type]
