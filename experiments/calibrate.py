"""Calibrate each device's efficiency factors ONCE, from a small stated set of single-device
measurements, and store them in ``simulator/catalog/devices.json``.

The roofline (``simulator/costmodel.py``) prices a layer phase at
``max(flops / (peak * compute_efficiency), bytes / (bandwidth * memory_efficiency))``. The
catalog's factors were uncalibrated placeholders. This procedure fits them per device, never per
row, and every multi-device row of the reference table is then predicted with them frozen.

What is fitted, per device (the targets are listed in ``TARGETS`` below):

- **Devices with several single-device measurements** (P100: the tf_cnn_benchmarks one-GPU
  throughputs of Inception v3, ResNet-50 and ResNet-152, rows with ``role: calibration`` in
  ``simulator/validation/reference.json``): one compute efficiency shared by every op class,
  chosen to minimise the largest relative error over the targets (a minimax fit: the acceptance
  criterion bounds the largest error, and with more targets than factors no fit is exact); the
  memory efficiency keeps its prior, as below. The op classes share one value because three
  convolution-dominated nets cannot separate them, and neither can they separate compute from
  memory: fitted as a second factor, the memory efficiency ran to its bound of 1 with direct and
  Winograd convolutions and drifted below 0.55 once the staged algorithms were priced, each
  time without a better worst error than the prior gives.
- **Devices with one measurement** (V100-SXM3: Megatron-LM's one-GPU 1.16B row; A100-80GB:
  the smallest PTD-P row): one factor,
  the compute efficiency of every op class, solved so that the target is met exactly; the
  memory efficiency keeps its prior (0.8, about what streaming kernels reach on these GPUs).
- **Devices measured layer by layer** (V100, K40, K80 die: the single-layer convolution timings
  of ml-performance-prediction, ``../shared/data/mlperf_prediction/layer_timings_conv.csv``,
  TensorFlow 1.10 with cuDNN 7, fp32, the same random layers timed on each GPU): per GPU, the
  geometric mean over its compute-bound forward rows of at least 1 ms of (roofline time at
  full efficiency with the device's convolution algorithms) / (measured time) is its *implied*
  efficiency under that harness. The harness adds the same overheads on every GPU (NHWC
  transposes, separate bias and activation kernels, ``session.run``): the P100, the one GPU
  measured both ways, implies 0.20 layer by layer against 0.47 over whole networks. So the
  layer timings are used as a measurement of each GPU *relative to the P100*, scaled by that
  harness factor (the P100's whole-network efficiency over its implied one).
- **Devices of the same silicon** share the fitted factors of their sibling unless a measurement
  of their own says otherwise (``SHARED``): K20 and K20X (GK110) take the K40's (GK110B),
  A100-40GB the A100-80GB's, V100-32GB the V100's, the K80 board its die's. V100-SXM3 keeps
  its own fit (a measurement of its own: fp16 tensor-core GEMMs).
- Every other device keeps placeholder factors and says so (``calibration.status``), and every
  result names each device's calibration (``calibration`` column); the CLI warns on stderr
  when a placeholder device is simulated.

No device is fitted to another model's prediction (before issue 12 the Kepler GPUs were solved
so that the roofline equalled Paleo's own estimate of one case study each). Devices.json records
each device's provenance in its ``calibration`` field (status, basis, rows, data, date).

Rows that exceed the device's peak under direct-convolution FLOP counting (tf_cnn_benchmarks'
AlexNet and VGG-16 on the P100) cannot inform an efficiency <= 1 and are not targets; they are
known misses in the table. Rows still ``pending`` (their strategy is not simulated yet) are
skipped, and their device keeps its placeholders until they can run.

Usage (from the repository root)::

    python3 experiments/calibrate.py            # fit and print; compare with devices.json
    python3 experiments/calibrate.py --write    # store the fitted factors in devices.json
    python3 experiments/calibrate.py --check    # exit 1 unless devices.json holds this fit

Only ``compute_efficiency``, ``memory_efficiency`` and the ``efficiencies:`` line of each
calibrated device's ``source`` are written; every other byte of the file is kept.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "experiments"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from simulator.catalog import Device, OP_CLASSES, get_device  # noqa: E402
from simulator.costmodel import RooflineCostModel  # noqa: E402
from simulator.costmodels.override import OverrideCostModel, with_factors  # noqa: E402
from simulator.strategies.common import CostCache  # noqa: E402
from simulator.validation import Simulations, build_case, load_reference, predict  # noqa: E402

DEVICES_JSON = REPO / "simulator" / "catalog" / "devices.json"
#: Prior memory efficiency of devices whose one target fits the compute efficiency only.
MEMORY_PRIOR = 0.8
#: Factors are stored rounded to this many decimals (the fits are flat well beyond it).
DECIMALS = 4


#: Device -> its calibration targets: "rows" (the table's calibration rows of that device) or
#: "layers" (its single-layer timings, relative to the P100's); fitted in this order (the layer
#: targets need the P100's factor).
TARGETS: dict[str, str] = {
    "P100": "rows",
    "V100-SXM3": "rows",
    "A100-80GB": "rows",
    "V100": "layers",
    "K40": "layers",
    "K80": "layers",
}
#: Device -> (the fitted device of the same silicon it shares factors with, why).
SHARED: dict[str, tuple[str, str]] = {
    "K20": ("K40", "same GK110 silicon as the K40's GK110B; no measurement of its own"),
    "K20X": ("K40", "same GK110 silicon as the K40's GK110B; no measurement of its own"),
    "K80-board": ("K80", "two K80 (GK210) dies; no measurement of the board"),
    "A100-40GB": ("A100-80GB", "same GA100 silicon; no measurement of its own"),
    "V100-32GB": ("V100", "same GV100 silicon as the V100 SXM2 16 GB; no measurement of its own"),
}
#: The dataset GPU names of the layer targets.
LAYER_GPUS = {"P100": "P100", "V100": "V100", "K40": "K40", "K80": "K80"}
LAYERS_CSV = REPO.parent / "shared" / "data" / "mlperf_prediction" / "layer_timings_conv.csv"
#: Kept rows: forward only, at least this long (below it TF's per-run overhead dominates), and
#: compute-bound at peak (compute time at least this many times the memory time).
LAYER_MIN_S = 1e-3
LAYER_COMPUTE_OVER_MEMORY = 3.0
#: The version date of this procedure, recorded with every fit.
CALIBRATION_DATE = "2026-12-03"


class Objective:
    """Relative errors of a device's targets as a function of its two factors."""

    def __init__(self, name: str, spec) -> None:
        self.device = get_device(name)
        self.name = name
        table = load_reference()
        self.rows = []
        self.skipped = []
        for row in table.rows:
            if row.role == "calibration" and row.device == name and row.metric != "busbw":
                (self.skipped if row.status == "pending" else self.rows).append(row)
        self.evaluations = 0
        self._caches: dict[str, CostCache] = {}

    @property
    def usable(self) -> bool:
        return bool(self.rows)

    def errors(self, compute: float, memory: float) -> list[float]:
        """``predicted / target - 1`` for each target with these factors."""
        self.evaluations += 1
        dev = with_factors(self.device, compute, memory)
        sims = Simulations(OverrideCostModel({self.name: dev}))
        out = []
        for row in self.rows:
            value = self._single_device(row, dev)
            if value is None:
                value = predict(row, sims).value
            # a time falls as the device speeds up, a throughput rises: compare as throughput
            out.append(row.published / value - 1.0 if row.metric == "iteration_time"
                       else value / row.published - 1.0)
        return out

    def _single_device(self, row, dev: Device) -> float | None:
        """The row's value in closed form when its case is one worker of data parallelism or
        a parameter server on its own GPU (an iteration is then exactly forward + backward +
        optimizer step), else ``None``. It reuses the row's parsed net across evaluations;
        :func:`main` checks it against the full simulation at the fitted factors."""
        case = build_case(row)
        strategy = getattr(case, "strategy", None)
        if (row.metric not in ("images_per_s", "iteration_time") or strategy is None
                or strategy.workers != 1
                or strategy.kind not in ("data_parallel", "parameter_server")
                or getattr(strategy, "placement", "colocated") != "colocated"
                or getattr(strategy, "accumulation", 1) != 1):
            return None
        cache = self._caches.get(row.id)
        if cache is None:
            cache = self._caches[row.id] = CostCache(case.workload, RooflineCostModel())
        # the cache keys its costs by device name: name the factors
        key = f"{dev.name}@{dev.efficiency('default')!r}/{dev.memory_efficiency!r}"
        costs = cache.costs(case.workload.batch, dev.with_overrides(name=key))
        seconds = costs.compute_s + costs.update_s
        return seconds if row.metric == "iteration_time" else case.workload.batch / seconds

    def check_closed_form(self, compute: float, memory: float) -> None:
        """Raise unless the closed form equals the full simulation at these factors."""
        dev = with_factors(self.device, compute, memory)
        sims = Simulations(OverrideCostModel({self.name: dev}))
        for row in self.rows:
            fast = self._single_device(row, dev)
            if fast is not None:
                full = predict(row, sims).value
                if abs(fast / full - 1) > 1e-9:
                    raise SystemExit(f"{row.id}: closed form {fast} != simulation {full}")

    def worst(self, compute: float, memory: float) -> float:
        return max(abs(e) for e in self.errors(compute, memory))


def layer_implied_efficiency(gpu: str, device: Device, frame) -> tuple[float, int]:
    """The geometric mean of (roofline time at full efficiency / measured time) over ``gpu``'s
    kept single-layer rows (see the module docstring), and how many rows were kept."""
    import numpy as np
    from simulator import fastconv
    from fit_staged_conv import _layer as conv_layer  # the same layer builder as that fit
    roof = RooflineCostModel()
    full = with_factors(device, 1.0, 1.0)
    sub = frame[(frame.gpu_model == gpu) & (frame.optimizer == 0)
                & (frame.timeUsed_median * 1e-3 >= LAYER_MIN_S)]
    logs = []
    for row in sub.itertuples():
        layer = conv_layer(row)
        work = layer.work["forward"]
        compute_s = work.flops / device.peak("fp32")
        memory_s = work.elems * 4 / device.memory_bandwidth_Bps
        if compute_s < LAYER_COMPUTE_OVER_MEMORY * memory_s:
            continue
        best = min(sum(roof.work_time_s(w, "conv", full, dtype="fp32")
                       / (1.0 if f == 1.0 else fastconv.TRANSFORM_EFFICIENCY) for w, f in kernels)
                   for _, kernels in fastconv.algorithm_works(layer, "forward",
                                                              device.conv_algorithms, "fp32"))
        logs.append(np.log(best / (row.timeUsed_median * 1e-3)))
    return float(np.exp(np.mean(logs))), len(logs)


def solve_compute(obj: Objective, memory: float) -> float:
    """The compute efficiency meeting a single target exactly (bisection on a monotone
    function: a faster device gives a larger throughput)."""
    lo, hi = 1e-3, 1.0
    if obj.errors(hi, memory)[0] < 0:
        return hi  # unreachable even at peak: the caller reports the residual
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        if obj.errors(mid, memory)[0] < 0:
            lo = mid
        else:
            hi = mid
    return hi


def golden_min(f, lo: float, hi: float, tol: float = 1e-5) -> tuple[float, float]:
    """Minimum of a unimodal ``f`` on ``[lo, hi]`` (golden-section search)."""
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    x = (a + b) / 2
    return x, f(x)


def fit(obj: Objective) -> tuple[float, float]:
    """The device's (compute, memory) factors (see the module docstring)."""
    if len(obj.rows) == 1:
        return solve_compute(obj, MEMORY_PRIOR), MEMORY_PRIOR
    # minimax over the targets: the worst error is quasi-convex in the compute efficiency
    compute, _ = golden_min(lambda c: obj.worst(c, MEMORY_PRIOR), 0.05, 1.0)
    return compute, MEMORY_PRIOR


def rows_record(obj: Objective) -> dict:
    rows = [r.id for r in obj.rows]
    multi = [r.id for r in obj.rows if (build_case(r).strategy.workers or 1) > 1]
    basis = ("single-device rows of the reference table" if not multi else
             "rows of the reference table, multi-GPU: " + ", ".join(multi) + " (no single-device "
             "measurement of this GPU in the project's sources; the fit takes the simulated "
             "communication as given, deterministic since routing is)")
    return {"status": "fitted", "basis": basis, "rows": rows, "date": CALIBRATION_DATE}


def source_line(record: dict, compute: float, memory: float) -> str:
    if record["status"] == "shared":
        what = f"shared with {record['shares']} ({record['basis']})"
    elif record.get("rows"):
        what = (("rows " if len(record["rows"]) > 1 else "row ") + ", ".join(record["rows"])
                + " of simulator/validation/reference.json")
    else:
        what = record["basis"]
    return (f"efficiencies: calibrated by experiments/calibrate.py on {what}: compute "
            f"{compute:g} for every op class (per-class differences uncalibrated), "
            f"memory {memory:g}, the uncalibrated prior")


def rewrite_entry(text: str, name: str, compute: float, memory: float, line: str,
                  record: dict) -> str:
    """``text`` (devices.json) with the efficiency fields and the calibration record of entry
    ``name`` replaced."""
    start = text.index(f'"name": "{name}"')
    end = text.find('"name": "', start + 10)
    end = len(text) if end < 0 else end
    entry = text[start:end]
    indent = re.search(r'\n( *)"compute_efficiency"', entry).group(1)
    inner = indent + "  "
    block = ",\n".join(f'{inner}"{c}": {compute!r}' for c in OP_CLASSES)
    entry = re.sub(r'"compute_efficiency": \{[^}]*\}',
                   '"compute_efficiency": {\n' + block + "\n" + indent + "}", entry, count=1)
    entry = re.sub(r'"memory_efficiency": [0-9.eE+-]+', f'"memory_efficiency": {memory!r}',
                   entry, count=1)
    entry, n = re.subn(r'"efficiencies: [^"\n]*"', json.dumps(line), entry, count=1)
    if n != 1:
        raise SystemExit(f"devices.json: entry {name} has no 'efficiencies:' source line")
    entry = set_calibration(entry, record)
    return text[:start] + entry + text[end:]


def set_calibration(entry: str, record: dict) -> str:
    """One entry's text with its ``calibration`` field (one JSON line) set to ``record``."""
    line = '"calibration": ' + json.dumps(record, ensure_ascii=False)
    if '"calibration": ' in entry:
        return re.sub(r'"calibration": \{[^\n]*\}', lambda _m: line, entry, count=1)
    indent = re.search(r'\n( *)"memory_efficiency"', entry).group(1)
    return re.sub(r'("memory_efficiency": [0-9.eE+-]+,)', lambda m: m.group(1) + "\n" + indent
                  + line + ",", entry, count=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="store the fit in devices.json")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless devices.json already holds this fit")
    parser.add_argument("--devices", default=None,
                        help="comma-separated devices to calibrate (default: all targets)")
    args = parser.parse_args(argv)
    names = args.devices.split(",") if args.devices else list(TARGETS) + list(SHARED)
    text = DEVICES_JSON.read_text(encoding="utf-8")
    new_text = text
    fitted: dict[str, tuple[float, float]] = {}
    frame = None
    for name in names:
        if name in SHARED:
            sibling, why = SHARED[name]
            compute, memory = fitted.get(sibling) or (get_device(sibling).efficiency("default"),
                                                      get_device(sibling).memory_efficiency)
            record = {"status": "shared", "shares": sibling, "basis": why,
                      "date": CALIBRATION_DATE}
            print(f"{name}: shares {sibling}'s factors: compute {compute:g}, memory {memory:g}")
        elif TARGETS[name] == "layers":
            if not LAYERS_CSV.is_file():
                print(f"{name}: {LAYERS_CSV} not found (the shared fixtures are needed); kept")
                continue
            if frame is None:
                import pandas as pd
                frame = pd.read_csv(LAYERS_CSV)
            p100 = fitted.get("P100", (get_device("P100").efficiency("default"),))[0]
            ref, _ = layer_implied_efficiency("P100", get_device("P100"), frame)
            implied, kept = layer_implied_efficiency(LAYER_GPUS[name], get_device(name), frame)
            harness = p100 / ref
            compute, memory = round(min(implied * harness, 1.0), DECIMALS), MEMORY_PRIOR
            record = {"status": "fitted", "basis": (
                f"{kept} single-layer convolution timings of this GPU (TF 1.10, cuDNN 7, fp32) "
                f"relative to the P100's: implied {implied:.4f} under the harness, x the "
                f"harness factor {harness:.4f} = the P100's {p100:g} over its implied "
                f"{ref:.4f}"), "data": "shared/data/mlperf_prediction/layer_timings_conv.csv",
                "date": CALIBRATION_DATE}
            print(f"{name}: implied {implied:.4f} over {kept} rows, x {harness:.4f}: "
                  f"compute {compute:g}, memory {memory:g}")
        else:
            obj = Objective(name, TARGETS[name])
            for row in obj.skipped:
                print(f"{name}: row {row.id} is pending ({row.reason.split('.')[0]}); skipped")
            if not obj.usable:
                print(f"{name}: no usable calibration target; placeholders kept")
                continue
            compute, memory = fit(obj)
            compute, memory = round(compute, DECIMALS), round(memory, DECIMALS)
            obj.check_closed_form(compute, memory)
            errors = obj.errors(compute, memory)
            print(f"{name}: compute {compute:g}, memory {memory:g} "
                  f"({obj.evaluations} evaluations)")
            for row, err in zip(obj.rows, errors):
                print(f"    {row.id}: {err:+.2%}")
            record = rows_record(obj)
        fitted[name] = (compute, memory)
        new_text = rewrite_entry(new_text, name, compute, memory,
                                 source_line(record, compute, memory), record)
    if args.write:
        if new_text != text:
            DEVICES_JSON.write_text(new_text, encoding="utf-8")
        print(f"wrote {DEVICES_JSON.relative_to(REPO)}" if new_text != text
              else "devices.json already holds this fit")
    elif new_text != text:
        print("devices.json differs from this fit (run with --write to store it)")
        return 1 if args.check else 0
    else:
        print("devices.json holds this fit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
