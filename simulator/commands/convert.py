"""`paleosim convert`: a Caffe prototxt or an ONNX model to a paleosim net-format JSON file."""
from __future__ import annotations

import argparse

from simulator.commands._output import write_atomic
from simulator.errors import SpecError
from workloads.caffe import import_prototxt, net_to_json


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if len(dims) not in (2, 4) or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected N,C,H,W (or N,D) positive sizes, got {text!r}")
    return dims


def register(sub) -> None:
    p = sub.add_parser(
        "convert", help="convert a Caffe .prototxt or an ONNX model into a net-format JSON file",
        description="Convert a Caffe network definition (protobuf text format, new or V1 layers) "
                    "into paleosim's net format (Paleo's JSON plus extensions, NHWC). Explicit "
                    "pads, ceil-mode pooling, groups, dilations, bias_term and in-place layers "
                    "are kept; BatchNorm followed by Scale becomes one affine BatchNorm; "
                    "TEST-phase and Accuracy layers are dropped. An .onnx file (needs the onnx "
                    "extra: pip install paleosim[onnx]) is read for its shapes only, NCHW to "
                    "NHWC, with a symbolic batch taken from --batch (default 1); see "
                    "docs/NET_FORMAT.md. The result loads anywhere a NET is asked for.",
        epilog="examples: paleosim convert resnet50.prototxt --out resnet50.json; "
               "paleosim convert model.onnx --batch 32 --out model.json")
    p.add_argument("prototxt", metavar="FILE",
                   help="the Caffe network definition (.prototxt) or ONNX model (.onnx)")
    p.add_argument("--out", metavar="NET.json",
                   help="write the JSON here (atomically) instead of printing it")
    p.add_argument("--input-shape", metavar="N,C,H,W", type=_shape,
                   help="input shape in Caffe's order; required when the input is a data layer "
                        "(Data, ImageData...) and overrides a shape given in the file "
                        "(Caffe only)")
    p.add_argument("--batch", type=int, metavar="N",
                   help="ONNX only: the batch written in the input layers (a symbolic batch "
                        "dimension takes it; default: the file's batch, or 1)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.prototxt.endswith(".onnx"):
        if args.input_shape is not None:
            raise SpecError("--input-shape is for Caffe files; give an ONNX model's batch with "
                            "--batch", source=args.prototxt)
        from workloads.onnx import import_onnx
        spec = import_onnx(args.prototxt, batch=getattr(args, "batch", None))
    elif getattr(args, "batch", None) is not None:
        raise SpecError("--batch is for ONNX models; give a Caffe input shape with "
                        "--input-shape N,C,H,W", source=args.prototxt)
    else:
        spec = import_prototxt(args.prototxt, input_shape=args.input_shape)
    text = net_to_json(spec)
    if args.out:
        write_atomic(args.out, text)
    else:
        print(text, end="")
    return 0
