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
- **Devices known only through Paleo** (K20X, K40, K20, K80 die): Paleo's "platform percent of
  peak" (PPP) is fitted per software stack (Qi et al., ICLR 2017; ``PALEO_COST_MODEL.md``
  section 2.8: Caffe 0.21, TensorFlow 0.62, cuda-convnet2 0.46, MXNet 0.49) and each of these
  devices appears in the table with exactly one stack (FireCaffe's Caffe on K20X, TensorFlow on
  K40, cuda-convnet2 on K20, MXNet on the K80 dies),
  so a per-device factor can take the PPP's role. PPP divides both of Paleo's compute and memory
  terms, which it adds, whereas the roofline takes their maximum; so the factor is not set to the
  PPP but solved so that the roofline's single-device iteration of the case's net equals Paleo's
  own (Paleo's cost model, its fitted PPP, its device preset; for the K80 die, Paleo's board
  preset halved). Paleo's ``ppp_comm`` has no counterpart: links run at their catalogued rates.

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
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from simulator.catalog import Device, OP_CLASSES, PaleoDevicePreset, get_device  # noqa: E402
from simulator.costmodel import RooflineCostModel  # noqa: E402
from simulator.specs import DataParallelSpec, SystemSpec, WorkloadSpec  # noqa: E402
from simulator.strategies.common import CostCache  # noqa: E402
from simulator.validation import Simulations, build_case, load_reference, predict  # noqa: E402

DEVICES_JSON = REPO / "simulator" / "catalog" / "devices.json"
#: Prior memory efficiency of devices whose one target fits the compute efficiency only.
MEMORY_PRIOR = 0.8
#: Factors are stored rounded to this many decimals (the fits are flat well beyond it).
DECIMALS = 4


@dataclass(frozen=True)
class PaleoTarget:
    """A single-device iteration time from Paleo's estimator with its fitted PPP."""

    net: str
    batch: int
    software: str
    paleo_device: str | PaleoDevicePreset
    optimizer: str = "sgd"

    def describe(self) -> str:
        dev = self.paleo_device if isinstance(self.paleo_device, str) else self.paleo_device.name
        return (f"Paleo's single-device time of {self.net} at batch {self.batch} with its "
                f"{self.software} PPP on its {dev} preset")


#: One K80 die as Paleo's K80 board preset halved (the board is two GK210 dies).
K80_DIE = PaleoDevicePreset(name="K80_DIE", description="one K80 die (Paleo's K80 board / 2)",
                            clock_mhz=560, peak_gflops=2800, mem_bandwidth_gbps_label=240,
                            is_gpu=True)

#: Device -> its calibration targets: "rows" (the table's calibration rows of that device) or a
#: Paleo target.
TARGETS: dict[str, object] = {
    "P100": "rows",
    "K40": PaleoTarget(net="inception_v3", batch=32, software="tensorflow", paleo_device="K40",
                       optimizer="momentum"),
    "V100-SXM3": "rows",
    "A100-80GB": "rows",
    "K20X": PaleoTarget(net="nin", batch=256, software="caffe", paleo_device="K20X"),
    "K20": PaleoTarget(net="alexnet_owt_1gpu", batch=128, software="cuda-convnet2",
                       paleo_device="K20"),
    "K80": PaleoTarget(net="inception_v3", batch=32, software="mxnet", paleo_device=K80_DIE,
                       optimizer="momentum"),
}


class OverrideCostModel:
    """The roofline, with some catalog devices replaced by calibrated copies (matched by name)."""

    name = "roofline"

    def __init__(self, devices: dict[str, Device]) -> None:
        self.base = RooflineCostModel()
        self.devices = devices

    def _dev(self, device):
        return self.devices.get(device.name, device)

    def work_time_s(self, work, op_class, device, *, dtype):
        return self.base.work_time_s(work, op_class, self._dev(device), dtype=dtype)

    def phase_time_s(self, layer, phase, device, *, dtype="fp32"):
        return self.base.phase_time_s(layer, phase, self._dev(device), dtype=dtype)

    def update_time_s(self, params, device, *, dtype="fp32", optimizer="sgd"):
        return self.base.update_time_s(params, self._dev(device), dtype=dtype,
                                       optimizer=optimizer)


def with_factors(device: Device, compute: float, memory: float) -> Device:
    return device.with_overrides(compute_efficiency={c: compute for c in OP_CLASSES},
                                 memory_efficiency=memory)


class Objective:
    """Relative errors of a device's targets as a function of its two factors."""

    def __init__(self, name: str, spec) -> None:
        self.device = get_device(name)
        self.name = name
        table = load_reference()
        self.rows = []
        self.skipped = []
        self.paleo = None
        if spec == "rows":
            for row in table.rows:
                if row.role == "calibration" and row.device == name:
                    (self.skipped if row.status == "pending" else self.rows).append(row)
        else:
            self.paleo = spec
            self.paleo_s = paleo_time_s(spec)
            self.workload = WorkloadSpec(net=spec.net, batch=spec.batch,
                                         optimizer=spec.optimizer)
        self.evaluations = 0
        self._caches: dict[str, CostCache] = {}

    @property
    def usable(self) -> bool:
        return bool(self.rows) or self.paleo is not None

    def errors(self, compute: float, memory: float) -> list[float]:
        """``predicted / target - 1`` for each target with these factors."""
        self.evaluations += 1
        dev = with_factors(self.device, compute, memory)
        sims = Simulations(OverrideCostModel({self.name: dev}))
        if self.paleo is not None:
            system = SystemSpec(topology="server(server='k20_pcie8')", device=self.name)
            m = sims.metrics(self.workload, system, DataParallelSpec(workers=1))
            return [self.paleo_s / m["iteration_s"] - 1.0]  # as a throughput
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


def paleo_time_s(target: PaleoTarget) -> float:
    """Paleo's single-device iteration time (s) of the target, on paleosim's shipped net."""
    from simulator.paleo import estimate
    df = estimate(target.net, device=target.paleo_device, network="ethernet",
                  software=target.software, batch=target.batch, workers=[1])
    return float(df["time_comp_ms"].iloc[0]) / 1e3


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
    if obj.paleo is not None or len(obj.rows) == 1:
        return solve_compute(obj, MEMORY_PRIOR), MEMORY_PRIOR
    # minimax over the targets: the worst error is quasi-convex in the compute efficiency
    compute, _ = golden_min(lambda c: obj.worst(c, MEMORY_PRIOR), 0.05, 1.0)
    return compute, MEMORY_PRIOR


def source_line(name: str, obj: Objective, compute: float, memory: float) -> str:
    if obj.paleo is not None:
        what = obj.paleo.describe() + f" ({obj.paleo_s * 1e3:.1f} ms)"
    else:
        what = (("rows " if len(obj.rows) > 1 else "row ")
                + ", ".join(r.id for r in obj.rows) + " of simulator/validation/reference.json")
    return (f"efficiencies: calibrated by experiments/calibrate.py on {what}: compute "
            f"{compute:g} for every op class (per-class differences uncalibrated), "
            f"memory {memory:g}, the uncalibrated prior")


def rewrite_entry(text: str, name: str, compute: float, memory: float, line: str) -> str:
    """``text`` (devices.json) with the efficiency fields of entry ``name`` replaced."""
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
    return text[:start] + entry + text[end:]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="store the fit in devices.json")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless devices.json already holds this fit")
    parser.add_argument("--devices", default=None,
                        help="comma-separated devices to calibrate (default: all targets)")
    args = parser.parse_args(argv)
    names = args.devices.split(",") if args.devices else list(TARGETS)
    text = DEVICES_JSON.read_text(encoding="utf-8")
    new_text = text
    for name in names:
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
        labels = ([r.id for r in obj.rows] if obj.paleo is None else [obj.paleo.describe()])
        print(f"{name}: compute {compute:g}, memory {memory:g} "
              f"({obj.evaluations} evaluations)")
        for label, err in zip(labels, errors):
            print(f"    {label}: {err:+.2%}")
        new_text = rewrite_entry(new_text, name, compute, memory,
                                 source_line(name, obj, compute, memory))
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
