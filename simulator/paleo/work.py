"""Device-free work terms: the FLOPs and bytes Paleo charges, one entry per timed term.

Paleo times each term separately (each gets its own one-cycle floor), so a phase of a layer is
a tuple of FLOP counts and a tuple of byte counts rather than two sums.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Terms:
    """The FLOP terms and device-memory byte terms of one phase of one layer."""

    flops: tuple[float, ...] = ()
    bytes: tuple[float, ...] = ()

    def __add__(self, other: "Terms") -> "Terms":
        return Terms(self.flops + other.flops, self.bytes + other.bytes)

    @property
    def is_empty(self) -> bool:
        return not self.flops and not self.bytes


NONE = Terms()
