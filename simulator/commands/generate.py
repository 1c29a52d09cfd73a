"""`paleosim generate`: ParaDnn-style FC, CNN and RNN nets as net-format JSON, and sweep grids."""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from simulator.commands._output import FORMATS, render, write_atomic
from workloads.paradnn import (CNN_BLOCKS, RNN_CELLS, config_rows, generate, generate_graph,
                               load_grid, make_config, summarize)
from workloads.zoo import to_json

EPILOG = """examples:
  paleosim generate fc --layers 4 --nodes 512 --input 2000 --output 1000 --batch 64 --out fc.json
  paleosim generate cnn --block bottleneck --blocks 3 --filters 64 --image 224 --classes 1000
  paleosim generate rnn --cell lstm --layers 2 --embedding 512 --max-length 50 --vocab 10000 --summary
  paleosim generate grid experiments/configs/paradnn_fc_gpu.yaml --summary --format csv"""


def _common(p, model: str) -> None:
    p.add_argument("--batch", type=int, default=1,
                   help="batch written in the Input tensor (default 1; any command that loads "
                        "the net can ask for another)")
    p.add_argument("--name", help="net name (default: paradnn-<model>-<ParaDnn label>)")
    p.add_argument("--out", metavar="NET.json",
                   help="write the JSON here (atomically) instead of printing it")
    p.add_argument("--summary", action="store_true",
                   help="print the net's parameters and FLOPs per training step instead of its "
                        "JSON (the JSON is still written with --out)")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="format of --summary (default: table)")
    p.set_defaults(func=run, model=model)


def register(sub) -> None:
    p = sub.add_parser(
        "generate", help="write ParaDnn-style FC, CNN or RNN nets; list ParaDnn sweep grids",
        description="Generate the parameterised models of ParaDnn (Wang, Wei, Brooks, MLSys "
                    "2020) as paleosim net-format JSON, loadable wherever a NET is asked for; "
                    "or list (and write) every configuration of a sweep grid file.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    models = p.add_subparsers(dest="model", metavar="MODEL")
    models.required = True

    fc = models.add_parser(
        "fc", help="L dense ReLU layers of N units, then a dense output layer",
        description="ParaDnn's fully connected model: input of width I -> L x (dense N, ReLU) "
                    "-> dense O -> softmax; a bias on every dense layer.")
    fc.add_argument("--layers", type=int, required=True, help="hidden layers L (ParaDnn: 4-128)")
    fc.add_argument("--nodes", type=int, required=True,
                    help="units per hidden layer N (ParaDnn: 32-8192)")
    fc.add_argument("--input", type=int, required=True, dest="input_width",
                    help="input width I (ParaDnn: 2000, 8000)")
    fc.add_argument("--output", type=int, required=True, dest="output_width",
                    help="output width O, the classes (ParaDnn: 200, 1000)")
    _common(fc, "fc")

    cnn = models.add_parser(
        "cnn", help="ResNet-v1 with residual or bottleneck blocks",
        description="ParaDnn's CNN: the TensorFlow TPU ResNet-v1 with K blocks in each of four "
                    "groups, F filters in the first group (doubling per group), SxS RGB images "
                    "and C classes; built by the zoo's ResNet builder.")
    cnn.add_argument("--block", required=True, choices=CNN_BLOCKS,
                     help="residual: two 3x3 convolutions; bottleneck: 1x1, 3x3, 1x1 (x4 wide)")
    cnn.add_argument("--blocks", type=int, required=True,
                     help="blocks per group K (ParaDnn: 1-8)")
    cnn.add_argument("--filters", type=int, required=True,
                     help="filters of the first group F (ParaDnn: 16, 32, 64)")
    cnn.add_argument("--image", type=int, required=True,
                     help="image height and width in pixels (ParaDnn: 200, 300; at least 193 "
                          "for the model's final 7x7 average pool)")
    cnn.add_argument("--classes", type=int, required=True,
                     help="classes C (ParaDnn: 500, 1000, 1500)")
    _common(cnn, "cnn")

    rnn = models.add_parser(
        "rnn", help="embedding, stacked RNN/LSTM/GRU layers, per-step output projection",
        description="ParaDnn's RNN: token ids -> embedding E -> L recurrent layers of E units "
                    "-> a projection to the vocabulary at every step -> softmax.")
    rnn.add_argument("--cell", required=True, choices=RNN_CELLS, help="recurrent cell")
    rnn.add_argument("--layers", type=int, required=True,
                     help="recurrent layers L (ParaDnn: 1-13)")
    rnn.add_argument("--embedding", type=int, required=True,
                     help="embedding size E, also the hidden size (ParaDnn: 100-900)")
    rnn.add_argument("--max-length", type=int, required=True, dest="max_length",
                     help="sequence length T in steps (ParaDnn: 10-90)")
    rnn.add_argument("--vocab", type=int, required=True, help="vocabulary size V")
    _common(rnn, "rnn")

    grid = models.add_parser(
        "grid", help="list every configuration of a sweep grid file",
        description="List the configurations of a grid YAML file (see "
                    "experiments/configs/paradnn_*.yaml), in the grid's order; optionally "
                    "write each one's net JSON into a folder as <label>.json.")
    grid.add_argument("grid", metavar="GRID.yaml", help="a grid file")
    grid.add_argument("--summary", action="store_true",
                      help="add each net's layers, parameters and FLOPs (builds every net)")
    grid.add_argument("--out-dir", metavar="DIR",
                      help="write one net JSON per configuration into DIR")
    grid.add_argument("--format", choices=FORMATS, default="table",
                      help="output format (default: table)")
    grid.set_defaults(func=run_grid, model="grid")


def run(args) -> int:
    keys = {"fc": ("layers", "nodes", "input_width", "output_width", "batch"),
            "cnn": ("block", "blocks", "filters", "image", "classes", "batch"),
            "rnn": ("cell", "layers", "embedding", "max_length", "vocab", "batch")}[args.model]
    config = make_config(args.model, **{k: getattr(args, k) for k in keys})
    spec = generate(config)
    if args.name:
        spec["name"] = args.name
    if args.out:
        write_atomic(args.out, to_json(spec))
    if args.summary:
        row = summarize(generate_graph(config)) | {"net": spec["name"]}
        print(render(pd.DataFrame([row]), args.format), end="")
    elif not args.out:
        print(to_json(spec), end="")
    return 0


def run_grid(args) -> int:
    grid = load_grid(args.grid)
    configs = grid.configs()
    if args.out_dir:
        folder = Path(args.out_dir)
        for config in configs:
            write_atomic(folder / f"{config.label}.json", to_json(generate(config)))
    print(render(pd.DataFrame(config_rows(configs, summary=args.summary)), args.format), end="")
    return 0
