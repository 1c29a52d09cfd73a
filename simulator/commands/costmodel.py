"""`paleosim costmodel`: fit and evaluate the learned per-layer cost model; list its GPUs."""
from __future__ import annotations

import argparse

import pandas as pd

from simulator.commands._output import add_format_option, render, write_atomic
from simulator.costmodels.evaluate import evaluate
from simulator.costmodels.features import known_gpus
from simulator.costmodels.learned import (
    DEFAULT_SETTINGS, LearnedModel, fit_learned, read_training_files,
)
from simulator.costmodels.mlp import ESTIMATORS
from simulator.errors import SpecError

_CSV_HELP = ("per-layer timing CSV in the format of ml-performance-prediction's "
             "layer_timings_{conv,dense}.csv (kind told by its columns; times in ms)")


def register(sub) -> None:
    p = sub.add_parser("costmodel", help="fit / evaluate the learned per-layer cost model",
                       description="The learned cost model: a small numpy regressor per layer "
                                   "kind (conv, dense) on log features, trained on measured "
                                   "single-layer timings. Use a fitted model anywhere a cost "
                                   "model is chosen, e.g. `paleosim summary vgg16 --device V100 "
                                   "--cost-model learned:MODEL.json`.")
    cmds = p.add_subparsers(dest="costmodel_command", metavar="ACTION")
    cmds.required = True

    fit = cmds.add_parser("fit", help="fit a model on timing CSVs and write it as JSON",
                          description="Fit one regressor per layer kind found in the CSVs and "
                                      "write MODEL.json (weights, feature normalisation, "
                                      "training ranges, GPU triples).")
    fit.add_argument("csv", nargs="+", metavar="CSV", help=_CSV_HELP)
    fit.add_argument("--out", required=True, metavar="MODEL.json", help="model file to write")
    fit.add_argument("--gpus", type=_name_list, default=None, metavar="GPU,GPU",
                     help="train on these GPUs' rows only (default: all)")
    fit.add_argument("--seed", type=int, default=0,
                     help="seed of the weight initialisation and minibatch order (default 0)")
    fit.add_argument("--estimator", choices=sorted(ESTIMATORS), default="mlp",
                     help="mlp (default, the better measured) or ridge on the same features")
    fit.add_argument("--epochs", type=int, default=None,
                     help=f"MLP epochs (default {DEFAULT_SETTINGS['mlp']['epochs']})")
    fit.add_argument("--hidden", type=_int_list, default=None, metavar="N,N",
                     help="MLP hidden layer sizes (default "
                          f"{','.join(map(str, DEFAULT_SETTINGS['mlp']['hidden']))})")
    fit.set_defaults(func=run_fit)

    ev = cmds.add_parser("eval", help="errors of a model on timing CSVs (per kind and GPU)",
                         description="Mean and median absolute percentage error of MODEL.json "
                                     "on the rows of the CSVs, per layer kind and GPU; "
                                     "outside_range_rows counts rows outside the training "
                                     "range or on a GPU the model was not trained on.")
    ev.add_argument("model", metavar="MODEL.json", help="a model written by `costmodel fit`")
    ev.add_argument("csv", nargs="+", metavar="CSV", help=_CSV_HELP)
    ev.add_argument("--gpus", type=_name_list, default=None, metavar="GPU,GPU",
                    help="score these GPUs' rows only (default: all)")
    add_format_option(ev)
    ev.set_defaults(func=run_eval)

    gpus = cmds.add_parser("gpus", help="the GPU feature table (bandwidth, cores, clock)",
                           description="GPUs the learned model can describe, with the "
                                       "(bandwidth, cores, clock) it uses and their sources.")
    add_format_option(gpus)
    gpus.set_defaults(func=run_gpus)


def run_fit(args) -> int:
    frames = read_training_files(args.csv, gpus=args.gpus)
    settings = {}
    if args.estimator == "mlp":
        if args.epochs is not None:
            settings["epochs"] = args.epochs
        if args.hidden is not None:
            settings["hidden"] = args.hidden
    elif args.epochs is not None or args.hidden is not None:
        raise SpecError("--epochs and --hidden apply to the mlp estimator only",
                        field="estimator", value=args.estimator)
    model = fit_learned(frames, seed=args.seed, estimator_name=args.estimator,
                        settings=settings, sources=args.csv)
    write_atomic(args.out, model.dumps())
    for kind, km in model.kinds.items():
        print(f"{kind}: {km.rows} rows on {', '.join(km.gpus)} ({km.estimator})")
    print(f"wrote {args.out}")
    return 0


def run_eval(args) -> int:
    model = LearnedModel.load(args.model)
    frames = read_training_files(args.csv, gpus=args.gpus)
    print(render(evaluate(model, frames, warn=False), args.format, float_format="{:.2f}"),
          end="")
    return 0


def run_gpus(args) -> int:
    table = pd.DataFrame([{"gpu": g.name, "bandwidth_Bps": g.bandwidth_Bps, "cores": g.cores,
                           "clock_hz": g.clock_hz, "source": g.source} for g in known_gpus()])
    print(render(table, args.format), end="")
    return 0


def _name_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def _int_list(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, "
                                         f"got {text!r}")
    return values
