"""Paleo's device and network presets, exactly as Paleo defines them, in Paleo's own units.

These exist only for the Paleo-compatible estimator, which must reproduce Paleo's numbers,
quirks included (``/work/shared/docs/PALEO_COST_MODEL.md`` sections 2.1, 2.9 and 3.3; Paleo,
``paleo/device.py`` at commit 984bbf5):

- a device's memory bandwidth is a *label* in "GB/s" that Paleo divides bytes by 2^30 against, so
  it behaves as GiB/s (bug B1; :attr:`PaleoDevicePreset.paleo_memory_bandwidth_Bps`);
- ``K80`` is the whole dual-die board (B8);
- ``CPU_I7``'s clock is 210000 MHz, a typo for 3500 (B9); it only moves Paleo's one-cycle floor;
- network bandwidths are decimal Gbit/s.

The SI catalog (:class:`~simulator.catalog.Device`) is what the rest of paleosim uses.
"""
from __future__ import annotations

from dataclasses import dataclass

from simulator.catalog._validate import check_bool, check_name, check_positive, check_text
from simulator.units import GiB, gbit_per_s_to_Bps


@dataclass(frozen=True, kw_only=True)
class PaleoDevicePreset:
    """One of Paleo's device presets, field for field.

    Parameters
    ----------
    name : str
        Paleo's key, e.g. ``"TITAN_X"``.
    description : str
        What the preset is, e.g. ``"Titan X (Maxwell)"``.
    clock_mhz : float
        Paleo's clock in MHz (sets its one-cycle time floor).
    peak_gflops : float
        Paleo's peak in GFLOP/s (10^9).
    mem_bandwidth_gbps_label : float
        The value Paleo labels "GB/s"; Paleo divides byte counts by 2^30 and then by this value.
    is_gpu : bool
        ``False`` makes Paleo use its GEMM model for every convolution.

    Examples
    --------
    >>> p = PaleoDevicePreset(name="X", description="x", clock_mhz=1000, peak_gflops=1000,
    ...                       mem_bandwidth_gbps_label=100, is_gpu=True)
    >>> p.peak_flops, p.paleo_memory_bandwidth_Bps
    (1000000000000.0, 107374182400.0)
    """

    name: str
    description: str
    clock_mhz: float
    peak_gflops: float
    mem_bandwidth_gbps_label: float
    is_gpu: bool

    def __post_init__(self) -> None:
        name = check_name(self.name)
        values = {
            "description": check_text(self.description, entry=name, field="description"),
            "is_gpu": check_bool(self.is_gpu, entry=name, field="is_gpu"),
        }
        for field in ("clock_mhz", "peak_gflops", "mem_bandwidth_gbps_label"):
            values[field] = check_positive(getattr(self, field), entry=name, field=field)
        for field, value in values.items():
            object.__setattr__(self, field, value)

    @property
    def peak_flops(self) -> float:
        """Paleo's peak in FLOP/s."""
        return self.peak_gflops * 1e9

    @property
    def clock_hz(self) -> float:
        """Paleo's clock in Hz (typo included for ``CPU_I7``)."""
        return self.clock_mhz * 1e6

    @property
    def paleo_memory_bandwidth_Bps(self) -> float:
        """The bandwidth Paleo effectively uses, bytes/s: the label times 2^30 (bug B1), 7.4 %
        above the label read as decimal GB/s."""
        return self.mem_bandwidth_gbps_label * GiB


@dataclass(frozen=True, kw_only=True)
class PaleoNetworkPreset:
    """One of Paleo's network presets.

    Parameters
    ----------
    name : str
        Paleo's key, e.g. ``"ethernet"``.
    description : str
        What the preset is, e.g. ``"Ethernet"``.
    bandwidth_gbit_per_s : float
        Decimal Gbit/s, as Paleo's ``comm.py`` uses it.
    """

    name: str
    description: str
    bandwidth_gbit_per_s: float

    def __post_init__(self) -> None:
        name = check_name(self.name)
        object.__setattr__(self, "description",
                           check_text(self.description, entry=name, field="description"))
        object.__setattr__(self, "bandwidth_gbit_per_s",
                           check_positive(self.bandwidth_gbit_per_s, entry=name,
                                          field="bandwidth_gbit_per_s"))

    @property
    def bandwidth_Bps(self) -> float:
        """The bandwidth in bytes/s (decimal, as Paleo uses it for the network)."""
        return gbit_per_s_to_Bps(self.bandwidth_gbit_per_s)
