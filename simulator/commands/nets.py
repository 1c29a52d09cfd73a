"""`paleosim nets`: the shipped nets with their parameters and FLOPs."""
from __future__ import annotations

from simulator.commands._output import add_format_option, render
from simulator.summary import nets_table


def register(sub) -> None:
    p = sub.add_parser("nets", help="list the shipped nets with parameters and FLOPs",
                       description="List the nets shipped in nets/ (usable by name wherever a NET "
                                   "is asked for), with input shape, layer count, parameters and "
                                   "forward FLOPs per sample (2 FLOPs per multiply-add).")
    add_format_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    table = nets_table()
    if args.format == "table":
        table = table.assign(params_M=table["params"] / 1e6,
                             forward_GFLOP=table["forward_flops_per_sample"] / 1e9)
        table = table[["net", "input_shape", "layers", "params", "params_M", "forward_GFLOP",
                       "title"]]
    print(render(table, args.format), end="")
    return 0
