"""`paleosim topologies` and `paleosim topology describe|export`: cluster topologies."""
from __future__ import annotations

import pandas as pd

import topologies
from simulator.commands._output import add_format_option, render

_SPEC_HELP = ("a preset name (see `paleosim topologies`), a builder call such as "
              "\"fat_tree(k=8, oversubscription=2)\", or a .graphml / node-link .json file")


def register(sub) -> None:
    p = sub.add_parser("topologies", help="list topology builders and cluster presets",
                       description="List the topology builders (with their parameters) and the "
                                   "named cluster presets; any of them can be given wherever a "
                                   "topology SPEC is asked for, e.g. \"selene(k=8)\".")
    add_format_option(p)
    p.set_defaults(func=run_list)

    p = sub.add_parser("topology", help="describe or export one topology",
                       description="Describe or export one topology. SPEC is " + _SPEC_HELP + ".")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    d = actions.add_parser("describe", help="node and link counts, diameter, bisection bandwidth",
                           description="Print node and link counts by role and kind, the largest "
                                       "hop count between two GPUs, and the bisection bandwidth "
                                       "(max flow, one direction, between the two halves of the "
                                       "GPUs in rank order).")
    d.add_argument("spec", metavar="SPEC", help=_SPEC_HELP)
    add_format_option(d)
    d.set_defaults(func=run_describe)
    e = actions.add_parser("export", help="write a topology as GraphML or node-link JSON",
                           description="Write SPEC to OUT (.graphml or .json, by suffix); edit it "
                                       "and load it back as a SPEC.")
    e.add_argument("spec", metavar="SPEC", help=_SPEC_HELP)
    e.add_argument("out", metavar="OUT", help="output file, .graphml or .json")
    e.set_defaults(func=run_export)


def run_list(args) -> int:
    print(render(topologies.table(), args.format), end="")
    return 0


def run_describe(args) -> int:
    info = topologies.describe(topologies.get(args.spec))
    if args.format == "json":
        frame = pd.DataFrame([info])
    else:
        info["bisection_GBps"] = info["bisection_Bps"] / 1e9
        frame = pd.DataFrame({"property": list(info), "value": [str(v) for v in info.values()]})
    print(render(frame, args.format), end="")
    return 0


def run_export(args) -> int:
    topologies.save(topologies.get(args.spec), args.out)
    print(f"wrote {args.out}")
    return 0
