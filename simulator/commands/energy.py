"""`paleosim energy`: accelerator energy (FODLAM) of a config or a net; energy of a timeline."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from simulator.catalog import get_device
from simulator.commands._output import add_format_option, render
from simulator.costmodels.accelerator import FODLAM_NODE_NM, AcceleratorCostModel, totals
from simulator.costmodels.power import device_energy
from simulator.errors import SpecError
from workloads import load_net


def register(sub) -> None:
    p = sub.add_parser("energy", help="accelerator energy (FODLAM) and timeline energy",
                       description="Energy and latency on the FODLAM accelerator model "
                                   "(Eyeriss convolutions, EIE fully connected layers, "
                                   "process-node scaling), and device energy of a timeline "
                                   "from catalog idle/busy power. See docs/COST_MODELS.md.")
    cmds = p.add_subparsers(dest="energy_command", metavar="ACTION")
    cmds.required = True

    fod = cmds.add_parser("fodlam", help="run a FODLAM config (lookup or MAC-scaled)",
                          description="Per-layer energy (J) and latency (s) of a FODLAM config "
                                      "file: {\"net\": \"VGG16\"|\"AlexNet\", \"layers\": [...]} "
                                      "looks up the published numbers; {\"netfile\": FILE, "
                                      "\"layers\": [...]} scales per-MAC costs by each layer's "
                                      "MACs. Needs a FODLAM data folder (data/, nets/).")
    fod.add_argument("config", metavar="CONFIG.json", help="a FODLAM config file")
    fod.add_argument("--data", metavar="DIR", default=None,
                     help="FODLAM data folder with data/ and nets/ (default: the folder above "
                          "the config's, as in a FODLAM checkout)")
    _node_option(fod)
    add_format_option(fod)
    fod.set_defaults(func=run_fodlam)

    net = cmds.add_parser("net", help="FODLAM MAC-scaled energy of a net's conv and FC layers",
                          description="Price every Convolution/Deconvolution (conv) and "
                                      "InnerProduct (fc) layer of NET by its MACs with FODLAM's "
                                      "per-MAC costs (from the package's transcribed constants, "
                                      "or from --data).")
    net.add_argument("net", metavar="NET", help="a shipped net name or a net file")
    net.add_argument("--batch", type=int, default=1,
                     help="batch size (default 1: FODLAM's per-MAC costs are per image MACs)")
    net.add_argument("--data", metavar="DIR", default=None,
                     help="derive the per-MAC costs from a FODLAM data folder instead")
    _node_option(net)
    add_format_option(net)
    net.set_defaults(func=run_net)

    tl = cmds.add_parser("timeline", help="device energy of a timeline CSV",
                         description="Busy and idle time and energy per device of a timeline "
                                     "CSV with columns device, start_s, end_s: energy = "
                                     "busy_power_W x busy_s + idle_power_W x idle_s over the "
                                     "timeline's span.")
    tl.add_argument("timeline", metavar="TIMELINE.csv", help="ops with device, start_s, end_s")
    group = tl.add_mutually_exclusive_group(required=True)
    group.add_argument("--device", metavar="NAME",
                       help="catalog device for every device id of the timeline")
    group.add_argument("--devices", type=_assignments, metavar="ID=NAME,...",
                       help="catalog device per device id, e.g. gpu0=V100,gpu1=V100")
    add_format_option(tl)
    tl.set_defaults(func=run_timeline)


def _node_option(parser) -> None:
    parser.add_argument("--node-nm", type=float, default=FODLAM_NODE_NM,
                        help="process node to scale to, nm (default 65, FODLAM's: EIE scaled "
                             "from 45 nm, Eyeriss as measured)")


def run_fodlam(args) -> int:
    path = Path(args.config)
    data = Path(args.data) if args.data else path.resolve().parent.parent
    if not args.data and not ((data / "data").is_dir() and (data / "nets").is_dir()):
        raise SpecError("no FODLAM data folder (data/, nets/) above the config; pass --data DIR",
                        source=str(path))
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError("no such file", source=str(path)) from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"invalid JSON: {exc.msg} at line {exc.lineno}",
                        source=str(path)) from None
    model = AcceleratorCostModel.from_data(data, node_nm=args.node_nm)
    table = model.run_config(config, source=str(path))
    _print(table, totals(table), args.format, title=f"# FODLAM {path.name} at "
                                                    f"{args.node_nm:g} nm")
    return 0


def run_net(args) -> int:
    graph = load_net(args.net, batch=args.batch)
    if args.data:
        model = AcceleratorCostModel.from_data(args.data, node_nm=args.node_nm)
    else:
        model = AcceleratorCostModel.packaged(node_nm=args.node_nm)
    table = model.graph_costs(graph)
    _print(table, totals(table), args.format,
           title=f"# {graph.name}, batch {graph.batch}, FODLAM MAC-scaled at "
                 f"{args.node_nm:g} nm")
    return 0


def run_timeline(args) -> int:
    path = Path(args.timeline)
    try:
        timeline = pd.read_csv(path)
    except FileNotFoundError:
        raise SpecError("no such file", source=str(path)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SpecError(f"not a readable CSV: {exc}", source=str(path)) from None
    if "device" in timeline.columns:
        timeline["device"] = timeline["device"].astype(str)
    if args.device:
        devices = get_device(args.device)
    else:
        devices = {dev_id: get_device(name) for dev_id, name in args.devices.items()}
    try:
        table = device_energy(timeline, devices)
    except SpecError as exc:
        raise exc.with_source(str(path)) from None
    print(render(table, args.format), end="")
    return 0


def _print(table: pd.DataFrame, sums: dict, fmt: str, *, title: str) -> None:
    if fmt == "json":
        print(json.dumps({"layers": json.loads(render(table, "json")), "totals": sums},
                         indent=2))
        return
    if fmt == "table":
        print(title)
    print(render(table, fmt), end="")
    if fmt == "table":
        print("\n" + render(pd.DataFrame([sums]), "table"), end="")


def _assignments(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise argparse.ArgumentTypeError(f"expected ID=NAME[,ID=NAME...], got {text!r}")
        out[key.strip()] = value.strip()
    return out
