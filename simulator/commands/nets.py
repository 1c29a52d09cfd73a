"""`paleosim nets`: the shipped nets with their parameters and FLOPs."""
from __future__ import annotations

import pandas as pd

from simulator.commands._output import add_format_option, render
from simulator.summary import nets_table


def register(sub) -> None:
    p = sub.add_parser("nets", help="list the shipped nets with parameters and FLOPs",
                       description="List the nets shipped in nets/ (usable by name wherever a NET "
                                   "is asked for), with input shape, layer count, parameters and "
                                   "forward FLOPs per sample (2 FLOPs per multiply-add).")
    p.add_argument("--transformers", action="store_true",
                   help="list the transformer presets instead (GPT, BERT, Llama: usable by name "
                        "wherever a NET is asked for, e.g. gpt3-175b)")
    add_format_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.transformers:
        from workloads.transformer import preset_rows
        print(render(pd.DataFrame(preset_rows()), args.format), end="")
        return 0
    table = nets_table()
    if args.format == "table":
        table = table.assign(params_M=table["params"] / 1e6,
                             forward_GFLOP=table["forward_flops_per_sample"] / 1e9)
        table = table[["net", "input_shape", "layers", "params", "params_M", "forward_GFLOP",
                       "title"]]
    print(render(table, args.format), end="")
    return 0
