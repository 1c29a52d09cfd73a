"""Fit ``TRANSFORM_EFFICIENCY`` (``simulator/fastconv.py``) to measured single-layer timings.

The staged convolution algorithms (Winograd F(4x4,3x3) and the two FFTs, each four kernels with
their transformed tensors in device memory) run their transform kernels at a fraction of the
device's convolution efficiency and their products (batched GEMMs) at the device's own. That
fraction is fitted here, once, to the forward-only
``tf.layers.conv2d`` timings of ml-performance-prediction (``../shared/data/mlperf_prediction/
layer_timings_conv.csv``: TF 1.10 with cuDNN autotuning, FP32) on the two GPUs of the catalog
it covers with fast algorithms, the P100 and the V100.

Which rows: forward only, at least 1 ms measured (below that TF's per-run overhead of 0.1-0.3 ms
dominates), and compute-bound under the direct algorithm (its compute time at least 3x its memory
time, both at peak: memory-bound rows say nothing about arithmetic). What is fitted: for each
candidate fraction on a grid of 0.05, the roofline prices every row with the fastest algorithm;
the spread (root mean square) of log(measured / predicted), centred per GPU, is the score, and
the fraction with the smallest spread wins. Centring per GPU absorbs the single-layer overheads
(transposes from NHWC, bias and activation kernels, ``session.run``), which make these timings
about 2x the roofline's whatever the algorithm; the fraction changes only which rows look fast
relative to the others. The roofline uses the catalog's calibrated efficiencies, and the P100's
calibration (``experiments/calibrate.py``) uses this fraction: the two are run in turn until
both ``--check`` runs pass (0.35 held after two rounds).

Usage (from the repository root)::

    python3 experiments/fit_staged_conv.py            # print the scores and the best fraction
    python3 experiments/fit_staged_conv.py --check    # exit 1 unless fastconv holds the fit
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from simulator.catalog import get_device  # noqa: E402
from simulator.costmodel import RooflineCostModel  # noqa: E402
from simulator import fastconv  # noqa: E402
from workloads import build_graph  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "mlperf_prediction" / "layer_timings_conv.csv"
#: Dataset GPU -> catalog device.
GPUS = {"P100": "P100", "V100": "V100"}
MIN_TIME_S = 1e-3
MIN_COMPUTE_OVER_MEMORY = 3.0
GRID = tuple(round(0.05 * i, 2) for i in range(1, 21))


def _layer(row):
    k = int(row.kernelsize)
    net = {"name": "row", "layers": {
        "data": {"type": "Input", "parents": [],
                 "tensor": [int(row.batchsize), int(row.matsize), int(row.matsize),
                            int(row.channels_in)]},
        "conv": {"type": "Convolution", "parents": ["data"],
                 "filter": [k, k, int(row.channels_in), int(row.channels_out)],
                 "strides": [1, int(row.strides), int(row.strides), 1],
                 "padding": "SAME" if row.padding == 1 else "VALID"}}}
    return build_graph(net, source=str(DATA)).layers[-1]


def kernel_times(frame: pd.DataFrame):
    """``(gpu, measured s, {algorithm: time s at full efficiency})`` for each row kept."""
    roof = RooflineCostModel()
    rows = []
    for gpu, device_name in GPUS.items():
        device = get_device(device_name)
        algorithms = fastconv.CONV_ALGORITHMS
        sub = frame[(frame.gpu_model == gpu) & (frame.optimizer == 0)
                    & (frame.timeUsed_median * 1e-3 >= MIN_TIME_S)]
        for row in sub.itertuples():
            layer = _layer(row)
            work = layer.work["forward"]
            compute_s = work.flops / device.peak("fp32")     # at peak: the filter does not
            memory_s = work.elems * 4 / device.memory_bandwidth_Bps  # depend on calibration
            if compute_s < MIN_COMPUTE_OVER_MEMORY * memory_s:
                continue
            # per algorithm: (time of the kernels at full efficiency, of those at the fraction)
            times = {}
            for a, kernels in fastconv.algorithm_works(layer, "forward", algorithms, "fp32"):
                full = [roof.work_time_s(w, "conv", device, dtype="fp32") for w, f in kernels]
                times[a] = (sum(t for t, (_, f) in zip(full, kernels) if f == 1.0),
                            sum(t for t, (_, f) in zip(full, kernels) if f != 1.0))
            rows.append((gpu, row.timeUsed_median * 1e-3, times))
    return rows


def spread(rows, fraction: float) -> float:
    """Standard deviation of log(measured / predicted), centred per GPU."""
    logs: dict[str, list[float]] = {}
    for gpu, measured_s, times in rows:
        best = min(full + scaled / fraction for full, scaled in times.values())
        logs.setdefault(gpu, []).append(np.log(measured_s / best))
    centred = np.concatenate([np.asarray(v) - np.median(v) for v in logs.values()])
    return float(np.sqrt(np.mean(centred ** 2)))


def fit(rows) -> tuple[float, dict[float, float]]:
    scores = {f: spread(rows, f) for f in GRID}
    return min(GRID, key=lambda f: (scores[f], f)), scores


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless simulator/fastconv.py holds the fitted value")
    args = parser.parse_args(argv)
    if not DATA.is_file():
        print(f"error: {DATA}: not found (the shared fixtures are needed)", file=sys.stderr)
        return 2
    rows = kernel_times(pd.read_csv(DATA))
    best, scores = fit(rows)
    for gpu in GPUS:
        print(f"{gpu}: {sum(1 for r in rows if r[0] == gpu)} rows")
    direct_only = spread([(g, m, {a: t for a, t in ts.items() if a not in fastconv.STAGED})
                          for g, m, ts in rows], 1.0)
    print(f"without the staged algorithms: spread {direct_only:.4f}")
    for fraction in GRID:
        mark = "  <- best" if fraction == best else ""
        print(f"fraction {fraction:.2f}: spread {scores[fraction]:.4f}{mark}")
    if args.check and best != fastconv.TRANSFORM_EFFICIENCY:
        print(f"simulator/fastconv.py has TRANSFORM_EFFICIENCY = {fastconv.TRANSFORM_EFFICIENCY}; "
              f"the fit gives {best}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
