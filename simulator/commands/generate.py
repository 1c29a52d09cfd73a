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
        "generate", help="write ParaDnn-style FC, CNN or RNN nets or GPT/BERT/Llama transformers; list sweep grids",
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

    _register_transformer(models)


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


TRANSFORMER_EPILOG = """examples:
  paleosim generate transformer --list
  paleosim generate transformer --preset gpt3-175b --batch 1536 --summary
  paleosim generate transformer --preset llama3-8b --seq-len 4096 --out llama3-8b.json
  paleosim generate transformer --arch llama --layers 2 --hidden 512 --heads 8 --kv-heads 2 \\
      --seq-len 1024 --vocab 32000 --summary --format json"""

TRANSFORMER_HYPER = ("arch", "layers", "hidden", "heads", "kv_heads", "ffn", "vocab", "dropout")


def _register_transformer(models) -> None:
    tf = models.add_parser(
        "transformer", help="GPT-, BERT- or Llama-style transformers; named published presets",
        description="Write a transformer language model as net-format JSON: a named preset "
                    "(Megatron-LM GPT 1.2B-1T, GPT-3 175B, Llama 2/3, BERT; see --list) or any "
                    "configuration. Layers carry tensor_parallel fields (column, row, heads, "
                    "vocab) and the root a 'transformer' object with the hyper-parameters "
                    "(docs/NET_FORMAT.md). Presets also load by name wherever a NET is asked "
                    "for.",
        epilog=TRANSFORMER_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    tf.add_argument("--list", action="store_true",
                    help="list the presets (hyper-parameters, published batch and size, source)")
    tf.add_argument("--preset", metavar="NAME",
                    help="a published model by name (see --list); excludes the options below "
                         "except --seq-len")
    tf.add_argument("--arch", choices=("gpt", "bert", "llama"),
                    help="family: gpt (LayerNorm, biases, GELU, learned positions, tied head), "
                         "bert (as gpt, bidirectional, segment embedding), llama (RMSNorm, no "
                         "biases, SwiGLU, rotary positions, untied head); default gpt")
    tf.add_argument("--layers", type=int, help="transformer layers l")
    tf.add_argument("--hidden", type=int, help="model width h")
    tf.add_argument("--heads", type=int, help="attention (query) heads; must divide --hidden")
    tf.add_argument("--kv-heads", type=int, dest="kv_heads",
                    help="key/value heads for grouped-query attention (default: --heads)")
    tf.add_argument("--ffn", type=int,
                    help="MLP width (default 4h; Llama: 2/3 of 4h rounded up to 256)")
    tf.add_argument("--seq-len", type=int, dest="seq_len",
                    help="sequence length in tokens (with --preset: overrides the published one)")
    tf.add_argument("--vocab", type=int, help="vocabulary size V")
    tf.add_argument("--dropout", type=float,
                    help="hidden dropout probability (default 0.1 for gpt/bert, 0 for llama; "
                         "0 writes no Dropout layers)")
    tf.add_argument("--batch", type=int, default=1,
                    help="sequences written in the Input tensors (default 1; any command that "
                         "loads the net can ask for another)")
    tf.add_argument("--name", help="net name (default: the preset's name, or "
                                   "<arch>-l<l>-h<h>-a<heads>[-kv<g>]-s<s>)")
    tf.add_argument("--out", metavar="NET.json",
                    help="write the JSON here (atomically) instead of printing it")
    tf.add_argument("--summary", action="store_true",
                    help="print the net's parameters and FLOPs instead of its JSON: forward "
                         "FLOPs of all layers, training FLOPs of the matrix products with full "
                         "recomputation, and for gpt Megatron-LM's closed forms (the JSON is "
                         "still written with --out)")
    tf.add_argument("--format", choices=FORMATS, default="table",
                    help="format of --summary and --list (default: table)")
    tf.set_defaults(func=run_transformer, model="transformer")


def run_transformer(args) -> int:
    from simulator.errors import SpecError
    from workloads import build_graph
    from workloads.transformer import preset_rows, preset_spec, summarize, transformer_spec

    if args.list:
        # object dtype keeps a missing global batch as None (null in JSON), not NaN
        print(render(pd.DataFrame(preset_rows(), dtype=object), args.format), end="")
        return 0
    given = [k for k in TRANSFORMER_HYPER if getattr(args, k) is not None]
    if args.preset is not None:
        if given:
            raise SpecError("cannot be combined with --preset (only --seq-len can)",
                            source="paleosim generate transformer",
                            field="--" + given[0].replace("_", "-"))
        spec = preset_spec(args.preset, batch=args.batch, seq_len=args.seq_len)
    else:
        for key in ("layers", "hidden", "heads", "seq_len", "vocab"):
            if getattr(args, key) is None:
                raise SpecError("is required unless --preset names a model",
                                source="paleosim generate transformer",
                                field="--" + key.replace("_", "-"))
        spec = transformer_spec(arch=args.arch or "gpt", layers=args.layers, hidden=args.hidden,
                                heads=args.heads, seq_len=args.seq_len, vocab=args.vocab,
                                ffn=args.ffn, kv_heads=args.kv_heads, batch=args.batch,
                                dropout=args.dropout)
    if args.name:
        spec["name"] = args.name
    if args.out:
        write_atomic(args.out, to_json(spec))
    if args.summary:
        row = summarize(build_graph(spec, source=spec["name"]))
        print(render(pd.DataFrame([row]), args.format), end="")
    elif not args.out:
        print(to_json(spec), end="")
    return 0
