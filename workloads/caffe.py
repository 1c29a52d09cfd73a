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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from simulator.errors import SpecError, UnknownNameError
from workloads.caffe_layers import (_CONVERTERS, _DATA_SOURCES, _SKIPPED, SUPPORTED_TYPES, Shape,
                                    _bad_arity, _Layer, _nchw_to_nhwc, _net_type, _Node, _num,
                                    _shape_dims)
from workloads.prototxt import Message, parse_prototxt

__all__ = ["CaffeImport", "convert_prototxt", "import_prototxt", "net_to_json",
           "prototxt_to_json", "SUPPORTED_TYPES"]

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
