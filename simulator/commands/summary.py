"""`paleosim summary`: per-layer shapes, parameters, work and time on a device."""
from __future__ import annotations

import json

from simulator.catalog import get_device
from simulator.commands._output import add_format_option, render
from simulator.costmodel import DTYPE_BYTES, get_cost_model, cost_models
from simulator.summary import layer_table, table_totals
from workloads import load_net


def add_net_options(p) -> None:
    p.add_argument("net", metavar="NET",
                   help="a shipped net or transformer preset name (see `paleosim nets`, "
                        "`paleosim nets --transformers`) or a path to a Paleo-format .json, Caffe "
                        ".prototxt or ONNX .onnx file")
    p.add_argument("--allow-unknown-layers", action="store_true",
                   help="treat unknown layer types as Paleo does (output = input shape, no cost) "
                        "instead of failing")


def register(sub) -> None:
    p = sub.add_parser("summary", help="per-layer shapes, params, FLOPs and time on a device",
                       description="Per layer: name, type, output shape, parameters, forward FLOPs "
                                   "and bytes, and forward / backward-data / backward-filter "
                                   "seconds on DEVICE from the roofline cost model; then totals.")
    add_net_options(p)
    p.add_argument("--device", required=True, help="device catalog name (see `paleosim devices`)")
    p.add_argument("--batch", type=int, default=None,
                   help="batch size (default: the batch in the net's Input tensor)")
    p.add_argument("--dtype", default="fp32", choices=sorted(DTYPE_BYTES),
                   help="training dtype: bytes per element and the peak used for conv/matmul "
                        "(default fp32)")
    p.add_argument("--cost-model", default="roofline", metavar="MODEL",
                   help="roofline (default): max(compute, memory) per layer phase; "
                        "roofline-sum: their sum (Paleo's rule); learned:MODEL.json: a model "
                        "fitted by `paleosim costmodel fit`; profiled:PROFILE.csv: measured "
                        "layer times (see docs/COST_MODELS.md). Valid plain names: "
                        + ", ".join(cost_models()))
    add_format_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    device = get_device(args.device)
    graph = load_net(args.net, batch=args.batch,
                     unknown_layers="free" if args.allow_unknown_layers else "error")
    table = layer_table(graph, device, dtype=args.dtype, cost_model=get_cost_model(args.cost_model))
    totals = table_totals(table)
    if args.format == "json":
        doc = {"net": graph.name, "source": graph.source, "device": device.name,
               "batch": graph.batch, "dtype": args.dtype, "cost_model": args.cost_model,
               "layers": json.loads(render(table, "json")), "totals": totals}
        print(json.dumps(doc, indent=2))
        return 0
    total_row = {c: totals.get(c, "") for c in table.columns}
    total_row.update(layer="TOTAL", type="", output_shape="")
    table.loc[len(table)] = total_row
    if args.format == "table":
        print(f"# {graph.name} on {device.name}, batch {graph.batch}, {args.dtype}, "
              f"{args.cost_model}")
    print(render(table, args.format), end="")
    return 0
