"""Import a Caffe ``.prototxt`` network definition as a paleosim net spec (NHWC JSON).

The text is read by :mod:`workloads.prototxt` (no protobuf or Caffe dependency) and converted
layer by layer into the net format of ``docs/NET_FORMAT.md``. Unlike Paleo's converter
(``../shared/docs/PALEO_COST_MODEL.md`` section 1.5) nothing is approximated:

- explicit pads are kept (``padding: [ph, pw]``), and pooling keeps Caffe's round-up output size
  (``ceil_mode: true``; ``round_mode: FLOOR`` gives floor mode);
- in-place layers (top == bottom: ReLU, BatchNorm, Scale, Dropout) are kept. Every layer output
  is named after its layer (static single assignment of Caffe's blob names), so the graph stays a
  DAG;
- AVE pooling becomes ``AvgPool`` (the enum may be written ``AVE`` or ``1``), global AVE pooling
  ``GlobalAvgPool`` and global MAX pooling a ``Pooling`` whose window is the whole input;
- ``group``, ``dilation`` and ``bias_term: false`` are kept, and the input channels of every
  filter are computed exactly by tracking shapes through the graph with Caffe's arithmetic
  (``conv_layer.cpp``, ``pooling_layer.cpp``);
- ``dropout_keep_prob`` is ``1 - dropout_ratio``.

Choices where the net format has no exact equivalent (each raises :class:`SpecError` rather than
guess):

- **BatchNorm + Scale.** Caffe's BatchNorm has no affine parameters; the Scale right after it holds
  gamma (and beta with ``bias_term: true``). When a Scale's only bottom is a BatchNorm output that
  nothing else reads, the pair becomes one ``BatchNorm`` named after the BatchNorm layer, with
  ``affine: true``. A Scale without ``bias_term`` (Caffe's default is false) has no beta: the layer
  then also carries ``bias: false``. A lone BatchNorm is ``affine: false``. A lone Scale is an
  error: a per-channel multiply is not a layer of the net format, and calling it a BatchNorm would
  charge a normalisation that Caffe does not compute.
- **Eltwise.** ``SUM`` (the default; ``coeff`` weights cost the same and are not kept) and
  ``PROD`` map to ``Elementwise``; ``MAX`` is an error (the format has ``sum`` and ``prod`` only).
- **ReLU** with a non-zero ``negative_slope`` (leaky ReLU) and **LRN** with ``WITHIN_CHANNEL`` are
  errors: the format's ``Activation`` and ``LRN`` do not describe them.
- **Phases.** The training graph is imported: layers with ``include { phase: TEST }`` or
  ``exclude { phase: TRAIN }`` are skipped, and so are ``Accuracy`` and ``Silence`` layers (they
  have no gradient). ``Softmax`` and ``SoftmaxWithLoss`` keep only their first bottom (the scores;
  a second bottom is the label). ``Split`` layers are aliases and produce no layer.
- **Inputs.** The input blob is the one named by the root ``input:`` (with ``input_dim`` x4 or
  ``input_shape { dim }``), or the first top of an ``Input`` (``input_param { shape }``),
  ``DummyData`` or data-source layer (``Data``, ``ImageData``...). The first input becomes the layer
  ``data``. Shapes are written N, C, H, W in Caffe and become ``tensor: [N, H, W, C]``; a 2-D shape
  ``[N, D]`` is kept. A data-source layer has no shape in the file, so one must be passed
  (``input_shape``, which also overrides the file's shape); its other tops (labels) have no shape
  and must not feed a kept layer. Inputs other than ``data`` that feed no kept layer are dropped.

The old (V1) format, ``layers { type: CONVOLUTION }``, is read too: its type enums map to the
current names.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from simulator.errors import SpecError, UnknownNameError
from workloads.prototxt import Message, parse_prototxt

__all__ = ["CaffeImport", "convert_prototxt", "import_prototxt", "net_to_json",
           "prototxt_to_json", "SUPPORTED_TYPES"]

Shape = tuple[int, ...]

_DATA_SOURCES = ("Data", "ImageData", "HDF5Data", "MemoryData", "WindowData", "AnnotatedData",
                 "VideoData", "DummyData", "Input")
_SKIPPED = ("Accuracy", "Silence")
_V1_TYPES = {  # caffe.proto V1LayerParameter.LayerType -> the current type names
    "ACCURACY": "Accuracy", "BNLL": "BNLL", "CONCAT": "Concat", "CONVOLUTION": "Convolution",
    "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "ELTWISE": "Eltwise", "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data", "IMAGE_DATA": "ImageData", "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN", "MEMORY_DATA": "MemoryData", "POOLING": "Pooling", "RELU": "ReLU",
    "SIGMOID": "Sigmoid", "SILENCE": "Silence", "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "TANH": "TanH",
    "WINDOW_DATA": "WindowData",
}
_PHASES = ("TRAIN", "TEST")


@dataclass(frozen=True)
class CaffeImport:
    """The converted net ``spec`` and, per layer, its output ``shapes`` (NHWC, Caffe arithmetic)."""

    spec: dict
    shapes: dict


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
# pass 1: layers -> nodes with SSA names
class _GraphBuilder:
    def __init__(self, source: str, input_shape: Shape | None) -> None:
        self.source = source
        self.input_shape = input_shape
        self.nodes: list[_Node] = []
        self.taken: set[str] = {"data"}
        self.blobs: dict[str, str | None] = {}  # blob -> node producing its current version
        self.has_primary = False

    def unique(self, wanted: str) -> str:
        name, k = wanted, 1
        while name in self.taken:
            k += 1
            name = f"{wanted}_{k}"
        self.taken.add(name)
        return name

    def add_input(self, blob: str, tensor: Shape | None, layer: _Layer | None) -> None:
        if not self.has_primary:
            self.has_primary, name = True, "data"
            tensor = self.input_shape or tensor
        else:
            name = self.unique(blob)
        if tensor is None:
            what = f"layer {layer.name!r} ({layer.type})" if layer else f"input {blob!r}"
            raise SpecError(f"{what} gives no input shape; pass input_shape=(N, C, H, W) "
                            "(paleosim convert --input-shape N,C,H,W)", source=self.source,
                            field=layer.where() if layer else None)
        self.nodes.append(_Node(name, layer, [], tensor=tensor))
        self.blobs[blob] = name

    def resolve(self, layer: _Layer, blob: str) -> str:
        if blob not in self.blobs:
            raise layer.error("bottom blob is produced by no earlier layer", "bottom", blob)
        node = self.blobs[blob]
        if node is None:
            raise layer.error("bottom blob is a label top of a data layer and has no shape",
                              "bottom", blob)
        return node

    def add_data_layer(self, layer: _Layer) -> None:
        if layer.type in ("Input", "DummyData"):
            p = layer.param("input_param" if layer.type == "Input" else "dummy_data_param")
            shapes = [_shape_dims(lambda m, v: layer.error(m, "shape.dim", v), s.get_all("dim"))
                      for s in p.get_all("shape")]
            if len(shapes) not in (1, len(layer.tops)):
                raise layer.error("expected one shape, or one per top", "shape", len(shapes))
            for i, top in enumerate(layer.tops):
                self.add_input(top, shapes[min(i, len(shapes) - 1)] if shapes else None, layer)
            return
        if self.has_primary and layer.tops:  # a second data source: its shape is unknown
            raise layer.error("a second data-source layer has no shape", "type", layer.type)
        for i, top in enumerate(layer.tops):
            if i == 0:
                self.add_input(top, None, layer)
            else:
                self.blobs[top] = None

    def add_layer(self, layer: _Layer) -> None:
        bottoms = layer.bottoms
        if layer.type in ("Softmax", "SoftmaxWithLoss"):
            bottoms = bottoms[:1]  # the scores; a second bottom is the label
        parents = [self.resolve(layer, b) for b in bottoms]
        if layer.type == "Split":
            if len(parents) != 1:
                _bad_arity(layer, 1, 1)
            for top in layer.tops:
                self.blobs[top] = parents[0]
            return
        if len(layer.tops) != 1:
            raise layer.error("expected exactly one top", "top", list(layer.tops))
        node = _Node(self.unique(layer.name or f"{layer.type.lower()}{len(self.nodes)}"),
                     layer, parents)
        self.nodes.append(node)
        self.blobs[layer.tops[0]] = node.name


def _bad_arity(layer: _Layer, low: int, high: int | None) -> Any:
    expected = f"{low}" if low == high else f"at least {low}"
    raise layer.error(f"expected {expected} bottom blob(s)", "bottom", list(layer.bottoms))


def _in_training(layer_msg: Message, source: str) -> bool:
    """Whether Caffe would instantiate the layer in the TRAIN phase (``net.cpp`` StateMeetsRule,
    for the phase part of the rules)."""
    def phase_of(rule: Message) -> str | None:
        value = rule.get("phase")
        if value is None:
            return None
        if isinstance(value, int) and value in (0, 1):
            return _PHASES[value]
        if isinstance(value, str) and value in _PHASES:
            return str(value)
        raise SpecError("phase must be TRAIN or TEST", source=source,
                        field=f"line {rule.line}", value=value)
    # A rule without a phase constrains only stages or levels, which are not modelled.
    includes = [r for r in layer_msg.get_all("include") if isinstance(r, Message)]
    excludes = [r for r in layer_msg.get_all("exclude") if isinstance(r, Message)]
    if includes:
        return any(phase_of(r) in (None, "TRAIN") for r in includes)
    return not any(phase_of(r) == "TRAIN" for r in excludes)


def _read_layers(net: Message, source: str) -> list[_Layer]:
    if net.has("layer") and net.has("layers"):
        raise SpecError("mixes 'layer' and the V1 'layers'", source=source,
                        field=f"line {net.line_of('layers')}")
    v1 = net.has("layers")
    out = []
    for msg in net.get_all("layers" if v1 else "layer"):
        if not isinstance(msg, Message):
            raise SpecError("a layer must be a message { ... }", source=source,
                            field=f"line {net.line_of('layer')}", value=msg)
        kind = msg.get("type")
        if v1 and isinstance(kind, str) and kind in _V1_TYPES:
            kind = _V1_TYPES[kind]
        name = msg.get("name", "")
        for key, value in (("type", kind), ("name", name)):
            if not isinstance(value, str):
                raise SpecError(f"layer {key} must be a string", source=source,
                                field=f"line {msg.line_of(key)}", value=value)
        if not _in_training(msg, source) or kind in _SKIPPED:
            continue
        blobs = {k: tuple(msg.get_all(k)) for k in ("bottom", "top")}
        for key, values in blobs.items():
            if not all(isinstance(v, str) for v in values):
                raise SpecError(f"{key} must be a blob name", source=source,
                                field=f"line {msg.line_of(key)}, layer {name!r}", value=values)
        out.append(_Layer(name, kind, blobs["bottom"], blobs["top"], msg, source))
    return out


def _root_inputs(net: Message, source: str) -> list[tuple[str, Shape]]:
    names = net.get_all("input")
    dims = net.get_all("input_dim")
    shapes = [s.get_all("dim") for s in net.get_all("input_shape") if isinstance(s, Message)]
    if dims and shapes:
        raise SpecError("give input_dim or input_shape, not both", source=source,
                        field=f"line {net.line_of('input_dim')}")
    if dims:
        if len(dims) != 4 * len(names):
            raise SpecError("expected 4 input_dim values per input", source=source,
                            field=f"line {net.line_of('input_dim')}", value=dims)
        shapes = [dims[4 * i:4 * i + 4] for i in range(len(names))]
    if len(shapes) != len(names) and (shapes or names):
        raise SpecError("expected one input shape per root input", source=source,
                        field=f"line {net.line_of('input')}", value=names)

    def where(problem: str, value: Any) -> SpecError:
        return SpecError(problem, source=source, field=f"line {net.line_of('input')}", value=value)
    return [(n, _shape_dims(where, s)) for n, s in zip(names, shapes)]


def _fold_scales(nodes: list[_Node]) -> list[_Node]:
    """Merge each Scale into the BatchNorm it directly follows, when nothing else reads the
    BatchNorm's output; references to the Scale become references to the merged layer."""
    readers: dict[str, int] = {}
    for node in nodes:
        for parent in node.parents:
            readers[parent] = readers.get(parent, 0) + 1
    by_name = {n.name: n for n in nodes}
    renamed: dict[str, str] = {}
    kept = []
    for node in nodes:
        node.parents = [renamed.get(p, p) for p in node.parents]
        layer = node.layer
        if layer is not None and layer.type == "Scale" and len(node.parents) == 1:
            bn = by_name[node.parents[0]]
            p = layer.param("scale_param")
            if (bn.layer is not None and bn.layer.type == "BatchNorm" and bn.scale is None
                    and readers[bn.name] == 1
                    and _num(layer, p, "scale_param", "axis", 1) == 1
                    and _num(layer, p, "scale_param", "num_axes", 1) == 1):
                bn.scale = layer
                renamed[node.name] = bn.name
                continue
        kept.append(node)
    return kept


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


# ---------------------------------------------------------------------------------------------
# public API
def convert_prototxt(text: str, *, source: str = "<string>",
                     input_shape: Sequence[int] | None = None) -> CaffeImport:
    """Convert prototxt ``text`` into a net spec, also returning Caffe's output shapes.

    Parameters
    ----------
    text
        The prototxt contents.
    source
        Name used in error messages (the file path).
    input_shape
        Shape of the first input in Caffe's order, ``(N, C, H, W)`` (or ``(N, D)``); required
        when the input is a data-source layer, and it overrides a shape given in the file.

    Returns
    -------
    CaffeImport
        ``spec``: the net-format dict; ``shapes``: each layer's output shape (NHWC) computed with
        Caffe's arithmetic, for checking against the loader.
    """
    user_shape = None
    if input_shape is not None:
        user_shape = _shape_dims(lambda m, v: SpecError(m, source=source, field="input_shape",
                                                        value=v), list(input_shape))
    net = parse_prototxt(text, source=source)
    builder = _GraphBuilder(source, user_shape)
    for blob, dims in _root_inputs(net, source):
        builder.add_input(blob, dims, None)
    for layer in _read_layers(net, source):
        if layer.type in _DATA_SOURCES:
            builder.add_data_layer(layer)
        elif layer.type in _CONVERTERS or layer.type == "Split":
            builder.add_layer(layer)
        else:
            raise UnknownNameError("Caffe layer type", layer.type, SUPPORTED_TYPES, source=source,
                                   field=layer.where())
    if not builder.has_primary:
        raise SpecError("the net has no input (root 'input:' or an Input/Data layer)",
                        source=source)
    nodes = _fold_scales(builder.nodes)
    used = {p for node in nodes for p in node.parents}
    nodes = [n for n in nodes if n.tensor is None or n.name == "data" or n.name in used]

    layers: dict[str, dict] = {}
    shapes: dict[str, Shape] = {}
    for node in nodes:
        if node.tensor is not None:
            layers[node.name] = {"type": "Input", "parents": [],
                                 "tensor": list(_nchw_to_nhwc(node.tensor))}
            shapes[node.name] = _nchw_to_nhwc(node.tensor)
            continue
        fields, shape = _CONVERTERS[node.layer.type](node.layer, [shapes[p] for p in node.parents],
                                                     node)
        layers[node.name] = {"type": _net_type(node.layer, fields), "parents": node.parents,
                             **fields}
        shapes[node.name] = tuple(shape)
    name = net.get("name", Path(source).stem)
    return CaffeImport(spec={"name": str(name), "layers": layers}, shapes=shapes)


def import_prototxt(path: str | Path, *, input_shape: Sequence[int] | None = None) -> dict:
    """Read the Caffe prototxt at ``path`` and return its net spec (see :func:`convert_prototxt`).

    Raises
    ------
    SpecError
        Unreadable or malformed file (naming the line), unknown layer type (naming the layer and
        the type), or a layer the net format cannot describe.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror or exc}", source=str(path)) from None
    return convert_prototxt(text, source=str(path), input_shape=input_shape).spec


def net_to_json(spec: dict) -> str:
    """JSON text for a net spec: one layer per line, in order, ending with a newline."""
    rows = [f"    {json.dumps(name)}: {json.dumps(layer)}"
            for name, layer in spec["layers"].items()]
    return ('{\n  "name": ' + json.dumps(spec["name"]) + ',\n  "layers": {\n'
            + ",\n".join(rows) + "\n  }\n}\n")


def prototxt_to_json(path: str | Path, out_path: str | Path, *,
                     input_shape: Sequence[int] | None = None) -> dict:
    """Convert the prototxt at ``path`` and write it as JSON to ``out_path`` (atomically).

    Returns the net spec that was written.
    """
    from simulator.commands._output import write_atomic  # the project's one atomic writer

    spec = import_prototxt(path, input_shape=input_shape)
    write_atomic(out_path, net_to_json(spec))
    return spec
