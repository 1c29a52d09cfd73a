"""Import an ONNX model as a paleosim net spec (the net format of ``docs/NET_FORMAT.md``, NHWC).

Only shapes are read: initializers give the weights' shapes and so the parameter counts; nothing
is executed and weight values are never loaded (external data files are not opened). The ``onnx``
package is an optional extra (``pip install paleosim[onnx]``), imported on first use.

Mapping (ONNX is NCHW; a rank-4 tensor becomes NHWC, other ranks keep ONNX's axis order):

============================================  ==================================================
ONNX                                          net format
============================================  ==================================================
first non-initializer graph input             ``Input``; a symbolic batch takes ``batch`` (1)
``Conv`` (2-D)                                ``Convolution``: ``filter [kh, kw, C_in, C_out]``,
                                              ``strides``, ``padding``, ``groups``,
                                              ``dilations``; no bias input: ``bias: false``
``MaxPool`` / ``AveragePool`` (2-D)           ``Pooling`` / ``AvgPool`` (``ceil_mode`` kept)
``GlobalAveragePool`` / ``GlobalMaxPool``     ``GlobalAvgPool`` / a ``Pooling`` over the input
``Gemm``, ``MatMul`` by an initializer        ``InnerProduct`` (``num_outputs``; ``transB``)
``MatMul`` + ``Add`` of a vector              one ``InnerProduct`` with its bias
``MatMul`` / ``Gemm`` of two activations      ``MatMul`` (``transpose_b`` from ``transB``)
``BatchNormalization``                        ``BatchNorm`` (scale and shift are parameters)
``Relu``, ``Sigmoid``, ``Tanh``, ``Gelu``     ``Activation``; ``Clip(0, 6)``: ``relu6``
``Add``, ``Sum`` / ``Mul``                    ``Elementwise`` ``sum`` / ``prod``
``Concat``                                    ``Concatenate`` (the axis mapped to NHWC)
``Flatten``, ``Reshape``, ``(Un)Squeeze``     ``Flatten`` (rank-2 result) or ``Reshape``
``Softmax`` (last axis, rank 2 or 3)          ``Softmax``
``Dropout``                                   ``Dropout`` (``dropout_keep_prob = 1 - ratio``)
``Identity``, ``Cast``                        no layer (the dtype is a simulation choice)
``Constant``, ``Shape``, ``Gather``...        folded: constants for shape computations
============================================  ==================================================

Choices where ONNX says more than the net format can (each raises :class:`SpecError` rather
than guess): asymmetric ``pads``, unless they are exactly TensorFlow's SAME (the extra pad at the
end); ``auto_pad`` ``SAME_LOWER`` is read as SAME (same output size and work; the net format's
pad-before is SAME_UPPER's); broadcasting elementwise operands; a reshape that moves the batch off
axis 0; a softmax over another axis; a MatMul of rank-4 activations (NHWC in the net format);
dilated pooling; any output but the first of a node being used.

Shapes are checked three ways (see :mod:`workloads.onnx.builder`): against the shapes declared in
the file, against ``onnx.shape_inference``, and against paleosim's loader on the result.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.errors import SpecError
from workloads.onnx import converters, shapes  # noqa: F401  (they register the converters)
from workloads.onnx.builder import Builder
from workloads.onnx.nodes import CONVERTERS, FOLDERS, require_onnx

#: ONNX operators the importer reads (as layers, or folded when all their inputs are constants).
SUPPORTED_OPS = tuple(sorted({*CONVERTERS, *FOLDERS}))

__all__ = ["SUPPORTED_OPS", "import_onnx"]


def import_onnx(path_or_model: str | Path | Any, *, batch: int | None = None) -> dict:
    """Read an ONNX model and return its net spec (a dict in paleosim's net format).

    Parameters
    ----------
    path_or_model
        A path to an ``.onnx`` file, or an ``onnx.ModelProto``.
    batch
        The batch written in the ``Input`` layers' ``tensor``. A symbolic batch dimension is
        inferred at this batch (default 1); a fixed one is inferred at the file's batch and
        the spec then says ``batch`` (the loader re-infers every shape for any batch anyway).

    Returns
    -------
    dict
        ``{"name": ..., "layers": {...}}``, layers in the graph's order; the name is the file's
        stem (or the graph's name for a ModelProto).

    Raises
    ------
    SpecError
        ``onnx`` not installed; an unreadable file; an unsupported operator (an
        :class:`~simulator.errors.UnknownNameError` naming the node and listing
        ``SUPPORTED_OPS``); a node the net format cannot express; a declared shape that
        disagrees with the importer's.
    """
    if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or batch < 1):
        raise SpecError("the batch size must be a positive integer", field="batch", value=batch)
    if isinstance(path_or_model, (str, Path)):
        source = str(path_or_model)
        onnx = require_onnx(source)
        model = _load(onnx, source)
        name = Path(source).stem
    else:
        onnx = require_onnx(None)
        if not isinstance(path_or_model, onnx.ModelProto):
            raise SpecError("expected a path or an onnx.ModelProto",
                            value=type(path_or_model).__name__)
        model = path_or_model
        name = model.graph.name or "onnx_model"
        source = f"<ONNX model {name}>"
    builder = Builder(onnx, model, source=source, batch=batch, name=name)
    builder.read_inputs()
    builder.walk(SUPPORTED_OPS)
    spec = builder.spec()
    builder.check_declared()
    builder.check_onnx_inference()
    builder.check_loader(spec)
    return spec


def _load(onnx: Any, source: str) -> Any:
    try:
        return onnx.load(source, load_external_data=False)
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror or exc}", source=source) from None
    except Exception as exc:  # noqa: BLE001  (protobuf's DecodeError and kin: not a model)
        raise SpecError(f"not an ONNX model: {exc}", source=source) from None
