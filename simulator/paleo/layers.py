"""Paleo's per-layer work: which FLOP and byte terms each layer type is charged, per phase.

Section 2.4 of ``PALEO_COST_MODEL.md`` (Paleo ``profilers/flops_profiler.py``), GEMM-only:

=================  =========================================  =================  ==================
layer              forward FLOPs                              bytes              backward
=================  =========================================  =================  ==================
Convolution        GEMM model (:mod:`simulator.paleo.conv`)   input, filter,     two gradient convs;
                                                              output             no bwd-data when a
                                                                                 parent is the input
Deconvolution      bwd-data of the equivalent convolution     (of that conv)     data: its forward;
                                                                                 filter: its filter
                                                                                 gradient
InnerProduct       ``2*N*D*K``                                X, W, Y            data and filter
                                                                                 each = forward
Pooling, AvgPool   ``2*kh*kw*C*Ho*Wo*N``                      input, output      data = forward
Dropout            ``N*H*W*C``                                input, output      data = forward
anything else      0                                          none               0
=================  =========================================  =================  ==================

"Anything else" includes Concatenate, Elementwise, Softmax, Reshape and every type Paleo does not
know (BatchNorm, LRN, ...), which Paleo silently treats as free ``Generic`` layers. Parameters
(for the update and the all-reduce) count only Convolution, Deconvolution and InnerProduct
weights and biases, as Paleo does.
"""
from __future__ import annotations

from simulator.errors import SpecError
from simulator.paleo.conv import FLOAT_BYTES, ConvGeometry, conv_terms
from simulator.paleo.work import NONE, Terms
from workloads.graph import Layer, LayerGraph

WEIGHTED_TYPES = ("Convolution", "Deconvolution", "InnerProduct")
POOL_TYPES = ("Pooling", "AvgPool")


def paleo_params(layer: Layer) -> int:
    """The parameters Paleo counts for ``layer`` (weights and biases of conv/deconv/FC only)."""
    return layer.params if layer.type in WEIGHTED_TYPES else 0


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _unsupported(graph: LayerGraph, layer: Layer, key: str, problem: str, value) -> SpecError:
    return SpecError(f"{problem}: Paleo's cost model has no such convolution",
                     source=graph.source, field=f"layers.{layer.name}.{key}", value=value)


def _conv_geometry(graph: LayerGraph, layer: Layer, shape, cout: int) -> ConvGeometry:
    a = layer.attrs
    if a.get("groups", 1) != 1:
        raise _unsupported(graph, layer, "groups", "grouped convolution", a["groups"])
    if tuple(a.get("dilation_hw", (1, 1))) != (1, 1):
        raise _unsupported(graph, layer, "dilations", "dilated convolution",
                           list(a["dilation_hw"]))
    n, h, w, cin = shape
    kh, kw = a["kernel_hw"]
    sh, sw = a["stride_hw"]
    return ConvGeometry(n=n, h=h, w=w, cin=cin, kh=kh, kw=kw, cout=cout, sh=sh, sw=sw,
                        padding=a["padding"])


def _fed_by_data(graph: LayerGraph, layer: Layer) -> bool:
    """Paleo sets ``backprop=False`` on a convolution whose parents include the input."""
    return any(graph[p].op_class == "data" for p in layer.parents)


def layer_terms(graph: LayerGraph, layer: Layer, *, version: str
                ) -> tuple[Terms, Terms, Terms]:
    """Forward, backward-data and backward-filter terms Paleo charges ``layer`` in ``graph``."""
    t = layer.type
    if t == "Convolution":
        g = _conv_geometry(graph, layer, layer.input_shapes[0], layer.attrs["out_channels"])
        return conv_terms(g, version=version, backprop=not _fed_by_data(graph, layer))
    if t == "Deconvolution":
        # The convolution that maps the deconvolution's output back to its input.
        g = _conv_geometry(graph, layer, layer.output_shape, layer.input_shapes[0][3])
        fwd, data, filt = conv_terms(g, version=version)
        return data, fwd, filt
    if t == "InnerProduct":
        a = layer.attrs
        fwd = Terms(flops=(2.0 * layer.macs,),
                    bytes=(_numel(layer.input_shapes[0]) * FLOAT_BYTES,
                           a["in_features"] * a["out_features"] * FLOAT_BYTES,
                           _numel(layer.output_shape) * FLOAT_BYTES))
        return fwd, fwd, fwd
    if t in POOL_TYPES:
        kh, kw = layer.attrs["kernel_hw"]
        fwd = Terms(flops=(2.0 * kh * kw * _numel(layer.output_shape),),
                    bytes=(_numel(layer.input_shapes[0]) * FLOAT_BYTES,
                           _numel(layer.output_shape) * FLOAT_BYTES))
        return fwd, fwd, NONE
    if t == "Dropout":
        elems = _numel(layer.input_shapes[0])
        fwd = Terms(flops=(float(elems),), bytes=(elems * FLOAT_BYTES, elems * FLOAT_BYTES))
        return fwd, fwd, NONE
    return NONE, NONE, NONE
