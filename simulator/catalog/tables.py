"""Catalog entries as pandas tables, for listing (``paleosim devices``) and for saving with results.

Two unit systems: ``units="si"`` gives SI columns named by unit suffix (for CSV and JSON, and for
machines); ``units="human"`` gives TFLOP/s, GB/s, GiB, Gbit/s and microseconds (for reading). A
dtype a device does not support is ``None`` in SI tables and ``"-"`` in human ones.
"""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from simulator.catalog.device import DTYPES, OP_CLASSES, Device
from simulator.catalog.network import NetworkPreset
from simulator.catalog.paleo import PaleoDevicePreset, PaleoNetworkPreset
from simulator.errors import SpecError
from simulator.units import GB, GiB, TFLOPS, US

UNITS = ("si", "human")


def _check_units(units: str) -> None:
    if units not in UNITS:
        raise SpecError(f"must be one of {', '.join(UNITS)}", field="units", value=units)


def _human_number(value: float | None, scale: float) -> str:
    return "-" if value is None else f"{value / scale:g}"


def device_table(entries: Iterable[Device], *, units: str = "si") -> pd.DataFrame:
    """One row per device.

    SI columns: ``name, kind, description, peak_<dtype>_flops`` (one per dtype, ``None`` where
    unsupported), ``memory_bytes, memory_bandwidth_Bps, clock_hz, idle_power_W, busy_power_W,
    compute_efficiency_<op_class>`` (the value :meth:`Device.efficiency` returns, i.e. after the
    fallback to ``default``), ``memory_efficiency, calibration, calibration_basis, source``.
    Human columns: name, kind, description, ``<dtype> TFLOP/s``, ``memory GiB``,
    ``bandwidth GB/s``, ``TDP W``, ``idle W``, ``efficiency`` (the default compute efficiency),
    ``calibration`` (fitted, shared with a sibling, or placeholder).
    """
    _check_units(units)
    rows = []
    for d in entries:
        if units == "si":
            row = {"name": d.name, "kind": d.kind, "description": d.description}
            row.update({f"peak_{t}_flops": d.peak_flops.get(t) for t in DTYPES})
            row.update({"memory_bytes": d.memory_bytes,
                        "memory_bandwidth_Bps": d.memory_bandwidth_Bps, "clock_hz": d.clock_hz,
                        "idle_power_W": d.idle_power_W, "busy_power_W": d.busy_power_W})
            row.update({f"compute_efficiency_{op}": d.efficiency(op) for op in OP_CLASSES})
            row.update({"memory_efficiency": d.memory_efficiency,
                        "calibration": d.calibration["status"],
                        "calibration_basis": d.calibration_label(), "source": d.source})
        else:
            row = {"name": d.name, "kind": d.kind, "description": d.description}
            row.update({f"{t} TFLOP/s": _human_number(d.peak_flops.get(t), TFLOPS)
                        for t in DTYPES})
            row.update({"memory GiB": d.memory_bytes / GiB,
                        "bandwidth GB/s": d.memory_bandwidth_Bps / GB,
                        "TDP W": d.busy_power_W, "idle W": d.idle_power_W,
                        "efficiency": d.efficiency("default"),
                        "calibration": (f"shared ({d.calibration['shares']})"
                                        if d.calibration["status"] == "shared"
                                        else d.calibration["status"])})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if units == "si":  # keep None (JSON null, empty CSV cell) rather than NaN
        for t in DTYPES:
            column = f"peak_{t}_flops"
            if column in frame:
                frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def network_table(entries: Iterable[NetworkPreset], *, units: str = "si") -> pd.DataFrame:
    """One row per network preset.

    SI columns: ``name, description, bandwidth_Bps, latency_s, source``. Human columns: name,
    description, ``bandwidth GB/s``, ``bandwidth Gbit/s``, ``latency us``.
    """
    _check_units(units)
    if units == "si":
        rows = [{"name": n.name, "description": n.description, "bandwidth_Bps": n.bandwidth_Bps,
                 "latency_s": n.latency_s, "source": n.source} for n in entries]
    else:
        rows = [{"name": n.name, "description": n.description,
                 "bandwidth GB/s": n.bandwidth_Bps / GB,
                 "bandwidth Gbit/s": n.bandwidth_Bps * 8 / GB,
                 "latency us": n.latency_s / US} for n in entries]
    return pd.DataFrame(rows)


def paleo_device_table(entries: Iterable[PaleoDevicePreset]) -> pd.DataFrame:
    """Paleo's device presets, field for field, in Paleo's units (the same for every format)."""
    return pd.DataFrame([{"name": p.name, "description": p.description, "clock_mhz": p.clock_mhz,
                          "peak_gflops": p.peak_gflops,
                          "mem_bandwidth_gbps_label": p.mem_bandwidth_gbps_label,
                          "is_gpu": p.is_gpu} for p in entries])


def paleo_network_table(entries: Iterable[PaleoNetworkPreset]) -> pd.DataFrame:
    """Paleo's network presets, field for field, in Paleo's units (decimal Gbit/s)."""
    return pd.DataFrame([{"name": p.name, "description": p.description,
                          "bandwidth_gbit_per_s": p.bandwidth_gbit_per_s} for p in entries])
