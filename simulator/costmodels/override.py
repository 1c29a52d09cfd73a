"""The roofline with some catalog devices' efficiency factors replaced (what-if and fitting).

Used by the calibration procedure (``experiments/calibrate.py``), which tries factors before
storing them, and by the known-miss claims (:mod:`simulator.validation.claims`), which ask what
a row would give at another efficiency. Devices are matched by name.
"""
from __future__ import annotations

from collections.abc import Mapping

from simulator.catalog import Device, OP_CLASSES, get_device
from simulator.costmodel import RooflineCostModel


def with_factors(device: Device, compute: float, memory: float | None = None) -> Device:
    """``device`` with one compute efficiency for every op class (and ``memory``, if given)."""
    changes = {"compute_efficiency": {c: compute for c in OP_CLASSES}}
    if memory is not None:
        changes["memory_efficiency"] = memory
    return device.with_overrides(**changes)


class OverrideCostModel:
    """The roofline, with some catalog devices replaced by the given copies (by name)."""

    name = "roofline"

    def __init__(self, devices: Mapping[str, Device]) -> None:
        self.base = RooflineCostModel()
        self.devices = dict(devices)

    def _dev(self, device):
        return self.devices.get(device.name, device)

    def work_time_s(self, work, op_class, device, *, dtype):
        return self.base.work_time_s(work, op_class, self._dev(device), dtype=dtype)

    def phase_time_s(self, layer, phase, device, *, dtype="fp32"):
        return self.base.phase_time_s(layer, phase, self._dev(device), dtype=dtype)

    def update_time_s(self, params, device, *, dtype="fp32", optimizer="sgd"):
        return self.base.update_time_s(params, self._dev(device), dtype=dtype,
                                       optimizer=optimizer)


class EfficiencyOverride(OverrideCostModel):
    """The roofline with ``{device name: compute efficiency}`` replacing catalog factors."""

    def __init__(self, compute: Mapping[str, float]) -> None:
        super().__init__({name: with_factors(get_device(name), value)
                          for name, value in compute.items()})
