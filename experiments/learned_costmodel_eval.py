"""Errors of the learned per-layer cost model on the ml-performance-prediction timings.

Measures, for each estimator (MLP, ridge):

- ``holdout``: a seeded 80/20 split of each GPU's rows; one model per kind (conv, dense) fitted on
  all GPUs' 80 % and scored per GPU on their 20 % (MAPE and median APE);
- ``leave-one-gpu-out``: per GPU, a model fitted on the five other GPUs and scored on all of that
  GPU's rows;
- the wall time of one default fit on the full conv file (12,000 rows; target < ~1 min on 2
  cores);
- an end-to-end check: VGG-16 (``nets/vgg16.json``) on a V100, per-layer learned times summed,
  against the measured TF-slim VGG-16 step times (forward only, and an SGD training step) for
  batch 1-64. Our net keeps ReLUs as separate layers (priced by the roofline fallback) where
  TF-slim fuses them into the convolutions, and its FC layers are wider than the training range
  (fc6 has 25,088 inputs): this is a sanity check, not a validation.

Prints the tables and writes ``results/learned_costmodel_eval.csv`` and
``results/learned_costmodel_vgg16.csv`` (``results/`` is git-ignored).

Usage::

    python3 experiments/learned_costmodel_eval.py [--data DIR] [--seed 0] [--estimators mlp,ridge]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from simulator.catalog import get_device  # noqa: E402
from simulator.costmodels.evaluate import holdout_errors, leave_one_gpu_out_errors  # noqa: E402
from simulator.costmodels.learned import (  # noqa: E402
    ExtrapolationWarning, fit_kind, fit_learned, read_training_files,
)
from simulator.costmodels.learned_cost import LearnedCostModel  # noqa: E402
from workloads import load_net  # noqa: E402
from workloads.ops import PHASES  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "mlperf_prediction"


def vgg16_check(frames, *, seed: int, data: Path) -> pd.DataFrame:
    """Learned VGG-16 times on a V100 against the measured step times, batch 1-64."""
    model = LearnedCostModel(model=fit_learned(frames, seed=seed))
    device = get_device("V100")
    measured = {}
    for mode in ("FW", "sgd"):
        table = pd.read_csv(data / f"benchmark_VGG16_V100_{mode}_20181022.csv",
                            skipinitialspace=True)
        measured[mode] = dict(zip(table["batchsize"], table["time per batch (ms)"] * 1e-3))
    rows = []
    for batch in sorted(measured["FW"]):
        graph = load_net("vgg16", batch=int(batch))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ExtrapolationWarning)
            phase_s = {p: sum(model.phase_time_s(l, p, device) for l in graph.layers)
                       for p in PHASES}
        update_s = model.update_time_s(graph.total_params, device, optimizer="sgd")
        forward_s = phase_s["forward"]
        step_s = sum(phase_s.values()) + update_s
        rows.append({"batch": int(batch), "forward_s": forward_s,
                     "measured_forward_s": measured["FW"][batch],
                     "forward_ratio": forward_s / measured["FW"][batch],
                     "sgd_step_s": step_s, "measured_sgd_step_s": measured["sgd"][batch],
                     "sgd_ratio": step_s / measured["sgd"][batch],
                     "distinct_extrapolation_warnings": len({str(w.message) for w in caught})})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"folder with layer_timings_*.csv (default {DEFAULT_DATA})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--estimators", default="mlp,ridge")
    parser.add_argument("--out", type=Path, default=REPO / "results")
    args = parser.parse_args(argv)
    files = [args.data / "layer_timings_conv.csv", args.data / "layer_timings_dense.csv"]
    if not all(f.is_file() for f in files):
        print(f"timing files not found under {args.data}", file=sys.stderr)
        return 2
    frames = read_training_files(files)

    start = time.perf_counter()
    fit_kind("conv", frames["conv"], seed=args.seed)
    fit_s = time.perf_counter() - start
    print(f"full conv fit (MLP, {len(frames['conv'])} rows, default settings): {fit_s:.1f} s")

    parts = []
    for name in args.estimators.split(","):
        for protocol in (holdout_errors, leave_one_gpu_out_errors):
            start = time.perf_counter()
            table = protocol(frames, seed=args.seed, estimator_name=name)
            table.insert(1, "estimator", name)
            parts.append(table)
            print(f"{table['protocol'].iloc[0]} ({name}): {time.perf_counter() - start:.1f} s")
    errors = pd.concat(parts, ignore_index=True)

    pivot = errors.pivot_table(index="gpu", columns=["estimator", "protocol", "kind"],
                               values="mape_pct", sort=False)
    order = list(dict.fromkeys(frames["conv"]["gpu"])) + ["all"]
    pivot = pivot.reindex([g for g in order if g in pivot.index])
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print("\nMAPE (%) per GPU: seed", args.seed)
        print(pivot.round(1).to_string())

    check = vgg16_check(frames, seed=args.seed, data=args.data)
    with pd.option_context("display.width", 200):
        print("\nVGG-16 on V100, learned per-layer sum vs measured (seconds)")
        print(check.to_string(index=False, float_format="{:.4g}".format))

    args.out.mkdir(parents=True, exist_ok=True)
    errors.to_csv(args.out / "learned_costmodel_eval.csv", index=False)
    check.to_csv(args.out / "learned_costmodel_vgg16.csv", index=False)
    print(f"\nwrote {args.out / 'learned_costmodel_eval.csv'} and "
          f"{args.out / 'learned_costmodel_vgg16.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
