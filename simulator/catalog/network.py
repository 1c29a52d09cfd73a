"""The :class:`NetworkPreset` spec: a named link technology for the alpha-beta (latency-bandwidth)
model of a transfer, ``t = latency_s + bytes / bandwidth_Bps`` (Hockney, "The communication
challenge for MPP: Intel Paragon and Meiko CS-2", Parallel Computing 20(3), 1994).
"""
from __future__ import annotations

from dataclasses import dataclass

from simulator.catalog._validate import (
    check_name, check_non_negative, check_positive, check_text,
)


@dataclass(frozen=True, kw_only=True)
class NetworkPreset:
    """A link technology, in SI units.

    Parameters
    ----------
    name : str
        Catalog key, e.g. ``"nvlink2"``. Lookups are case-insensitive.
    description : str
        Human name, e.g. ``"NVLink 2.0, 6 links x 25 GB/s (V100)"``.
    bandwidth_Bps : float
        Bandwidth per direction, bytes/s (> 0). Decimal prefixes: 100 Gbit/s is 12.5e9 B/s.
    latency_s : float
        One-way latency of a small message, seconds (>= 0).
    source : str
        Citations for the numbers; estimates say so.

    Examples
    --------
    >>> NetworkPreset(name="toy", description="toy", bandwidth_Bps=1e9, latency_s=1e-6,
    ...               source="made up").bandwidth_Bps
    1000000000.0
    """

    name: str
    description: str
    bandwidth_Bps: float
    latency_s: float
    source: str

    def __post_init__(self) -> None:
        name = check_name(self.name)
        values = {
            "description": check_text(self.description, entry=name, field="description"),
            "bandwidth_Bps": check_positive(self.bandwidth_Bps, entry=name,
                                            field="bandwidth_Bps"),
            "latency_s": check_non_negative(self.latency_s, entry=name, field="latency_s"),
            "source": check_text(self.source, entry=name, field="source"),
        }
        for field, value in values.items():
            object.__setattr__(self, field, value)
