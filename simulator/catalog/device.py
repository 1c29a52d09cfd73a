"""The :class:`Device` spec: one accelerator (or CPU) as the cost model and the power model see it.

The per-layer cost model is a roofline (Williams, Waterman and Patterson, "Roofline: an insightful
visual performance model for multicore architectures", CACM 52(4), 2009)::

    t = max(flops / (device.peak(dtype) * device.efficiency(op_class)),
            bytes / (device.memory_bandwidth_Bps * device.memory_efficiency))

so a device carries a dense peak per data type, a memory bandwidth, and the fractions of both that
real kernels reach. Power (idle and busy) feeds the energy model; memory capacity feeds the
out-of-memory check.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from simulator.catalog._validate import (
    FrozenMap, check_choice, check_fraction, check_name, check_non_negative, check_positive,
    check_table, check_text, where,
)
from simulator.errors import SpecError

#: Data types a peak may be given for, in display order.
DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8")
#: Operation classes an efficiency may be given for; ``default`` is required and is the fallback.
OP_CLASSES = ("default", "conv", "matmul", "elementwise", "reduction")
#: Kinds of device.
KINDS = ("gpu", "tpu", "cpu")
#: Where a device's efficiency factors come from: fitted once on measurements of that device,
#: shared with a device of the same silicon that was fitted, or placeholders (no measurement).
CALIBRATIONS = ("fitted", "shared", "placeholder")
#: Convolution algorithms a device's software stack may offer (see ``simulator.fastconv``).
CONV_ALGORITHMS = ("direct", "winograd_2x2_3x3", "winograd_4x4_3x3", "fft", "fft_tiling")


def _check_conv_algorithms(value, name: str) -> tuple[str, ...]:
    if (isinstance(value, str) or not isinstance(value, (list, tuple))
            or not all(isinstance(v, str) for v in value)):
        raise SpecError("must be a list of algorithm names", field=where(name, "conv_algorithms"),
                        value=value)
    for algorithm in value:
        if algorithm not in CONV_ALGORITHMS:
            raise SpecError(f"unknown convolution algorithm; valid: {', '.join(CONV_ALGORITHMS)}",
                            field=where(name, "conv_algorithms"), value=algorithm)
    if "direct" not in value:
        raise SpecError("must include 'direct'", field=where(name, "conv_algorithms"),
                        value=list(value))
    return tuple(value)


_CALIBRATION_KEYS = ("status", "basis", "rows", "data", "shares", "date")


def _check_calibration(value, name: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise SpecError("must be an object", field=where(name, "calibration"), value=value)
    unknown = sorted(set(value) - set(_CALIBRATION_KEYS))
    if unknown:
        raise SpecError(f"unknown field; valid: {', '.join(_CALIBRATION_KEYS)}",
                        field=where(name, f"calibration.{unknown[0]}"), value=unknown[0])
    check_choice(value.get("status"), CALIBRATIONS, entry=name, field="calibration.status")
    if value["status"] == "shared" and not isinstance(value.get("shares"), str):
        raise SpecError("a shared calibration names the device it shares with",
                        field=where(name, "calibration.shares"), value=value.get("shares"))
    out = dict(value)
    if isinstance(out.get("rows"), (list, tuple)):
        out["rows"] = tuple(out["rows"])
    return FrozenMap(out)  # hashable: devices are cache keys


@dataclass(frozen=True, kw_only=True)
class Device:
    """One device of the catalog, in SI units.

    Parameters
    ----------
    name : str
        Catalog key, e.g. ``"V100"``. Lookups are case-insensitive.
    description : str
        Human name, e.g. ``"NVIDIA Tesla V100 SXM2 16 GB"``.
    kind : str
        ``"gpu"``, ``"tpu"`` or ``"cpu"``.
    peak_flops : Mapping[str, float]
        Dense peak in FLOP/s per data type (keys among :data:`DTYPES`); only the data types the
        device runs natively. Mixed-precision tensor-core peaks are filed under the input type
        (``fp16`` on a V100 is the 125 TFLOP/s tensor-core peak).
    memory_bandwidth_Bps : float
        Peak device-memory bandwidth, bytes/s.
    memory_bytes : float
        Device-memory capacity, bytes.
    clock_hz : float
        Core clock the peaks correspond to, Hz.
    compute_efficiency : Mapping[str, float]
        Fraction of peak reached per operation class (keys among :data:`OP_CLASSES`,
        ``"default"`` required), each in (0, 1].
    memory_efficiency : float
        Fraction of ``memory_bandwidth_Bps`` reached, in (0, 1].
    idle_power_W, busy_power_W : float
        Board power idle and at full load (TDP), watts; ``0 <= idle <= busy``.
    source : str
        Citations for the numbers.
    conv_algorithms : tuple of str
        Convolution algorithms of the device's software stack (:data:`CONV_ALGORITHMS`; must
        include ``"direct"``); the roofline takes the fastest per layer (``simulator.fastconv``).
        Default ``("direct",)``.
    sum_bandwidth_Bps : float or None
        Bytes of input the device sums per second when it adds gradient buffers (a BytePS
        summation server, a host summing its GPUs' gradients before a push); ``None`` (the
        default): memory-bound, every input byte read once and the accumulator read and written
        once per input (:meth:`sum_time_s`).
    calibration : Mapping
        Provenance of ``compute_efficiency`` and ``memory_efficiency``: ``status`` (one of
        :data:`CALIBRATIONS`), ``basis`` (the measurements, in words), ``rows`` (reference-table
        rows fitted to), ``data`` (measurement files), ``shares`` (for ``shared``: the fitted
        device of the same silicon), ``date``. Written by ``experiments/calibrate.py``.

    Examples
    --------
    >>> d = Device(name="toy", description="a toy", kind="gpu", peak_flops={"fp32": 1e12},
    ...            memory_bandwidth_Bps=1e11, memory_bytes=2**30, clock_hz=1e9,
    ...            compute_efficiency={"default": 0.5}, memory_efficiency=0.8,
    ...            idle_power_W=10, busy_power_W=100, source="made up")
    >>> d.peak("fp32"), d.efficiency("matmul")
    (1000000000000.0, 0.5)
    >>> d.with_overrides(memory_efficiency=0.9).memory_efficiency
    0.9
    """

    name: str
    description: str
    kind: str
    peak_flops: Mapping[str, float]
    memory_bandwidth_Bps: float
    memory_bytes: float
    clock_hz: float
    compute_efficiency: Mapping[str, float]
    memory_efficiency: float
    idle_power_W: float
    busy_power_W: float
    source: str
    conv_algorithms: tuple[str, ...] = ("direct",)
    calibration: Mapping = dataclasses.field(default_factory=lambda: {"status": "placeholder"})
    sum_bandwidth_Bps: float | None = None

    def __post_init__(self) -> None:
        name = check_name(self.name)
        values = {
            "description": check_text(self.description, entry=name, field="description"),
            "kind": check_choice(self.kind, KINDS, entry=name, field="kind"),
            "peak_flops": check_table(self.peak_flops, DTYPES, check_positive, entry=name,
                                      field="peak_flops"),
            "compute_efficiency": check_table(self.compute_efficiency, OP_CLASSES,
                                              check_fraction, entry=name,
                                              field="compute_efficiency", required=("default",)),
            "source": check_text(self.source, entry=name, field="source"),
            "memory_efficiency": check_fraction(self.memory_efficiency, entry=name,
                                                field="memory_efficiency"),
            "idle_power_W": check_non_negative(self.idle_power_W, entry=name,
                                               field="idle_power_W"),
            "busy_power_W": check_non_negative(self.busy_power_W, entry=name,
                                               field="busy_power_W"),
        }
        values["conv_algorithms"] = _check_conv_algorithms(self.conv_algorithms, name)
        values["calibration"] = _check_calibration(self.calibration, name)
        if self.sum_bandwidth_Bps is not None:
            values["sum_bandwidth_Bps"] = check_positive(self.sum_bandwidth_Bps, entry=name,
                                                         field="sum_bandwidth_Bps")
        for field in ("memory_bandwidth_Bps", "memory_bytes", "clock_hz"):
            values[field] = check_positive(getattr(self, field), entry=name, field=field)
        if values["busy_power_W"] < values["idle_power_W"]:
            raise SpecError(f"must be >= idle_power_W ({values['idle_power_W']!r})",
                            field=where(name, "busy_power_W"), value=self.busy_power_W)
        for field, value in values.items():  # normalised: floats, FrozenMaps in canonical order
            object.__setattr__(self, field, value)

    @property
    def placeholder(self) -> bool:
        """Whether the efficiency factors are placeholders (no measurement behind them)."""
        return self.calibration["status"] == "placeholder"

    def calibration_label(self) -> str:
        """One line on where the factors come from, for result tables."""
        c = self.calibration
        if c["status"] == "shared":
            return f"shared with {c['shares']} ({c.get('basis', '')})".rstrip(" ()")
        if c["status"] == "fitted":
            what = ", ".join(c.get("rows", ())) or c.get("data", "") or c.get("basis", "")
            return f"fitted on {what}" + (f" ({c['date']})" if c.get("date") else "")
        return "placeholder (uncalibrated)"

    def sum_time_s(self, nbytes: float, inputs: int) -> float:
        """Seconds to sum ``inputs`` buffers of ``nbytes`` each into one. With
        ``sum_bandwidth_Bps``, ``inputs x nbytes`` over it; otherwise memory-bound: the first
        buffer is copied (read and write) and every further one read with the accumulator read
        and written, ``(3 inputs - 1) x nbytes`` bytes at ``memory_bandwidth_Bps x
        memory_efficiency`` (no cache reuse: gradient buffers are far larger than caches)."""
        if inputs < 1 or nbytes <= 0:
            return 0.0
        if self.sum_bandwidth_Bps is not None:
            return inputs * nbytes / self.sum_bandwidth_Bps
        return (3 * inputs - 1) * nbytes / (self.memory_bandwidth_Bps * self.memory_efficiency)

    def peak(self, dtype: str) -> float:
        """Dense peak FLOP/s for ``dtype``.

        Raises
        ------
        SpecError
            If the device has no peak for ``dtype``; the message names the device, the dtype and
            the dtypes it supports.
        """
        try:
            return self.peak_flops[dtype]
        except KeyError:
            raise SpecError(f"device {self.name!r} does not support dtype {dtype!r}; "
                            f"supported: {', '.join(self.peak_flops)}",
                            field=where(self.name, "peak_flops"), value=dtype) from None

    def efficiency(self, op_class: str) -> float:
        """Fraction of peak reached by ``op_class``, falling back to ``"default"``.

        An ``op_class`` outside :data:`OP_CLASSES` raises :class:`SpecError`: a typo such as
        ``"matmull"`` must not silently fall back.
        """
        if op_class not in OP_CLASSES:
            raise SpecError(f"unknown op class; valid: {', '.join(sorted(OP_CLASSES))}",
                            field=where(self.name, "compute_efficiency"), value=op_class)
        return self.compute_efficiency.get(op_class, self.compute_efficiency["default"])

    def with_overrides(self, **changes) -> "Device":
        """A copy with ``changes`` applied and validated (e.g. calibrated efficiencies).

        Mapping fields are replaced whole, not merged.
        """
        valid = [f.name for f in dataclasses.fields(self)]
        for key in changes:
            if key not in valid:
                raise SpecError(f"unknown device field; valid: {', '.join(sorted(valid))}",
                                field=where(self.name, key), value=key)
        return dataclasses.replace(self, **changes)

